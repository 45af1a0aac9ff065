// The fp32 GEMM epilogue for the arm64 kernels: C = act(alpha * tile + (accumulate ? C : beta * C) + bias +
// residual) over one row, 4 lanes at a time, with the activations it needs. Exp / Erf / Tanh are the polynomials of
// gemm_epilogue_avx2.h (the same coefficients, clamp and 2^n construction, so the same accuracy: GELU within
// 3e-7 |x|) written with NEON.
//
// Every arm64 micro-kernel (NEON, SVE, BFMMLA, SDOT, USMMLA) leaves its sums in a small tile in L1 and this
// runs on it, so there is one epilogue for all of them and it is compiled for the baseline (armv8-a) only.
// Include only from files compiled without extra -march extensions: an inline function compiled in an SVE or
// I8MM file could be the copy the linker keeps for every caller (a SIGILL on CPUs without the extension).
#pragma once

#include <arm_neon.h>

#include <cstdint>

#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels::neon {

inline float32x4_t Exp(float32x4_t x) {
  // fmax/fmin return NaN when either operand is NaN, so NaN passes through the clamp.
  x = vmaxq_f32(vdupq_n_f32(-86.0f), x);
  x = vminq_f32(vdupq_n_f32(88.7f), x);
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  // n in [-124, 128]: 2^(n-1) is a normal float, and 2 * p * 2^(n-1) overflows only past FLT_MAX.
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(126)), 23);
  return vmulq_f32(vaddq_f32(p, p), vreinterpretq_f32_s32(e));
}

// x's sign onto |r|.
inline float32x4_t CopySign(float32x4_t r, float32x4_t x) {
  return vbslq_f32(vdupq_n_u32(0x80000000u), x, r);
}

