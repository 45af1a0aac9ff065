#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/memory_plan.h"
#include "runtime/onnx_import.h"
#include "runtime/optimizer.h"
#include "runtime/status_macros.h"

namespace coreserve::runtime {
namespace {

TensorInfo InfoOf(const Value& v) {
  TensorInfo info;
  info.name = v.name;
  info.type = v.type;
  if (v.shape) info.shape = *v.shape;
  return info;
}

}  // namespace

std::vector<std::string> UnsupportedOperators(const Graph& graph) {
  std::map<std::string, int> missing;
  for (const Node& n : graph.nodes) {
    if (n.dead || OpRegistry::Builtin().Find(n.domain, n.op_type)) continue;
    ++missing[n.domain.empty() ? n.op_type : absl::StrCat(n.domain, "::", n.op_type)];
  }
  std::vector<std::string> out;
  for (const auto& [op, count] : missing) out.push_back(absl::StrCat(op, " (", count, count == 1 ? " node)" : " nodes)"));
  return out;
}

absl::StatusOr<std::unique_ptr<Session>> Session::Load(const std::string& path, const SessionOptions& options) {
  absl::StatusOr<Graph> loaded;
  try {
    loaded = LoadOnnxGraph(path);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": out of memory while reading the model"));
  }
  if (!loaded.ok()) return loaded.status();
  Graph graph = *std::move(loaded);
  auto session = FromGraph(std::move(graph), options);
  if (!session.ok()) return absl::Status(session.status().code(), absl::StrCat(path, ": ", session.status().message()));
  return session;
}

absl::StatusOr<std::unique_ptr<Session>> Session::FromGraph(Graph graph, const SessionOptions& options) {
  auto s = std::unique_ptr<Session>(new Session());
  s->graph_ = std::move(graph);
  try {
    RETURN_IF_ERROR(s->Build(options));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while preparing the model");
  }
  return s;
}

absl::Status Session::Build(const SessionOptions& options) {
  // The declared inputs and outputs, before optimization can rewrite anything.
  for (int v : graph_.inputs) inputs_.push_back(InfoOf(graph_.values[v]));
  for (int v : graph_.outputs) outputs_.push_back(InfoOf(graph_.values[v]));
  for (const auto* list : {&inputs_, &outputs_}) {
    for (const TensorInfo& t : *list) {
      if (t.type == DataType::kUndefined || t.type == DataType::kString) {
        return absl::UnimplementedError(absl::StrCat("'", t.name, "' is not a numeric tensor (sequence, map, optional "
                                                     "and string values are not supported)"));
      }
    }
  }

  const std::vector<std::string> missing = UnsupportedOperators(graph_);
  if (!missing.empty()) {
    return absl::UnimplementedError(absl::StrCat("unsupported operators: ", absl::StrJoin(missing, ", ")));
  }
  RETURN_IF_ERROR(graph_.TopologicalOrder().status());  // cycles and dangling inputs, before anything runs
  if (options.optimize) RETURN_IF_ERROR(Optimize(graph_));
  graph_.gemm_precision = options.precision;  // read by the operators that pack weights, below

  ASSIGN_OR_RETURN(std::vector<int> order, graph_.TopologicalOrder());
  use_counts_.assign(graph_.values.size(), 0);
  // A value is shape-only when it is a constant or computed, by shape-only steps, from constants and the outputs
  // of Shape / Size (which read only their input's shape).
  std::vector<bool> shape_only(graph_.values.size(), false);
  for (std::size_t v = 0; v < graph_.values.size(); ++v) shape_only[v] = graph_.values[v].constant.has_value();
  for (int n : order) {
    const Node& node = graph_.nodes[n];
    const OpFactory* factory = OpRegistry::Builtin().Find(node.domain, node.op_type);
    ASSIGN_OR_RETURN(std::unique_ptr<OpKernel> kernel, (*factory)(graph_, node));
    bool only_shapes = node.domain.empty() && (node.op_type == "Shape" || node.op_type == "Size");
    if (!only_shapes && !node.inputs.empty()) {
      only_shapes = true;
      for (int in : node.inputs) only_shapes = only_shapes && (in < 0 || shape_only[in]);
    }
    for (int out : node.outputs) {
      if (out >= 0) shape_only[out] = only_shapes;
    }
    has_shape_only_ = has_shape_only_ || only_shapes;
    steps_.push_back(Step{n, std::move(kernel), only_shapes, {}});
    for (int in : node.inputs) {
      if (in >= 0) ++use_counts_[in];
    }
  }
  last_use_.assign(graph_.values.size(), -1);
  for (std::size_t si = 0; si < steps_.size(); ++si) {
    for (int in : graph_.nodes[steps_[si].node].inputs) {
      if (in >= 0) last_use_[in] = static_cast<int>(si);
    }
  }
  for (std::size_t si = 0; si < steps_.size(); ++si) {
    Step& step = steps_[si];
    const std::vector<int>& ins = graph_.nodes[step.node].inputs;
    step.may_reuse.assign(ins.size(), false);
    for (std::size_t i = 0; i < ins.size() && !step.shape_only; ++i) {
      const int v = ins[i];
      if (v < 0 || shape_only[v] || last_use_[v] != static_cast<int>(si)) continue;
      const Value& value = graph_.values[v];
      step.may_reuse[i] = !value.constant && !value.graph_input && !value.graph_output &&
                          std::count(ins.begin(), ins.end(), v) == 1;
    }
  }
  for (int v : graph_.outputs) {
    const Value& value = graph_.values[v];
    if (!value.constant && !value.graph_input && value.producer < 0) {
      return absl::InvalidArgumentError(absl::StrCat("graph output '", value.name, "' is produced by no node"));
    }
  }
  return absl::OkStatus();
}

