// Vectorized fp32 transcendental functions over arrays: exp, erf, GELU (erf form) and a softmax row.
//
// The scalar variants (std::exp, std::erf in float) are the references. The AVX-512 variants use polynomial
// approximations; their accuracy, checked by tests against double-precision libm, is:
//   exp:  relative error <= 4e-7 (x in [-87, 88]); exp(-inf) = 0, exp(+inf) = inf, NaN propagates
//   erf:  absolute error <= 3e-7, and relative error <= 2e-6 for |x| < 0.5 (where erf is small)
//   gelu: absolute error <= 3e-7 * |x| (it is 0.5 * x * (1 + erf(x / sqrt 2)))
//   tanh: absolute error <= 2e-7, and relative error <= 1e-6 for |x| < 0.25
// Preconditions: x and y hold n floats; y may alias x exactly.
#pragma once

#include <cstddef>

#include "kernels/cpu_features.h"

namespace coreserve::kernels {

using F32UnaryFn = void (*)(std::size_t n, const float* x, float* y);
// y = softmax(x) over n elements.
using F32SoftmaxFn = void (*)(std::size_t n, const float* x, float* y);
// y = (x - mean) / sqrt(var + eps) * gamma + beta over n elements (beta may be null); writes mean and
// 1 / sqrt(var + eps) to *mean / *inv_std. Two passes (mean, then centered variance) for accuracy.
using F32LayerNormFn = void (*)(std::size_t n, const float* x, const float* gamma, const float* beta, float eps,
                                float* y, float* mean, float* inv_std);

struct F32MathKernels {
  const char* name;  // "f32_math_avx512", "f32_math_scalar"
  F32UnaryFn exp;
  F32UnaryFn erf;
  F32UnaryFn gelu;
  F32SoftmaxFn softmax;
  F32UnaryFn tanh;
  F32UnaryFn gelu_tanh;  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  F32LayerNormFn layernorm;
};

void f32_exp_scalar(std::size_t n, const float* x, float* y);
void f32_erf_scalar(std::size_t n, const float* x, float* y);
void f32_gelu_scalar(std::size_t n, const float* x, float* y);
void f32_softmax_scalar(std::size_t n, const float* x, float* y);
void f32_tanh_scalar(std::size_t n, const float* x, float* y);
void f32_gelu_tanh_scalar(std::size_t n, const float* x, float* y);
void f32_layernorm_scalar(std::size_t n, const float* x, const float* gamma, const float* beta, float eps, float* y,
                          float* mean, float* inv_std);
#if defined(__x86_64__)
void f32_exp_avx512(std::size_t n, const float* x, float* y);
void f32_erf_avx512(std::size_t n, const float* x, float* y);
void f32_gelu_avx512(std::size_t n, const float* x, float* y);
void f32_softmax_avx512(std::size_t n, const float* x, float* y);
void f32_tanh_avx512(std::size_t n, const float* x, float* y);
void f32_gelu_tanh_avx512(std::size_t n, const float* x, float* y);
void f32_layernorm_avx512(std::size_t n, const float* x, const float* gamma, const float* beta, float eps, float* y,
                          float* mean, float* inv_std);
#endif

F32MathKernels SelectF32Math(const CpuFeatures& features);
// SelectF32Math(ActiveCpuFeatures()), chosen on first use.
const F32MathKernels& F32Math();

}  // namespace coreserve::kernels
