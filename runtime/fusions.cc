#include "runtime/fusions.h"

#include <cmath>
#include <map>

#include "kernels/gemm/sgemm.h"
#include "runtime/graph_rewrite.h"

namespace coreserve::runtime {
namespace {

bool IsAnyScalar(const Graph& g, int value) {
  return value >= 0 && g.values[value].constant && g.values[value].constant->type() == DataType::kFloat32 &&
         g.values[value].constant->elements() == 1;
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

// The common tail of both GELU forms: 0.5 * x * (1 + f), where `f` is the erf or tanh term, in either
// association order ((x * (1 + f)) * 0.5 or (x * 0.5) * (1 + f)). Appends the matched nodes to `dead` and returns
// the value holding the GELU result, or -1.
int MatchHalfXTimesOnePlus(const Graph& g, int f, int x, std::vector<int>& dead) {
  const int add = SoleConsumer(g, f);
  if (add < 0 || !IsOp(g.nodes[add], "Add") || !IsScalar(g, Other(g.nodes[add], f), 1.0f)) return -1;
  const int one_plus = g.nodes[add].outputs[0];
  const int m1 = SoleConsumer(g, one_plus);
  if (m1 < 0 || !IsOp(g.nodes[m1], "Mul")) return -1;
  const int t = Other(g.nodes[m1], one_plus);
  if (t == x) {
    const int m1_out = g.nodes[m1].outputs[0];
    const int m2 = SoleConsumer(g, m1_out);
    if (m2 < 0 || !IsOp(g.nodes[m2], "Mul") || !IsScalar(g, Other(g.nodes[m2], m1_out), 0.5f)) return -1;
    dead.insert(dead.end(), {add, m1, m2});
    return g.nodes[m2].outputs[0];
  }
  const int half = LiveProducer(g, t);
  if (half < 0 || !IsOp(g.nodes[half], "Mul") || SoleConsumer(g, t) != m1) return -1;
  if (Other(g.nodes[half], x) < 0 || !IsScalar(g, Other(g.nodes[half], x), 0.5f)) return -1;
  dead.insert(dead.end(), {add, m1, half});
  return g.nodes[m1].outputs[0];
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
    std::vector<int> dead = {div, static_cast<int>(e)};
    const int out = MatchHalfXTimesOnePlus(g, g.nodes[e].outputs[0], x, dead);
    if (out < 0) continue;
    for (int n : dead) g.nodes[n].dead = true;
    AddNode(g, "Gelu", "com.microsoft", {x}, out, g.nodes[e].name + "/fused_gelu");
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseGeluTanh(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t t = 0; t < count; ++t) {
    if (!IsOp(g.nodes[t], "Tanh")) continue;
    // tanh input: sqrt(2/pi) * (x + 0.044715 * x^3)
    const int scaled = g.nodes[t].inputs[0];
    const int m_scale = LiveProducer(g, scaled);
    if (m_scale < 0 || !IsOp(g.nodes[m_scale], "Mul") || SoleConsumer(g, scaled) != static_cast<int>(t)) continue;
    int inner = -1;
    for (int side = 0; side < 2; ++side) {
      if (IsScalar(g, g.nodes[m_scale].inputs[side], 0.7978845608f)) inner = g.nodes[m_scale].inputs[1 - side];
    }
    const int add_in = LiveProducer(g, inner);
    if (inner < 0 || add_in < 0 || !IsOp(g.nodes[add_in], "Add") || SoleConsumer(g, inner) != m_scale) continue;
    // One Add operand is x, the other 0.044715 * Pow(x, 3).
    int x = -1, cube_mul = -1, pow = -1;
    for (int side = 0; side < 2 && x < 0; ++side) {
      const int cand_x = g.nodes[add_in].inputs[side], other = g.nodes[add_in].inputs[1 - side];
      const int mul = LiveProducer(g, other);
      if (mul < 0 || !IsOp(g.nodes[mul], "Mul") || SoleConsumer(g, other) != add_in) continue;
      for (int ms = 0; ms < 2; ++ms) {
        if (!IsScalar(g, g.nodes[mul].inputs[ms], 0.044715f)) continue;
        const int cube = g.nodes[mul].inputs[1 - ms];
        const int pw = LiveProducer(g, cube);
        if (pw >= 0 && IsOp(g.nodes[pw], "Pow") && g.nodes[pw].inputs[0] == cand_x &&
            IsScalar(g, g.nodes[pw].inputs[1], 3.0f) && SoleConsumer(g, cube) == mul) {
          x = cand_x;
          cube_mul = mul;
          pow = pw;
        }
      }
    }
    if (x < 0) continue;
    std::vector<int> dead = {pow, cube_mul, add_in, m_scale, static_cast<int>(t)};
    const int out = MatchHalfXTimesOnePlus(g, g.nodes[t].outputs[0], x, dead);
    if (out < 0) continue;
    for (int n : dead) g.nodes[n].dead = true;
    AddNode(g, "FastGelu", "com.microsoft", {x}, out, g.nodes[t].name + "/fused_gelu_tanh");
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

int FuseGemmBias(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    Node& gemm = g.nodes[i];
    if (!IsOp(gemm, "Gemm") || gemm.inputs.size() < 2) continue;
    auto alpha = gemm.attributes.Float("alpha", 1.0f), beta = gemm.attributes.Float("beta", 1.0f);
    auto ta = gemm.attributes.Int("transA", 0), tb = gemm.attributes.Int("transB", 0);
    if (!alpha.ok() || !beta.ok() || !ta.ok() || !tb.ok() || *alpha != 1.0f || *ta != 0) continue;
    const int w = gemm.inputs[1];
    if (!g.values[w].constant || g.values[w].constant->rank() != 2 || g.values[w].constant->type() != DataType::kFloat32) {
      continue;
    }
    const Tensor& W = *g.values[w].constant;
    const int64_t k = *tb ? W.dim(1) : W.dim(0), n = *tb ? W.dim(0) : W.dim(1);
    const int c = gemm.inputs.size() > 2 ? gemm.inputs[2] : -1;
    Tensor bias = Tensor::Allocate(DataType::kFloat32, {n});
    if (c >= 0) {
      const auto& cv = g.values[c].constant;
      const bool vector = cv && cv->type() == DataType::kFloat32 && cv->elements() == n && cv->shape().back() == n;
      if (!vector) continue;
      for (int64_t j = 0; j < n; ++j) bias.data<float>()[j] = *beta * cv->data<float>()[j];
    } else {
      std::fill(bias.data<float>(), bias.data<float>() + n, 0.0f);
    }
    int w_id = w;
    if (*tb) {
      Tensor wt = Tensor::Allocate(DataType::kFloat32, {k, n});
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t col = 0; col < k; ++col) wt.data<float>()[col * n + r] = W.data<float>()[r * k + col];
      }
      w_id = g.AddConstant(g.UniqueName(gemm.name + "/w_t"), std::move(wt));
    }
    const int b_id = g.AddConstant(g.UniqueName(gemm.name + "/bias"), std::move(bias));
    Node& node = g.nodes[i];
    const std::vector<int> inputs = {node.inputs[0], w_id, b_id};
    const int out = node.outputs[0];
    const std::string name = node.name + "/fused";
    node.dead = true;
    Attributes attrs;
    attrs.Set("activation", std::string("none"));
    AddNode(g, "FusedMatMul", "coreserve", inputs, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int MergeSiblingMatMuls(Graph& g) {
  g.RebuildEdges();
  int merged = 0;
  std::map<std::pair<int, int64_t>, std::vector<int>> groups;  // (input A, K) -> FusedMatMul nodes
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!IsOp(n, "FusedMatMul", "coreserve")) continue;
    auto act = n.attributes.String("activation", "none");
    if (!act.ok() || *act != "none") continue;
    const Tensor& w = *g.values[n.inputs[1]].constant;
    groups[{n.inputs[0], w.dim(0)}].push_back(static_cast<int>(i));
  }
  for (const auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    const int64_t k = key.second;
    int64_t total = 0;
    for (int m : members) total += g.values[g.nodes[m].inputs[1]].constant->dim(1);
    Tensor w = Tensor::Allocate(DataType::kFloat32, {k, total});
    Tensor b = Tensor::Allocate(DataType::kFloat32, {total});
    std::vector<int64_t> sizes;
    int64_t col = 0;
    for (int m : members) {
      const Tensor& wm = *g.values[g.nodes[m].inputs[1]].constant;
      const Tensor& bm = *g.values[g.nodes[m].inputs[2]].constant;
      const int64_t n = wm.dim(1);
      for (int64_t r = 0; r < k; ++r) {
        std::copy_n(wm.data<float>() + r * n, n, w.data<float>() + r * total + col);
      }
      std::copy_n(bm.data<float>(), n, b.data<float>() + col);
      sizes.push_back(n);
      col += n;
    }
    const std::string base = g.nodes[members[0]].name;
    const int w_id = g.AddConstant(g.UniqueName(base + "/merged_w"), std::move(w));
    const int b_id = g.AddConstant(g.UniqueName(base + "/merged_b"), std::move(b));
    const int wide = g.ValueId(g.UniqueName(base + "/merged_out"));
    g.values[wide].type = DataType::kFloat32;
    std::vector<int> outputs;
    for (int m : members) {
      outputs.push_back(g.nodes[m].outputs[0]);
      g.nodes[m].dead = true;
    }
    Attributes mm_attrs;
    mm_attrs.Set("activation", std::string("none"));
    AddNode(g, "FusedMatMul", "coreserve", {key.first, w_id, b_id}, wide, base + "/merged", mm_attrs);
    Attributes split_attrs;
    split_attrs.Set("axis", int64_t{-1});
    split_attrs.Set("split", sizes);
    AddNode(g, "Split", "", {wide}, outputs[0], base + "/merged_split", split_attrs);
    g.nodes.back().outputs = outputs;  // opset 1 semantics: sizes from the attribute
    ++merged;
  }
  g.RebuildEdges();
  return merged;
}

namespace {

struct PermutedOperand {
  int source = -1;                         // the tensor before the Transpose / scalings
  std::vector<int64_t> perm = {0, 1, 2, 3};
  bool transposed = false;
  float scale = 1.0f;
  std::vector<int> nodes;                  // the Transpose / Mul nodes absorbed
  std::vector<int> shape_readers;          // Shape nodes reading the Transpose's output (rewritten, see below)
};

// Whether `node` is a plain Shape (no start/end): its result for a transposed tensor is derivable.
bool IsPlainShape(const Node& n) {
  return IsOp(n, "Shape") && !n.attributes.Has("start") && !n.attributes.Has("end");
}

// The readers of `value` other than plain Shape nodes are exactly {consumer}; fills `shapes` with the Shape nodes.
bool SoleConsumerBesidesShapes(const Graph& g, int value, int consumer, std::vector<int>* shapes) {
  if (value < 0 || g.values[value].graph_output) return false;
  bool found = false;
  for (int c : g.values[value].consumers) {
    if (g.nodes[c].dead) continue;
    if (c == consumer) {
      found = true;
    } else if (IsPlainShape(g.nodes[c])) {
      shapes->push_back(c);
    } else {
      return false;
    }
  }
  return found;
}

// Walks up from a MatMul operand through at most one Transpose (rank 4) and scalar Muls, each private to the chain.
PermutedOperand TraceOperand(const Graph& g, int value, int reader) {
  PermutedOperand op;
  int v = value, consumer = reader;
  for (int step = 0; step < 3; ++step) {
    const int p = LiveProducer(g, v);
    if (p < 0) break;
    const Node& n = g.nodes[p];
    std::vector<int> shapes;
    if (IsOp(n, "Transpose") && !op.transposed && SoleConsumerBesidesShapes(g, v, consumer, &shapes)) {
      auto perm = n.attributes.Ints("perm", {});
      if (!perm.ok() || perm->size() != 4) break;
      op.perm = *perm;
      op.transposed = true;
      op.shape_readers = shapes;
    } else if (SoleConsumer(g, v) != consumer) {
      break;
    } else if (IsOp(n, "Mul") && n.inputs.size() == 2) {
      const int side = IsAnyScalar(g, n.inputs[1]) ? 1 : (IsAnyScalar(g, n.inputs[0]) ? 0 : -1);
      if (side < 0) break;
      op.scale *= *g.values[n.inputs[side]].constant->data<float>();
      v = n.inputs[1 - side];
      op.nodes.push_back(p);
      consumer = p;
      continue;
    } else {
      break;
    }
    v = n.inputs[0];
    op.nodes.push_back(p);
    consumer = p;
  }
  op.source = v;
  if (!op.transposed) {  // scalings alone are not worth a fused op: leave them
    op.source = value;
    op.nodes.clear();
    op.scale = 1.0f;
  }
  return op;
}

// Shape(Transpose(X, perm)) == Gather(Shape(X), perm): rewires each such Shape to read X, so the Transpose itself
// can go.
void RewriteShapeReaders(Graph& g, const PermutedOperand& op, int transposed_source) {
  for (int s : op.shape_readers) {
    Tensor perm = Tensor::Allocate(DataType::kInt64, {4});
    std::copy(op.perm.begin(), op.perm.end(), perm.data<int64_t>());
    const int perm_id = g.AddConstant(g.UniqueName(g.nodes[s].name + "/perm"), std::move(perm));
    const int raw = g.ValueId(g.UniqueName(g.nodes[s].name + "/untransposed"));
    g.values[raw].type = DataType::kInt64;
    const int out = g.nodes[s].outputs[0];
    g.nodes[s].inputs[0] = transposed_source;
    g.nodes[s].outputs[0] = raw;
    Attributes attrs;
    attrs.Set("axis", int64_t{0});
    AddNode(g, "Gather", "", {raw, perm_id}, out, g.nodes[s].name + "/permuted", attrs);
  }
}

}  // namespace

namespace {

// A dimension known symbolically at load: a constant, or dimension `axis` of value `of` (whatever it is at run time).
struct SymDim {
  int64_t constant = 0;
  int of = -1;
  int64_t axis = 0;
  bool operator==(const SymDim& o) const { return of == o.of && (of < 0 ? constant == o.constant : axis == o.axis); }
};

// The rank of `v` when the graph fixes it (a Transpose's permutation length, a declared shape), else -1.
int64_t KnownRank(const Graph& g, int v) {
  if (g.values[v].shape) return static_cast<int64_t>(g.values[v].shape->size());
  const int p = LiveProducer(g, v);
  if (p >= 0 && IsOp(g.nodes[p], "Transpose")) {
    auto perm = g.nodes[p].attributes.Ints("perm", {});
    if (perm.ok() && !perm->empty()) return static_cast<int64_t>(perm->size());
  }
  return -1;
}

// The elements of a 1-D int64 shape value, symbolically: constants, Shape (with start/end), Slice with constant
// bounds, and Concat, as exporters build reshape targets. nullopt when it cannot tell.
std::optional<std::vector<SymDim>> SymbolicShape(const Graph& g, int v, int depth = 0) {
  if (v < 0 || depth > 8) return std::nullopt;
  const Value& value = g.values[v];
  if (value.constant) {
    if (value.constant->type() != DataType::kInt64 || value.constant->rank() != 1) return std::nullopt;
    std::vector<SymDim> dims;
    for (int64_t i = 0; i < value.constant->elements(); ++i) dims.push_back({value.constant->data<int64_t>()[i]});
    return dims;
  }
  const int p = LiveProducer(g, v);
  if (p < 0) return std::nullopt;
  const Node& n = g.nodes[p];
  if (IsOp(n, "Shape")) {
    const int64_t rank = KnownRank(g, n.inputs[0]);
    if (rank < 0) return std::nullopt;
    auto clamp = [rank](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + rank : i, 0, rank); };
    const int64_t start = clamp(n.attributes.Int("start", 0).value_or(0));
    const int64_t end = clamp(n.attributes.Int("end", rank).value_or(rank));
    std::vector<SymDim> dims;
    for (int64_t a = start; a < end; ++a) dims.push_back({0, n.inputs[0], a});
    return dims;
  }
  if (IsOp(n, "Concat") && n.attributes.Int("axis", 0).value_or(1) == 0) {
    std::vector<SymDim> dims;
    for (int in : n.inputs) {
      auto part = SymbolicShape(g, in, depth + 1);
      if (!part) return std::nullopt;
      dims.insert(dims.end(), part->begin(), part->end());
    }
    return dims;
  }
  if (IsOp(n, "Slice") && n.inputs.size() >= 3) {
    auto data = SymbolicShape(g, n.inputs[0], depth + 1);
    auto read = [&](std::size_t i) -> std::optional<int64_t> {
      if (i >= n.inputs.size() || n.inputs[i] < 0) return std::nullopt;
      const auto& c = g.values[n.inputs[i]].constant;
      if (!c || c->type() != DataType::kInt64 || c->elements() != 1) return std::nullopt;
      return c->data<int64_t>()[0];
    };
    auto start = read(1), end = read(2);
    const auto axis = read(3), step = read(4);
    if (!data || !start || !end || (n.inputs.size() > 3 && n.inputs[3] >= 0 && axis.value_or(1) != 0) ||
        (n.inputs.size() > 4 && n.inputs[4] >= 0 && step.value_or(0) != 1)) {
      return std::nullopt;
    }
    const int64_t len = static_cast<int64_t>(data->size());
    auto clamp = [len](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + len : i, 0, len); };
    const int64_t b = clamp(*start), e = std::max(b, clamp(*end));
    return std::vector<SymDim>(data->begin() + b, data->begin() + e);
  }
  return std::nullopt;
}

}  // namespace

int FuseSwapLastAxesReshapes(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t i = 0; i < count; ++i) {
    // Reshape(Transpose(Reshape(X, [-1, X.d2, X.d3]), [0, 2, 1]), [X.d0, X.d1, X.d3, X.d2]) == Transpose(X, [0,1,3,2]).
    const Node& r2 = g.nodes[i];
    if (!IsOp(r2, "Reshape") || r2.inputs.size() < 2) continue;
    const int t = LiveProducer(g, r2.inputs[0]);
    if (t < 0 || !IsOp(g.nodes[t], "Transpose") || SoleConsumer(g, r2.inputs[0]) != static_cast<int>(i)) continue;
    if (g.nodes[t].attributes.Ints("perm", {}).value_or(std::vector<int64_t>{}) != std::vector<int64_t>{0, 2, 1}) continue;
    const int r1 = LiveProducer(g, g.nodes[t].inputs[0]);
    if (r1 < 0 || !IsOp(g.nodes[r1], "Reshape") || SoleConsumer(g, g.nodes[t].inputs[0]) != t) continue;
    const int x = g.nodes[r1].inputs[0];
    if (KnownRank(g, x) != 4) continue;
    const auto first = SymbolicShape(g, g.nodes[r1].inputs[1]);
    const auto second = SymbolicShape(g, r2.inputs[1]);
    const SymDim d0{0, x, 0}, d1{0, x, 1}, d2{0, x, 2}, d3{0, x, 3};
    if (!first || !second || first->size() != 3 || !((*first)[0] == SymDim{-1}) || !((*first)[1] == d2) ||
        !((*first)[2] == d3) || *second != std::vector<SymDim>{d0, d1, d3, d2}) {
      continue;
    }
    const int out = r2.outputs[0];
    const std::string name = r2.name + "/swap";
    g.nodes[i].dead = g.nodes[t].dead = g.nodes[r1].dead = true;
    Attributes attrs;
    attrs.Set("perm", std::vector<int64_t>{0, 1, 3, 2});
    AddNode(g, "Transpose", "", {x}, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int ComposeTransposes(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t i = 0; i < count; ++i) {
    if (g.nodes[i].dead || !IsOp(g.nodes[i], "Transpose")) continue;
    const int inner = LiveProducer(g, g.nodes[i].inputs[0]);
    if (inner < 0 || !IsOp(g.nodes[inner], "Transpose")) continue;
    std::vector<int> shapes;
    if (!SoleConsumerBesidesShapes(g, g.nodes[i].inputs[0], static_cast<int>(i), &shapes)) continue;
    auto outer_perm = g.nodes[i].attributes.Ints("perm", {});
    auto inner_perm = g.nodes[inner].attributes.Ints("perm", {});
    if (!outer_perm.ok() || !inner_perm.ok() || outer_perm->size() != inner_perm->size() || outer_perm->empty()) continue;
    // y[i] = x'[outer[i]] = x[inner[outer[i]]].
    std::vector<int64_t> perm(outer_perm->size());
    for (std::size_t a = 0; a < perm.size(); ++a) perm[a] = (*inner_perm)[(*outer_perm)[a]];
    PermutedOperand op;
    op.perm = *inner_perm;
    op.shape_readers = shapes;
    if (op.perm.size() == 4) {
      RewriteShapeReaders(g, op, g.nodes[inner].inputs[0]);
    } else if (!shapes.empty()) {
      continue;
    }
    const int source = g.nodes[inner].inputs[0];
    g.nodes[inner].dead = true;
    g.nodes[i].inputs[0] = source;
    g.nodes[i].attributes.Set("perm", perm);
    ++fused;
    g.RebuildEdges();
  }
  g.RebuildEdges();
  return fused;
}

int FusePermutedMatMul(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t i = 0; i < count; ++i) {
    if (!IsOp(g.nodes[i], "MatMul")) continue;
    const int a_in = g.nodes[i].inputs[0], b_in = g.nodes[i].inputs[1];
    if (g.values[a_in].constant || g.values[b_in].constant || a_in == b_in) continue;
    PermutedOperand a = TraceOperand(g, a_in, static_cast<int>(i));
    PermutedOperand b = TraceOperand(g, b_in, static_cast<int>(i));
    if (!a.transposed && !b.transposed) continue;
    // The GEMM reads A row-major (K on A's source unit-stride axis) and B either way.
    if (a.perm[3] != 3 || (b.perm[3] != 3 && b.perm[2] != 3)) continue;
    // An untransposed operand must still be rank 4 at run time; the kernel checks and falls back otherwise.
    std::vector<int64_t> perm_out = {0, 1, 2, 3};
    int out = g.nodes[i].outputs[0];
    std::vector<int> dead = {static_cast<int>(i)};
    // A Transpose of the product is absorbed too; Shape readers of the (unstored) product are rewritten to derive
    // its shape from the stored, permuted one.
    std::vector<int> product_shapes;
    int t = -1;
    for (int c : g.values[out].consumers) {
      if (!g.nodes[c].dead && IsOp(g.nodes[c], "Transpose")) t = c;
    }
    if (t >= 0 && SoleConsumerBesidesShapes(g, out, t, &product_shapes)) {
      auto perm = g.nodes[t].attributes.Ints("perm", {});
      if (perm.ok() && perm->size() == 4 && (*perm)[3] == 3) {
        perm_out = *perm;
        out = g.nodes[t].outputs[0];
        dead.push_back(t);
      } else {
        product_shapes.clear();
      }
    } else {
      product_shapes.clear();
    }
    dead.insert(dead.end(), a.nodes.begin(), a.nodes.end());
    dead.insert(dead.end(), b.nodes.begin(), b.nodes.end());
    const std::string name = g.nodes[i].name + "/permuted";
    for (int n : dead) g.nodes[n].dead = true;
    // The Transpose's input: the chain's source when no scaling sits between it and the Transpose; otherwise the
    // Shape readers see the scaled tensor's shape, which is the same.
    RewriteShapeReaders(g, a, a.source);
    RewriteShapeReaders(g, b, b.source);
    if (!product_shapes.empty()) {
      // Product axis j is stored at position pos[j] (perm_out[pos[j]] == j): Shape(product) = Gather(Shape(out), pos).
      PermutedOperand stored;
      stored.perm.assign(4, 0);
      for (int k = 0; k < 4; ++k) stored.perm[perm_out[k]] = k;
      stored.shape_readers = product_shapes;
      RewriteShapeReaders(g, stored, out);
    }
    Attributes attrs;
    attrs.Set("perm_a", a.perm);
    attrs.Set("perm_b", b.perm);
    attrs.Set("perm_out", perm_out);
    attrs.Set("alpha", a.scale * b.scale);
    AddNode(g, "PermutedMatMul", "coreserve", {a.source, b.source}, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseMaskedSoftmax(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t sm = 0; sm < count; ++sm) {
    const Node& softmax = g.nodes[sm];
    if (!IsOp(softmax, "Softmax")) continue;
    // Only the last-axis form: opset >= 13 with the default axis, or an explicit -1.
    auto axis = softmax.attributes.Int("axis", softmax.opset >= 13 ? -1 : 1);
    if (!axis.ok() || *axis != -1) continue;
    const int sum = softmax.inputs[0];
    const int add = LiveProducer(g, sum);
    if (add < 0 || !IsOp(g.nodes[add], "Add") || SoleConsumer(g, sum) != static_cast<int>(sm)) continue;
    const int scores = g.nodes[add].inputs[0], mask = g.nodes[add].inputs[1];
    std::vector<int> dead = {add, static_cast<int>(sm)};
    int out = softmax.outputs[0];
    int64_t nan_to_zero = 0;
    // The NaN guard: p feeds exactly IsNaN(p) and Where(IsNaN(p), 0, p).
    int isnan = -1, where = -1;
    for (int c : g.values[out].consumers) {
      if (g.nodes[c].dead) continue;
      if (IsOp(g.nodes[c], "IsNaN")) isnan = c;
      else if (IsOp(g.nodes[c], "Where")) where = c;
      else isnan = where = -2;
    }
    if (isnan >= 0 && where >= 0 && !g.values[out].graph_output) {
      const Node& w = g.nodes[where];
      const int flag = g.nodes[isnan].outputs[0];
      if (w.inputs.size() == 3 && w.inputs[0] == flag && IsScalar(g, w.inputs[1], 0.0f, 0.0f) && w.inputs[2] == out &&
          SoleConsumer(g, flag) == where) {
        dead.push_back(isnan);
        dead.push_back(where);
        out = w.outputs[0];
        nan_to_zero = 1;
      }
    }
    const std::string name = softmax.name + "/masked";
    for (int n : dead) g.nodes[n].dead = true;
    Attributes attrs;
    attrs.Set("nan_to_zero", nan_to_zero);
    AddNode(g, "MaskedSoftmax", "coreserve", {scores, mask}, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseAttention(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::vector<int64_t> identity = {0, 1, 2, 3};
  auto perm = [](const Node& n, const char* name) {
    auto p = n.attributes.Ints(name, {0, 1, 2, 3});
    return p.ok() ? *p : std::vector<int64_t>{};
  };
  const std::size_t count = g.nodes.size();
  for (std::size_t i = 0; i < count; ++i) {
    const Node& pv = g.nodes[i];
    if (!IsOp(pv, "PermutedMatMul", "coreserve") || perm(pv, "perm_a") != identity) continue;
    const int probs = pv.inputs[0];
    const int sm = LiveProducer(g, probs);
    if (sm < 0 || SoleConsumer(g, probs) != static_cast<int>(i)) continue;
    const Node& softmax = g.nodes[sm];
    int64_t nan_to_zero = 0;
    int mask = -1;
    if (IsOp(softmax, "MaskedSoftmax", "coreserve")) {
      nan_to_zero = softmax.attributes.Int("nan_to_zero", 0).value_or(0);
      mask = softmax.inputs[1];
    } else if (IsOp(softmax, "Softmax")) {
      auto axis = softmax.attributes.Int("axis", softmax.opset >= 13 ? -1 : 1);
      if (!axis.ok() || *axis != -1) continue;
    } else {
      continue;
    }
    int scores = softmax.inputs[0];
    int scale_node = -1;
    float scale = 1.0f;
    // Older exporters scale the scores instead of Q and K: (Q K^T) / sqrt(d) or * (1 / sqrt(d)).
    if (const int p = LiveProducer(g, scores); p >= 0 && SoleConsumer(g, scores) == sm &&
                                               (IsOp(g.nodes[p], "Div") || IsOp(g.nodes[p], "Mul")) &&
                                               IsAnyScalar(g, g.nodes[p].inputs[1])) {
      const float c = *g.values[g.nodes[p].inputs[1]].constant->data<float>();
      if (IsOp(g.nodes[p], "Div") ? c != 0.0f : true) {
        scale = IsOp(g.nodes[p], "Div") ? 1.0f / c : c;
        scale_node = p;
        scores = g.nodes[p].inputs[0];
      }
    }
    const int qk = LiveProducer(g, scores);
    const int reader = scale_node >= 0 ? scale_node : sm;
    if (qk < 0 || SoleConsumer(g, scores) != reader || !IsOp(g.nodes[qk], "PermutedMatMul", "coreserve")) continue;
    const Node& qkn = g.nodes[qk];
    // Each operand must come through a head-split Transpose (so it is rank 4 at run time), and the scores must be
    // stored unpermuted (the softmax reads their last axis).
    const std::vector<int64_t> perm_q = perm(qkn, "perm_a"), perm_k = perm(qkn, "perm_b"), perm_v = perm(pv, "perm_b");
    if (perm(qkn, "perm_out") != identity || perm_q == identity || perm_k == identity || perm_v == identity ||
        perm_q.size() != 4 || perm_k.size() != 4 || perm_v.size() != 4) {
      continue;
    }
    Attributes attrs;
    attrs.Set("perm_q", perm_q);
    attrs.Set("perm_k", perm_k);
    attrs.Set("perm_v", perm_v);
    attrs.Set("perm_out", perm(pv, "perm_out"));
    attrs.Set("scale", qkn.attributes.Float("alpha", 1.0f).value_or(1.0f) * scale);
    attrs.Set("out_scale", pv.attributes.Float("alpha", 1.0f).value_or(1.0f));
    attrs.Set("nan_to_zero", nan_to_zero);
    std::vector<int> inputs = {qkn.inputs[0], qkn.inputs[1], pv.inputs[1]};
    if (mask >= 0) inputs.push_back(mask);
    const int out = pv.outputs[0];
    const std::string name = pv.name + "/attention";
    g.nodes[i].dead = g.nodes[sm].dead = g.nodes[qk].dead = true;
    if (scale_node >= 0) g.nodes[scale_node].dead = true;
    AddNode(g, "Attention", "coreserve", inputs, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseMatMulResidual(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  for (std::size_t m = 0; m < g.nodes.size(); ++m) {
    Node& mm = g.nodes[m];
    if (!IsOp(mm, "FusedMatMul", "coreserve") || mm.inputs.size() != 3) continue;
    auto activation = mm.attributes.String("activation", "none");
    if (!activation.ok() || *activation != "none") continue;  // the epilogue adds the residual before activating
    const int add = SoleConsumer(g, mm.outputs[0]);
    if (add < 0 || !IsOp(g.nodes[add], "Add")) continue;
    const int residual = Other(g.nodes[add], mm.outputs[0]);
    if (residual < 0 || residual == mm.outputs[0]) continue;
    mm.inputs.push_back(residual);
    mm.outputs[0] = g.nodes[add].outputs[0];
    g.nodes[add].dead = true;
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseMatMulSplit(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& split = g.nodes[i];
    if (!IsOp(split, "Split") || split.inputs.empty()) continue;
    const int wide = split.inputs[0];
    const int mm = LiveProducer(g, wide);
    if (mm < 0 || !IsOp(g.nodes[mm], "FusedMatMul", "coreserve") || g.nodes[mm].inputs.size() != 3 ||
        g.nodes[mm].attributes.Has("split") || SoleConsumer(g, wide) != static_cast<int>(i)) {
      continue;
    }
    const int64_t axis = split.attributes.Int("axis", 0).value_or(0);
    if (axis != -1 && KnownRank(g, wide) != axis + 1) continue;
    // The widths, as the Split itself would read them (attribute before opset 13, input after; else equal parts).
    std::vector<int64_t> sizes = split.attributes.Ints("split", {}).value_or(std::vector<int64_t>{});
    if (split.opset >= 13 && split.inputs.size() > 1 && split.inputs[1] >= 0) {
      const auto& c = g.values[split.inputs[1]].constant;
      if (!c || c->type() != DataType::kInt64) continue;
      sizes.assign(c->data<int64_t>(), c->data<int64_t>() + c->elements());
    }
    const int64_t n = g.values[g.nodes[mm].inputs[1]].constant->dim(1);
    const int64_t parts = static_cast<int64_t>(split.outputs.size());
    if (sizes.empty() && !split.attributes.Has("num_outputs") && n % parts == 0) sizes.assign(parts, n / parts);
    // Every range must start on a packed panel, where the GEMM's column tiles start.
    bool fits = static_cast<int64_t>(sizes.size()) == parts;
    int64_t begin = 0;
    for (int64_t width : sizes) {
      fits = fits && width > 0 && begin % kernels::SgemmNStep() == 0;
      begin += width;
    }
    for (int out : split.outputs) fits = fits && out >= 0;
    if (!fits || begin != n) continue;
    g.nodes[mm].outputs = split.outputs;
    g.nodes[mm].attributes.Set("split", sizes);
    g.nodes[i].dead = true;
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
    // (Rewiring below keeps Value::producer stale until the final RebuildEdges; each value is rewired once.)
    auto activation = mm.attributes.String("activation", "none");
    if (!activation.ok() || *activation != "none") continue;
    int act = SoleConsumer(g, mm.outputs[0]);
    if (act < 0) continue;
    // An elementwise activation commutes with a Reshape in between (GPT-2's Gemm works on a 2-D view).
    int reshape = -1;
    if (IsOp(g.nodes[act], "Reshape")) {
      reshape = act;
      act = SoleConsumer(g, g.nodes[reshape].outputs[0]);
      if (act < 0) continue;
    }
    const Node& a = g.nodes[act];
    std::string kind;
    if (IsOp(a, "Relu")) kind = "relu";
    if (IsOp(a, "Gelu", "com.microsoft")) kind = "gelu";
    if (IsOp(a, "FastGelu", "com.microsoft") && (a.inputs.size() < 2 || a.inputs[1] < 0)) kind = "gelu_tanh";
    if (IsOp(a, "Gelu")) {
      auto approx = a.attributes.String("approximate", "none");
      if (approx.ok() && *approx == "none") kind = "gelu";
    }
    if (kind.empty()) continue;
    mm.attributes.Set("activation", kind);
    if (reshape >= 0) {
      g.nodes[reshape].outputs[0] = a.outputs[0];
    } else {
      mm.outputs[0] = a.outputs[0];
    }
    g.nodes[act].dead = true;
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

namespace {

// The axes of a Reduce* node when they are exactly {-1} (attribute before opset 18, constant input after).
bool ReducesLastAxisOnly(const Graph& g, const Node& n) {
  auto keep = n.attributes.Int("keepdims", 1);
  if (!keep.ok() || *keep != 1) return false;
  std::vector<int64_t> axes;
  if (n.inputs.size() > 1 && n.inputs[1] >= 0) {
    const auto& c = g.values[n.inputs[1]].constant;
    if (!c || c->type() != DataType::kInt64) return false;
    axes.assign(c->data<int64_t>(), c->data<int64_t>() + c->elements());
  } else {
    auto a = n.attributes.Ints("axes", {});
    if (!a.ok()) return false;
    axes = *a;
  }
  return axes.size() == 1 && axes[0] == -1;
}

bool IsConstantVector(const Graph& g, int v) {
  return v >= 0 && g.values[v].constant && g.values[v].constant->type() == DataType::kFloat32 &&
         g.values[v].constant->rank() == 1;
}

}  // namespace

int FuseLayerNorm(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t dv = 0; dv < count; ++dv) {
    // Anchor: n = Div(d, s).
    if (!IsOp(g.nodes[dv], "Div")) continue;
    const Node& div = g.nodes[dv];
    const int d = div.inputs[0], s = div.inputs[1];
    const int sub = LiveProducer(g, d), sqrt = LiveProducer(g, s);
    if (sub < 0 || !IsOp(g.nodes[sub], "Sub") || sqrt < 0 || !IsOp(g.nodes[sqrt], "Sqrt")) continue;
    const int x = g.nodes[sub].inputs[0];
    const int mean1 = LiveProducer(g, g.nodes[sub].inputs[1]);
    if (mean1 < 0 || !IsOp(g.nodes[mean1], "ReduceMean") || g.nodes[mean1].inputs[0] != x ||
        !ReducesLastAxisOnly(g, g.nodes[mean1])) {
      continue;
    }
    const int add_eps = LiveProducer(g, g.nodes[sqrt].inputs[0]);
    if (add_eps < 0 || !IsOp(g.nodes[add_eps], "Add")) continue;
    const int var = g.nodes[add_eps].inputs[0];
    const int eps_v = g.nodes[add_eps].inputs[1];
    if (!g.values[eps_v].constant || g.values[eps_v].constant->elements() != 1 ||
        g.values[eps_v].constant->type() != DataType::kFloat32) {
      continue;
    }
    const float eps = *g.values[eps_v].constant->data<float>();
    const int mean2 = LiveProducer(g, var);
    if (mean2 < 0 || !IsOp(g.nodes[mean2], "ReduceMean") || !ReducesLastAxisOnly(g, g.nodes[mean2])) continue;
    const int sq = LiveProducer(g, g.nodes[mean2].inputs[0]);
    if (sq < 0) continue;
    const Node& sqn = g.nodes[sq];
    const bool square = (IsOp(sqn, "Pow") && sqn.inputs[0] == d && IsScalar(g, sqn.inputs[1], 2.0f)) ||
                        (IsOp(sqn, "Mul") && sqn.inputs[0] == d && sqn.inputs[1] == d);
    if (!square) continue;
    // Scale and shift.
    const int n_out = div.outputs[0];
    const int mul = SoleConsumer(g, n_out);
    if (mul < 0 || !IsOp(g.nodes[mul], "Mul")) continue;
    const int gamma = Other(g.nodes[mul], n_out);
    if (!IsConstantVector(g, gamma)) continue;
    const int scaled = g.nodes[mul].outputs[0];
    const int add = SoleConsumer(g, scaled);
    if (add < 0 || !IsOp(g.nodes[add], "Add")) continue;
    const int beta = Other(g.nodes[add], scaled);
    if (!IsConstantVector(g, beta) || g.values[beta].constant->elements() != g.values[gamma].constant->elements()) {
      continue;
    }
    // Every intermediate is private to the pattern: d feeds only the square and the Div.
    bool private_values = SoleConsumer(g, g.nodes[mean1].outputs[0]) == sub &&
                          SoleConsumer(g, g.nodes[sq].outputs[0]) == mean2 && SoleConsumer(g, var) == add_eps &&
                          SoleConsumer(g, g.nodes[add_eps].outputs[0]) == sqrt && SoleConsumer(g, s) == static_cast<int>(dv);
    if (!private_values || g.values[d].graph_output) continue;
    for (int c : g.values[d].consumers) private_values = private_values && (c == sq || c == static_cast<int>(dv));
    if (!private_values) continue;
    const int out = g.nodes[add].outputs[0];
    const std::string name = g.nodes[dv].name + "/fused_layernorm";
    for (int n : {mean1, sub, sq, mean2, add_eps, sqrt, static_cast<int>(dv), mul, add}) g.nodes[n].dead = true;
    Attributes attrs;
    attrs.Set("axis", int64_t{-1});
    attrs.Set("epsilon", eps);
    AddNode(g, "LayerNormalization", "", {x, gamma, beta}, out, name, attrs);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FoldConvBatchNorm(Graph& g) {
  g.RebuildEdges();
  int folded = 0;
  for (std::size_t c = 0; c < g.nodes.size(); ++c) {
    if (!IsOp(g.nodes[c], "Conv")) continue;
    const int w = g.nodes[c].inputs[1];
    const int b = g.nodes[c].inputs.size() > 2 ? g.nodes[c].inputs[2] : -1;
    if (!g.values[w].constant || g.values[w].constant->type() != DataType::kFloat32) continue;
    if (b >= 0 && !g.values[b].constant) continue;
    const int bn = SoleConsumer(g, g.nodes[c].outputs[0]);
    if (bn < 0 || !IsOp(g.nodes[bn], "BatchNormalization") || g.nodes[bn].inputs.size() < 5) continue;
    auto eps = g.nodes[bn].attributes.Float("epsilon", 1e-5f);
    auto training = g.nodes[bn].attributes.Int("training_mode", 0);
    if (!eps.ok() || !training.ok() || *training) continue;
    bool constants = true;
    for (int i = 1; i <= 4; ++i) constants = constants && IsConstantVector(g, g.nodes[bn].inputs[i]);
    if (!constants) continue;
    const Tensor& W = *g.values[w].constant;
    const int64_t m = W.dim(0), per = W.elements() / std::max<int64_t>(m, 1);
    const Tensor& scale = *g.values[g.nodes[bn].inputs[1]].constant;
    const Tensor& shift = *g.values[g.nodes[bn].inputs[2]].constant;
    const Tensor& mean = *g.values[g.nodes[bn].inputs[3]].constant;
    const Tensor& var = *g.values[g.nodes[bn].inputs[4]].constant;
    if (scale.elements() != m || shift.elements() != m || mean.elements() != m || var.elements() != m) continue;
    Tensor w2 = Tensor::Allocate(DataType::kFloat32, W.shape());
    Tensor b2 = Tensor::Allocate(DataType::kFloat32, {m});
    for (int64_t o = 0; o < m; ++o) {
      const float a = scale.data<float>()[o] / std::sqrt(var.data<float>()[o] + *eps);
      for (int64_t i = 0; i < per; ++i) w2.data<float>()[o * per + i] = W.data<float>()[o * per + i] * a;
      const float bias = b >= 0 ? g.values[b].constant->data<float>()[o] : 0.0f;
      b2.data<float>()[o] = (bias - mean.data<float>()[o]) * a + shift.data<float>()[o];
    }
    // (W and the statistics above refer into g.values, which AddConstant may reallocate: they are not used below.)
    const std::string base = g.nodes[c].name.empty() ? "conv" : g.nodes[c].name;
    const int w_id = g.AddConstant(g.UniqueName(base + "/folded_w"), std::move(w2));
    const int b_id = g.AddConstant(g.UniqueName(base + "/folded_b"), std::move(b2));
    Node& conv = g.nodes[c];
    conv.inputs.resize(3);
    conv.inputs[1] = w_id;
    conv.inputs[2] = b_id;
    conv.outputs[0] = g.nodes[bn].outputs[0];
    g.nodes[bn].dead = true;
    ++folded;
  }
  g.RebuildEdges();
  return folded;
}

int FuseConvAddRelu(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  for (std::size_t c = 0; c < g.nodes.size(); ++c) {
    Node& conv = g.nodes[c];
    if (!(IsOp(conv, "Conv") || IsOp(conv, "IntegerConv", "coreserve")) || conv.attributes.Has("coreserve_activation")) {
      continue;
    }
    int out = conv.outputs[0];
    int next = SoleConsumer(g, out);
    int residual = -1, add = -1;
    if (next >= 0 && IsOp(g.nodes[next], "Add")) {
      residual = Other(g.nodes[next], out);
      if (residual < 0 || residual == out) continue;
      add = next;
      out = g.nodes[add].outputs[0];
      next = SoleConsumer(g, out);
    }
    if (next < 0 || !IsOp(g.nodes[next], "Relu")) continue;
    const int relu = next;
    if (add >= 0) {
      if (conv.inputs.size() < 4) conv.inputs.resize(4, -1);
      conv.inputs[3] = residual;
      conv.attributes.Set("coreserve_residual", int64_t{1});
      g.nodes[add].dead = true;
    }
    conv.attributes.Set("coreserve_activation", std::string("relu"));
    conv.outputs[0] = g.nodes[relu].outputs[0];
    g.nodes[relu].dead = true;
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

}  // namespace coreserve::runtime
