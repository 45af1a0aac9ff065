#include "server/model_runner.h"

#include <algorithm>
#include <cstring>

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
  if (config.dynamic_batching) {
    runner->policy_.max_batch_size = config.max_batch_size;
    runner->policy_.preferred_batch_sizes = config.preferred_batch_sizes;
    runner->policy_.max_queue_delay = std::chrono::microseconds(config.max_queue_delay_us);
  }
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
  QueuedRequest& q = job.queued;
  const int64_t levels = config_.priority_levels;
  if (request.priority < 0 || request.priority > levels) {
    return absl::InvalidArgumentError(
        levels == 0 ? absl::StrCat("priority ", request.priority, " requested, but model '", name_,
                                   "' has no priority levels")
                    : absl::StrCat("priority ", request.priority, " is not a level of model '", name_, "' (1 to ",
                                   levels, ")"));
  }
  q.priority = request.priority > 0 ? request.priority
                                    : (config_.default_priority_level > 0 ? config_.default_priority_level
                                                                          : (levels + 1) / 2);
  if (request.timeout_us < 0) return absl::InvalidArgumentError("timeout must be >= 0 microseconds");
  q.arrival = BatchClock::now();
  const int64_t timeout_us = request.timeout_us > 0 ? request.timeout_us : config_.default_timeout_us;
  if (timeout_us > 0) q.deadline = q.arrival + std::chrono::microseconds(timeout_us);
  if (request.deadline) q.deadline = q.deadline ? std::min(*q.deadline, *request.deadline) : *request.deadline;
  // Requests batch together when every input agrees beyond the first dimension and all inputs share that
  // first dimension (the batch); anything else gets a key of its own and runs alone.
  bool batchable = !job.inputs.empty() && job.inputs[0].rank() > 0;
  for (const runtime::Tensor& t : job.inputs) {
    batchable = batchable && t.rank() > 0 && t.dim(0) == job.inputs[0].dim(0);
    absl::StrAppend(&q.shape_key, static_cast<int>(t.type()), ":");
    for (int64_t d = 1; d < t.rank(); ++d) absl::StrAppend(&q.shape_key, t.dim(d), ",");
    absl::StrAppend(&q.shape_key, "r", t.rank(), ";");
  }
  q.batch = batchable ? job.inputs[0].dim(0) : 1;
  if (!batchable) absl::StrAppend(&q.shape_key, "#", next_solo_++);  // a key of its own: runs alone
  job.cancelled = std::move(request.cancelled);
  return job;
}

int64_t ModelRunner::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

void ModelRunner::Submit(InferRequest request, InferCallback done) {
  absl::StatusOr<Job> job = Prepare(std::move(request));
  if (!job.ok()) {
    stats_.Failure("invalid_argument", {});
    done(job.status());
    return;
  }
  job->done = std::move(done);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      stats_.Failure("unavailable", {});
      job->done(absl::UnavailableError(absl::StrCat("model '", name_, "' is unloading")));
      return;
    }
    // max_queue_size counts requests waiting behind a running one: an idle runner takes one more.
    if (static_cast<int64_t>(queue_.size()) >= config_.max_queue_size + (running_ ? 0 : 1)) {
      lock.unlock();
      stats_.Failure("queue_full", {});
      job->done(absl::ResourceExhaustedError(absl::StrCat("model '", name_, "': queue full (", config_.max_queue_size,
                                                           " requests waiting)")));
      return;
    }
    queue_.push_back(*std::move(job));
  }
  wake_.notify_one();
}

