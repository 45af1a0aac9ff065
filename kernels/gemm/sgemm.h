// GEMM on fp32 activations with pre-packed weights, in three precisions:
//   kFp32  C = act(alpha * A * B + beta * C + bias)
//   kBf16  the same with A and B rounded to bfloat16 (round to nearest even) and fp32 accumulation ("fastmath")
//   kInt8  B quantized at pack time (symmetric s8 per column), each row of A quantized per call (asymmetric u8
//          per row), exact int32 accumulation, then dequantized: see "int8" below
// C = alpha * op(A) * op(B) + beta * C, row-major, op = optional transpose.
//
// sgemm_reference is the scalar definition every optimized fp32 kernel is tested against. Sgemm picks the fastest
// implementation for the active CPU features. B may be pre-packed once (weights) with SgemmPackB; the packed
// form records the layout (Format) it was packed in, and Sgemm runs the kernel that reads that layout, so packed
// weights never meet the wrong kernel. The precision is chosen at pack time only: everything else is unchanged.
//
// int8 (GemmPrecision::kInt8): column j of op(B) is stored as round(b / s_j) in [-127, 127] with
// s_j = max|b_j| / 127 (an all-zero column gets s_j = 1). Each call quantizes its own rows of A, row i as
// q = clamp(round(a * r_i) + z_i, 0, 255) with s_i = (max_i - min_i) / 255 over the row's range extended to 0
// (1 when that is below the smallest normal float), r_i = 1 / s_i rounded to float, and
// z_i = clamp(round(-min_i * r_i), 0, 255) (round = to nearest even), then
//   C[i,j] = act(alpha * s_i * s_j * (sum_k q_ik * qb_kj - z_i * sum_k qb_kj) + beta * C[i,j] + bias[j]).
// The result of a row depends only on that row of A, never on how callers split M or N. K <= 65536.
//
// bf16 and int8 always have a kernel (a portable one at worst), but only the vector kernels are faster than fp32:
// SgemmKernelName(precision) tells which one runs (bf16 needs AVX-512 or arm64 NEON: AVX512-BF16 / arm64 BF16
// natively, else fp32 FMAs on the bf16 operands, which gain where weights stream from memory; int8 AVX512-VNNI,
// AVX2, arm64 I8MM or dotprod). The AVX512-BF16 kernel treats denormal A values as zero (the hardware conversion
// does); the portable and fp32-FMA ones keep them.
//
// Preconditions (asserted by callers): M, N, K >= 0; lda, ldb, ldc at least the row length of the stored matrix;
// C does not overlap A or B. With beta == 0, C is not read (NaN in C does not propagate). Packed B in bf16 or
// int8 needs trans_a == false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace coreserve::kernels {

// Allocates 64-byte aligned storage (one cache line, one zmm register) for packed operands.
template <typename T>
struct Aligned64Allocator {
  using value_type = T;
  Aligned64Allocator() = default;
  template <typename U>
  Aligned64Allocator(const Aligned64Allocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const Aligned64Allocator&) const { return true; }
};

enum class GemmPrecision { kFp32, kBf16, kInt8 };

