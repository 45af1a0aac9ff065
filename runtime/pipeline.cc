#include "runtime/pipeline.h"

#include <algorithm>
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

}  // namespace

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
