// Packing of B for the bf16 and int8 kernels: allocation, bf16 rounding and per-column int8 quantization into the
// layouts of gemm_kernels.h. It runs once per weight matrix, so it is plain scalar code shared by every ISA; the
// layout is the only thing a format changes.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <vector>

#include "kernels/convert/half.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

GemmPrecision PrecisionOf(PackedFormat format) {
  switch (format) {
    case PackedFormat::kPanel32:
      return GemmPrecision::kFp32;
    case PackedFormat::kBf16Pairs32:
    case PackedFormat::kBf16Panel32:
    case PackedFormat::kBf16Quads32:
      return GemmPrecision::kBf16;
    case PackedFormat::kInt8Quad32:
    case PackedFormat::kInt8Panel32:
    case PackedFormat::kInt8Octs32:
      break;
  }
  return GemmPrecision::kInt8;
}

// s8 value of b / scale, rounded to nearest even and clamped to the symmetric range (NaN becomes 0).
int8_t QuantizeWeight(float b, float scale) {
  float q = std::nearbyint(b / scale);
  q = q > 127.0f ? 127.0f : q;
  q = q < -127.0f ? -127.0f : q;
  return q == q ? static_cast<int8_t>(q) : int8_t{0};
}

}  // namespace

// kPanel32 for the fp32 kernels (AVX-512 and AVX2 alike), compiled for the baseline ISA so any of them may call it.
const float* Panel32For(const SgemmArgs& p, int64_t n_begin, int64_t n_end, int64_t* first_panel) {
  if (p.packed_b != nullptr) {
    *first_panel = n_begin / kGemmPanel;
    return p.packed_b->data.data();
  }
  thread_local std::vector<float, Aligned64Allocator<float>> scratch;
  const int64_t n = n_end - n_begin;
  const auto needed = static_cast<std::size_t>((n + kGemmPanel - 1) / kGemmPanel * p.k * kGemmPanel);
  if (scratch.size() < needed) scratch.resize(needed);
  sgemm_pack_b_panel32(p.trans_b ? p.b + n_begin * p.ldb : p.b + n_begin, p.ldb, p.trans_b, p.k, n, scratch.data());
  *first_panel = 0;
  return scratch.data();
}

void sgemm_pack_b_panel32(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n, float* packed) {
  const int64_t panels = (n + kGemmPanel - 1) / kGemmPanel;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = packed + p * k * kGemmPanel;
    const int64_t j0 = p * kGemmPanel, cols = std::min(kGemmPanel, n - j0);
    for (int64_t l = 0; l < k; ++l) {
      float* row = dst + l * kGemmPanel;
      for (int64_t j = 0; j < cols; ++j) row[j] = trans_b ? b[(j0 + j) * ldb + l] : b[l * ldb + j0 + j];
      for (int64_t j = cols; j < kGemmPanel; ++j) row[j] = 0.0f;
    }
  }
}

std::shared_ptr<SgemmPackedB> AllocPackedB(PackedFormat format, int64_t k, int64_t n) {
  auto packed = std::make_shared<SgemmPackedB>();
  packed->format = format;
  packed->precision = PrecisionOf(format);
  packed->k = k;
  packed->n = n;
  const int64_t panels = (n + kGemmPanel - 1) / kGemmPanel;
  const auto elements = static_cast<std::size_t>(panels * PackedPanelElements(format, k));
  // resize() value-initializes: the padding of every layout (K past k, columns past n) is zero from here on,
  // and packing writes only real elements.
  switch (packed->precision) {
    case GemmPrecision::kFp32:
      packed->data.resize(elements);
      break;
    case GemmPrecision::kBf16:
      packed->bf16.resize(elements);
      break;
    case GemmPrecision::kInt8:
      packed->int8.resize(elements);
      packed->col_scale.assign(static_cast<std::size_t>(panels * kGemmPanel), 1.0f);
      packed->col_sum.resize(static_cast<std::size_t>(panels * kGemmPanel));
      break;
  }
  return packed;
}