// op(B) (K x N) rearranged for one kernel family. Every layout is made of panels of 32 columns (zero-padded
// past N), so a column index that is a multiple of SgemmNStep() is always a panel boundary:
//   kPanel32      fp32, each panel K x 32 contiguous   (sgemm_12x32_avx512, sgemm_6x16_avx2, sgemm_6x16_neon,
//                                                       sgemm_8x2vl_sve)
//   kBf16Pairs32  bf16, each panel ceil(K/2) rows of 32 (k, k+1) pairs: the operand vdpbf16ps multiplies,
//                 zero-padded to even K                                        (bf16gemm_12x32_avx512bf16)
//   kBf16Panel32  bf16, each panel K x 32                   (bf16gemm_6x16_neon, bf16gemm_portable)
//   kInt8Quad32   s8, each panel ceil(K/4) rows of 32 groups of 4 consecutive k: the operand vpdpbusd
//                 multiplies, zero-padded to a multiple of 4        (qgemm_u8s8_avx512vnni, qgemm_u8s8_avx2)
//   kInt8Panel32  s8, each panel K x 32                                        (qgemm_u8s8_portable)
//   kBf16Quads32  bf16, each panel ceil(K/4) rows of 16 column pairs, each pair the 4 k of column j then the 4 of
//                 column j+1 (a 2x4 block: the B operand of arm64 BFMMLA), zero-padded to a multiple of 4
//                                                                               (bf16gemm_8x8_bfmmla)
//   kInt8Octs32   s8, the same with 8 consecutive k per column (the 2x8 B operand of arm64 USMMLA), zero-padded
//                 to a multiple of 8                                            (qgemm_u8s8_8x8_usmmla)
// kInt8Quad32 is also the operand of arm64 SDOT by element (16 bytes = 4 columns x 4 k): qgemm_u8s8_6x16_sdot.
// Immutable once made; share it freely between threads. All storage is 64-byte aligned.
struct SgemmPackedB {
  enum class Format { kPanel32, kBf16Pairs32, kBf16Panel32, kInt8Quad32, kInt8Panel32, kBf16Quads32, kInt8Octs32 };
  Format format = Format::kPanel32;
  GemmPrecision precision = GemmPrecision::kFp32;
  int64_t k = 0, n = 0;
  std::vector<float, Aligned64Allocator<float>> data;       // kPanel32
  std::vector<uint16_t, Aligned64Allocator<uint16_t>> bf16;  // bf16 formats (bit patterns)
  std::vector<int8_t, Aligned64Allocator<int8_t>> int8;      // int8 formats
  // int8 formats, one per column rounded up to 32: the dequantization scale s_j (1 for exact integer B),
  // the sum over K of the stored s8 values, and the zero point of B (only for QgemmPackB with a nonzero
  // zero point; empty otherwise).
  std::vector<float, Aligned64Allocator<float>> col_scale;
  std::vector<int32_t, Aligned64Allocator<int32_t>> col_sum;
  std::vector<int32_t, Aligned64Allocator<int32_t>> col_zero_point;
};

// Applied to each element of C after the product is complete:
//   C = act(alpha * A * B + beta * C + bias[j] + residual[i, j]).
// kGelu is the exact (erf) GELU; kGeluTanh its tanh approximation (GPT-2's "gelu_new", ORT's FastGelu).
enum class SgemmActivation { kNone, kRelu, kGelu, kGeluTanh };

// fp32 A already quantized for an int8 GEMM (SgemmQuantizeRows): row i is data + i * ld (K u8 values) with its
// s_i and z_i. A GEMM split into column tiles would otherwise quantize the same rows once per tile.
struct SgemmQuantizedA {
  const uint8_t* data = nullptr;
  int64_t ld = 0;
  const float* scale = nullptr;
  const int32_t* zero_point = nullptr;
};

struct SgemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  // Indirect A, for convolutions without an im2col copy (XNNPACK's "igemm"): when a_rows is set, row i of A is
  // the concatenation of a_taps runs of K / a_taps floats each, run t starting at a_rows[i * a_taps + t] (a
  // padding tap points at zeros); a, lda and trans_a are then unused. A row pointer table, not a copy: the
  // runs are read where they lie, in the input image.
  const float* const* a_rows = nullptr;
  int64_t a_taps = 0;
  // int8 only: A quantized beforehand; a, lda and a_rows are then unused (the rows are those A quantized to).
  const SgemmQuantizedA* a_quantized = nullptr;
  const float* b = nullptr;  // ignored when packed_b is set
  int64_t ldb = 0;
  const SgemmPackedB* packed_b = nullptr;
  float beta = 0.0f;
  float* c = nullptr;
  int64_t ldc = 0;
  // Epilogue, fused so the runtime makes no extra pass over C.
  const float* bias = nullptr;  // N values, added to every row; null for none
  // M x N values (row stride ldr) added before the activation, as a ResNet shortcut is; null for none. Must not
  // overlap C.
  const float* residual = nullptr;
  int64_t ldr = 0;
  SgemmActivation activation = SgemmActivation::kNone;
};