void ModelRunner::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) return;  // every accepted request answered
      wake_.wait(lock);
      continue;
    }
    std::vector<QueuedRequest> view;
    view.reserve(queue_.size());
    for (const Job& j : queue_) view.push_back(j.queued);
    BatchPolicy policy = policy_;
    if (stopping_) policy.max_queue_delay = std::chrono::microseconds(0);  // nothing more will arrive: do not wait
    const BatchDecision d = DecideBatch(view, policy, BatchClock::now());
    std::vector<Job> expired, batch;
    std::vector<bool> taken(queue_.size(), false);
    for (std::size_t i : d.expired) {
      expired.push_back(std::move(queue_[i]));
      taken[i] = true;
    }
    for (std::size_t i : d.run) {
      batch.push_back(std::move(queue_[i]));
      taken[i] = true;
    }
    if (expired.empty() && batch.empty()) {
      if (d.wake) {
        wake_.wait_until(lock, *d.wake);
      } else {
        wake_.wait(lock);
      }
      continue;
    }
    std::vector<Job> rest;
    for (std::size_t i = 0; i < queue_.size(); ++i) {
      if (!taken[i]) rest.push_back(std::move(queue_[i]));
    }
    queue_ = std::move(rest);
    running_ = !batch.empty();
    lock.unlock();
    for (Job& job : expired) {
      stats_.Failure("timeout", BatchClock::now() - job.queued.arrival);
      job.done(absl::UnavailableError(absl::StrCat("model '", name_, "': the request's timeout expired in the queue")));
    }
    if (!batch.empty()) Execute(std::move(batch));
    lock.lock();
    running_ = false;
  }
}

void ModelRunner::Execute(std::vector<Job> jobs) {
  // A client that has gone is not computed for.
  const BatchClock::time_point dispatched = BatchClock::now();
  std::vector<Job> live;
  for (Job& job : jobs) {
    if (job.cancelled && job.cancelled()) {
      stats_.Failure("cancelled", dispatched - job.queued.arrival);
      job.done(absl::CancelledError("the client cancelled the request"));
    } else {
      live.push_back(std::move(job));
    }
  }
  if (live.empty()) return;
  int64_t total = 0;
  for (const Job& job : live) total += job.queued.batch;  // rows (1 for a request that cannot batch)
  absl::StatusOr<std::vector<runtime::Tensor>> outputs;
  if (live.size() == 1) {
    outputs = session_->Run(live[0].inputs, pool_.get());
  } else {
    // A batch: every input concatenated on the first dimension, in the jobs' order.
    std::vector<runtime::Tensor> inputs;
    for (std::size_t i = 0; i < live[0].inputs.size(); ++i) {
      runtime::Shape shape = live[0].inputs[i].shape();
      shape[0] = total;
      runtime::Tensor t = runtime::Tensor::Allocate(live[0].inputs[i].type(), shape);
      char* dst = static_cast<char*>(t.raw());
      for (const Job& job : live) {
        std::memcpy(dst, job.inputs[i].raw(), job.inputs[i].bytes());
        dst += job.inputs[i].bytes();
      }
      inputs.push_back(std::move(t));
    }
    outputs = session_->Run(inputs, pool_.get());
    for (std::size_t o = 0; outputs.ok() && o < outputs->size(); ++o) {
      const runtime::Tensor& t = (*outputs)[o];
      if (t.rank() == 0 || t.dim(0) != total) {
        outputs = absl::InternalError(absl::StrCat(
            "model '", name_, "': output '", session_->outputs()[o].name, "' has shape ",
            runtime::ShapeString(t.shape()), ", not a first dimension of ", total, " for a batch of ", total,
            " rows; this model cannot be batched (drop dynamic_batching)"));
      }
    }
  }
  const BatchClock::time_point computed = BatchClock::now();
  if (outputs.ok()) stats_.Execution(total, static_cast<int64_t>(live.size()), computed - dispatched);
  // Each request: a failure with its reason, or its outputs (one request: the outputs themselves, sharing
  // storage; a batch: each request's rows, as views).
  int64_t row = 0;
  for (Job& job : live) {
    const int64_t rows = job.queued.batch;
    if (!outputs.ok()) {
      stats_.Failure(outputs.status().code() == absl::StatusCode::kInvalidArgument ? "invalid_argument" : "internal",
                     computed - job.queued.arrival);
      job.done(outputs.status());
      continue;
    }
    NamedTensors result;
    for (int o : job.outputs) {
      const runtime::Tensor& t = (*outputs)[o];
      result.emplace_back(session_->outputs()[o].name, live.size() == 1 ? t : t.Rows(row, row + rows));
    }
    row += rows;
    stats_.Success(dispatched - job.queued.arrival, BatchClock::now() - job.queued.arrival);
    job.done(std::move(result));
  }
}

}  // namespace coreserve
