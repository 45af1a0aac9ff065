// Shared pieces of the GEMM tests: random operands, the bf16 and int8 reference semantics written out
// independently of the kernels (from the contract in kernels/gemm/sgemm.h), and column-range packing as the
// runtime does it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/convert/half.h"
#include "kernels/gemm/gemm_kernels.h"

#if defined(__aarch64__)
#include <sys/prctl.h>

#include <initializer_list>
#endif

namespace coreserve::kernels::testing {

inline std::vector<float> RandomFloats(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> RoundedToBf16(std::vector<float> v) {
  for (auto& x : v) x = Bfloat16ToFloat(FloatToBfloat16(x));
  return v;
}

// Activation in double, as sgemm_reference applies it.
inline double ActivateRef(double y, SgemmActivation act) {
  if (act == SgemmActivation::kRelu) return y > 0 ? y : 0;
  if (act == SgemmActivation::kGelu) return 0.5 * y * (1.0 + std::erf(y / std::sqrt(2.0)));
  if (act == SgemmActivation::kGeluTanh) {
    return 0.5 * y * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (y + 0.044715 * y * y * y)));
  }
  return y;
}

// The error an activation adds on top of `sum_err` in its input (slope <= ~1.13 for GELU, plus the vector
// form's own 3e-7 |y|; see kernels/math/f32_math.h), as sgemm_test bounds it.
inline double ActivationSlack(SgemmActivation act, double input_err, double y) {
  const bool gelu = act == SgemmActivation::kGelu || act == SgemmActivation::kGeluTanh;
  return gelu ? 0.2 * input_err + 4e-7 * std::fabs(y) + 2e-7 : 0.0;
}

// int8 weights: per column of op(B) (K x N), s_j = max|b| / 127 (1 for a zero column), q = rne(b / s_j) clamped.
struct QuantizedB {
  std::vector<int32_t> q;  // K x N
  std::vector<float> scale;
  std::vector<int64_t> col_sum;
};
inline QuantizedB QuantizeBRef(const std::vector<float>& opb, int64_t k, int64_t n) {
  QuantizedB r{std::vector<int32_t>(k * n), std::vector<float>(n), std::vector<int64_t>(n)};
  for (int64_t j = 0; j < n; ++j) {
    float m = 0;
    for (int64_t l = 0; l < k; ++l) m = std::max(m, std::fabs(opb[l * n + j]));
    r.scale[j] = m > 0 ? m / 127.0f : 1.0f;
    for (int64_t l = 0; l < k; ++l) {
      const float q = std::clamp(std::nearbyint(opb[l * n + j] / r.scale[j]), -127.0f, 127.0f);
      r.q[l * n + j] = static_cast<int32_t>(q);
      r.col_sum[j] += r.q[l * n + j];
    }
  }
  return r;
}

// int8 activations (sgemm.h): one row, range extended to 0, s = (max - min) / 255 (1 below the smallest normal),
// r = 1 / s, z = clamp(rne(-min * r)), q = clamp(rne(a * r) + z, 0, 255).
struct QuantizedRow {
  std::vector<int32_t> q;
  float scale;
  int32_t zero_point;
};
inline QuantizedRow QuantizeRowRef(const float* a, int64_t k) {
  float lo = 0, hi = 0;
  for (int64_t l = 0; l < k; ++l) {
    lo = std::min(lo, a[l]);
    hi = std::max(hi, a[l]);
  }
  QuantizedRow r{std::vector<int32_t>(k), (hi - lo) / 255.0f, 0};
  if (r.scale < std::numeric_limits<float>::min()) r.scale = 1;
  const float inv = 1.0f / r.scale;
  r.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-lo * inv), 0.0f, 255.0f));
  for (int64_t l = 0; l < k; ++l) {
    r.q[l] = static_cast<int32_t>(std::clamp(std::nearbyint(a[l] * inv) + r.zero_point, 0.0f, 255.0f));
  }
  return r;
}

// op(B) as a dense K x N row-major matrix.
inline std::vector<float> DenseOpB(const std::vector<float>& b, int64_t ldb, bool trans_b, int64_t k, int64_t n) {
  std::vector<float> d(k * n);
  for (int64_t l = 0; l < k; ++l) {
    for (int64_t j = 0; j < n; ++j) d[l * n + j] = trans_b ? b[j * ldb + l] : b[l * ldb + j];
  }
  return d;
}

// B packed in `format` from fp32 op(B), in two column ranges as threads would (the split at a panel boundary).
inline std::shared_ptr<SgemmPackedB> PackInTwo(PackedFormat format, const float* b, int64_t ldb, bool trans_b,
                                               int64_t k, int64_t n) {
  auto packed = AllocPackedB(format, k, n);
  const int64_t mid = (n / 2) / kGemmPanel * kGemmPanel;
  auto fill = packed->precision == GemmPrecision::kBf16 ? PackBf16Columns : PackInt8Columns;
  if (mid > 0) fill(b, ldb, trans_b, 0, mid, packed.get());
  fill(b, ldb, trans_b, mid, n, packed.get());
  return packed;
}

// Runs fn on [0, m) x [0, n) whole, or as four tasks split at m / 2 (any row) and a panel boundary near n / 2.
template <typename Fn>
void RunSplit(bool split, int64_t m, int64_t n, Fn fn) {
  if (!split) {
    fn(0, m, 0, n);
    return;
  }
  const int64_t mm = m / 2, nn = (n / 2) / kGemmPanel * kGemmPanel;
  fn(0, mm, 0, nn);
  fn(mm, m, 0, nn);
  fn(0, mm, nn, n);
  fn(mm, m, nn, n);
}

#if defined(__aarch64__)
// Runs fn(bits) with this thread's SVE vector length set to each of `bits` in turn (PR_SVE_SET_VL), then restores
// the length it had. A CPU that cannot run a length gets the next shorter one it supports (the kernel's rule); each
// resulting length runs once. Without SVE, fn(0) runs once. qemu-user -cpu max supports every multiple of 128 up
// to 2048 and starts at 512; Graviton3 runs 256 (and 128).
template <typename Fn>
void ForEachSveLength(std::initializer_list<int> bits, Fn fn) {
  const int saved = prctl(PR_SVE_GET_VL);
  if (saved < 0) {
    fn(0);
    return;
  }
  std::vector<int> done;
  for (int b : bits) {
    const int got = prctl(PR_SVE_SET_VL, b / 8);
    if (got < 0) continue;
    const int got_bits = (got & PR_SVE_VL_LEN_MASK) * 8;
    if (std::find(done.begin(), done.end(), got_bits) != done.end()) continue;
    done.push_back(got_bits);
    fn(got_bits);
  }
  prctl(PR_SVE_SET_VL, saved & PR_SVE_VL_LEN_MASK);
}
#endif

}  // namespace coreserve::kernels::testing