void PackBf16Columns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                     SgemmPackedB* packed) {
  assert(packed->precision == GemmPrecision::kBf16 && col_begin % kGemmPanel == 0);
  const PackedFormat format = packed->format;
  const int64_t k = packed->k;
  uint16_t* dst = packed->bf16.data();
#if defined(__x86_64__)
  // The format exists only where AVX-512 F/BW does (read natively with AVX512-BF16, else by fp32 FMAs).
  if (format == PackedFormat::kBf16Pairs32) {
    if (trans_b) {
      bf16_pack_bt_pairs32_avx512(b, ldb, k, col_begin, col_end, dst);
    } else {
      bf16_pack_b_pairs32_avx512(b, ldb, k, col_begin, col_end, dst);
    }
    return;
  }
#endif
  // Read op(B) along its rows in memory: K-major for B, N-major for B^T.
  if (trans_b) {
    for (int64_t j = col_begin; j < col_end; ++j) {
      for (int64_t l = 0; l < k; ++l) dst[PackedOffset(format, k, l, j)] = FloatToBfloat16(b[j * ldb + l]);
    }
  } else {
    for (int64_t l = 0; l < k; ++l) {
      for (int64_t j = col_begin; j < col_end; ++j) dst[PackedOffset(format, k, l, j)] = FloatToBfloat16(b[l * ldb + j]);
    }
  }
}

void PackInt8Columns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                     SgemmPackedB* packed) {
  assert(packed->precision == GemmPrecision::kInt8 && col_begin % kGemmPanel == 0);
  const PackedFormat format = packed->format;
  const int64_t k = packed->k, cols = col_end - col_begin;
  auto at = [&](int64_t l, int64_t j) { return trans_b ? b[j * ldb + l] : b[l * ldb + j]; };
  // Two passes over op(B) in its memory order: the per-column max |b|, then the quantized values.
  std::vector<float> max_abs(static_cast<std::size_t>(cols), 0.0f);
  for (int64_t l = 0; l < k; ++l) {
    for (int64_t j = 0; j < cols; ++j) max_abs[j] = std::max(max_abs[j], std::fabs(at(l, col_begin + j)));
  }
  float* scale = packed->col_scale.data() + col_begin;
  int32_t* sum = packed->col_sum.data() + col_begin;
  for (int64_t j = 0; j < cols; ++j) {
    scale[j] = max_abs[j] > 0.0f ? max_abs[j] / 127.0f : 1.0f;  // an all-zero column quantizes to 0 at scale 1
    sum[j] = 0;
  }
  int8_t* dst = packed->int8.data();
  for (int64_t l = 0; l < k; ++l) {
    for (int64_t j = 0; j < cols; ++j) {
      const int8_t q = QuantizeWeight(at(l, col_begin + j), scale[j]);
      dst[PackedOffset(format, k, l, col_begin + j)] = q;
      sum[j] += q;
    }
  }
}

void QuantizeRowU8Reference(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point) {
  // The range always contains 0, so 0 is exactly representable (zero padding and ReLU zeros stay exact).
  float lo = 0.0f, hi = 0.0f;
  for (int64_t l = 0; l < k; ++l) {
    lo = std::min(lo, a[l]);
    hi = std::max(hi, a[l]);
  }
  float s, inv, z;
  RowQuantParams(lo, hi, &s, &inv, &z);
  for (int64_t l = 0; l < k; ++l) {
    float v = std::nearbyint(a[l] * inv) + z;
    v = v > 0.0f ? v : 0.0f;  // also maps NaN to 0, as the vector max does
    v = v < 255.0f ? v : 255.0f;
    q[l] = static_cast<uint8_t>(v);
  }
  *scale = s;
  *zero_point = static_cast<int32_t>(z);
}

}  // namespace coreserve::kernels
