// QDQ MatMul -> coreserve::MatMulIntegerToFloat (see fusions.h, FuseQdqMatMul).
//
// ONNX Runtime's quantize_static writes a quantized MatMul as DequantizeLinear on both operands: the activation
// (u8/s8 from a QuantizeLinear with a constant scale and zero point) and the weight (a constant s8/u8 matrix with
// a per-tensor or per-column scale). Run as written, that is an fp32 MatMul of dequantized values; ONNX Runtime
// instead multiplies the integers. This pass does the same: the integer product on the int8 kernels with the
// weight packed at load, scaled by s_a * s_w[j]. It runs before constant folding, which would otherwise turn the
// weight's DequantizeLinear into an fp32 constant and lose the pattern.
#include "runtime/fusions.h"
#include "runtime/graph_rewrite.h"

namespace coreserve::runtime {
namespace {

bool IsByteType(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

int ByteValue(const Tensor& t, int64_t i) {
  return t.type() == DataType::kInt8 ? t.data<int8_t>()[i] : t.data<uint8_t>()[i];
}

const Tensor* ConstantInput(const Graph& g, const Node& n, std::size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] < 0) return nullptr;
  const auto& c = g.values[n.inputs[i]].constant;
  return c ? &*c : nullptr;
}

// A DequantizeLinear whose scale (and zero point, if any) are constants with `max_elements` or fewer values;
// -1 when `value` is not produced by one.
int DequantizeProducer(const Graph& g, int value) {
  const int p = LiveProducer(g, value);
  if (p < 0 || !IsOp(g.nodes[p], "DequantizeLinear")) return -1;
  const Node& dq = g.nodes[p];
  const Tensor* scale = ConstantInput(g, dq, 1);
  if (!scale || scale->type() != DataType::kFloat32 || scale->rank() > 1) return -1;
  const bool has_zp = dq.inputs.size() > 2 && dq.inputs[2] >= 0;
  if (has_zp) {
    const Tensor* zp = ConstantInput(g, dq, 2);
    if (!zp || zp->elements() != scale->elements()) return -1;
  }
  auto block = dq.attributes.Int("block_size", 0);
  return block.ok() && *block == 0 ? p : -1;
}

}  // namespace

