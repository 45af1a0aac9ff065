#include "server/model_runner.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/status_macros.h"
#include "server/cpus.h"
#include "server/log.h"
#include "server/low_priority.h"
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

// A tensor of `shape` whose every element is `value` (0 or 1), in `type`.
runtime::Tensor Filled(runtime::DataType type, const runtime::Shape& shape, int value) {
  runtime::Tensor t = runtime::Tensor::Allocate(type, shape);
  std::memset(t.raw(), 0, t.bytes());
  for (int64_t i = 0; value != 0 && i < t.elements(); ++i) {
    switch (type) {
      case runtime::DataType::kInt64: t.data<int64_t>()[i] = value; break;
      case runtime::DataType::kInt32: t.data<int32_t>()[i] = value; break;
      case runtime::DataType::kFloat32: t.data<float>()[i] = static_cast<float>(value); break;
      case runtime::DataType::kBool: t.data<bool>()[i] = true; break;
      default: break;
    }
  }
  return t;
}

// Whether each row of a (rows x positions) attention mask has a position it does not mask.
bool EveryRowAttends(const runtime::Tensor& mask) {
  if (mask.rank() != 2) return false;
  for (int64_t r = 0; r < mask.dim(0); ++r) {
    bool any = false;
    for (int64_t p = 0; p < mask.dim(1) && !any; ++p) {
      const int64_t i = r * mask.dim(1) + p;
      switch (mask.type()) {
        case runtime::DataType::kInt64: any = mask.data<int64_t>()[i] != 0; break;
        case runtime::DataType::kInt32: any = mask.data<int32_t>()[i] != 0; break;
        case runtime::DataType::kFloat32: any = mask.data<float>()[i] != 0.0f; break;
        case runtime::DataType::kBool: any = mask.data<bool>()[i]; break;
        default: return false;
      }
    }
    if (!any) return false;
  }
  return true;
}

// Bytes of one position along dim 1 of `t` (the product of the dims after it, times the element size).
std::size_t PositionBytes(const runtime::Tensor& t) {
  std::size_t bytes = runtime::DataTypeSize(t.type());
  for (int64_t d = 2; d < t.rank(); ++d) bytes *= static_cast<std::size_t>(t.dim(d));
  return bytes;
}

}  // namespace

// The pool the models without a layout (no threads, groups or pipeline) share: one execution at a time (`turn`),
// on the CPUs no model's groups or stages hold — every usable CPU when no model has a layout — one thread per
// CPU, the workers pinned, the calling thread (the pool's thread 0) kept to the first CPU while it runs.
// Several such models, or such models beside models with layouts, then never run more compute threads than
// there are cores, as separate pools of every CPU would (their workers spin between operators). The pool is
// remade when a load or unload changes the CPUs the layouts hold; if they hold every CPU, it uses them all,
// overlapping them. Made with the first such model, freed with the last.
struct ModelRunner::SharedPool {
  std::mutex turn;
  std::vector<int> cpus;                      // under `turn`
  std::unique_ptr<runtime::ThreadPool> pool;  // under `turn`
  uint64_t generation = 0;                    // the CoreAllocator generation `cpus` was read at
  mutable std::mutex info_mu;                 // guards `info`: a copy of `cpus` that metrics read without waiting
  std::vector<int> info;                      // for an execution to finish

  std::vector<int> Cpus() const {
    std::lock_guard<std::mutex> lock(info_mu);
    return info;
  }

  // Under `turn`: the pool over the CPUs the layouts leave free now.
  runtime::ThreadPool* Current() {
    CoreAllocator& allocator = CoreAllocator::Global();
    if (pool != nullptr && allocator.generation() == generation) return pool.get();
    const std::vector<int> usable = UsableCpus();
    std::vector<int> free = allocator.Unheld(usable, &generation);
    if (free.empty()) free = usable;
    if (pool == nullptr || free != cpus) {
      cpus = free;
      pool = std::make_unique<runtime::ThreadPool>(static_cast<int>(cpus.size()), cpus);
      std::lock_guard<std::mutex> lock(info_mu);
      info = cpus;
      LOG_INFO("models without a layout share ", cpus.size(), " CPU(s): ", absl::StrJoin(cpus, ","));
    }
    return pool.get();
  }

