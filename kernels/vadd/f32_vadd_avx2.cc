// Compiled with -mavx2 -mfma; only called when CpuFeatures::avx2_fma is set.
#include <immintrin.h>

#include "kernels/vadd/f32_vadd.h"

namespace coreserve::kernels {

void f32_vadd_avx2(std::size_t n, const float* a, const float* b, float* out) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 s0 = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 s1 = _mm256_add_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    _mm256_storeu_ps(out + i, s0);
    _mm256_storeu_ps(out + i + 8, s1);
  }
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  }
  if (i < n) {
    // AVX2 masked loads never fault on masked-off lanes, so the tail needs no scalar loop.
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), lane);
    const __m256 s = _mm256_add_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask));
    _mm256_maskstore_ps(out + i, mask, s);
  }
}

}  // namespace coreserve::kernels