int FuseQdqMatMul(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  const std::size_t count = g.nodes.size();
  for (std::size_t i = 0; i < count; ++i) {
    if (!IsOp(g.nodes[i], "MatMul") || g.nodes[i].inputs.size() != 2) continue;
    const int da = DequantizeProducer(g, g.nodes[i].inputs[0]);
    const int dw = DequantizeProducer(g, g.nodes[i].inputs[1]);
    if (da < 0 || dw < 0) continue;
    const Node& a_dq = g.nodes[da];
    const Node& w_dq = g.nodes[dw];
    const int a_q = a_dq.inputs[0];
    const Tensor* w = ConstantInput(g, w_dq, 0);
    const Tensor& sa = *ConstantInput(g, a_dq, 1);
    const Tensor& sw = *ConstantInput(g, w_dq, 1);
    // The activation: any byte tensor with one scale. The weight: a constant byte matrix with one scale or one per
    // column (axis 1).
    if (a_q < 0 || (g.values[a_q].type != DataType::kUndefined && !IsByteType(g.values[a_q].type))) continue;
    if (sa.elements() != 1 || !w || w->rank() != 2 || !IsByteType(w->type())) continue;
    const int64_t n = w->dim(1);
    if (sw.elements() != 1) {
      auto axis = w_dq.attributes.Int("axis", 1);
      if (!axis.ok() || (*axis != 1 && *axis != -1) || sw.elements() != n) continue;
    }
    Tensor scale = Tensor::Allocate(DataType::kFloat32, {n});
    for (int64_t j = 0; j < n; ++j) {
      scale.data<float>()[j] = sa.data<float>()[0] * sw.data<float>()[sw.elements() == 1 ? 0 : j];
    }
    const int a_zp = a_dq.inputs.size() > 2 ? a_dq.inputs[2] : -1;
    const int w_zp = w_dq.inputs.size() > 2 ? w_dq.inputs[2] : -1;
    const std::string name = g.nodes[i].name + "/integer";
    const int scale_id = g.AddConstant(g.UniqueName(name + "_scale"), std::move(scale));
    int out = g.nodes[i].outputs[0];
    std::vector<int> inputs = {a_q, w_dq.inputs[0], a_zp, w_zp, scale_id};
    g.nodes[i].dead = true;
    // A following Add of a constant [N] vector (the Linear layer's bias, which quantize_static leaves in fp32)
    // is applied in the same pass that scales the product.
    if (const int add = SoleConsumer(g, out); add >= 0 && IsOp(g.nodes[add], "Add")) {
      const Node& a = g.nodes[add];
      const int other = a.inputs[0] == out ? a.inputs[1] : a.inputs[0];
      const auto& bias = g.values[other].constant;
      if (a.inputs.size() == 2 && other != out && bias && bias->type() == DataType::kFloat32 &&
          bias->rank() == 1 && bias->elements() == n) {
        inputs.push_back(other);
        out = a.outputs[0];
        g.nodes[add].dead = true;
      }
    }
    AddNode(g, "MatMulIntegerToFloat", "coreserve", inputs, out, name);
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

int FuseQdqConv(Graph& g) {
  g.RebuildEdges();
  int fused = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    Node& conv = g.nodes[i];
    if (!IsOp(conv, "Conv") || conv.inputs.size() < 2) continue;
    auto group = conv.attributes.Int("group", 1);
    if (!group.ok() || *group != 1) continue;
    const int dx = DequantizeProducer(g, conv.inputs[0]);
    const int dw = DequantizeProducer(g, conv.inputs[1]);
    if (dx < 0 || dw < 0) continue;
    const Node& x_dq = g.nodes[dx];
    const Node& w_dq = g.nodes[dw];
    const int x_q = x_dq.inputs[0];
    const Tensor* w = ConstantInput(g, w_dq, 0);
    const Tensor& sx = *ConstantInput(g, x_dq, 1);
    const Tensor& sw = *ConstantInput(g, w_dq, 1);
    if (x_q < 0 || (g.values[x_q].type != DataType::kUndefined && !IsByteType(g.values[x_q].type))) continue;
    if (sx.elements() != 1 || !w || w->rank() != 4 || !IsByteType(w->type())) continue;
    const int64_t co = w->dim(0);
    if (sw.elements() != 1) {
      auto axis = w_dq.attributes.Int("axis", 1);
      if (!axis.ok() || *axis != 0 || sw.elements() != co) continue;
    }
    // Symmetric weights only (quantize_static's default for s8): a weight zero point would need a per-pixel
    // correction term the kernels do not carry for convolutions.
    if (const Tensor* zw = ConstantInput(g, w_dq, 2); zw != nullptr) {
      bool zero = true;
      for (int64_t j = 0; j < zw->elements(); ++j) zero = zero && ByteValue(*zw, j) == 0;
      if (!zero) continue;
    }
    Tensor scale = Tensor::Allocate(DataType::kFloat32, {co});
    for (int64_t j = 0; j < co; ++j) {
      scale.data<float>()[j] = sx.data<float>()[0] * sw.data<float>()[sw.elements() == 1 ? 0 : j];
    }
    const int scale_id = g.AddConstant(g.UniqueName(conv.name + "/integer_scale"), std::move(scale));
    const int x_zp = x_dq.inputs.size() > 2 ? x_dq.inputs[2] : -1;
    const int bias = conv.inputs.size() > 2 ? conv.inputs[2] : -1;
    Node& c = g.nodes[i];  // (AddConstant does not touch nodes; kept explicit for the reader)
    c.inputs = {x_q, w_dq.inputs[0], bias, -1, scale_id, x_zp};
    c.op_type = "IntegerConv";
    c.domain = "coreserve";
    c.attributes.owner = c.Describe();
    ++fused;
  }
  g.RebuildEdges();
  return fused;
}

}  // namespace coreserve::runtime