  static std::shared_ptr<SharedPool> Get() {
    static std::mutex mu;
    static std::weak_ptr<SharedPool> current;
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<SharedPool> shared = current.lock();
    if (shared == nullptr) {
      shared = std::make_shared<SharedPool>();
      current = shared;
    }
    return shared;
  }
};

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Load(const std::string& name, const std::string& path,
                                                               const ModelConfig& config) {
  auto runner = std::unique_ptr<ModelRunner>(new ModelRunner());
  runner->name_ = name;
  runner->config_ = config;
  runtime::SessionOptions options;
  options.precision = config.precision;
  // Reading, optimizing and packing the weights is the bulk of a load: at low priority, so that loading a model
  // while others serve slows them as little as it can. (The runner's threads are started afterwards, from this
  // thread, at its own priority.)
  absl::StatusOr<std::unique_ptr<runtime::Session>> session;
  RunAtLowPriority([&] { session = runtime::Session::Load(path, options); });
  if (!session.ok()) return session.status();
  runner->session_ = *std::move(session);
  RETURN_IF_ERROR(runner->ApplyOverrides());
  if (config.pipeline.stages > 0) {
    const ModelConfig::Pipeline& p = config.pipeline;
    auto reserved = CoreAllocator::Global().Reserve(name, std::vector<int64_t>(p.stages * p.copies, p.cores_per_stage),
                                                    config.share_cores, UsableCpus());
    auto layout = reserved.ok() ? absl::StatusOr<std::vector<std::vector<int>>>(reserved->groups) : reserved.status();
    if (reserved.ok()) runner->cores_ = reserved->hold;
    if (!layout.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("model '", name, "': pipeline of ", p.copies, " x ", p.stages,
                                                     " stages of ", p.cores_per_stage, " cores: ", layout.status().message()));
    }
    RETURN_IF_ERROR(runner->CutPipeline());
    for (int64_t c = 0; c < p.copies; ++c) {
      auto instance = std::make_unique<Instance>();
      for (int64_t k = 0; k < p.stages; ++k) {
        auto stage = std::make_unique<Stage>();
        stage->slice = &runner->slices_[k];
        stage->cpus = (*layout)[c * p.stages + k];
        stage->pool = std::make_unique<runtime::ThreadPool>(static_cast<int>(stage->cpus.size()), stage->cpus);
        instance->cpus.insert(instance->cpus.end(), stage->cpus.begin(), stage->cpus.end());
        instance->stages.push_back(std::move(stage));
      }
      runner->instances_.push_back(std::move(instance));
    }
  } else if (config.groups.empty()) {
    auto instance = std::make_unique<Instance>();
    if (config.threads > 0) {
      instance->pool = std::make_unique<runtime::ThreadPool>(static_cast<int>(config.threads));
    } else {
      instance->shared = SharedPool::Get();
      std::lock_guard<std::mutex> turn(instance->shared->turn);
      instance->shared->Current();  // made now, so the load's warm-up and the first request find it
    }
    runner->instances_.push_back(std::move(instance));
  } else {
    auto reserved = CoreAllocator::Global().Reserve(name, config.groups, config.share_cores, UsableCpus());
    auto layout = reserved.ok() ? absl::StatusOr<std::vector<std::vector<int>>>(reserved->groups) : reserved.status();
    if (reserved.ok()) runner->cores_ = reserved->hold;
    if (!layout.ok()) return absl::InvalidArgumentError(absl::StrCat("model '", name, "': ", layout.status().message()));
    for (const std::vector<int>& cpus : *layout) {
      auto instance = std::make_unique<Instance>();
      instance->cpus = cpus;
      instance->pool = std::make_unique<runtime::ThreadPool>(static_cast<int>(cpus.size()), cpus);
      runner->instances_.push_back(std::move(instance));
    }
  }
  if (config.dynamic_batching) {
    runner->policy_.max_batch_size = config.max_batch_size;
    runner->policy_.preferred_batch_sizes = config.preferred_batch_sizes;
    runner->policy_.max_queue_delay = std::chrono::microseconds(config.max_queue_delay_us);
    if (config.pad_sequences) runner->DetectSequencePadding();
  }
  RETURN_IF_ERROR(runner->WarmUp());
  for (auto& instance : runner->instances_) {
    for (std::size_t k = 0; k < instance->stages.size(); ++k) {
      instance->stages[k]->thread = std::thread([r = runner.get(), i = instance.get(), k] {
        runtime::PinCurrentThread(i->stages[k]->cpus[0]);  // the stage pool's thread 0
        r->StageLoop(*i, k);
      });
      runtime::NameThread(instance->stages[k]->thread, "cs-stage");
    }
    instance->thread = std::thread([r = runner.get(), i = instance.get()] {
      // A pipeline's dispatching thread only hands batches on: it runs anywhere.
      if (i->stages.empty() && !i->cpus.empty()) runtime::PinCurrentThread(i->cpus[0]);  // the pool's thread 0
      r->Loop(*i);
    });
    runtime::NameThread(instance->thread, "cs-instance");
  }
  return runner;
}

