#include "server/model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/status_macros.h"
#include "server/offline_commands.h"

namespace coreserve {
namespace {

std::string Names(const std::vector<runtime::TensorInfo>& tensors) {
  std::vector<std::string> names;
  for (const runtime::TensorInfo& t : tensors) names.push_back(t.name);
  return absl::StrJoin(names, ", ");
}

int IndexOf(const std::vector<runtime::TensorInfo>& tensors, const std::string& name) {
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Load(const std::string& name, const std::string& path,
                                                               const ModelConfig& config) {
  auto runner = std::unique_ptr<ModelRunner>(new ModelRunner());
  runner->name_ = name;
  runner->config_ = config;
  runtime::SessionOptions options;
  options.precision = config.precision;
  ASSIGN_OR_RETURN(runner->session_, runtime::Session::Load(path, options));
  const int threads = config.threads > 0 ? static_cast<int>(config.threads) : AvailableCpus();
  runner->pool_ = std::make_unique<runtime::ThreadPool>(threads);
  runner->thread_ = std::thread([r = runner.get()] { r->Loop(); });
  return runner;
}

ModelRunner::~ModelRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<ModelRunner::Job> ModelRunner::Prepare(InferRequest request) const {
  const std::vector<runtime::TensorInfo>& inputs = session_->inputs();
  const std::vector<runtime::TensorInfo>& outputs = session_->outputs();
  Job job;
  job.inputs.resize(inputs.size());
  std::vector<bool> given(inputs.size(), false);
  for (auto& [name, tensor] : request.inputs) {
    const int i = IndexOf(inputs, name);
    if (i < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name_, "' has no input '", name, "' (its inputs: ", Names(inputs), ")"));
    }
    if (given[i]) return absl::InvalidArgumentError(absl::StrCat("input '", name, "' is given twice"));
    if (config_.max_batch_size > 0 && tensor.rank() > 0 && tensor.dim(0) > config_.max_batch_size) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "': batch size ", tensor.dim(0),
                                                     " exceeds the model's max_batch_size ", config_.max_batch_size));
    }
    given[i] = true;
    job.inputs[i] = std::move(tensor);
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!given[i]) return absl::InvalidArgumentError(absl::StrCat("missing input '", inputs[i].name, "'"));
  }
  for (const std::string& name : request.outputs) {
    const int o = IndexOf(outputs, name);
    if (o < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name_, "' has no output '", name, "' (its outputs: ", Names(outputs), ")"));
    }
    job.outputs.push_back(o);
  }
  if (request.outputs.empty()) {
    for (std::size_t o = 0; o < outputs.size(); ++o) job.outputs.push_back(static_cast<int>(o));
  }
  return job;
}

void ModelRunner::Submit(InferRequest request, InferCallback done) {
  absl::StatusOr<Job> job = Prepare(std::move(request));
  if (!job.ok()) {
    done(job.status());
    return;
  }
  job->done = std::move(done);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      job->done(absl::UnavailableError(absl::StrCat("model '", name_, "' is unloading")));
      return;
    }
    // max_queue_size counts requests waiting behind a running one: an idle runner takes one more.
    if (static_cast<int64_t>(queue_.size()) >= config_.max_queue_size + (running_ ? 0 : 1)) {
      lock.unlock();
      job->done(absl::ResourceExhaustedError(absl::StrCat("model '", name_, "': queue full (", config_.max_queue_size,
                                                           " requests waiting)")));
      return;
    }
    queue_.push_back(*std::move(job));
  }
  wake_.notify_one();
}

void ModelRunner::Loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every accepted request answered
      job = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    absl::StatusOr<std::vector<runtime::Tensor>> outputs = session_->Run(job.inputs, pool_.get());
    if (!outputs.ok()) {
      job.done(outputs.status());
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
      continue;
    }
    NamedTensors result;
    for (int o : job.outputs) result.emplace_back(session_->outputs()[o].name, (*outputs)[o]);  // shares storage
    job.done(std::move(result));
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
  }
}

}  // namespace coreserve
