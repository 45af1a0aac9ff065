// The GEMM kernel families behind Sgemm and QgemmU8S8ToS32, their packed-B layouts and the dispatch records
// that tie each kernel to the layout it reads (as MLAS does). Internal to kernels/, tests and benchmarks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu_features.h"
#include "kernels/gemm/qgemm.h"
#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {

using PackedFormat = SgemmPackedB::Format;

// ---- Packed layouts. Every format is a sequence of 32-column panels; these give the size of one panel and the
// offset of op(B)[l, j] in the packed storage, in elements.
constexpr int64_t kGemmPanel = 32;
inline int64_t PackedPanelElements(PackedFormat format, int64_t k) {
  if (format == PackedFormat::kBf16Pairs32) return (k + 1) / 2 * 64;
  if (format == PackedFormat::kInt8Quad32 || format == PackedFormat::kBf16Quads32) return (k + 3) / 4 * 128;
  if (format == PackedFormat::kInt8Octs32) return (k + 7) / 8 * 256;
  return k * kGemmPanel;
}
inline int64_t PackedOffset(PackedFormat format, int64_t k, int64_t l, int64_t j) {
  const int64_t panel = j / kGemmPanel, jj = j % kGemmPanel;
  switch (format) {
    case PackedFormat::kBf16Pairs32:  // [panel][l / 2][jj][l % 2]
      return panel * PackedPanelElements(format, k) + (l / 2) * 64 + jj * 2 + (l & 1);
    case PackedFormat::kInt8Quad32:  // [panel][l / 4][jj][l % 4]
      return panel * PackedPanelElements(format, k) + (l / 4) * 128 + jj * 4 + (l & 3);
    case PackedFormat::kBf16Quads32:  // [panel][l / 4][jj / 2][jj % 2][l % 4]
      return panel * PackedPanelElements(format, k) + (l / 4) * 128 + (jj / 2) * 8 + (jj & 1) * 4 + (l & 3);
    case PackedFormat::kInt8Octs32:  // [panel][l / 8][jj / 2][jj % 2][l % 8]
      return panel * PackedPanelElements(format, k) + (l / 8) * 256 + (jj / 2) * 16 + (jj & 1) * 8 + (l & 7);
    default:  // [panel][l][jj]
      return (panel * k + l) * kGemmPanel + jj;
  }
}

// The kPanel32 panels an fp32 kernel reads for op(B)[:, n_begin:n_end] (n_begin a multiple of 32): the
// pre-packed weights, with *first_panel = n_begin / 32, or those columns packed here into a buffer of the calling
// thread (valid until its next call), with *first_panel = 0.
const float* Panel32For(const SgemmArgs& p, int64_t n_begin, int64_t n_end, int64_t* first_panel);

// An empty SgemmPackedB of `format` with its storage sized (and zero-filled) for K x N.
std::shared_ptr<SgemmPackedB> AllocPackedB(PackedFormat format, int64_t k, int64_t n);
// Fill columns [col_begin, col_end) (col_begin a multiple of 32, col_end a multiple of 32 or N) of a bf16 or int8
// packed B from fp32 op(B): rounded to bf16, or quantized per column (see sgemm.h).
void PackBf16Columns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                     SgemmPackedB* packed);
void PackInt8Columns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                     SgemmPackedB* packed);
// Integer B (K x N, row-major, u8 or s8) stored exactly in an int8 `format`, zero points folded as qgemm.h
// describes (QgemmPackB in a given format).
std::shared_ptr<SgemmPackedB> PackIntegerB(PackedFormat format, const void* b, int64_t ldb, bool b_is_signed, int64_t k,
                                           int64_t n, const void* b_zero_point, bool per_column_zero_point);

