// The channels-last layout pass (see fusions.h, ConvertConvsToNhwc).
//
// Why: in NCHW a convolution's GEMM has the weights as A and the im2col matrix as B, so B must be packed on
// every call, the bias is per row (an extra pass over Y), and small images leave most of a 32-column B panel
// empty (ResNet-50's last stage has 7x7 = 49 pixels). In NHWC the weights are B, packed once at load; ONNX
// Runtime (NCHWc) and OpenVINO (blocked layouts) change the layout of convolution chains for the same reason.
//
// How: walking the nodes in topological order, each eligible Conv becomes a coreserve::NhwcConv that reads the
// NHWC form of its input and writes an NHWC output; a Transpose back to NCHW keeps the original output value
// for any reader that was not converted (dead-node removal drops it when every reader was). MaxPool and
// GlobalAveragePool whose input already exists in NHWC are converted too, so ResNet-style graphs run channels-last
// from the first Conv to the pooling before the classifier, with two layout transposes in all.
#include <map>

#include "runtime/fusions.h"
#include "runtime/graph_rewrite.h"

namespace coreserve::runtime {
namespace {

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1};
const std::vector<int64_t> kToNchw = {0, 3, 1, 2};

bool KnownRank4(const Graph& g, int value) { return g.values[value].shape && g.values[value].shape->size() == 4; }

// A Conv the NHWC kernel computes: 2 spatial dims, constant weights (float32, or u8/s8 for the QDQ fusion's
// IntegerConv), one group.
bool Eligible(const Graph& g, const Node& n) {
  const bool integer = IsOp(n, "IntegerConv", "coreserve");
  if (!(IsOp(n, "Conv") || integer) || n.inputs.size() < 2 || n.inputs[1] < 0) return false;
  const Value& w = g.values[n.inputs[1]];
  const DataType wt = w.constant ? w.constant->type() : DataType::kUndefined;
  const bool type_ok = integer ? (wt == DataType::kUInt8 || wt == DataType::kInt8) : wt == DataType::kFloat32;
  if (!type_ok || w.constant->rank() != 4) return false;
  auto group = n.attributes.Int("group", 1);
  return group.ok() && *group == 1;
}

class NhwcRewriter {
 public:
  explicit NhwcRewriter(Graph& g) : g_(g) {}

  // The NHWC form of NCHW value `v`: the converted producer's output, else a new Transpose of v.
  int ToNhwc(int v) {
    if (auto it = nhwc_.find(v); it != nhwc_.end()) return it->second;
    const int t = NewValue(v, Permuted(v, kToNhwc), g_.values[v].type);
    Attributes attrs;
    attrs.Set("perm", kToNhwc);
    AddNode(g_, "Transpose", "", {v}, t, g_.values[v].name + "/to_nhwc", attrs);
    nhwc_[v] = t;
    return t;
  }

  bool HasNhwc(int v) const { return nhwc_.count(v) > 0; }
  const std::map<int, int>& forms() const { return nhwc_; }

  // Makes node `n` (now an NHWC operator named `op`, or the same elementwise operator when `op` is empty) write
  // a new NHWC value, and keeps its old NCHW output value alive through a Transpose back.
  void Redirect(int n, const std::string& op) {
    const int out = g_.nodes[n].outputs[0];
    const int y = NewValue(out, Permuted(out, kToNhwc), g_.values[out].type);
    if (!op.empty()) {
      g_.nodes[n].op_type = op;
      g_.nodes[n].domain = "coreserve";
    }
    g_.nodes[n].outputs[0] = y;
    g_.nodes[n].attributes.owner = g_.nodes[n].Describe();
    Attributes attrs;
    attrs.Set("perm", kToNchw);
    AddNode(g_, "Transpose", "", {y}, out, g_.values[out].name + "/to_nchw", attrs);
    nhwc_[out] = y;
  }

 private:
  std::optional<Shape> Permuted(int v, const std::vector<int64_t>& perm) const {
    if (!KnownRank4(g_, v)) return std::nullopt;
    Shape s;
    for (int64_t a : perm) s.push_back((*g_.values[v].shape)[a]);
    return s;
  }