void ModelRunner::DetectSequencePadding() {
  const std::vector<runtime::TensorInfo>& inputs = session_->inputs();
  const std::vector<runtime::TensorInfo>& outputs = session_->outputs();
  std::vector<bool> padded(inputs.size(), false);
  int mask = -1;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    padded[i] = inputs[i].shape.size() >= 2 && inputs[i].shape[1] < 0;
    if (inputs[i].name == "attention_mask" && padded[i] && inputs[i].shape.size() == 2) mask = static_cast<int>(i);
  }
  if (mask < 0) return;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    for (std::size_t d = 0; d < inputs[i].shape.size(); ++d) {
      if (inputs[i].shape[d] < 0 && (d > 1 || (d == 1 && !padded[i]))) {
        LOG_INFO("model ", name_, ": no sequence padding (input '", inputs[i].name, "' has another dynamic dim)");
        return;
      }
    }
  }
  // Which outputs follow the sequence: run one row at lengths 1 and 2 (zeros; the mask all ones). Only the batch
  // and the padded inputs' dim 1 are dynamic, so the probe's "other dynamic dims" are exactly the sequence.
  std::vector<std::vector<runtime::Tensor>> probes;
  for (int64_t length : {1, 2}) {
    auto feeds = ProbeFeeds(nullptr, length);
    auto result = feeds.ok() ? RunWhole(*feeds) : absl::StatusOr<std::vector<runtime::Tensor>>(feeds.status());
    if (!result.ok()) {
      LOG_WARNING("model ", name_, ": no sequence padding (a run at sequence length ", length,
                  " failed: ", result.status().message(), ")");
      return;
    }
    probes.push_back(*std::move(result));
  }
  std::vector<bool> sequence(outputs.size(), false);
  std::vector<std::string> cut;
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    const runtime::Shape& a = probes[0][o].shape();
    const runtime::Shape& b = probes[1][o].shape();
    bool follows = a.size() == b.size() && a.size() >= 2 && a[1] == 1 && b[1] == 2;
    for (std::size_t d = 0; d < a.size() && d < b.size(); ++d) {
      if (a.size() != b.size() || (a[d] != b[d] && !(d == 1 && follows))) {
        LOG_INFO("model ", name_, ": no sequence padding (output '", outputs[o].name, "' is ",
                 runtime::ShapeString(a), " at length 1 and ", runtime::ShapeString(b), " at length 2)");
        return;
      }
    }
    sequence[o] = follows && a != b;
    if (sequence[o]) cut.push_back(outputs[o].name);
  }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (padded[i]) names.push_back(inputs[i].name);
  }
  LOG_INFO("model ", name_, ": batches pad ", absl::StrJoin(names, ", "), " to the longest sequence; outputs cut back: ",
           cut.empty() ? "none" : absl::StrJoin(cut, ", "));
  padded_inputs_ = std::move(padded);
  sequence_outputs_ = std::move(sequence);
  mask_input_ = mask;
}

