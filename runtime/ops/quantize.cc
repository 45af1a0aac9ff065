// The ONNX quantization operators, as ONNX Runtime's quantize_dynamic and QDQ tools write them: QuantizeLinear,
// DequantizeLinear (per tensor or per axis, u8 / s8 / int32), DynamicQuantizeLinear (u8, per tensor) and
// MatMulInteger (u8 / s8 operands, exact int32 result) on the kernels' integer GEMM, its constant B packed at load.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/convert/f32_quantize.h"
#include "kernels/gemm/qgemm.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// Scale and zero point of a (De)QuantizeLinear: per tensor (scalars), or per axis (1-D of the axis' length).
struct QuantParams {
  const float* scale = nullptr;
  const Tensor* zero_point = nullptr;
  int64_t channels = 1, inner = 1;  // element i uses channel (i / inner) % channels
};

absl::StatusOr<QuantParams> ReadQuantParams(const OpContext& ctx, const Tensor& x, int64_t axis_attr) {
  QuantParams q;
  const Tensor& scale = ctx.in(1);
  if (scale.type() != DataType::kFloat32) return ctx.Error("only float32 scales are supported");
  if (ctx.has(2)) q.zero_point = ctx.inputs[2];
  if (q.zero_point && q.zero_point->elements() != scale.elements()) {
    return ctx.Error("scale and zero point must have the same number of elements");
  }
  q.scale = scale.data<float>();
  if (scale.elements() == 1 && scale.rank() <= 1) return q;
  if (scale.rank() != 1) return ctx.Error("blocked quantization (scale of rank > 1) is not supported");
  ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, x.rank()));
  if (x.dim(axis) != scale.elements()) {
    return ctx.Error(absl::StrCat("scale has ", scale.elements(), " elements for axis ", axis, " of size ", x.dim(axis)));
  }
  q.channels = scale.elements();
  for (int64_t d = axis + 1; d < x.rank(); ++d) q.inner *= x.dim(d);
  return q;
}

int32_t ZeroPointAt(const Tensor* zp, int64_t c) {
  if (zp == nullptr) return 0;
  switch (zp->type()) {
    case DataType::kUInt8: return zp->data<uint8_t>()[c];
    case DataType::kInt8: return zp->data<int8_t>()[c];
    case DataType::kInt32: return zp->data<int32_t>()[c];
    default: return 0;
  }
}

