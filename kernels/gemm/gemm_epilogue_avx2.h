// The fp32 GEMM epilogue for AVX2 kernels: C = act(y + (accumulate ? C : beta * C) + bias) on 8 lanes with
// vpmaskmov loads and stores at the right edge of C, and the activations it needs. kernels/math has no AVX2 math,
// so Exp / Erf / Tanh here are the AVX-512 polynomials of kernels/math/f32_math_avx512.h on 8 lanes (same
// coefficients, so the same accuracy: GELU within 3e-7 |x|). One difference: without vscalefps, 2^n is built in
// the exponent field, so Exp clamps its argument to [-86, 88.7] and splits 2^n = 2 * 2^(n-1) to stay finite up
// to FLT_MAX; below -86 it returns ~4e-38 instead of a denormal or 0, which no GELU output can see.
// Include only from files compiled with the AVX2 flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels::avx2 {

inline __m256 Abs(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

// x's sign bit onto r (|r| expected).
inline __m256 CopySign(__m256 r, __m256 x) {
  return _mm256_or_ps(r, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
}

inline __m256 Exp(__m256 x) {
  // max/min return their second operand when either is NaN, so NaN passes through the clamp.
  x = _mm256_max_ps(_mm256_set1_ps(-86.0f), x);
  x = _mm256_min_ps(_mm256_set1_ps(88.7f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n in [-124, 128]: 2^(n-1) is a normal float, and 2 * p * 2^(n-1) overflows only past FLT_MAX.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126)), 23);
  return _mm256_mul_ps(_mm256_add_ps(p, p), _mm256_castsi256_ps(e));
}

inline __m256 Erf(__m256 x) {
  const __m256 ax = Abs(x);
  const __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 s = _mm256_set1_ps(-8.5483270e-4f);
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(5.2239776e-3f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-2.6866170e-2f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.1283792e-1f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-3.7612638e-1f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.1283792e+0f));
  s = _mm256_mul_ps(s, ax);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, _mm256_set1_ps(1.0f)));
  __m256 q = _mm256_set1_ps(1.061405429f);
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-1.453152027f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(1.421413741f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.284496736f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.254829592f));
  q = _mm256_mul_ps(q, t);
  const __m256 l = _mm256_fnmadd_ps(q, Exp(_mm256_sub_ps(_mm256_setzero_ps(), x2)), _mm256_set1_ps(1.0f));
  const __m256 small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.5f), _CMP_LT_OQ);
  return CopySign(_mm256_blendv_ps(l, s, small), x);
}

inline __m256 Tanh(__m256 x) {
  const __m256 ax = Abs(x);
  const __m256 e = Exp(_mm256_add_ps(ax, ax));
  const __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                   _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  const __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 s = _mm256_set1_ps(2.1869488e-2f);
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-5.3968254e-2f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.3333334e-1f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(-3.3333334e-1f));
  s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(1.0f));
  s = _mm256_mul_ps(s, ax);
  const __m256 small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.25f), _CMP_LT_OQ);
  return CopySign(_mm256_blendv_ps(big, s, small), x);
}

inline __m256 Activate(__m256 y, SgemmActivation act) {
  const __m256 half_y = _mm256_mul_ps(_mm256_set1_ps(0.5f), y);
  switch (act) {
    case SgemmActivation::kRelu:
      return _mm256_max_ps(y, _mm256_setzero_ps());
    case SgemmActivation::kGelu:
      return _mm256_mul_ps(half_y, _mm256_add_ps(_mm256_set1_ps(1.0f), Erf(_mm256_mul_ps(y, _mm256_set1_ps(0.70710678118654752f)))));
    case SgemmActivation::kGeluTanh: {
      const __m256 y3 = _mm256_mul_ps(_mm256_mul_ps(y, y), y);
      const __m256 inner = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), y3, y));
      return _mm256_mul_ps(half_y, _mm256_add_ps(_mm256_set1_ps(1.0f), Tanh(inner)));
    }
    case SgemmActivation::kNone:
      break;
  }
  return y;
}

// Lanes [0, cols) of an 8-lane vpmaskmov mask.
inline __m256i LaneMask(int64_t cols) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols < 0 ? 0 : cols > 8 ? 8 : cols)), index);
}

// Stores 8 columns of a row: y = alpha * (this K block's product); bias and residual (already at these columns)
// and the activation only when `last` (the last K block with an epilogue).
inline void StoreRow8(float* row, __m256 y, __m256i mask, float beta, bool accumulate, const float* bias,
                      SgemmActivation act, bool last, const float* residual = nullptr) {
  if (accumulate) {
    y = _mm256_add_ps(y, _mm256_maskload_ps(row, mask));
  } else if (beta != 0.0f) {
    y = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(row, mask), y);
  }
  if (last) {
    if (bias) y = _mm256_add_ps(y, _mm256_maskload_ps(bias, mask));
    if (residual) y = _mm256_add_ps(y, _mm256_maskload_ps(residual, mask));
    y = Activate(y, act);
  }
  _mm256_maskstore_ps(row, mask, y);
}

}  // namespace coreserve::kernels::avx2