absl::Status ModelRunner::ApplyOverrides() {
  inputs_ = session_->inputs();
  outputs_ = session_->outputs();
  for (auto [overrides, tensors, kind] : {std::tuple{&config_.inputs, &inputs_, "input"},
                                          std::tuple{&config_.outputs, &outputs_, "output"}}) {
    for (const TensorOverride& o : *overrides) {
      const int i = IndexOf(*tensors, o.name);
      if (i < 0) {
        return absl::InvalidArgumentError(absl::StrCat("model '", name_, "': ", kind, "s.", o.name, ": the model has no ",
                                                       kind, " '", o.name, "' (its ", kind, "s: ", Names(*tensors), ")"));
      }
      const runtime::Shape& model = (*tensors)[i].shape;
      bool fits = model.empty() || model.size() == o.dims.size();  // an unknown rank takes the override's
      for (std::size_t d = 0; fits && !model.empty() && d < model.size(); ++d) fits = model[d] < 0 || model[d] == o.dims[d];
      if (!fits) {
        return absl::InvalidArgumentError(absl::StrCat("model '", name_, "': ", kind, "s.", o.name, ": dims ",
                                                       runtime::ShapeString(o.dims), " do not fit the model's ",
                                                       runtime::ShapeString(model), " (-1 = any)"));
      }
      (*tensors)[i].shape = o.dims;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<runtime::Tensor>> ModelRunner::ProbeFeeds(const WarmupRun* run, int64_t dynamic) const {
  const std::vector<runtime::TensorInfo>& inputs = session_->inputs();
  if (run != nullptr) {
    for (const auto& [name, dims] : run->shapes) {
      if (IndexOf(inputs, name) < 0) {
        return absl::InvalidArgumentError(absl::StrCat("the model has no input '", name, "' (its inputs: ",
                                                       Names(inputs), ")"));
      }
    }
  }
  std::vector<runtime::Tensor> feeds;
  for (const runtime::TensorInfo& in : inputs) {
    runtime::Shape shape = in.shape;
    const std::vector<int64_t>* given = nullptr;
    if (run != nullptr) {
      for (const auto& [name, dims] : run->shapes) {
        if (name == in.name) given = &dims;
      }
    }
    if (given != nullptr) {
      bool fits = given->size() == shape.size();
      for (std::size_t d = 0; fits && d < shape.size(); ++d) fits = shape[d] < 0 || shape[d] == (*given)[d];
      if (!fits) {
        return absl::InvalidArgumentError(absl::StrCat("shape ", runtime::ShapeString(*given), " does not fit input '",
                                                       in.name, "' ", runtime::ShapeString(shape), " (-1 = any)"));
      }
      shape = *given;
    } else if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
      if (run != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "' is ", runtime::ShapeString(shape),
                                                       "; give its shape under shapes"));
      }
      for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] < 0) shape[d] = d == 0 ? 1 : dynamic;
      }
    }
    feeds.push_back(Filled(in.type, shape, in.name == "attention_mask" ? 1 : 0));
  }
  return feeds;
}

absl::StatusOr<std::vector<runtime::Tensor>> ModelRunner::RunOnPool(const Instance& instance,
                                                                     const std::vector<runtime::Tensor>& feeds) {
  if (instance.shared == nullptr) return session_->Run(feeds, instance.pool.get());
  std::lock_guard<std::mutex> turn(instance.shared->turn);
  runtime::ThreadPool* pool = instance.shared->Current();
  // The caller is the pool's thread 0: on the first CPU while it runs (the workers hold the others).
  runtime::ScopedAffinity here({instance.shared->cpus[0]});
  return session_->Run(feeds, pool);
}

absl::StatusOr<std::vector<runtime::Tensor>> ModelRunner::RunWhole(const std::vector<runtime::Tensor>& feeds) {
  const Instance& first = *instances_[0];
  if (slices_.empty()) return RunOnPool(first, feeds);
  std::map<std::string, runtime::Tensor> values;
  for (std::size_t i = 0; i < feeds.size(); ++i) values[session_->inputs()[i].name] = feeds[i];
  for (std::size_t k = 0; k < slices_.size(); ++k) {
    RETURN_IF_ERROR(runtime::RunStage(slices_[k], values, first.stages[k]->pool.get()));
  }
  std::vector<runtime::Tensor> outputs;
  for (const runtime::TensorInfo& o : session_->outputs()) outputs.push_back(values.at(o.name));
  return outputs;
}

