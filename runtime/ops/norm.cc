// Normalizations: LayerNormalization (opset 17, and the optimizer's fused form of the decomposed pattern) and
// inference-mode BatchNormalization.
#include <cmath>

#include "kernels/math/f32_math.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

absl::StatusOr<std::unique_ptr<OpKernel>> MakeLayerNorm(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(int64_t axis_attr, node.attributes.Int("axis", -1));
  ASSIGN_OR_RETURN(float epsilon, node.attributes.Float("epsilon", 1e-5f));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const Tensor& scale = ctx.in(1);
    const Tensor* bias = ctx.has(2) ? ctx.inputs[2] : nullptr;
    if (x.type() != DataType::kFloat32 || scale.type() != DataType::kFloat32) return ctx.Error("inputs must be float32");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(ctx, axis_attr, x.rank()));
    int64_t rows = 1, cols = 1;
    for (int64_t d = 0; d < axis; ++d) rows *= x.dim(d);
    for (int64_t d = axis; d < x.rank(); ++d) cols *= x.dim(d);
    // Scale and bias broadcast over the normalized dims; the common case is exactly `cols` elements.
    if (scale.elements() != cols || (bias && bias->elements() != cols)) {
      return ctx.Error(absl::StrCat("scale/bias must have ", cols, " elements (the normalized dims)"));
    }
    Tensor& y = ctx.Output(0, x.type(), x.shape());
    Shape stat_shape = x.shape();
    for (int64_t d = axis; d < x.rank(); ++d) stat_shape[d] = 1;
    float* mean_out = ctx.outputs.size() > 1 ? ctx.Output(1, DataType::kFloat32, stat_shape).data<float>() : nullptr;
    float* inv_out = ctx.outputs.size() > 2 ? ctx.Output(2, DataType::kFloat32, stat_shape).data<float>() : nullptr;
    const float* px = x.data<float>();
    const float* g = scale.data<float>();
    const float* b = bias ? bias->data<float>() : nullptr;
    float* py = y.data<float>();
    const kernels::F32LayerNormFn layernorm = kernels::F32Math().layernorm;
    Parallel(ctx, rows, RowGrain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float mean = 0, inv = 0;
        layernorm(static_cast<std::size_t>(cols), px + r * cols, g, b, epsilon, py + r * cols, &mean, &inv);
        if (mean_out) mean_out[r] = mean;
        if (inv_out) inv_out[r] = inv;
      }
    });
    return absl::OkStatus();
  }));
}

absl::StatusOr<std::unique_ptr<OpKernel>> MakeBatchNorm(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(float epsilon, node.attributes.Float("epsilon", 1e-5f));
  ASSIGN_OR_RETURN(int64_t training, node.attributes.Int("training_mode", 0));
  if (training) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": training_mode=1 is not supported"));
  }
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    if (x.type() != DataType::kFloat32 || x.rank() < 2) return ctx.Error("input must be float32 with rank >= 2");
    const int64_t n = x.dim(0), c = x.dim(1);
    const int64_t spatial = c == 0 || n == 0 ? 0 : x.elements() / (n * c);
    for (int i = 1; i <= 4; ++i) {
      if (ctx.in(i).elements() != c) return ctx.Error("scale, B, mean and var must have C elements");
    }
    const float *scale = ctx.in(1).data<float>(), *bias = ctx.in(2).data<float>(),
                *mean = ctx.in(3).data<float>(), *var = ctx.in(4).data<float>();
    Tensor& y = ctx.Output(0, x.type(), x.shape());
    const float* px = x.data<float>();
    float* py = y.data<float>();
    Parallel(ctx, n * c, RowGrain(spatial), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t ch = p % c;
        const float a = scale[ch] / std::sqrt(var[ch] + epsilon);
        const float b = bias[ch] - mean[ch] * a;
        for (int64_t i = 0; i < spatial; ++i) py[p * spatial + i] = px[p * spatial + i] * a + b;
      }
    });
    return absl::OkStatus();
  }));
}

}  // namespace

void RegisterNormOps(OpRegistry& r) {
  r.Register("", "LayerNormalization", MakeLayerNorm);
  r.Register("", "BatchNormalization", MakeBatchNorm);
}

}  // namespace coreserve::runtime