// ---- int8 kernels. One problem description for both entry points: fp32 A quantized per row (Sgemm) or integer
// A with a zero point (QgemmU8S8ToS32); fp32 C through the dequantizing epilogue, or exact int32 C.
struct QgemmProblem {
  int64_t k = 0;
  const float* a_f32 = nullptr;  // quantized dynamically, per row, to u8
  const SgemmQuantizedA* a_quantized = nullptr;  // or quantized so beforehand
  const uint8_t* a_u8 = nullptr;  // or already integer: u8 (a_flip 0) or s8 bytes (a_flip 0x80 makes them u8)
  int64_t lda = 0;
  uint8_t a_flip = 0;
  int32_t a_zero_point = 0;  // of the u8 values, for a_u8
  const SgemmPackedB* packed_b = nullptr;
  float* c_f32 = nullptr;  // fp32 output with alpha, beta, bias and activation, or
  int32_t* c_s32 = nullptr;  // exact int32 output
  int64_t ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* bias = nullptr;
  const float* residual = nullptr;  // fp32 output only; only for kernels whose record has fuses_residual
  int64_t ldr = 0;
  SgemmActivation activation = SgemmActivation::kNone;
};

// Per-row parameters of quantized A, as every int8 kernel derives them:
//   scale = alpha * s_i (fp32 output), zero_point = z_i, row_term = sum_k q_ik - K * z_i (needed only when B has
//   zero points: C = acc - z_i * colsum_j - bzp_j * row_term).
struct QgemmRow {
  float scale;
  int32_t zero_point;
  int32_t row_term;
};
// s_i, its reciprocal, and z_i (as a float holding an integer) of a row whose values span [lo, hi]
// (lo <= 0 <= hi). Rows are quantized by multiplying with 1 / s_i: a division per element cost the quantizer
// more than everything else in it (vdivps is ~5x vmulps on Zen 4), ~5% of an int8 GEMM at K = 768. A span too
// small for a normal s_i (so that 1 / s_i would overflow) is treated as all zeros, like an all-zero row.
inline void RowQuantParams(float lo, float hi, float* scale, float* inverse, float* zero_point) {
  float s = (hi - lo) / 255.0f;
  if (!(s >= std::numeric_limits<float>::min())) s = 1.0f;  // an all-zero (or denormal) row
  const float inv = 1.0f / s;  // 0 when s is infinite (an infinite value in the row)
  float z = std::nearbyint(-lo * inv);
  z = z < 255.0f ? z : 255.0f;
  z = z > 0.0f ? z : 0.0f;
  *scale = s;
  *inverse = inv;
  *zero_point = z;
}
// Quantizes one row of fp32 A (length k) to u8 as sgemm.h specifies; returns s_i and z_i. The scalar definition
// the vector quantizers match bit for bit.
void QuantizeRowU8Reference(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point);
using QuantizeRowFn = void (*)(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point);
// Rows [0, rows) of A at once, as QuantizeRowFn quantizes each.
using QuantizeRowsFn = void (*)(const float* a, int64_t lda, int64_t k, int64_t rows, uint8_t* q, int64_t ldq,
                                float* scale, int32_t* zero_point);

// Row i of A as every int8 kernel reads it, in q (u8 values as T: uint8_t, or int16_t for AVX2's vpmaddwd): fp32 A
// quantized by `quantize` (the kernel's form of QuantizeRowU8Reference), or integer A copied with its flip to
// u8; zero past k up to `padded` (the padding meets zero B). Returns the row's parameters, with the row term
// only when B has zero points (the sums are exact in int32: K <= 65536 values <= 255).
template <typename T, typename Quantize>
QgemmRow PrepareQuantizedRow(const QgemmProblem& p, int64_t i, int64_t padded, bool b_zero_points, T* q,
                             Quantize quantize) {
  const int64_t k = p.k;
  QgemmRow row{p.alpha, p.a_zero_point, 0};
  if (p.a_quantized != nullptr) {
    const uint8_t* src = p.a_quantized->data + i * p.a_quantized->ld;
    std::copy(src, src + k, q);
    row.scale = p.alpha * p.a_quantized->scale[i];
    row.zero_point = p.a_quantized->zero_point[i];
  } else if (p.a_f32 != nullptr) {
    float s;
    quantize(p.a_f32 + i * p.lda, k, q, &s, &row.zero_point);
    row.scale = p.alpha * s;
  } else {
    const uint8_t* src = p.a_u8 + i * p.lda;
    for (int64_t l = 0; l < k; ++l) q[l] = static_cast<T>(src[l] ^ p.a_flip);
  }
  std::fill(q + k, q + padded, T{0});
  if (b_zero_points) {
    int32_t sum = 0;
    for (int64_t l = 0; l < k; ++l) sum += q[l];
    row.row_term = sum - static_cast<int32_t>(k) * row.zero_point;
  }
  return row;
}

