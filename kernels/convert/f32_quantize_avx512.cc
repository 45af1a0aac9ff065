// f32_quantize for AVX-512: 16 values per step, rounded with vrndscaleps (half to even, as the scalar trick),
// converted exactly (the values are integers in the byte range by then), NaN lanes zeroed, and narrowed with
// vpmovdb (truncation: the scalar definition's int32 -> byte cast). Compiled with the AVX-512 flags; called only
// when CpuFeatures::avx512 is set.
#include <immintrin.h>

#include "kernels/convert/f32_quantize.h"

namespace coreserve::kernels {

void f32_quantize_avx512(std::size_t n, const float* x, float scale, int32_t zero_point, bool is_signed, void* y) {
  const __m512 s = _mm512_set1_ps(scale), zp = _mm512_set1_ps(static_cast<float>(zero_point));
  const __m512 lo = _mm512_set1_ps(is_signed ? -128.0f : 0.0f), hi = _mm512_set1_ps(is_signed ? 127.0f : 255.0f);
  const __m512 lim = _mm512_set1_ps(1024.0f), neg_lim = _mm512_set1_ps(-1024.0f);
  auto* out = static_cast<uint8_t*>(y);
  for (std::size_t i = 0; i < n; i += 16) {
    const std::size_t left = n - i;
    const __mmask16 m = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __mmask16 ordered = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
    __m512 t = _mm512_div_ps(v, s);
    t = _mm512_max_ps(_mm512_min_ps(t, lim), neg_lim);
    t = _mm512_add_ps(_mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
    t = _mm512_max_ps(_mm512_min_ps(t, hi), lo);
    const __m512i q = _mm512_maskz_mov_epi32(ordered, _mm512_cvtps_epi32(t));
    _mm512_mask_cvtepi32_storeu_epi8(out + i, m, q);
  }
}

}  // namespace coreserve::kernels