// saturate(round_half_even(x / scale) + zero_point) (NaN -> 0) for elements [begin, end) of channel layout q, on
// the kernels' quantizer: one call per run of elements that share a channel (the whole range, per tensor).
template <typename Q>
void QuantizeRange(const float* x, int64_t begin, int64_t end, const QuantParams& q, Q* y) {
  const kernels::F32QuantizeFn quantize = kernels::F32Quantize().fn;
  for (int64_t i = begin; i < end;) {
    const int64_t block = i / q.inner, c = q.channels == 1 ? 0 : block % q.channels;
    const int64_t run_end = q.channels == 1 ? end : std::min(end, (block + 1) * q.inner);
    quantize(static_cast<std::size_t>(run_end - i), x + i, q.scale[c], ZeroPointAt(q.zero_point, c),
             std::is_same_v<Q, int8_t>, y + i);
    i = run_end;
  }
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeQuantizeLinear(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis, node.attributes.Int("axis", 1));
  ASSIGN_OR_RETURN(int64_t block, node.attributes.Int("block_size", 0));
  if (block != 0) return absl::UnimplementedError(absl::StrCat(node.Describe(), ": block_size is not supported"));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32) return ctx.Error("input must be float32");
    ASSIGN_OR_RETURN(QuantParams q, ReadQuantParams(ctx, x, axis));
    const DataType out = q.zero_point ? q.zero_point->type() : DataType::kUInt8;
    if (out != DataType::kUInt8 && out != DataType::kInt8) return ctx.Error("output type must be uint8 or int8");
    Tensor& y = ctx.Output(0, out, x.shape());
    Parallel(ctx, x.elements(), 16384, [&](int64_t b, int64_t e) {
      if (out == DataType::kUInt8) QuantizeRange(x.data<float>(), b, e, q, y.data<uint8_t>());
      else QuantizeRange(x.data<float>(), b, e, q, y.data<int8_t>());
    });
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeDequantizeLinear(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis, node.attributes.Int("axis", 1));
  ASSIGN_OR_RETURN(int64_t block, node.attributes.Int("block_size", 0));
  if (block != 0) return absl::UnimplementedError(absl::StrCat(node.Describe(), ": block_size is not supported"));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kUInt8 && x.type() != DataType::kInt8 && x.type() != DataType::kInt32) {
      return ctx.Error("input must be uint8, int8 or int32");
    }
    ASSIGN_OR_RETURN(QuantParams q, ReadQuantParams(ctx, x, axis));
    if (q.zero_point && q.zero_point->type() != x.type()) return ctx.Error("zero point type must match the input");
    Tensor& y = ctx.Output(0, DataType::kFloat32, x.shape());
    float* py = y.data<float>();
    auto run = [&](auto* px, int64_t b, int64_t e) {
      if (q.channels == 1) {  // per tensor: a loop the compiler vectorizes
        const int32_t zp = ZeroPointAt(q.zero_point, 0);
        const float s = q.scale[0];
        for (int64_t i = b; i < e; ++i) py[i] = static_cast<float>(static_cast<int32_t>(px[i]) - zp) * s;
        return;
      }
      for (int64_t i = b; i < e; ++i) {
        const int64_t c = (i / q.inner) % q.channels;
        py[i] = static_cast<float>(static_cast<int32_t>(px[i]) - ZeroPointAt(q.zero_point, c)) * q.scale[c];
      }
    };
    Parallel(ctx, x.elements(), 16384, [&](int64_t b, int64_t e) {
      if (x.type() == DataType::kUInt8) run(x.data<uint8_t>(), b, e);
      else if (x.type() == DataType::kInt8) run(x.data<int8_t>(), b, e);
      else run(x.data<int32_t>(), b, e);
    });
    return absl::OkStatus();
  }));
}

// y_scale = (max(0, max x) - min(0, min x)) / 255, y_zero_point = saturate(round(-min(0, min x) / y_scale)),
// y = saturate(round(x / y_scale) + y_zero_point), all u8.
absl::Status DynamicQuantizeLinear(OpContext& ctx) {
  const Tensor& x = ctx.in(0);
  if (x.type() != DataType::kFloat32) return ctx.Error("input must be float32");
  const float* px = x.data<float>();
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < x.elements(); ++i) {
    lo = std::min(lo, px[i]);
    hi = std::max(hi, px[i]);
  }
  const float scale = (hi - lo) / 255.0f;
  // An all-zero input has no range: scale 0, zero point 0 and every value 0 (nothing to divide).
  const float zp = scale == 0.0f ? 0.0f : std::clamp(std::nearbyint(-lo / scale), 0.0f, 255.0f);
  Tensor& y = ctx.Output(0, DataType::kUInt8, x.shape());
  uint8_t* py = y.data<uint8_t>();
  for (int64_t i = 0; i < x.elements(); ++i) {
    py[i] = scale == 0.0f ? 0 : static_cast<uint8_t>(std::clamp(std::nearbyint(px[i] / scale) + zp, 0.0f, 255.0f));
  }
  if (ctx.outputs.size() > 1) ctx.Output(1, DataType::kFloat32, {}).data<float>()[0] = scale;
  if (ctx.outputs.size() > 2) ctx.Output(2, DataType::kUInt8, {}).data<uint8_t>()[0] = static_cast<uint8_t>(zp);
  return absl::OkStatus();
}

