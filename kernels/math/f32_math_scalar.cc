#include <algorithm>
#include <cmath>

#include "kernels/math/f32_math.h"

namespace coreserve::kernels {

void f32_exp_scalar(std::size_t n, const float* x, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void f32_erf_scalar(std::size_t n, const float* x, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::erf(x[i]);
}

void f32_gelu_scalar(std::size_t n, const float* x, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void f32_softmax_scalar(std::size_t n, const float* x, float* y) {
  if (n == 0) return;
  const float mx = *std::max_element(x, x + n);
  float sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    y[i] = std::exp(x[i] - mx);
    sum += y[i];
  }
  const float inv = 1.0f / sum;
  for (std::size_t i = 0; i < n; ++i) y[i] *= inv;
}

void f32_tanh_scalar(std::size_t n, const float* x, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void f32_gelu_tanh_scalar(std::size_t n, const float* x, float* y) {
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  }
}

void f32_layernorm_scalar(std::size_t n, const float* x, const float* gamma, const float* beta, float eps, float* y,
                          float* mean_out, float* inv_out) {
  float sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(n);
  float sq = 0;
  for (std::size_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  for (std::size_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv * gamma[i] + (beta ? beta[i] : 0.0f);
  *mean_out = mean;
  *inv_out = inv;
}

F32MathKernels SelectF32Math(const CpuFeatures& f) {
#if defined(__x86_64__)
  if (f.avx512) {
    return {"f32_math_avx512", f32_exp_avx512, f32_erf_avx512, f32_gelu_avx512, f32_softmax_avx512, f32_tanh_avx512,
            f32_gelu_tanh_avx512, f32_layernorm_avx512};
  }
#endif
  (void)f;
  return {"f32_math_scalar", f32_exp_scalar, f32_erf_scalar, f32_gelu_scalar, f32_softmax_scalar, f32_tanh_scalar,
          f32_gelu_tanh_scalar, f32_layernorm_scalar};
}

const F32MathKernels& F32Math() {
  static const F32MathKernels kernels = SelectF32Math(ActiveCpuFeatures());
  return kernels;
}

}  // namespace coreserve::kernels
