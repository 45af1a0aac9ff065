// Compiled with the AVX-512 flags; only called when CpuFeatures::avx512 is set.
#include "kernels/math/f32_math_avx512.h"

#include <cmath>

#include "kernels/math/f32_math.h"

namespace coreserve::kernels {
namespace {

// Applies F to n floats, full vectors then one masked tail.
template <__m512 (*F)(__m512)>
void Map(std::size_t n, const float* x, float* y) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

void f32_exp_avx512(std::size_t n, const float* x, float* y) { Map<avx512::Exp>(n, x, y); }
void f32_erf_avx512(std::size_t n, const float* x, float* y) { Map<avx512::Erf>(n, x, y); }
void f32_gelu_avx512(std::size_t n, const float* x, float* y) { Map<avx512::Gelu>(n, x, y); }
void f32_tanh_avx512(std::size_t n, const float* x, float* y) { Map<avx512::Tanh>(n, x, y); }
void f32_gelu_tanh_avx512(std::size_t n, const float* x, float* y) { Map<avx512::GeluTanh>(n, x, y); }

void f32_layernorm_avx512(std::size_t n, const float* x, const float* gamma, const float* beta, float eps, float* y,
                          float* mean_out, float* inv_out) {
  const std::size_t full = n / 16 * 16;
  const __mmask16 m = static_cast<__mmask16>((1u << (n - full)) - 1);
  __m512 vs = _mm512_setzero_ps();
  for (std::size_t i = 0; i < full; i += 16) vs = _mm512_add_ps(vs, _mm512_loadu_ps(x + i));
  if (m) vs = _mm512_add_ps(vs, _mm512_maskz_loadu_ps(m, x + full));
  const float mean = _mm512_reduce_add_ps(vs) / static_cast<float>(n);
  const __m512 vm = _mm512_set1_ps(mean);
  __m512 vq = _mm512_setzero_ps();
  for (std::size_t i = 0; i < full; i += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
    vq = _mm512_fmadd_ps(d, d, vq);
  }
  if (m) {
    const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + full), vm);
    vq = _mm512_fmadd_ps(d, d, vq);
  }
  const float inv = 1.0f / std::sqrt(_mm512_reduce_add_ps(vq) / static_cast<float>(n) + eps);
  const __m512 vi = _mm512_set1_ps(inv);
  for (std::size_t i = 0; i < full; i += 16) {
    const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(gamma + i), vi);
    const __m512 b = beta ? _mm512_loadu_ps(beta + i) : _mm512_setzero_ps();
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), g, b));
  }
  if (m) {
    const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, gamma + full), vi);
    const __m512 b = beta ? _mm512_maskz_loadu_ps(m, beta + full) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(y + full, m, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + full), vm), g, b));
  }
  *mean_out = mean;
  *inv_out = inv;
}

void f32_softmax_avx512(std::size_t n, const float* x, float* y) {
  if (n == 0) return;
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
  const std::size_t tail = n - i;
  const __mmask16 m = static_cast<__mmask16>((1u << tail) - 1);
  if (tail) vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 vsum = _mm512_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = avx512::Exp(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
    _mm512_storeu_ps(y + i, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  if (tail) {
    const __m512 e = avx512::Exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
    _mm512_mask_storeu_ps(y + i, m, e);
    vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
  if (tail) _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), inv));
}

}  // namespace coreserve::kernels