bool IsByte(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

int32_t ByteAt(const Tensor& t, int64_t i) {
  return t.type() == DataType::kUInt8 ? t.data<uint8_t>()[i] : t.data<int8_t>()[i];
}

// B packed for the integer kernels at load when it is a constant 2-D u8/s8 matrix whose zero point (input
// `zp_input`) is constant or absent, per tensor or per column; else null (the scalar loop runs).
std::shared_ptr<const kernels::SgemmPackedB> PackConstantIntegerB(const Graph& graph, const Node& node,
                                                                 std::size_t zp_input) {
  auto constant = [&](std::size_t i) -> const Tensor* {
    if (i >= node.inputs.size() || node.inputs[i] < 0) return nullptr;
    const auto& c = graph.values[node.inputs[i]].constant;
    return c ? &*c : nullptr;
  };
  const Tensor* b = constant(1);
  const bool zp_constant_or_absent = node.inputs.size() <= zp_input || node.inputs[zp_input] < 0 ||
                                     constant(zp_input) != nullptr;
  if (!b || b->rank() != 2 || !IsByte(b->type()) || !zp_constant_or_absent) return nullptr;
  const Tensor* zp = constant(zp_input);
  if (zp && (zp->type() != b->type() || (zp->elements() != 1 && zp->elements() != b->dim(1)))) return nullptr;
  return kernels::QgemmPackB(b->raw(), b->dim(1), b->type() == DataType::kInt8, b->dim(0), b->dim(1),
                             zp ? zp->raw() : nullptr, zp && zp->elements() > 1);
}

// MatMulInteger's operands, inputs 0 to 3 of it and of MatMulIntegerToFloat: A, B and their optional zero points.
struct IntegerOperands {
  const Tensor& a;
  const Tensor& b;
  const Tensor* azp;
  const Tensor* bzp;
  static IntegerOperands Of(const OpContext& ctx) {
    return {ctx.in(0), ctx.in(1), ctx.has(2) ? ctx.inputs[2] : nullptr, ctx.has(3) ? ctx.inputs[3] : nullptr};
  }
};

absl::StatusOr<Shape> MatMulIntegerShape(const OpContext& ctx, const IntegerOperands& in) {
  const Tensor &a = in.a, &b = in.b;
  const Tensor *azp = in.azp, *bzp = in.bzp;
  if (!IsByte(a.type()) || !IsByte(b.type())) return ctx.Error("A and B must be uint8 or int8");
  if ((azp && azp->type() != a.type()) || (bzp && bzp->type() != b.type())) {
    return ctx.Error("zero points must have their operand's type");
  }
  if (a.rank() < 2 || b.rank() < 2) return ctx.Error("A and B must have rank >= 2");
  const int64_t m = a.dim(a.rank() - 2), k = a.shape().back(), n = b.shape().back();
  if (b.dim(b.rank() - 2) != k) {
    return ctx.Error(absl::StrCat("shapes ", ShapeString(a.shape()), " and ", ShapeString(b.shape()), " do not match"));
  }
  if (azp && azp->elements() != 1 && azp->elements() != m) return ctx.Error("a_zero_point must be a scalar or [M]");
  if (bzp && bzp->elements() != 1 && bzp->elements() != n) return ctx.Error("b_zero_point must be a scalar or [N]");
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&a_batch, &b_batch}));
  Shape out = bc.out;
  out.push_back(m);
  out.push_back(n);
  return out;
}

// numpy MatMul of (A - a_zp) and (B - b_zp) in int32 into `py` (shape from MatMulIntegerShape). The kernel path
// covers a 2-D B with a per-tensor A zero point and a per-tensor or per-column B zero point; anything else
// (batched B, per-row A zero points) takes the exact scalar loop.
absl::Status MatMulIntegerInto(const OpContext& ctx, const kernels::SgemmPackedB* packed, const IntegerOperands& in,
                               int32_t* py) {
  const Tensor &a = in.a, &b = in.b;
  const Tensor *azp = in.azp, *bzp = in.bzp;
  const int64_t m = a.dim(a.rank() - 2), k = a.shape().back(), n = b.shape().back();
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  ASSIGN_OR_RETURN(Broadcast bc, PlanBroadcast(ctx, {&a_batch, &b_batch}));
  const int64_t batches = ElementCount(bc.out);
  if (batches * m * n == 0) return absl::OkStatus();
  const bool per_tensor_a = !azp || azp->elements() == 1;
  if (packed && b.rank() == 2 && per_tensor_a) {
    kernels::QgemmArgs q;
    q.m = batches * m; q.n = n; q.k = k;  // A's batches stack into rows against the one B
    q.a = a.raw(); q.lda = k; q.a_is_signed = a.type() == DataType::kInt8;
    q.a_zero_point = azp ? ByteAt(*azp, 0) : 0;
    q.packed_b = packed;
    q.c = py; q.ldc = n;
    ParallelQgemm(ctx, q);
    return absl::OkStatus();
  }
  Parallel(ctx, batches * m, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t batch = r / m, i = r % m;
      int64_t off[2];
      bc.ElementOffsets(batch, off);
      const int64_t a_row = (off[0] * m + i) * k, b_off = off[1] * k * n;
      const int32_t za = azp ? ByteAt(*azp, per_tensor_a ? 0 : i) : 0;
      for (int64_t j = 0; j < n; ++j) {
        const int32_t zb = bzp ? ByteAt(*bzp, bzp->elements() == 1 ? 0 : j) : 0;
        int64_t acc = 0;  // int32 results wrap on overflow, as ONNX Runtime's do
        for (int64_t l = 0; l < k; ++l) acc += (ByteAt(a, a_row + l) - za) * (ByteAt(b, b_off + l * n + j) - zb);
        py[r * n + j] = static_cast<int32_t>(acc);
      }
    }
  });
  return absl::OkStatus();
}