std::size_t Session::shape_cache_size() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return shape_cache_.size();
}

std::vector<int> Session::steps() const {
  std::vector<int> nodes;
  for (const Step& s : steps_) nodes.push_back(s.node);
  return nodes;
}

// What the first run of a signature learns: for each buffer an operator allocated, its size, the step that
// wrote it and the last step that read it or any view of it. Buffers are told apart by their storage: a view
// (Reshape, Identity, ...) shares its source's.
struct Session::Recorder {
  Recorder(const Session& s, const std::vector<Tensor>& inputs) : session(s) {
    const std::size_t n = s.graph_.values.size();
    reused_input.assign(s.steps_.size(), -1);
    root.assign(n, -1);
    first.assign(n, -1);
    last.assign(n, -1);
    plannable.assign(n, false);
    // Storage the run did not allocate (inputs, constants) is never planned.
    for (const Tensor& t : inputs) storage_root[t.storage()] = -1;
    for (const Value& v : s.graph_.values) {
      if (v.constant) storage_root[v.constant->storage()] = -1;
    }
  }

  void Produced(int step, bool shape_only, int v, const Tensor& t) {
    if (t.empty() || t.storage() == nullptr) return;
    auto [it, fresh] = storage_root.emplace(t.storage(), v);
    const int r = it->second;
    if (fresh) {
      // Shape-only results are cached across runs and graph outputs handed to the caller: both outlive the run.
      plannable[v] = !shape_only;
      first[v] = step;
      bytes_of[v] = static_cast<int64_t>(t.bytes());
    }
    if (r < 0) return;
    root[v] = r == v ? -1 : r;
    last[r] = std::max({last[r], step, session.last_use_[v]});
    if (session.graph_.values[v].graph_output) plannable[r] = false;
  }

  // The executor dropped its reference: once no tensor shares the storage, its address may be reused.
  void Released(const Tensor& t) {
    if (t.storage() != nullptr && t.storage_users() == 1) storage_root.erase(t.storage());
  }

  std::shared_ptr<const RunPlan> Finish() {
    auto plan = std::make_shared<RunPlan>();
    plan->reused_input = reused_input;
    const std::size_t n = root.size();
    plan->offset.assign(n, -1);
    plan->bytes.assign(n, 0);
    plan->alias_root = root;
    std::vector<BufferLifetime> buffers;
    std::vector<int> ids;
    for (const auto& [v, bytes] : bytes_of) {
      if (!plannable[v]) {
        plan->stats.unplanned_bytes += bytes;
        continue;
      }
      buffers.push_back({bytes, first[v], std::max(first[v], last[v])});
      ids.push_back(v);
    }
    const MemoryPlan mp = PlanMemory(buffers);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      plan->offset[ids[i]] = mp.offsets[i];
      plan->bytes[ids[i]] = buffers[i].bytes;
    }
    plan->stats.arena_bytes = mp.arena_bytes;
    plan->stats.total_bytes = mp.total_bytes;
    plan->stats.buffers = static_cast<int>(ids.size());
    return plan;
  }

  const Session& session;
  std::unordered_map<const void*, int> storage_root;  // live storage -> the value that allocated it (-1: not ours)
  std::vector<int> root, first, last;
  std::vector<bool> plannable;
  std::vector<int> reused_input;  // per step, as RunPlan::reused_input
  std::map<int, int64_t> bytes_of;  // buffers allocated by this run, by the value that allocated them
};