absl::Status ModelRunner::WarmUp() {
  for (std::size_t r = 0; r < config_.warmup.size(); ++r) {
    const WarmupRun& run = config_.warmup[r];
    const std::string where = absl::StrCat("model '", name_, "': warmup[", r, "]: ");
    auto feeds = ProbeFeeds(&run, 0);
    if (!feeds.ok()) return absl::InvalidArgumentError(absl::StrCat(where, feeds.status().message()));
    const auto start = BatchClock::now();
    for (int64_t i = 0; i < run.count; ++i) {
      auto result = RunWhole(*feeds);
      if (!result.ok()) return absl::Status(result.status().code(), absl::StrCat(where, result.status().message()));
    }
    LOG_INFO("model ", name_, ": warmup[", r, "]: ", run.count, " run(s) in ",
             std::chrono::duration<double, std::milli>(BatchClock::now() - start).count(), " ms");
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::CutPipeline() {
  // The cut balances each step's estimated cost (its flops and bytes at the shapes of a run at the first
  // warm-up's shapes, else batch 1 and other dynamic dims 16) in the seconds its operator type took in that run,
  // on one stage's worth of cores; the first run records the memory plan, the second is timed.
  auto feeds = ProbeFeeds(config_.warmup.empty() ? nullptr : &config_.warmup[0], 16);
  if (!feeds.ok()) return absl::InvalidArgumentError(absl::StrCat("model '", name_, "': pipeline: ", feeds.status().message()));
  runtime::ThreadPool pool(static_cast<int>(config_.pipeline.cores_per_stage));
  std::vector<double> seconds;
  std::vector<runtime::Session::StepShapes> shapes;
  for (int i = 0; i < 2; ++i) {
    auto run = session_->Run(*feeds, &pool, &seconds, &shapes);
    if (!run.ok()) {
      return absl::Status(run.status().code(), absl::StrCat("model '", name_, "': pipeline: ", run.status().message()));
    }
  }
  const std::vector<double> cost =
      runtime::RefineByMeasurement(*session_, runtime::EstimateStepCosts(*session_, shapes), seconds);
  auto slices = runtime::CutIntoStages(*session_, cost, static_cast<int>(config_.pipeline.stages));
  if (!slices.ok()) {
    return absl::Status(slices.status().code(), absl::StrCat("model '", name_, "': pipeline: ", slices.status().message()));
  }
  slices_ = *std::move(slices);
  std::vector<std::string> shares;
  double total = 0;
  for (const auto& s : slices_) total += s.seconds;
  for (const auto& s : slices_) shares.push_back(absl::StrCat(s.end_step - s.first_step, " steps ", static_cast<int>(100 * s.seconds / total), "%"));
  LOG_INFO("model ", name_, ": pipeline of ", slices_.size(), " stages: ", absl::StrJoin(shares, ", "));
  return absl::OkStatus();
}

namespace {
// Deletions Share moved off a runner's own thread and not yet finished.
std::mutex retiring_mu;
std::condition_variable retiring_done;
int retiring = 0;
}  // namespace

std::shared_ptr<ModelRunner> ModelRunner::Share(std::unique_ptr<ModelRunner> runner) {
  return std::shared_ptr<ModelRunner>(runner.release(), [](ModelRunner* r) {
    if (!r->OnOwnThread()) {
      delete r;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(retiring_mu);
      ++retiring;
    }
    std::thread([r] {
      delete r;
      std::lock_guard<std::mutex> lock(retiring_mu);
      if (--retiring == 0) retiring_done.notify_all();
    }).detach();
  });
}

void ModelRunner::WaitForRetired() {
  std::unique_lock<std::mutex> lock(retiring_mu);
  retiring_done.wait(lock, [] { return retiring == 0; });
}

bool ModelRunner::OnOwnThread() const {
  const std::thread::id self = std::this_thread::get_id();
  for (const auto& instance : instances_) {
    if (instance->thread.get_id() == self) return true;
    for (const auto& stage : instance->stages) {
      if (stage->thread.get_id() == self) return true;
    }
  }
  return false;
}

ModelRunner::~ModelRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& instance : instances_) {
    if (instance->thread.joinable()) instance->thread.join();
  }
  // Every batch a dispatcher handed on is in a stage queue: each stage finishes its queue, in order.
  for (auto& instance : instances_) {
    for (auto& stage : instance->stages) {
      {
        std::lock_guard<std::mutex> lock(stage->mu);
        stage->stop = true;
      }
      stage->cv.notify_all();
      if (stage->thread.joinable()) stage->thread.join();
    }
  }
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
    // The declared shape (the model's, or the config's narrower override): checked here so that an override
    // holds even where the model itself would accept more.
    const runtime::Shape& want = inputs_[i].shape;
    bool fits = want.empty() || want.size() == static_cast<std::size_t>(tensor.rank());  // empty: rank unknown
    for (std::size_t d = 0; fits && !want.empty() && d < want.size(); ++d) {
      fits = want[d] < 0 || want[d] == tensor.dim(static_cast<int64_t>(d));
    }
    if (!fits) {
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "': shape ", runtime::ShapeString(tensor.shape()),
                                                     " does not fit ", runtime::ShapeString(want), " (-1 = any)"));
    }
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
  // Requests batch together when every input agrees beyond the first dimension (or, for a model that pads
  // sequences, beyond it and the padded inputs' common length) and all inputs share that first dimension (the
  // batch); anything else gets a key of its own and runs alone.
  bool batchable = !job.inputs.empty() && job.inputs[0].rank() > 0;
  bool paddable = !padded_inputs_.empty();
  for (std::size_t i = 0; paddable && i < job.inputs.size(); ++i) {
    if (!padded_inputs_[i]) continue;
    const runtime::Tensor& t = job.inputs[i];
    paddable = t.rank() >= 2 && (job.sequence < 0 || t.dim(1) == job.sequence);
    if (paddable) job.sequence = t.dim(1);
  }
  // A row whose mask hides every position would attend to the padding too (a softmax over masked scores only is
  // uniform over all of them): such a request keeps its own length.
  if (paddable && !EveryRowAttends(job.inputs[mask_input_])) paddable = false;
  if (!paddable) job.sequence = -1;
  for (std::size_t i = 0; i < job.inputs.size(); ++i) {
    const runtime::Tensor& t = job.inputs[i];
    batchable = batchable && t.rank() > 0 && t.dim(0) == job.inputs[0].dim(0);
    absl::StrAppend(&q.shape_key, static_cast<int>(t.type()), ":");
    for (int64_t d = 1; d < t.rank(); ++d) {
      if (d == 1 && paddable && padded_inputs_[i]) {
        absl::StrAppend(&q.shape_key, "*,");
      } else {
        absl::StrAppend(&q.shape_key, t.dim(d), ",");
      }
    }
    absl::StrAppend(&q.shape_key, "r", t.rank(), ";");
  }
  q.batch = batchable ? job.inputs[0].dim(0) : 1;
  if (!batchable) absl::StrAppend(&q.shape_key, "#", next_solo_++);  // a key of its own: runs alone
  job.cancelled = std::move(request.cancelled);
  return job;
}

