#include "runtime/fusions.h"

#include <cmath>

namespace coreserve::runtime {
namespace {

bool IsOp(const Node& n, const char* op, const char* domain = "") {
  return !n.dead && n.op_type == op && n.domain == domain;
}

// The single live node reading `value`, when the value has exactly one reader and is not a graph output.
int SoleConsumer(const Graph& g, int value) {
  if (value < 0 || g.values[value].graph_output) return -1;
  int found = -1;
  for (int c : g.values[value].consumers) {
    if (g.nodes[c].dead) continue;
    if (found >= 0 && found != c) return -1;
    found = c;
  }
  // A node reading the value twice still counts once; it must be the only reader.
  return found;
}

int LiveProducer(const Graph& g, int value) {
  if (value < 0) return -1;
  const int p = g.values[value].producer;
  return p >= 0 && !g.nodes[p].dead ? p : -1;
}

bool IsScalar(const Graph& g, int value, float want, float tol = 1e-4f) {
  if (value < 0 || !g.values[value].constant) return false;
  const Tensor& t = *g.values[value].constant;
  if (t.type() != DataType::kFloat32 || t.elements() != 1) return false;
  return std::fabs(*t.data<float>() - want) <= tol * std::fabs(want);
}

// The input of a two-input node other than `value`, or -1.
int Other(const Node& n, int value) {
  if (n.inputs.size() != 2) return -1;
  if (n.inputs[0] == value) return n.inputs[1];
  if (n.inputs[1] == value) return n.inputs[0];
  return -1;
}

void AddNode(Graph& g, const std::string& op, const std::string& domain, std::vector<int> inputs, int output,
             const std::string& name, Attributes attrs = {}) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.domain = domain;
  n.opset = 1;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  n.attributes = std::move(attrs);
  n.attributes.owner = n.Describe();
  g.nodes.push_back(std::move(n));
}

}  // namespace

int FuseGelu(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t e = 0; e < count; ++e) {
    if (!IsOp(g.nodes[e], "Erf")) continue;
    // erf input: x / sqrt(2) or x * (1 / sqrt(2)).
    const int scaled = g.nodes[e].inputs[0];
    const int div = LiveProducer(g, scaled);
    if (div < 0 || SoleConsumer(g, scaled) != static_cast<int>(e)) continue;
    int x = -1;
    const Node& d = g.nodes[div];
    if (IsOp(d, "Div") && IsScalar(g, d.inputs[1], std::sqrt(2.0f))) x = d.inputs[0];
    if (IsOp(d, "Mul") && IsScalar(g, d.inputs[1], 1.0f / std::sqrt(2.0f))) x = d.inputs[0];
    if (IsOp(d, "Mul") && IsScalar(g, d.inputs[0], 1.0f / std::sqrt(2.0f))) x = d.inputs[1];
    if (x < 0) continue;
    // 1 + erf
    const int erf_out = g.nodes[e].outputs[0];
    const int add = SoleConsumer(g, erf_out);
    if (add < 0 || !IsOp(g.nodes[add], "Add") || !IsScalar(g, Other(g.nodes[add], erf_out), 1.0f)) continue;
    const int one_plus = g.nodes[add].outputs[0];
    const int m1 = SoleConsumer(g, one_plus);
    if (m1 < 0 || !IsOp(g.nodes[m1], "Mul")) continue;
    const int t = Other(g.nodes[m1], one_plus);
    std::vector<int> dead = {div, static_cast<int>(e), add, m1};
    int out = -1;
    if (t == x) {
      // x * (1 + erf) then * 0.5
      const int m2 = SoleConsumer(g, g.nodes[m1].outputs[0]);
      if (m2 < 0 || !IsOp(g.nodes[m2], "Mul") || !IsScalar(g, Other(g.nodes[m2], g.nodes[m1].outputs[0]), 0.5f)) continue;
      dead.push_back(m2);
      out = g.nodes[m2].outputs[0];
    } else {
      // (x * 0.5) * (1 + erf)
      const int half = LiveProducer(g, t);
      if (half < 0 || !IsOp(g.nodes[half], "Mul") || SoleConsumer(g, t) != m1) continue;
      if (Other(g.nodes[half], x) < 0 || !IsScalar(g, Other(g.nodes[half], x), 0.5f)) continue;
      dead.push_back(half);
      out = g.nodes[m1].outputs[0];
    }
    for (int n : dead) g.nodes[n].dead = true;
    AddNode(g, "Gelu", "com.microsoft", {x}, out, g.nodes[e].name + "/fused_gelu");
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseMatMulBias(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t m = 0; m < count; ++m) {
    if (!IsOp(g.nodes[m], "MatMul")) continue;
    const Node& mm = g.nodes[m];
    const int w = mm.inputs[1];
    if (!g.values[w].constant || g.values[w].constant->rank() != 2 ||
        g.values[w].constant->type() != DataType::kFloat32) {
      continue;
    }
    const int64_t n_cols = g.values[w].constant->dim(1);
    const int product = mm.outputs[0];
    const int add = SoleConsumer(g, product);
    if (add < 0 || !IsOp(g.nodes[add], "Add")) continue;
    const int bias = Other(g.nodes[add], product);
    if (bias < 0 || !g.values[bias].constant) continue;
    const Tensor& b = *g.values[bias].constant;
    // A vector over the columns ([N], or [1, ..., 1, N]): broadcasting it adds b[j] to every row.
    bool vector = b.type() == DataType::kFloat32 && b.rank() >= 1 && b.shape().back() == n_cols;
    for (int64_t d = 0; vector && d + 1 < b.rank(); ++d) vector = b.dim(d) == 1;
    if (!vector) continue;
    // The bias may not widen the output's rank beyond the product's (A has rank >= 1).
    if (b.rank() > 2) continue;
    const int out = g.nodes[add].outputs[0];
    const std::vector<int> inputs = {mm.inputs[0], w, bias};
    const std::string name = mm.name + "/fused_bias";
    g.nodes[m].dead = g.nodes[add].dead = true;
    Attributes attrs;
    attrs.Set("activation", std::string("none"));
    AddNode(g, "FusedMatMul", "coreserve", inputs, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseMatMulActivation(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  for (std::size_t m = 0; m < g.nodes.size(); ++m) {
    Node& mm = g.nodes[m];
    if (!IsOp(mm, "FusedMatMul", "coreserve")) continue;
    auto activation = mm.attributes.String("activation", "none");
    if (!activation.ok() || *activation != "none") continue;
    const int act = SoleConsumer(g, mm.outputs[0]);
    if (act < 0) continue;
    const Node& a = g.nodes[act];
    std::string kind;
    if (IsOp(a, "Relu")) kind = "relu";
    if (IsOp(a, "Gelu", "com.microsoft")) kind = "gelu";
    if (IsOp(a, "Gelu")) {
      auto approx = a.attributes.String("approximate", "none");
      if (approx.ok() && *approx == "none") kind = "gelu";
    }
    if (kind.empty()) continue;
    mm.attributes.Set("activation", kind);
    mm.outputs[0] = a.outputs[0];
    g.nodes[act].dead = true;
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

}  // namespace coreserve::runtime