absl::StatusOr<std::vector<Tensor>> Session::Run(const std::vector<Tensor>& inputs, ThreadPool* pool,
                                                 std::vector<double>* step_seconds,
                                                 std::vector<StepShapes>* step_shapes) const {
  if (step_seconds) step_seconds->assign(steps_.size(), 0.0);
  if (step_shapes) step_shapes->assign(steps_.size(), StepShapes{});
  if (inputs.size() != inputs_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", inputs_.size(), " inputs, got ", inputs.size()));
  }
  std::vector<Tensor> values(graph_.values.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const TensorInfo& want = inputs_[i];
    const Tensor& got = inputs[i];
    if (got.type() != want.type) {
      return absl::InvalidArgumentError(absl::StrCat("input '", want.name, "': expected ", DataTypeName(want.type),
                                                     ", got ", DataTypeName(got.type())));
    }
    bool shape_ok = want.shape.empty() || want.shape.size() == got.shape().size();
    for (std::size_t d = 0; shape_ok && d < want.shape.size(); ++d) {
      shape_ok = want.shape[d] < 0 || want.shape[d] == got.shape()[d];
    }
    if (!shape_ok) {
      return absl::InvalidArgumentError(absl::StrCat("input '", want.name, "': expected shape ",
                                                     ShapeString(want.shape), " (-1 = any), got ", ShapeString(got.shape())));
    }
    values[graph_.inputs[i]] = got;
  }

  // Shape-only results and the memory plan for these input shapes, made by an earlier run, or collected by this one.
  std::vector<Shape> signature;
  for (const Tensor& t : inputs) signature.push_back(t.shape());
  std::shared_ptr<const ShapeOnlyValues> cached;
  std::shared_ptr<const RunPlan> plan;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = shape_cache_.find(signature); has_shape_only_ && it != shape_cache_.end()) cached = it->second;
    if (auto it = plans_.find(signature); it != plans_.end()) plan = it->second;
  }
  ShapeOnlyValues fresh;
  if (cached) {
    for (const auto& [v, t] : *cached) values[v] = t;
  }
  std::unique_ptr<Recorder> recorder;
  std::shared_ptr<void> arena;
  std::byte* arena_base = nullptr;
  if (plan) {
    arena = TakeArena(plan->stats.arena_bytes);
    arena_base = static_cast<std::byte*>(arena.get());
  } else {
    recorder = std::make_unique<Recorder>(*this, inputs);
  }
  // A tensor in the arena is where the plan put it, or a view inside its planned source; anything else (an
  // operator that returned a view where the recording run saw a copy) is copied out, so the arena's reuse of that
  // memory can never corrupt it.
  auto in_arena = [&](const Tensor& t) {
    const std::byte* p = static_cast<const std::byte*>(t.raw());
    return arena_base != nullptr && p >= arena_base && p < arena_base + plan->stats.arena_bytes;
  };
  auto where_planned = [&](int v, const Tensor& t) {
    const std::byte* p = static_cast<const std::byte*>(t.raw());
    const int root = plan->offset[v] >= 0 ? v : plan->alias_root[v];
    if (root < 0 || plan->offset[root] < 0) return false;
    const std::byte* begin = arena_base + plan->offset[root];
    return p >= begin && p + t.bytes() <= begin + plan->bytes[root];
  };

  std::vector<int> remaining = use_counts_;
  for (std::size_t si = 0; si < steps_.size(); ++si) {
    const Step& step = steps_[si];
    const Node& node = graph_.nodes[step.node];
    if (step.shape_only && cached) {
      for (int in : node.inputs) {
        if (in >= 0 && --remaining[in] == 0 && !graph_.values[in].graph_output) values[in] = Tensor();
      }
      continue;
    }
    const auto started = step_seconds ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    OpContext ctx;
    ctx.node = &node;
    ctx.pool = pool;
    ctx.inputs.reserve(node.inputs.size());
    for (int in : node.inputs) {
      if (in < 0) {
        ctx.inputs.push_back(nullptr);
      } else if (graph_.values[in].constant) {
        ctx.inputs.push_back(&*graph_.values[in].constant);
      } else {
        ctx.inputs.push_back(&values[in]);
      }
    }
    if (step_shapes) {  // before the operator runs: it may take an input's storage for its output
      for (const Tensor* in : ctx.inputs) (*step_shapes)[si].inputs.push_back(in ? in->shape() : Shape{});
    }
    ctx.outputs.resize(node.outputs.size());
    // Inputs whose storage the operator may write its output into: a planned run offers the one the recording
    // run's operator took (the arena's tensors share one owner, so their use counts say nothing); an unplanned
    // run, those no other tensor shares.
    ctx.reusable.assign(node.inputs.size(), false);
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      if (!step.may_reuse[i]) continue;
      const Tensor& t = values[node.inputs[i]];
      ctx.reusable[i] = plan ? plan->reused_input[si] == static_cast<int>(i)
                             : t.storage() != nullptr && t.storage_users() == 1;
    }
    if (plan) {
      ctx.arena = arena_base;
      ctx.arena_owner = arena;
      ctx.slots.resize(node.outputs.size());
      for (std::size_t o = 0; o < node.outputs.size(); ++o) {
        const int v = node.outputs[o];
        if (v >= 0 && plan->offset[v] >= 0) ctx.slots[o] = {plan->offset[v], plan->bytes[v]};
      }
    }
    try {
      RETURN_IF_ERROR(step.kernel->Run(ctx));
      if (recorder) {
        for (std::size_t i = 0; i < node.inputs.size(); ++i) {
          for (const Tensor& out : ctx.outputs) {
            if (ctx.reusable[i] && out.storage() != nullptr && out.storage() == values[node.inputs[i]].storage()) {
              recorder->reused_input[si] = static_cast<int>(i);
            }
          }
        }
      }
      for (std::size_t o = 0; o < node.outputs.size(); ++o) {
        const int v = node.outputs[o];
        if (v < 0) continue;
        Tensor& t = ctx.outputs[o];
        if (plan && !t.empty() && in_arena(t) && !where_planned(v, t)) {
          Tensor copy = Tensor::Allocate(t.type(), t.shape());
          std::memcpy(copy.raw(), t.raw(), t.bytes());
          t = std::move(copy);
        }
        values[v] = std::move(t);
        if (recorder) recorder->Produced(static_cast<int>(si), step.shape_only, v, values[v]);
        if (step.shape_only) fresh.emplace_back(v, values[v]);
      }
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(node.Describe(), ": out of memory"));
    }
    if (step_seconds) {
      (*step_seconds)[si] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }
    if (step_shapes) {
      for (int v : node.outputs) (*step_shapes)[si].outputs.push_back(v >= 0 ? values[v].shape() : Shape{});
    }
    // Free inputs this step was the last reader of (graph outputs are kept).
    for (int in : node.inputs) {
      if (in >= 0 && --remaining[in] == 0 && !graph_.values[in].graph_output) {
        if (recorder) recorder->Released(values[in]);
        values[in] = Tensor();
      }
    }
  }

  std::vector<Tensor> outputs;
  outputs.reserve(graph_.outputs.size());
  for (int v : graph_.outputs) {
    const Value& value = graph_.values[v];
    Tensor t = value.constant ? *value.constant : values[v];
    if (plan && in_arena(t)) {  // never hand the caller memory the next run will reuse
      Tensor copy = Tensor::Allocate(t.type(), t.shape());
      std::memcpy(copy.raw(), t.raw(), t.bytes());
      t = std::move(copy);
    }
    outputs.push_back(std::move(t));
  }
  if (plan) {
    values.clear();
    ReturnArena(std::move(arena), plan->stats.arena_bytes);
  }

  // Bounded: a server sees a few shapes per model (batch sizes x sequence buckets); beyond that, start over.
  constexpr std::size_t kMaxSignatures = 256;
  if ((has_shape_only_ && !cached) || recorder) {
    std::shared_ptr<const RunPlan> made = recorder ? recorder->Finish() : nullptr;
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (has_shape_only_ && !cached) {
      if (shape_cache_.size() >= kMaxSignatures) shape_cache_.clear();
      shape_cache_.emplace(signature, std::make_shared<const ShapeOnlyValues>(std::move(fresh)));
    }
    if (made) {
      if (plans_.size() >= kMaxSignatures) plans_.clear();
      plans_.emplace(std::move(signature), std::move(made));
    }
  }
  return outputs;
}

std::shared_ptr<void> Session::TakeArena(int64_t bytes) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    for (auto it = arena_pool_.begin(); it != arena_pool_.end(); ++it) {
      if (it->first >= bytes) {
        std::shared_ptr<void> arena = std::move(it->second);
        arena_pool_.erase(it);
        return arena;
      }
    }
  }
  const std::size_t size = static_cast<std::size_t>((std::max<int64_t>(bytes, 1) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

void Session::ReturnArena(std::shared_ptr<void> arena, int64_t bytes) const {
  // Only an arena nobody else holds goes back (a tensor that escaped would otherwise see it reused).
  if (arena.use_count() != 1) return;
  constexpr std::size_t kMaxIdleArenas = 4;  // concurrent runs of one session are few (its instance's callers)
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (arena_pool_.size() >= kMaxIdleArenas) arena_pool_.erase(arena_pool_.begin());
  arena_pool_.emplace_back(bytes, std::move(arena));
}

absl::StatusOr<Session::MemoryStats> Session::MemoryPlanFor(const std::vector<Shape>& shapes) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = plans_.find(shapes);
  if (it == plans_.end()) return absl::NotFoundError("no run with these input shapes yet");
  return it->second->stats;
}

}  // namespace coreserve::runtime