inline float32x4_t Erf(float32x4_t x) {
  const float32x4_t ax = vabsq_f32(x);
  const float32x4_t x2 = vmulq_f32(ax, ax);
  float32x4_t s = vdupq_n_f32(-8.5483270e-4f);
  s = vfmaq_f32(vdupq_n_f32(5.2239776e-3f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(-2.6866170e-2f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(1.1283792e-1f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(-3.7612638e-1f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(1.1283792e+0f), s, x2);
  s = vmulq_f32(s, ax);
  const float32x4_t t = vdivq_f32(vdupq_n_f32(1.0f), vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(0.3275911f), ax));
  float32x4_t q = vdupq_n_f32(1.061405429f);
  q = vfmaq_f32(vdupq_n_f32(-1.453152027f), q, t);
  q = vfmaq_f32(vdupq_n_f32(1.421413741f), q, t);
  q = vfmaq_f32(vdupq_n_f32(-0.284496736f), q, t);
  q = vfmaq_f32(vdupq_n_f32(0.254829592f), q, t);
  q = vmulq_f32(q, t);
  const float32x4_t l = vfmsq_f32(vdupq_n_f32(1.0f), q, Exp(vnegq_f32(x2)));
  return CopySign(vbslq_f32(vcltq_f32(ax, vdupq_n_f32(0.5f)), s, l), x);
}

inline float32x4_t Tanh(float32x4_t x) {
  const float32x4_t ax = vabsq_f32(x);
  const float32x4_t e = Exp(vaddq_f32(ax, ax));
  const float32x4_t big = vsubq_f32(vdupq_n_f32(1.0f), vdivq_f32(vdupq_n_f32(2.0f), vaddq_f32(e, vdupq_n_f32(1.0f))));
  const float32x4_t x2 = vmulq_f32(ax, ax);
  float32x4_t s = vdupq_n_f32(2.1869488e-2f);
  s = vfmaq_f32(vdupq_n_f32(-5.3968254e-2f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(1.3333334e-1f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(-3.3333334e-1f), s, x2);
  s = vfmaq_f32(vdupq_n_f32(1.0f), s, x2);
  s = vmulq_f32(s, ax);
  return CopySign(vbslq_f32(vcltq_f32(ax, vdupq_n_f32(0.25f)), s, big), x);
}

inline float32x4_t Activate(float32x4_t y, SgemmActivation act) {
  const float32x4_t half_y = vmulq_f32(vdupq_n_f32(0.5f), y);
  switch (act) {
    case SgemmActivation::kRelu:
      return vmaxq_f32(y, vdupq_n_f32(0.0f));
    case SgemmActivation::kGelu:
      return vmulq_f32(half_y, vaddq_f32(vdupq_n_f32(1.0f), Erf(vmulq_f32(y, vdupq_n_f32(0.70710678118654752f)))));
    case SgemmActivation::kGeluTanh: {
      const float32x4_t y3 = vmulq_f32(vmulq_f32(y, y), y);
      const float32x4_t inner = vmulq_f32(vdupq_n_f32(0.7978845608028654f), vfmaq_f32(y, vdupq_n_f32(0.044715f), y3));
      return vmulq_f32(half_y, vaddq_f32(vdupq_n_f32(1.0f), Tanh(inner)));
    }
    case SgemmActivation::kNone:
      break;
  }
  return y;
}

// What a row of the epilogue needs besides the values.
struct RowEpilogue {
  float alpha = 1.0f, beta = 0.0f;
  bool accumulate = false;      // a later K block: add to C (beta was applied by the first)
  bool last = false;                // the last K block: add bias and residual, apply the activation
  const float* bias = nullptr;      // at this row's first column; null for none
  const float* residual = nullptr;  // likewise
  SgemmActivation act = SgemmActivation::kNone;
};

// The epilogue of K block [k0, k0 + kc) of p's product: beta on the first block, accumulation onto C after it,
// and on the last the bias, residual and activation when `has_epilogue`. Callers point bias and residual at
// each tile.
inline RowEpilogue BlockEpilogue(const SgemmArgs& p, int64_t k0, int64_t kc, bool has_epilogue) {
  RowEpilogue e;
  e.alpha = p.alpha;
  e.beta = p.beta;
  e.accumulate = k0 > 0;
  e.last = k0 + kc == p.k && has_epilogue;
  e.act = p.activation;
  return e;
}

// c[0:cols] from t[0:cols] (t readable up to the next multiple of 4). C is read only when accumulating or when
// beta != 0, so NaN in C does not propagate with beta == 0. The last cols % 4 columns go through a 4-lane buffer
// and the same vector code, so a column's result never depends on where a tile edge falls.
inline void StoreRow(float* c, const float* t, int64_t cols, const RowEpilogue& e) {
  const bool read_c = e.accumulate || e.beta != 0.0f;
  auto lanes = [&](float32x4_t y, float32x4_t cv, float32x4_t bv, float32x4_t rv) {
    y = vmulq_f32(y, vdupq_n_f32(e.alpha));
    if (e.accumulate) {
      y = vaddq_f32(y, cv);
    } else if (e.beta != 0.0f) {
      y = vfmaq_f32(y, vdupq_n_f32(e.beta), cv);
    }
    if (e.last) {
      if (e.bias) y = vaddq_f32(y, bv);
      if (e.residual) y = vaddq_f32(y, rv);
      y = Activate(y, e.act);
    }
    return y;
  };
  const float32x4_t zero = vdupq_n_f32(0.0f);
  int64_t j = 0;
  for (; j + 4 <= cols; j += 4) {
    const float32x4_t cv = read_c ? vld1q_f32(c + j) : zero;
    const float32x4_t bv = e.last && e.bias ? vld1q_f32(e.bias + j) : zero;
    const float32x4_t rv = e.last && e.residual ? vld1q_f32(e.residual + j) : zero;
    vst1q_f32(c + j, lanes(vld1q_f32(t + j), cv, bv, rv));
  }
  if (j == cols) return;
  float cb[4] = {}, bb[4] = {}, rb[4] = {};
  for (int64_t x = j; x < cols; ++x) {
    if (read_c) cb[x - j] = c[x];
    if (e.last && e.bias) bb[x - j] = e.bias[x];
    if (e.last && e.residual) rb[x - j] = e.residual[x];
  }
  vst1q_f32(cb, lanes(vld1q_f32(t + j), vld1q_f32(cb), vld1q_f32(bb), vld1q_f32(rb)));
  for (int64_t x = j; x < cols; ++x) c[x] = cb[x - j];
}

}  // namespace coreserve::kernels::neon
