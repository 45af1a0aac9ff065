// bf16 "fastmath" GEMM for AVX-512 CPUs without AVX512-BF16 (Cascade Lake on Inf1, Ice Lake on c6i): the same
// result definition and packed layout (kBf16Pairs32) as bf16gemm_12x32_avx512bf16, computed with fp32 FMAs.
//
// Why not the portable kernel: it runs at ~20 GFLOP/s, so `precision: bf16` would make a model 5x slower than
// fp32 on exactly the x86 hosts users deploy to. A product of two bf16 values is exact in fp32 (8-bit
// significands), so fp32 FMAs on bf16 operands give the bf16 products exactly; only the accumulation order
// differs from vdpbf16ps, within the usual fp32 bound. Widening a packed (b[k][j], b[k+1][j]) dword to fp32 is
// one shift (k, low half) and one mask (k + 1, high half), so B keeps its half-size packing — which is what
// makes bf16 faster than fp32 when the weights stream from memory (M = 1) — at 4 integer operations per
// 48 FMAs. A is rounded to bf16 (exactly, denormals kept, as the scalar definition) into a thread-local fp32
// block, so the micro-kernel broadcasts it from memory as the fp32 kernel does: 24 accumulators + 4 widened B
// registers + 1 broadcast = 29 of the 32 zmm. Also holds the AVX-512 packer of kBf16Pairs32, which both kernels
// use. Compiled with the AVX-512 F/BW/DQ/VL flags; called only when CpuFeatures::avx512 is set.
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <vector>

#include "kernels/convert/half.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_avx512.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

using avx512::GemmEpilogue;

constexpr int64_t kNr = 32;
// K block (even, so a pair never straddles blocks) and rows of A converted at once: a 96 x 1024 fp32 block is
// 384 KB, a panel's 1024 x 32 bf16 block 64 KB, both L2-resident while the tiles stream them.
constexpr int64_t kKc = 1024;
constexpr int64_t kMc = 96;

// FloatToBfloat16 of 16 floats, in the low half of each 32-bit lane (upper half zero): round to nearest even by
// integer arithmetic, NaN kept quiet. Exact, denormals included (unlike vcvtne2ps2bf16, which flushes them).
__m512i Bf16Bits(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_mask_blend_epi32(nan, rounded, quiet);
}

// acc = A[0:MR, 0:2 kp] * B[0:2 kp, 0:32] with A fp32 (already bf16-valued) rows lda apart and B one panel of kp
// pair rows; then the epilogue as in the fp32 kernel.
template <int MR>
void Kernel(int64_t kp, const float* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc, __mmask16 m0,
            __mmask16 m1, float alpha, float beta, bool accumulate, const GemmEpilogue* last) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  avx512::PrefetchTile(c, ldc, MR, last);
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t q = 0; q < kp; ++q) {
    const __m512i v0 = _mm512_load_si512(b + q * 64), v1 = _mm512_load_si512(b + q * 64 + 32);
    const __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(v0, 16)), o0 = _mm512_castsi512_ps(_mm512_and_si512(v0, high));
    const __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(v1, 16)), o1 = _mm512_castsi512_ps(_mm512_and_si512(v1, high));
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 ae = _mm512_set1_ps(a[r * lda + 2 * q]);
      acc0[r] = _mm512_fmadd_ps(ae, e0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(ae, e1, acc1[r]);
      const __m512 ao = _mm512_set1_ps(a[r * lda + 2 * q + 1]);
      acc0[r] = _mm512_fmadd_ps(ao, o0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(ao, o1, acc1[r]);
    }
  }
  avx512::StoreTile<MR>([&](int r, int h) { return h ? acc1[r] : acc0[r]; }, c, ldc, m0, m1, alpha, beta, accumulate,
                        last);
}

using KernelFn = void (*)(int64_t, const float*, int64_t, const uint16_t*, float*, int64_t, __mmask16, __mmask16,
                          float, float, bool, const GemmEpilogue*);
constexpr KernelFn kKernels[13] = {nullptr,    Kernel<1>,  Kernel<2>, Kernel<3>, Kernel<4>,  Kernel<5>, Kernel<6>,
                                   Kernel<7>,  Kernel<8>,  Kernel<9>, Kernel<10>, Kernel<11>, Kernel<12>};

// rows x kc values of A (lda apart) rounded to bf16 and widened back to fp32, rows `ld` apart (ld even); an odd
// kc gets a zero partner, so the zero-padded last pair of B never meets garbage (0 * NaN).
void RoundA(const float* a, int64_t lda, int64_t rows, int64_t kc, float* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = a + r * lda;
    float* out = dst + r * ld;
    for (int64_t t = 0; t < kc; t += 16) {
      const __mmask16 m = avx512::ColumnMask(kc - t);
      const __m512i bits = _mm512_slli_epi32(Bf16Bits(_mm512_maskz_loadu_ps(m, src + t)), 16);
      _mm512_mask_storeu_ps(out + t, m, _mm512_castsi512_ps(bits));
    }
    if (kc % 2) out[kc] = 0.0f;
  }
}

}  // namespace