// MatMulInteger(A, B, a_zero_point, b_zero_point) -> int32.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeMatMulInteger(const Graph& graph, const Node& node) {
  std::shared_ptr<const kernels::SgemmPackedB> packed = PackConstantIntegerB(graph, node, 3);
  return std::unique_ptr<OpKernel>(new FunctionKernel([packed](OpContext& ctx) -> absl::Status {
    const IntegerOperands in = IntegerOperands::Of(ctx);
    ASSIGN_OR_RETURN(Shape shape, MatMulIntegerShape(ctx, in));
    Tensor& y = ctx.Output(0, DataType::kInt32, shape);
    return MatMulIntegerInto(ctx, packed.get(), in, y.data<int32_t>());
  }));
}

// coreserve::MatMulIntegerToFloat(A, B, a_zero_point, b_zero_point, scale[, bias]): MatMulInteger's exact int32
// product times scale[j] (N values: the A scale times B's per-tensor or per-column scale) plus bias[j], in
// float32. The optimizer writes it for quantize_static's QDQ MatMul (DequantizeLinear on both operands), so those
// models run on the integer kernels as ONNX Runtime runs them, not on fp32 products of dequantized values.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeMatMulIntegerToFloat(const Graph& graph, const Node& node) {
  std::shared_ptr<const kernels::SgemmPackedB> packed = PackConstantIntegerB(graph, node, 3);
  return std::unique_ptr<OpKernel>(new FunctionKernel([packed](OpContext& ctx) -> absl::Status {
    const IntegerOperands in = IntegerOperands::Of(ctx);
    const Tensor& scale = ctx.in(4);
    ASSIGN_OR_RETURN(Shape shape, MatMulIntegerShape(ctx, in));
    const int64_t n = shape.back();
    if (scale.type() != DataType::kFloat32 || scale.elements() != n) return ctx.Error("scale must be float32 [N]");
    Tensor& y = ctx.Output(0, DataType::kFloat32, shape);
    // The int32 product goes into Y's own storage (same size) and is converted in place.
    float* py = y.data<float>();
    auto* acc = reinterpret_cast<int32_t*>(static_cast<void*>(py));
    RETURN_IF_ERROR(MatMulIntegerInto(ctx, packed.get(), in, acc));
    const float* ps = scale.data<float>();
    const Tensor* bias = ctx.has(5) ? ctx.inputs[5] : nullptr;
    if (bias && (bias->type() != DataType::kFloat32 || bias->elements() != n)) return ctx.Error("bias must be float32 [N]");
    const float* pb = bias ? bias->data<float>() : nullptr;
    const int64_t rows = n == 0 ? 0 : y.elements() / n;
    ScaleInt32InPlace(ctx, py, rows, n, ps, pb, nullptr, /*relu=*/false);
    return absl::OkStatus();
  }));
}

}  // namespace

void RegisterQuantizeOps(OpRegistry& r) {
  r.Register("", "QuantizeLinear", MakeQuantizeLinear);
  r.Register("", "DequantizeLinear", MakeDequantizeLinear);
  r.Register("", "DynamicQuantizeLinear", DynamicQuantizeLinear);
  r.Register("", "MatMulInteger", MakeMatMulInteger);
  r.Register("coreserve", "MatMulIntegerToFloat", MakeMatMulIntegerToFloat);
}

}  // namespace coreserve::runtime
