// ONNX Runtime contrib operators (domain com.microsoft) that its transformer optimizer writes into BERT-family
// models, which users bring as they are: SkipLayerNormalization, BiasGelu, FastGelu. (com.microsoft::Gelu is
// registered with the elementwise operators.)
#include <cmath>

#include "kernels/math/f32_math.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {
namespace {

// y = LayerNorm(input + skip + bias) * gamma + beta over the last axis; optional outputs mean, inverse standard
// deviation and the pre-normalization sum.
absl::StatusOr<std::unique_ptr<OpKernel>> MakeSkipLayerNorm(const Graph&, const Node& node) {
  ASSIGN_OR_RETURN(float epsilon, node.attributes.Float("epsilon", 1e-12f));
  return std::unique_ptr<OpKernel>(new FunctionKernel([=](OpContext& ctx) -> absl::Status {
    const Tensor& x = ctx.in(0);
    const Tensor& skip = ctx.in(1);
    const Tensor& gamma = ctx.in(2);
    const Tensor* beta = ctx.has(3) ? ctx.inputs[3] : nullptr;
    const Tensor* bias = ctx.has(4) ? ctx.inputs[4] : nullptr;
    if (x.type() != DataType::kFloat32 || x.rank() < 1) return ctx.Error("input must be float32");
    const int64_t h = x.shape().back();
    const int64_t rows = h == 0 ? 0 : x.elements() / h;
    // skip is the input's shape, or broadcasts over the batch ([S, H] / [1, S, H]).
    if (skip.elements() == 0 || x.elements() % skip.elements() != 0 || skip.shape().back() != h) {
      return ctx.Error(absl::StrCat("skip ", ShapeString(skip.shape()), " does not match input ", ShapeString(x.shape())));
    }
    if (gamma.elements() != h || (beta && beta->elements() != h) || (bias && bias->elements() != h)) {
      return ctx.Error("gamma, beta and bias must have the hidden size");
    }
    Tensor& y = ctx.Output(0, x.type(), x.shape());
    Shape stat = x.shape();
    stat.back() = 1;
    float* mean_out = ctx.outputs.size() > 1 && ctx.node->outputs[1] >= 0 ? ctx.Output(1, x.type(), stat).data<float>() : nullptr;
    float* inv_out = ctx.outputs.size() > 2 && ctx.node->outputs[2] >= 0 ? ctx.Output(2, x.type(), stat).data<float>() : nullptr;
    float* sum_out = ctx.outputs.size() > 3 && ctx.node->outputs[3] >= 0 ? ctx.Output(3, x.type(), x.shape()).data<float>() : nullptr;
    const int64_t skip_rows = skip.elements() / h;
    const float *px = x.data<float>(), *ps = skip.data<float>(), *g = gamma.data<float>();
    const float* b = beta ? beta->data<float>() : nullptr;
    const float* bi = bias ? bias->data<float>() : nullptr;
    float* py = y.data<float>();
    const kernels::F32LayerNormFn layernorm = kernels::F32Math().layernorm;
    Parallel(ctx, rows, RowGrain(h), [&](int64_t r0, int64_t r1) {
      std::vector<float> sum(static_cast<std::size_t>(h));
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = px + r * h;
        const float* sr = ps + (r % skip_rows) * h;
        for (int64_t i = 0; i < h; ++i) sum[i] = xr[i] + sr[i] + (bi ? bi[i] : 0.0f);
        float mean = 0, inv = 0;
        layernorm(static_cast<std::size_t>(h), sum.data(), g, b, epsilon, py + r * h, &mean, &inv);
        if (mean_out) mean_out[r] = mean;
        if (inv_out) inv_out[r] = inv;
        if (sum_out) std::copy(sum.begin(), sum.end(), sum_out + r * h);
      }
    });
    return absl::OkStatus();
  }));
}

// x + bias (bias over the last axis), then the vector function `fn` in place.
absl::Status BiasThen(OpContext& ctx, const Tensor* bias, kernels::F32UnaryFn fn) {
  const Tensor& x = ctx.in(0);
  if (x.type() != DataType::kFloat32 || x.rank() < 1) return ctx.Error("input must be float32");
  const int64_t h = x.shape().back();
  if (bias && (bias->type() != DataType::kFloat32 || bias->elements() != h)) {
    return ctx.Error(absl::StrCat("bias must have ", h, " float32 elements"));
  }
  Tensor& y = ctx.Output(0, x.type(), x.shape());
  const int64_t rows = h == 0 ? 0 : x.elements() / h;
  const float* px = x.data<float>();
  const float* pb = bias ? bias->data<float>() : nullptr;
  float* py = y.data<float>();
  Parallel(ctx, rows, RowGrain(h), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* yr = py + r * h;
      for (int64_t i = 0; i < h; ++i) yr[i] = px[r * h + i] + (pb ? pb[i] : 0.0f);
      fn(static_cast<std::size_t>(h), yr, yr);
    }
  });
  return absl::OkStatus();
}

}  // namespace

void RegisterContribOps(OpRegistry& r) {
  r.Register("com.microsoft", "SkipLayerNormalization", MakeSkipLayerNorm);
  r.Register("com.microsoft", "BiasGelu", [](OpContext& ctx) {
    return BiasThen(ctx, ctx.inputs[1], kernels::F32Math().gelu);
  });
  r.Register("com.microsoft", "FastGelu", [](OpContext& ctx) {
    return BiasThen(ctx, ctx.has(1) ? ctx.inputs[1] : nullptr, kernels::F32Math().gelu_tanh);
  });
}

}  // namespace coreserve::runtime
