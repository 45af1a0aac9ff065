#include "runtime/pipeline.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"

namespace coreserve::runtime {
namespace {

// First step of each stage (and the end): stage k ends where the time before it first reaches k/stages of the
// total, with at least one step per stage.
std::vector<int> Boundaries(const std::vector<double>& seconds, int stages) {
  const int n = static_cast<int>(seconds.size());
  std::vector<double> before(n + 1, 0.0);
  for (int i = 0; i < n; ++i) before[i + 1] = before[i] + std::max(seconds[i], 0.0);
  std::vector<int> bounds = {0};
  for (int k = 1; k < stages; ++k) {
    const double target = before[n] * k / stages;
    int i = static_cast<int>(std::lower_bound(before.begin(), before.end(), target) - before.begin());
    // The step that crosses the target goes to whichever side leaves the two closer to it.
    if (i > 0 && target - before[i - 1] < before[i] - target) --i;
    i = std::clamp(i, bounds.back() + 1, n - (stages - k));
    bounds.push_back(i);
  }
  bounds.push_back(n);
  return bounds;
}

double Elements(const Shape& shape) {
  double n = 1;
  for (int64_t d : shape) n *= static_cast<double>(d);
  return n;
}

bool IsMatMulLike(const std::string& op) {
  return op == "MatMul" || op == "Gemm" || op == "FusedMatMul" || op == "PermutedMatMul" || op == "MatMulInteger" ||
         op == "MatMulIntegerToFloat";
}

bool IsConvLike(const std::string& op) { return op == "Conv" || op == "NhwcConv" || op == "IntegerConv"; }

}  // namespace

std::vector<StepCost> EstimateStepCosts(const Session& whole, const std::vector<Session::StepShapes>& shapes) {
  const Graph& g = whole.graph();
  const std::vector<int> steps = whole.steps();
  std::vector<StepCost> out(steps.size());
  for (std::size_t s = 0; s < steps.size() && s < shapes.size(); ++s) {
    const Node& node = g.nodes[steps[s]];
    const Session::StepShapes& sh = shapes[s];
    for (std::size_t i = 0; i < sh.inputs.size() && i < node.inputs.size(); ++i) {
      if (node.inputs[i] >= 0) out[s].bytes += Elements(sh.inputs[i]) * DataTypeSize(g.values[node.inputs[i]].type);
    }
    for (std::size_t o = 0; o < sh.outputs.size() && o < node.outputs.size(); ++o) {
      if (node.outputs[o] >= 0) out[s].bytes += Elements(sh.outputs[o]) * DataTypeSize(g.values[node.outputs[o]].type);
    }
    if (sh.inputs.size() < 2 || sh.outputs.empty() || sh.outputs[0].empty()) continue;
    const Shape& y = sh.outputs[0];
    const double y_elems = Elements(y);
    if (IsMatMulLike(node.op_type)) {
      // Y = op(A) op(B): each of Y's elements is a dot product over K, and A has (Y's rows) x K elements
      // whatever its transposition or permutation: K = |A| x N / |Y|. A FusedMatMul storing a split product has
      // N spread over its outputs.
      double n = 0;
      for (const Shape& o : sh.outputs) n += o.empty() ? 0.0 : static_cast<double>(o.back());
      out[s].flops = 2.0 * Elements(sh.inputs[0]) * n;
    } else if (IsConvLike(node.op_type) && !sh.inputs[1].empty()) {
      // Each output element sums C/group x kH x kW products: the weights' elements per output channel.
      out[s].flops = 2.0 * y_elems * Elements(sh.inputs[1]) / static_cast<double>(sh.inputs[1][0]);
    }
  }
  return out;
}

std::vector<double> RefineByMeasurement(const Session& whole, const std::vector<StepCost>& estimate,
                                        const std::vector<double>& measured) {
  constexpr double kFlopsPerSecond = 100e9, kBytesPerSecond = 20e9;
  const Graph& g = whole.graph();
  const std::vector<int> steps = whole.steps();
  std::vector<double> est(steps.size(), 0.0);
  std::map<std::string, std::pair<double, double>> by_type;  // op type -> (measured, estimated) seconds
  for (std::size_t s = 0; s < steps.size() && s < estimate.size() && s < measured.size(); ++s) {
    est[s] = estimate[s].flops / kFlopsPerSecond + estimate[s].bytes / kBytesPerSecond;
    auto& [m, e] = by_type[g.nodes[steps[s]].op_type];
    m += measured[s];
    e += est[s];
  }
  std::vector<double> out(measured.begin(), measured.end());
  for (std::size_t s = 0; s < out.size() && s < est.size(); ++s) {
    const auto& [m, e] = by_type[g.nodes[steps[s]].op_type];
    if (e > 0 && est[s] > 0) out[s] = est[s] * m / e;
  }
  return out;
}

absl::StatusOr<std::vector<PipelineStage>> CutIntoStages(const Session& whole, const std::vector<double>& step_seconds,
                                                         int stages) {
  const std::vector<int> steps = whole.steps();
  const int n = static_cast<int>(steps.size());
  if (stages < 2 || stages > n) {
    return absl::InvalidArgumentError(absl::StrCat("cannot cut a model of ", n, " steps into ", stages, " stages"));
  }
  if (static_cast<int>(step_seconds.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", n, " step times, got ", step_seconds.size()));
  }
  const std::vector<int> bounds = Boundaries(step_seconds, stages);
  const Graph& g = whole.graph();
  std::vector<int> stage_of_node(g.nodes.size(), -1);
  for (int k = 0; k < stages; ++k) {
    for (int s = bounds[k]; s < bounds[k + 1]; ++s) stage_of_node[steps[s]] = k;
  }
  // The last stage that reads each value; the graph's outputs are read after the last stage.
  std::vector<int> last_reader(g.values.size(), -1);
  for (int node : steps) {
    for (int in : g.nodes[node].inputs) {
      if (in >= 0) last_reader[in] = std::max(last_reader[in], stage_of_node[node]);
    }
  }
  for (int out : g.outputs) last_reader[out] = stages;

  std::vector<PipelineStage> out;
  for (int k = 0; k < stages; ++k) {
    Graph sub;
    sub.opsets = g.opsets;
    sub.gemm_precision = g.gemm_precision;
    auto place = [&](int v) -> int {
      if (v < 0) return -1;
      const Value& pv = g.values[v];
      if (const int id = sub.FindValue(pv.name); id >= 0) return id;
      if (pv.constant) return sub.AddConstant(pv.name, *pv.constant);  // shares the weights' storage
      const int id = sub.ValueId(pv.name);
      sub.values[id].type = pv.type;
      const bool made_here = pv.producer >= 0 && stage_of_node[pv.producer] == k;
      if (!made_here) {  // a graph input, or a value an earlier stage produced
        sub.values[id].graph_input = true;
        sub.inputs.push_back(id);
      }
      return id;
    };
    for (int s = bounds[k]; s < bounds[k + 1]; ++s) {
      Node node = g.nodes[steps[s]];
      for (int& in : node.inputs) in = place(in);
      for (int& o : node.outputs) o = place(o);
      sub.nodes.push_back(std::move(node));
    }
    for (int s = bounds[k]; s < bounds[k + 1]; ++s) {
      for (int v : g.nodes[steps[s]].outputs) {
        if (v < 0 || last_reader[v] <= k) continue;
        const int id = sub.FindValue(g.values[v].name);
        sub.values[id].graph_output = true;
        sub.outputs.push_back(id);
      }
    }
    for (int id : sub.inputs) {
      if (sub.values[id].type == DataType::kUndefined) {
        return absl::InternalError(absl::StrCat("stage ", k, ": the type of '", sub.values[id].name, "' is unknown"));
      }
    }
    sub.RebuildEdges();
    SessionOptions options;
    options.optimize = false;  // the slice of an optimized graph
    options.precision = g.gemm_precision;
    PipelineStage stage;
    stage.first_step = bounds[k];
    stage.end_step = bounds[k + 1];
    stage.seconds = std::accumulate(step_seconds.begin() + bounds[k], step_seconds.begin() + bounds[k + 1], 0.0);
    auto session = Session::FromGraph(std::move(sub), options);
    if (!session.ok()) {
      return absl::Status(session.status().code(), absl::StrCat("stage ", k, ": ", session.status().message()));
    }
    stage.session = *std::move(session);
    out.push_back(std::move(stage));
  }
  return out;
}

absl::Status RunStage(const PipelineStage& stage, std::map<std::string, Tensor>& values, ThreadPool* pool) {
  std::vector<Tensor> inputs;
  for (const TensorInfo& in : stage.session->inputs()) {
    auto it = values.find(in.name);
    if (it == values.end()) return absl::InvalidArgumentError(absl::StrCat("stage input '", in.name, "' is missing"));
    inputs.push_back(it->second);
  }
  ASSIGN_OR_RETURN(std::vector<Tensor> outputs, stage.session->Run(inputs, pool));
  for (std::size_t i = 0; i < outputs.size(); ++i) values[stage.session->outputs()[i].name] = std::move(outputs[i]);
  return absl::OkStatus();
}

}  // namespace coreserve::runtime