int ModelRunner::threads() const {
  int n = 0;
  for (const auto& i : instances_) {
    if (i->pool) n += i->pool->threads();
    if (i->shared) n += std::max<int>(1, static_cast<int>(i->shared->Cpus().size()));
    for (const auto& stage : i->stages) n += stage->pool->threads();
  }
  return n;
}

std::vector<ModelRunner::InstanceStats> ModelRunner::instance_stats() const {
  std::vector<InstanceStats> out;
  for (const auto& i : instances_) {
    InstanceStats st;
    st.cpus = i->shared ? i->shared->Cpus() : i->cpus;
    st.threads = i->pool ? i->pool->threads() : static_cast<int>(st.cpus.size());
    st.executions = i->executions.load();
    st.busy_seconds = static_cast<double>(i->busy_ns.load()) * 1e-9;
    st.in_flight = i->in_flight.load();
    for (const auto& stage : i->stages) {
      std::lock_guard<std::mutex> lock(stage->mu);
      st.threads += stage->pool->threads();
      st.stages.push_back({stage->cpus, stage->runs.load(), static_cast<double>(stage->busy_ns.load()) * 1e-9,
                           static_cast<int64_t>(stage->queue.size())});
    }
    out.push_back(std::move(st));
  }
  return out;
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
    const int64_t idle = static_cast<int64_t>(instances_.size()) - busy_;
    if (static_cast<int64_t>(queue_.size()) >= config_.max_queue_size + idle) {
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

void ModelRunner::Loop(Instance& instance) {
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
    if (!batch.empty()) ++busy_;
    if (!queue_.empty()) wake_.notify_one();  // another free instance may take what is left
    lock.unlock();
    for (Job& job : expired) {
      stats_.Failure("timeout", BatchClock::now() - job.queued.arrival);
      job.done(absl::UnavailableError(absl::StrCat("model '", name_, "': the request's timeout expired in the queue")));
    }
    const bool ran = !batch.empty();
    if (ran) Execute(std::move(batch), instance);
    lock.lock();
    if (ran) --busy_;
  }
}

std::unique_ptr<ModelRunner::Batch> ModelRunner::Begin(std::vector<Job> jobs, Instance& instance) {
  // A client that has gone is not computed for.
  auto batch = std::make_unique<Batch>();
  batch->dispatched = BatchClock::now();
  for (Job& job : jobs) {
    if (job.cancelled && job.cancelled()) {
      stats_.Failure("cancelled", batch->dispatched - job.queued.arrival);
      job.done(absl::CancelledError("the client cancelled the request"));
    } else {
      batch->jobs.push_back(std::move(job));
    }
  }
  std::vector<Job>& live = batch->jobs;
  if (live.empty()) return nullptr;
  in_flight_.fetch_add(static_cast<int64_t>(live.size()));
  instance.in_flight.fetch_add(static_cast<int64_t>(live.size()));
  for (const Job& job : live) batch->rows += job.queued.batch;  // rows (1 for a request that cannot batch)
  // Padded requests run at the longest one's length (-1: nothing is padded).
  for (const Job& job : live) batch->sequence = std::max(batch->sequence, job.sequence);
  if (live.size() == 1) {
    batch->sequence = -1;
    batch->inputs = live[0].inputs;
  } else {
    batch->inputs = BatchInputs(live, batch->rows, batch->sequence);
  }
  return batch;
}

void ModelRunner::Execute(std::vector<Job> jobs, Instance& instance) {
  std::unique_ptr<Batch> batch = Begin(std::move(jobs), instance);
  if (batch == nullptr) return;
  if (instance.stages.empty()) {
    auto outputs = RunOnPool(instance, batch->inputs);
    instance.busy_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(BatchClock::now() - batch->dispatched).count());
    if (!outputs.ok() && batch->jobs.size() > 1) return RetryAlone(std::move(batch), instance, nullptr);
    Finish(std::move(batch), std::move(outputs), instance);
    return;
  }
  for (std::size_t i = 0; i < batch->inputs.size(); ++i) {
    batch->values[session_->inputs()[i].name] = std::move(batch->inputs[i]);
  }
  batch->inputs.clear();
  Hand(*instance.stages[0], std::move(batch));
}

