// Compiled with the AVX-512 (F, BW, DQ, VL) flags; only called when CpuFeatures::avx512 is set.
#include <immintrin.h>

#include "kernels/vadd/f32_vadd.h"

namespace coreserve::kernels {

void f32_vadd_avx512(std::size_t n, const float* a, const float* b, float* out) {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 s0 = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 s1 = _mm512_add_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    _mm512_storeu_ps(out + i, s0);
    _mm512_storeu_ps(out + i + 16, s1);
  }
  while (i < n) {
    // Masked lanes are neither read nor written, so tails of 1..15 need no scalar loop.
    const std::size_t left = n - i;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    _mm512_mask_storeu_ps(out + i, m, s);
    i += 16;
  }
}

}  // namespace coreserve::kernels
