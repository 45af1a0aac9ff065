#include "runtime/session.h"

#include <chrono>
#include <map>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
    steps_.push_back(Step{n, std::move(kernel), only_shapes});
    for (int in : node.inputs) {
      if (in >= 0) ++use_counts_[in];
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

absl::StatusOr<std::vector<Tensor>> Session::Run(const std::vector<Tensor>& inputs, ThreadPool* pool,
                                                 std::vector<double>* step_seconds) const {
  if (step_seconds) step_seconds->assign(steps_.size(), 0.0);
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

  // Shape-only results for these input shapes, computed by an earlier run, or collected by this one.
  std::vector<Shape> signature;
  std::shared_ptr<const ShapeOnlyValues> cached;
  ShapeOnlyValues fresh;
  if (has_shape_only_) {
    for (const Tensor& t : inputs) signature.push_back(t.shape());
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = shape_cache_.find(signature);
    if (it != shape_cache_.end()) cached = it->second;
  }
  if (cached) {
    for (const auto& [v, t] : *cached) values[v] = t;
  }

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
    ctx.outputs.resize(node.outputs.size());
    try {
      RETURN_IF_ERROR(step.kernel->Run(ctx));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(node.Describe(), ": out of memory"));
    }
    for (std::size_t o = 0; o < node.outputs.size(); ++o) {
      if (node.outputs[o] >= 0) values[node.outputs[o]] = std::move(ctx.outputs[o]);
      if (step.shape_only && node.outputs[o] >= 0) fresh.emplace_back(node.outputs[o], values[node.outputs[o]]);
    }
    if (step_seconds) {
      (*step_seconds)[si] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }
    // Free inputs this step was the last reader of (graph outputs are kept).
    for (int in : node.inputs) {
      if (in >= 0 && --remaining[in] == 0 && !graph_.values[in].graph_output) values[in] = Tensor();
    }
  }

  if (has_shape_only_ && !cached) {
    // Bounded: a server sees a few shapes per model (batch sizes x sequence buckets); beyond that, start over.
    constexpr std::size_t kMaxSignatures = 256;
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (shape_cache_.size() >= kMaxSignatures) shape_cache_.clear();
    shape_cache_.emplace(std::move(signature), std::make_shared<const ShapeOnlyValues>(std::move(fresh)));
  }

  std::vector<Tensor> outputs;
  outputs.reserve(graph_.outputs.size());
  for (int v : graph_.outputs) {
    const Value& value = graph_.values[v];
    outputs.push_back(value.constant ? *value.constant : values[v]);
  }
  return outputs;
}

}  // namespace coreserve::runtime
