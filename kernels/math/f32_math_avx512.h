// Register-level AVX-512 exp / erf / GELU, shared by the array kernels and the GEMM epilogue. Include only from
// files compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

namespace coreserve::kernels::avx512 {

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial (Cephes expf coefficients), then scaled by
// 2^n with vscalefps, which also produces 0 and inf at the ends of the range.
inline __m512 Exp(__m512 x) {
  // min/max return their second operand when either is NaN, so NaN passes through the clamp.
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// |magnitude| (sign bit clear) with x's sign: the odd functions below compute on |x| and restore it.
inline __m512 WithSignOf(__m512 magnitude, __m512 x) {
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign));
}

// erf(x): for |x| < 0.5 the Taylor series to x^11 (truncation < 2e-8 there); beyond, Abramowitz & Stegun
// 7.1.26, 1 - t (a1 + t (a2 + ...)) e^(-x^2) with t = 1 / (1 + p|x|) (absolute error 1.5e-7); the sign is
// restored at the end.
inline __m512 Erf(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  // Small |x|: x * (c0 + x^2 (c1 + ...)), c_k = 2/sqrt(pi) * (-1)^k / (k! (2k+1)).
  const __m512 x2 = _mm512_mul_ps(ax, ax);
  __m512 s = _mm512_set1_ps(-8.5483270e-4f);                  // -2/sqrt(pi) / 1320
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(5.2239776e-3f));  //  2/sqrt(pi) / 216
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-2.6866170e-2f)); // -2/sqrt(pi) / 42
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.1283792e-1f));  //  2/sqrt(pi) / 10
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-3.7612638e-1f)); // -2/sqrt(pi) / 3
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.1283792e+0f));  //  2/sqrt(pi)
  s = _mm512_mul_ps(s, ax);
  // Large |x|.
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), ax, _mm512_set1_ps(1.0f)));
  __m512 q = _mm512_set1_ps(1.061405429f);
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-1.453152027f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.421413741f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-0.284496736f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.254829592f));
  q = _mm512_mul_ps(q, t);
  const __m512 l = _mm512_fnmadd_ps(q, Exp(_mm512_sub_ps(_mm512_setzero_ps(), x2)), _mm512_set1_ps(1.0f));
  const __mmask16 small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.5f), _CMP_LT_OQ);
  const __m512 r = _mm512_mask_blend_ps(small, l, s);
  // NaN stays NaN: both branches produce NaN for a NaN input.
  return WithSignOf(r, x);
}

// tanh(x) = sign(x) (1 - 2 / (e^(2|x|) + 1)); below |x| = 0.25, where that form cancels, the odd Taylor series to
// x^9 (truncation < 1.2e-8 there).
inline __m512 Tanh(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 e = Exp(_mm512_add_ps(ax, ax));
  const __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                   _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
  const __m512 x2 = _mm512_mul_ps(ax, ax);
  __m512 s = _mm512_set1_ps(2.1869488e-2f);                    //  62/2835
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-5.3968254e-2f));  // -17/315
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.3333334e-1f));   //  2/15
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(-3.3333334e-1f));  // -1/3
  s = _mm512_fmadd_ps(s, x2, _mm512_set1_ps(1.0f));
  s = _mm512_mul_ps(s, ax);
  const __mmask16 small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
  return WithSignOf(_mm512_mask_blend_ps(small, big, s), x);
}

// erf for GELU: z P(z^2) / Q(z^2), degree 5 over 5, fitted by scripts/fit_gelu_erf.py on |z| <= 3.925, beyond
// which float32 erf is +-1. Absolute error 3.2e-7 (a few units in the last place near 1), twice Erf's, but in
// about a third of the instructions (no exp, one division): GELU follows every BERT FFN GEMM, and its erf was
// ~4% of an int8 BERT-base run. In GELU the error is scaled by x / 2, under the epilogue tests' bound.
inline __m512 ErfForGelu(__m512 z) {
  const __m512 y = _mm512_mul_ps(z, z);
  __m512 p = _mm512_set1_ps(2.031736829e-06f);
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(2.874897948e-04f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(3.873945081e-03f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(5.307608858e-02f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.929079856e-01f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.128379015e+00f));
  __m512 q = _mm512_set1_ps(3.804110613e-05f);
  q = _mm512_fmadd_ps(q, y, _mm512_set1_ps(1.189296461e-03f));
  q = _mm512_fmadd_ps(q, y, _mm512_set1_ps(1.518314633e-02f));
  q = _mm512_fmadd_ps(q, y, _mm512_set1_ps(1.151410956e-01f));
  q = _mm512_fmadd_ps(q, y, _mm512_set1_ps(5.042918677e-01f));
  q = _mm512_fmadd_ps(q, y, _mm512_set1_ps(1.0f));
  const __m512 r = _mm512_mul_ps(z, _mm512_div_ps(p, q));
  // From 3.925 on, exactly +-1 (replacing whatever the fit gives there, NaN from inf / inf included), so
  // GELU(-100) is -0 and GELU(-inf) 0 * -inf = NaN, as the scalar formula gives. A NaN z compares false and
  // stays NaN.
  const __mmask16 saturated = _mm512_cmp_ps_mask(_mm512_abs_ps(z), _mm512_set1_ps(3.925f), _CMP_GE_OQ);
  return _mm512_mask_blend_ps(saturated, r, WithSignOf(_mm512_set1_ps(1.0f), z));
}

inline __m512 Gelu(__m512 x) {
  const __m512 e = ErfForGelu(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's GELU.
inline __m512 GeluTanh(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 inner = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                     _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), Tanh(inner)));
}

}  // namespace coreserve::kernels::avx512