  int NewValue(int like, std::optional<Shape> shape, DataType type) {
    const int id = g_.ValueId(g_.UniqueName(g_.values[like].name + "/nhwc"));
    g_.values[id].type = type;
    g_.values[id].shape = std::move(shape);
    return id;
  }

  Graph& g_;
  std::map<int, int> nhwc_;  // NCHW value -> its NHWC form
};

bool IsScalarConstant(const Graph& g, int v) {
  return v >= 0 && g.values[v].constant && g.values[v].constant->elements() == 1;
}

// An elementwise operator that computes the same on NHWC data as on NCHW: one output, each input either a value
// with an NHWC form (at least one) or a scalar constant. Covers the Relu, residual Add and QuantizeLinear /
// DequantizeLinear (per-tensor) between the convolutions of ResNet-style and QDQ-quantized graphs.
bool LayoutFree(const Graph& g, const Node& n, const std::map<int, int>& nhwc) {
  static const char* const kOps[] = {"Relu", "Sigmoid", "Add", "Sub", "Mul", "QuantizeLinear", "DequantizeLinear"};
  bool known = false;
  for (const char* op : kOps) known = known || IsOp(n, op);
  if (!known || n.outputs.size() != 1 || n.inputs.empty()) return false;
  bool any = false;
  for (int in : n.inputs) {
    if (in < 0) continue;
    const bool has = nhwc.count(in) > 0;
    if (!has && !IsScalarConstant(g, in)) return false;
    any = any || has;
  }
  return any;
}

}  // namespace

int ConvertConvsToNhwc(Graph& g) {
  g.RebuildEdges();
  auto order = g.TopologicalOrder();
  if (!order.ok()) return 0;  // loading reports the cycle
  NhwcRewriter rw(g);
  int converted = 0;
  for (int n : *order) {
    Node& node = g.nodes[n];
    if (node.dead || node.outputs.empty() || node.outputs[0] < 0) continue;
    const int x = node.inputs.empty() ? -1 : node.inputs[0];
    if (x < 0) continue;
    if (Eligible(g, node)) {
      // A fused residual must be 4-D to have an NHWC form; without a known rank the Conv stays NCHW.
      const bool has_residual = node.attributes.Has("coreserve_residual") && node.inputs.size() > 3 &&
                                node.inputs[3] >= 0;
      // (IntegerConv has no NCHW kernel: it always converts, and a residual that is not 4-D fails at run time.)
      const bool integer = IsOp(node, "IntegerConv", "coreserve");
      if (has_residual && !integer && !rw.HasNhwc(node.inputs[3]) && !KnownRank4(g, node.inputs[3])) continue;
      const int xn = rw.ToNhwc(x);
      const int rn = has_residual ? rw.ToNhwc(node.inputs[3]) : -1;
      Node& conv = g.nodes[n];  // ToNhwc may have grown the node list
      conv.inputs[0] = xn;
      if (has_residual) conv.inputs[3] = rn;
      rw.Redirect(n, "NhwcConv");
      ++converted;
    } else if (IsOp(node, "MaxPool") && rw.HasNhwc(x) && (node.outputs.size() == 1 || node.outputs[1] < 0)) {
      auto kernel = node.attributes.Ints("kernel_shape", {});
      if (!kernel.ok() || kernel->size() != 2) continue;
      const int xn = rw.ToNhwc(x);
      g.nodes[n].inputs[0] = xn;
      rw.Redirect(n, "NhwcMaxPool");
      ++converted;
    } else if (IsOp(node, "GlobalAveragePool") && rw.HasNhwc(x)) {
      const int xn = rw.ToNhwc(x);
      g.nodes[n].inputs[0] = xn;
      rw.Redirect(n, "NhwcGlobalAveragePool");
      ++converted;
    } else if (LayoutFree(g, node, rw.forms())) {
      for (int& in : g.nodes[n].inputs) {
        if (in >= 0 && rw.HasNhwc(in)) in = rw.ToNhwc(in);  // existing forms: no node is added
      }
      rw.Redirect(n, "");
      ++converted;
    }
  }
  g.RebuildEdges();
  return converted;
}

}  // namespace coreserve::runtime