void bf16_pack_b_pairs32_avx512(const float* b, int64_t ldb, int64_t k, int64_t col_begin, int64_t col_end,
                                uint16_t* packed) {
  const int64_t panel_elements = PackedPanelElements(PackedFormat::kBf16Pairs32, k);
  for (int64_t j0 = col_begin; j0 < col_end; j0 += kNr) {
    const int64_t cols = std::min(kNr, col_end - j0);
    const __mmask16 m0 = avx512::ColumnMask(cols), m1 = avx512::ColumnMask(cols - 16);
    uint16_t* panel = packed + (j0 / kNr) * panel_elements;
    for (int64_t l = 0; l < k; l += 2) {
      // Rows l and l + 1 (zero past K) of 32 columns become 32 (b[l][j], b[l+1][j]) dwords: row l in the low half.
      const float* r0 = b + l * ldb + j0;
      const float* r1 = r0 + ldb;
      const bool pair = l + 1 < k;
      for (int h = 0; h < 2; ++h) {
        const __mmask16 m = h ? m1 : m0;
        const __m512i lo = Bf16Bits(_mm512_maskz_loadu_ps(m, r0 + 16 * h));
        const __m512i hi = Bf16Bits(_mm512_maskz_loadu_ps(pair ? m : 0, r1 + 16 * h));
        _mm512_store_si512(panel + (l / 2) * 64 + 32 * h, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
  }
}

void bf16_pack_bt_pairs32_avx512(const float* b, int64_t ldb, int64_t k, int64_t col_begin, int64_t col_end,
                                 uint16_t* packed) {
  // op(B)[l, j] = b[j * ldb + l]: the pair (l, l + 1) of column j is two adjacent floats, so one 64-bit gather
  // fetches the pairs of 8 columns, and narrowing each converted lane to its 16 bits lays them out as the 8
  // (low, high) dwords of the packed row. Masked-off columns (past col_end) gather zeros: the panel's padding.
  const int64_t panel_elements = PackedPanelElements(PackedFormat::kBf16Pairs32, k);
  alignas(64) int64_t offsets[8];
  for (int t = 0; t < 8; ++t) offsets[t] = t * ldb * static_cast<int64_t>(sizeof(float));
  const __m512i column_offsets = _mm512_load_si512(offsets);
  for (int64_t j0 = col_begin; j0 < col_end; j0 += kNr) {
    uint16_t* panel = packed + (j0 / kNr) * panel_elements;
    for (int64_t g = 0; g < kNr / 8; ++g) {
      const int64_t valid = std::clamp<int64_t>(col_end - j0 - 8 * g, 0, 8);
      const __mmask8 m = static_cast<__mmask8>((1u << valid) - 1);
      const float* base = b + (j0 + 8 * g) * ldb;
      int64_t l = 0;
      for (; l + 1 < k; l += 2) {
        const __m512i pairs = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), m, column_offsets, base + l, 1);
        const __m256i words = _mm512_cvtepi32_epi16(Bf16Bits(_mm512_castsi512_ps(pairs)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(panel + (l / 2) * 64 + 16 * g), words);
      }
      if (l < k) {  // odd K: the last row pairs with zero
        for (int64_t t = 0; t < 8; ++t) {
          panel[(l / 2) * 64 + 16 * g + 2 * t] = t < valid ? FloatToBfloat16(base[t * ldb + l]) : 0;
          panel[(l / 2) * 64 + 16 * g + 2 * t + 1] = 0;
        }
      }
    }
  }
}

void bf16gemm_12x32_avx512(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (DoneWithoutProducts(p, m_begin, m_end, n_begin, n_end)) return;
  const SgemmPackedB& packed = *p.packed_b;
  assert(packed.format == PackedFormat::kBf16Pairs32 && !p.trans_a && n_begin % kNr == 0);
  const int64_t k = p.k;
  // Even (whole pairs), plus a cache line so rows 4 KB apart (K >= 1024) do not share one L1 set.
  const int64_t ld = (std::min(k, kKc) + 1) / 2 * 2 + 16;
  thread_local std::vector<float, Aligned64Allocator<float>> a_block;
  if (a_block.size() < static_cast<std::size_t>(kMc * ld)) a_block.resize(static_cast<std::size_t>(kMc * ld));
  const int64_t panel_elements = PackedPanelElements(PackedFormat::kBf16Pairs32, k);
  const bool has_epilogue = HasEpilogue(p);
  for (int64_t ib = m_begin; ib < m_end; ib += kMc) {
    const int64_t block_rows = std::min(kMc, m_end - ib);
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = std::min(kKc, k - k0);
      const bool accumulate = k0 > 0;
      const bool last_block = k0 + kc == k;
      RoundA(p.a + ib * p.lda + k0, p.lda, block_rows, kc, a_block.data(), ld);
      for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
        const int64_t cols = std::min(kNr, n_end - j0);
        const uint16_t* panel = packed.bf16.data() + (j0 / kNr) * panel_elements + (k0 / 2) * 64;
        for (int64_t i0 = 0; i0 < block_rows; i0 += 12) {
          const int64_t rows = std::min<int64_t>(12, block_rows - i0);
          GemmEpilogue epilogue{p.bias ? p.bias + j0 : nullptr, p.activation,
                                p.residual ? p.residual + (ib + i0) * p.ldr + j0 : nullptr, p.ldr};
          kKernels[rows]((kc + 1) / 2, a_block.data() + i0 * ld, ld, panel, p.c + (ib + i0) * p.ldc + j0, p.ldc,
                         avx512::ColumnMask(cols), avx512::ColumnMask(cols - 16), p.alpha, p.beta, accumulate,
                         last_block && has_epilogue ? &epilogue : nullptr);
        }
      }
    }
  }
}

}  // namespace coreserve::kernels