void ModelRunner::Hand(Stage& stage, std::unique_ptr<Batch> batch) {
  std::unique_lock<std::mutex> lock(stage.mu);
  // One batch may wait in front of a stage: a full stage holds the one before it back (the pipeline's
  // back-pressure reaches the model's queue, where max_queue_size applies).
  stage.cv.wait(lock, [&] { return stage.queue.empty(); });
  stage.queue.push_back(std::move(batch));
  lock.unlock();
  stage.cv.notify_all();
}

void ModelRunner::StageLoop(Instance& instance, std::size_t k) {
  Stage& stage = *instance.stages[k];
  for (;;) {
    std::unique_ptr<Batch> batch;
    {
      std::unique_lock<std::mutex> lock(stage.mu);
      stage.cv.wait(lock, [&] { return stage.stop || !stage.queue.empty(); });
      if (stage.queue.empty()) return;  // stopping, and nothing left to run
      batch = std::move(stage.queue.front());
      stage.queue.pop_front();
    }
    stage.cv.notify_all();  // room for the next batch
    if (batch->status.ok()) {
      const auto start = BatchClock::now();
      batch->status = runtime::RunStage(*stage.slice, batch->values, stage.pool.get());
      stage.busy_ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(BatchClock::now() - start).count());
      stage.runs.fetch_add(1);
    }
    if (k + 1 < instance.stages.size()) {
      Hand(*instance.stages[k + 1], std::move(batch));
      continue;
    }
    absl::StatusOr<std::vector<runtime::Tensor>> outputs = std::vector<runtime::Tensor>();
    if (batch->status.ok()) {
      for (const runtime::TensorInfo& o : session_->outputs()) outputs->push_back(batch->values.at(o.name));
    } else {
      outputs = batch->status;
    }
    batch->values.clear();
    if (!outputs.ok() && batch->jobs.size() > 1) {
      RetryAlone(std::move(batch), instance, stage.pool.get());
      continue;
    }
    Finish(std::move(batch), std::move(outputs), instance);
  }
}

void ModelRunner::RetryAlone(std::unique_ptr<Batch> batch, Instance& instance, runtime::ThreadPool* stage_pool) {
  for (Job& job : batch->jobs) {
    auto single = std::make_unique<Batch>();
    single->dispatched = BatchClock::now();
    single->rows = job.queued.batch;
    single->inputs = job.inputs;  // a request's own tensors, untouched by the batch's concatenation
    single->jobs.push_back(std::move(job));
    auto outputs = stage_pool == nullptr ? RunOnPool(instance, single->inputs) : session_->Run(single->inputs, stage_pool);
    Finish(std::move(single), std::move(outputs), instance);
  }
}