using GemmFn = void (*)(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
using QgemmFn = void (*)(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);

void bf16gemm_portable(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
void qgemm_u8s8_portable(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#if defined(__x86_64__)
void bf16gemm_12x32_avx512bf16(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin,
                               int64_t n_end);
// The same GEMM with fp32 FMAs on AVX-512 CPUs without AVX512-BF16 (same layout, same products).
void bf16gemm_12x32_avx512(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
// PackBf16Columns for kBf16Pairs32 and untransposed B, vectorized (conv packs its im2col columns per call); AVX-512
// F/BW only.
void bf16_pack_b_pairs32_avx512(const float* b, int64_t ldb, int64_t k, int64_t col_begin, int64_t col_end,
                                uint16_t* packed);
// The same for transposed B (op(B)[l, j] = b[j * ldb + l]: attention's K^T, Gemm's transB weights).
void bf16_pack_bt_pairs32_avx512(const float* b, int64_t ldb, int64_t k, int64_t col_begin, int64_t col_end,
                                 uint16_t* packed);
// The vector forms of QuantizeRowU8Reference (bit for bit), behind SgemmQuantizeRows.
void QuantizeRowU8Avx512(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point);
// The same for rows [0, rows) of A (lda apart) into q (ldq apart), several rows at once.
void QuantizeRowsU8Avx512(const float* a, int64_t lda, int64_t k, int64_t rows, uint8_t* q, int64_t ldq,
                          float* scale, int32_t* zero_point);
void qgemm_u8s8_avx512vnni(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
void qgemm_u8s8_avx2(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#elif defined(__aarch64__)
void bf16gemm_8x8_bfmmla(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
// The same GEMM with fp32 FMLA on NEON CPUs without BF16 (Graviton2), over kBf16Panel32 widened in the kernel.
void bf16gemm_6x16_neon(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
void QuantizeRowU8Neon(const float* a, int64_t k, uint8_t* q, float* scale, int32_t* zero_point);
void qgemm_u8s8_8x8_usmmla(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
void qgemm_u8s8_6x16_sdot(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#endif

// ---- Dispatch. One record per kernel: the precision it computes, the layout of B it reads and the CPU features
// it needs. Packing picks the first record of the precision the CPU runs and packs in its format; Sgemm runs the
// first record the CPU runs for the packed format, so B and kernel always agree.
struct GemmKernel {
  const char* name;
  GemmPrecision precision;
  PackedFormat format;
  bool (*runs_on)(const CpuFeatures& features);
  GemmFn gemm;    // fp32 and bf16 kernels
  QgemmFn qgemm;  // int8 kernels
  // Whether the kernel adds SgemmArgs::residual in its epilogue; Sgemm folds the residual into C beforehand for
  // the kernels that do not.
  bool fuses_residual = false;
  // Whether the kernel reads indirect A (SgemmArgs::a_rows) itself; Sgemm gathers the rows for the others.
  bool reads_indirect_a = false;
  // int8 kernels: the fastest row quantizer on the kernel's CPUs (null: QuantizeRowU8Reference).
  QuantizeRowFn quantize_row = nullptr;
  // ... and its batched form, when it has one (null: quantize_row row by row).
  QuantizeRowsFn quantize_rows = nullptr;
};
// The kernel of `precision` for `features`; null for fp32 without packing (the portable fp32 path).
const GemmKernel* SelectGemmKernel(GemmPrecision precision, const CpuFeatures& features);
// The kernel that reads `format` on `features`; null when none does.
const GemmKernel* GemmKernelForFormat(PackedFormat format, const CpuFeatures& features);

}  // namespace coreserve::kernels