// Computes in double and applies the epilogue in double (GELU with the exact erf).
void sgemm_reference(const SgemmArgs& args);

// Whether the active kernel of `precision` uses packed B at all (false only for fp32 on CPUs without AVX2, which
// run the portable path): callers pack weights only when it does. bf16 and int8 always pack (they always have a portable kernel).
bool SgemmUsesPackedB(GemmPrecision precision = GemmPrecision::kFp32);
// Packs op(B) for the active kernel of `precision` (fp32 B is rounded to bf16 or quantized to s8 here).
// Requires SgemmUsesPackedB(precision).
std::shared_ptr<const SgemmPackedB> SgemmPackB(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n,
                                               GemmPrecision precision = GemmPrecision::kFp32);
// The same in two steps, so callers can pack column ranges on several threads: allocate, then fill columns
// [col_begin, col_end) (multiples of SgemmNStep(), or col_end == n) of op(B), in packed->format.
std::shared_ptr<SgemmPackedB> SgemmAllocPackedB(int64_t k, int64_t n, GemmPrecision precision = GemmPrecision::kFp32);
void SgemmPackBColumns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                       SgemmPackedB* packed);

// Rows [m_begin, m_end) of fp32 A (row i at a + i * lda, K values) quantized exactly as the int8 kernels quantize
// them (see "int8" above): row i to q + i * ldq, its s_i and z_i to scale[i] and zero_point[i]. Quantize once, then
// pass SgemmArgs::a_quantized to every column tile of the product.
void SgemmQuantizeRows(const float* a, int64_t lda, int64_t k, int64_t m_begin, int64_t m_end, uint8_t* q,
                       int64_t ldq, float* scale, int32_t* zero_point);

// Computes C[m_begin:m_end, n_begin:n_end]; callers split M and N across threads. n_begin and n_end must be
// multiples of SgemmNStep() (or n_end == N) so tasks never share a packed panel. With args.packed_b set, the
// kernel is the one that reads packed_b->format (and so the precision is the one B was packed in).
void Sgemm(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
int64_t SgemmNStep();
// Name of the active implementation of `precision`, for logs and metrics: "sgemm_12x32_avx512",
// "sgemm_6x16_avx2", "sgemm_portable", "bf16gemm_12x32_avx512bf16", "bf16gemm_12x32_avx512", "bf16gemm_portable",
// "qgemm_u8s8_avx512vnni", "qgemm_u8s8_avx2", "qgemm_u8s8_portable"; on arm64 "sgemm_8x2vl_sve", "sgemm_6x16_neon",
// "bf16gemm_8x8_bfmmla", "bf16gemm_6x16_neon", "qgemm_u8s8_8x8_usmmla", "qgemm_u8s8_6x16_sdot".
const char* SgemmKernelName(GemmPrecision precision = GemmPrecision::kFp32);

// The fp32 implementations, callable directly by tests: portable (unpacked B only), AVX-512 and AVX2, NEON and SVE
// (all read kPanel32, and pack B themselves when it is not pre-packed).
void sgemm_portable(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
// op(B) (K x n) as kPanel32 panels into `packed` (zero-padded to whole panels).
void sgemm_pack_b_panel32(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n, float* packed);
#if defined(__x86_64__)
void sgemm_12x32_avx512(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
void sgemm_6x16_avx2(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#elif defined(__aarch64__)
void sgemm_6x16_neon(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
void sgemm_8x2vl_sve(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);
#endif

}  // namespace coreserve::kernels