void ModelRunner::Finish(std::unique_ptr<Batch> batch, absl::StatusOr<std::vector<runtime::Tensor>> outputs,
                         Instance& instance) {
  std::vector<Job>& live = batch->jobs;
  const int64_t total = batch->rows, sequence = batch->sequence;
  const BatchClock::time_point dispatched = batch->dispatched;
  if (live.size() > 1) {
    for (std::size_t o = 0; outputs.ok() && o < outputs->size(); ++o) {
      const runtime::Tensor& t = (*outputs)[o];
      if (t.rank() == 0 || t.dim(0) != total) {
        outputs = absl::InternalError(absl::StrCat(
            "model '", name_, "': output '", session_->outputs()[o].name, "' has shape ",
            runtime::ShapeString(t.shape()), ", not a first dimension of ", total, " for a batch of ", total,
            " rows; this model cannot be batched (drop dynamic_batching)"));
      } else if (sequence >= 0 && sequence_outputs_[o] && (t.rank() < 2 || t.dim(1) != sequence)) {
        outputs = absl::InternalError(absl::StrCat(
            "model '", name_, "': output '", session_->outputs()[o].name, "' has shape ",
            runtime::ShapeString(t.shape()), " for inputs padded to ", sequence,
            "; it does not follow the sequence as at load (set dynamic_batching.pad_sequences: false)"));
      }
    }
  }
  const BatchClock::time_point computed = BatchClock::now();
  instance.executions.fetch_add(1);
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
      if (live.size() == 1) {
        result.emplace_back(session_->outputs()[o].name, t);
      } else if (sequence >= 0 && sequence_outputs_[o] && job.sequence != sequence) {
        // The request's rows, cut back to its own length along the sequence.
        runtime::Shape shape = t.shape();
        shape[0] = rows;
        shape[1] = job.sequence;
        runtime::Tensor own = runtime::Tensor::Allocate(t.type(), shape);
        const std::size_t position = PositionBytes(t);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(static_cast<char*>(own.raw()) + r * job.sequence * position,
                      static_cast<const char*>(t.raw()) + (row + r) * sequence * position, job.sequence * position);
        }
        result.emplace_back(session_->outputs()[o].name, std::move(own));
      } else {
        result.emplace_back(session_->outputs()[o].name, t.Rows(row, row + rows));
      }
    }
    row += rows;
    stats_.Success(dispatched - job.queued.arrival, BatchClock::now() - job.queued.arrival);
    job.done(std::move(result));
  }
  in_flight_.fetch_sub(static_cast<int64_t>(live.size()));
  instance.in_flight.fetch_sub(static_cast<int64_t>(live.size()));
}


}  // namespace coreserve

namespace coreserve {

std::vector<runtime::Tensor> ModelRunner::BatchInputs(const std::vector<Job>& jobs, int64_t rows,
                                                      int64_t sequence) const {
  std::vector<runtime::Tensor> inputs;
  for (std::size_t i = 0; i < jobs[0].inputs.size(); ++i) {
    const bool pad = sequence >= 0 && padded_inputs_[i];
    runtime::Shape shape = jobs[0].inputs[i].shape();
    shape[0] = rows;
    if (pad) shape[1] = sequence;
    runtime::Tensor t = runtime::Tensor::Allocate(jobs[0].inputs[i].type(), shape);
    char* dst = static_cast<char*>(t.raw());
    if (!pad) {
      for (const Job& job : jobs) {
        std::memcpy(dst, job.inputs[i].raw(), job.inputs[i].bytes());
        dst += job.inputs[i].bytes();
      }
    } else {
      // Each row: the request's positions, then zeros (an attention mask of 0 hides them) up to `sequence`.
      std::memset(dst, 0, t.bytes());
      const std::size_t position = PositionBytes(t);
      for (const Job& job : jobs) {
        const runtime::Tensor& in = job.inputs[i];
        for (int64_t r = 0; r < in.dim(0); ++r) {
          std::memcpy(dst + r * sequence * position, static_cast<const char*>(in.raw()) + r * in.dim(1) * position,
                      in.dim(1) * position);
        }
        dst += in.dim(0) * sequence * position;
      }
    }
    inputs.push_back(std::move(t));
  }
  return inputs;
}

}  // namespace coreserve
