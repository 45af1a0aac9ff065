// bf16 "fastmath" GEMM for AVX512-BF16: C = act(alpha * bf16(A) bf16(B) + beta * C + bias), fp32 accumulation.
//
// vdpbf16ps multiplies 16 pairs of bf16 and adds both products to 16 fp32 lanes, so B is packed (once, at load)
// as kBf16Pairs32: per 32-column panel, for each pair of K rows (k, k+1), the 32 (b[k][j], b[k+1][j]) pairs,
// i.e. two zmm per K pair. A is fp32 and is converted on the fly, a block of kMc rows x kKc K values at a time,
// into a thread-local row-major bf16 buffer (vcvtne2ps2bf16, 32 values per instruction); a K pair of one row is
// then one dword that vpbroadcastd replicates across the register. The micro-kernel is the fp32 kernel's 12x32
// tile with twice the work per instruction: per K pair 2 loads of B, 12 broadcasts of A and 24 vdpbf16ps into
// 24 accumulators (27 of the 32 zmm).
//
// Rounding pitfall: vcvtne2ps2bf16 rounds to nearest even like FloatToBfloat16, but (like vdpbf16ps itself) it
// treats denormal inputs as zero and flushes denormal outputs, where the scalar conversion keeps them. Values
// below 2^-126 in A therefore contribute 0 here; B is rounded by the scalar code at pack time.
// Compiled with the AVX-512 flags and -mavx512bf16; called only when CpuFeatures::avx512_bf16 is set.
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_avx512.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

using avx512::GemmEpilogue;

constexpr int64_t kNr = 32;
// K block: even, so a (k, k+1) pair never straddles two blocks. A kMc x kKc block of converted A is 192 KB and a
// panel's kKc x 32 block of B 64 KB: both stay in the 1-2 MB L2 while the micro-kernels stream them.
constexpr int64_t kKc = 1024;
constexpr int64_t kMc = 96;

// acc = A[0:MR, 0:2 kp] * B[0:2 kp, NP panels] (a: MR bf16 rows lda apart; b: NP panels b_stride apart, each kp
// pair rows of 64 bf16), then the epilogue as in the fp32 kernel; m0, m1 mask the last panel's columns. The row
// loops are unrolled by pragma so GCC 12 keeps the accumulator arrays in registers (see
// qgemm_u8s8_avx512vnni.cc). NP > 1 serves strips of few rows (M = 1 is the latency case): one row and one
// panel would leave 2 accumulation chains, too few to cover vdpbf16ps latency, and one B stream.
template <int MR, int NP>
void Kernel(int64_t kp, const uint16_t* a, int64_t lda, const uint16_t* b, int64_t b_stride, float* c, int64_t ldc,
            __mmask16 m0, __mmask16 m1, float alpha, float beta, bool accumulate, const GemmEpilogue* last) {
  __m512 acc[MR][2 * NP];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < kp; ++q) {
    __m512bh bv[2 * NP];
#pragma GCC unroll 8
    for (int t = 0; t < 2 * NP; ++t) bv[t] = (__m512bh)_mm512_load_si512(b + (t / 2) * b_stride + q * 64 + (t % 2) * 32);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * q, sizeof pair);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 8
      for (int t = 0; t < 2 * NP; ++t) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], av, bv[t]);
    }
  }
#pragma GCC unroll 4
  for (int pn = 0; pn < NP; ++pn) {
    const __mmask16 p0 = pn == NP - 1 ? m0 : 0xffff, p1 = pn == NP - 1 ? m1 : 0xffff;
    const GemmEpilogue panel_last = last ? last->Shifted(32 * pn) : GemmEpilogue{};
    avx512::StoreTile<MR>([&](int r, int h) { return acc[r][2 * pn + h]; }, c + 32 * pn, ldc, p0, p1, alpha, beta,
                          accumulate, last ? &panel_last : nullptr);
  }
}

using KernelFn = void (*)(int64_t, const uint16_t*, int64_t, const uint16_t*, int64_t, float*, int64_t, __mmask16,
                          __mmask16, float, float, bool, const GemmEpilogue*);
// One panel, by rows.
constexpr KernelFn kKernels[13] = {nullptr,       Kernel<1, 1>,  Kernel<2, 1>,  Kernel<3, 1>, Kernel<4, 1>,
                                   Kernel<5, 1>,  Kernel<6, 1>,  Kernel<7, 1>,  Kernel<8, 1>, Kernel<9, 1>,
                                   Kernel<10, 1>, Kernel<11, 1>, Kernel<12, 1>};
// Strips of up to 4 rows take kWide panels at once: 1-2 rows x 4 panels or 3-4 rows x 2 panels (at most 16
// accumulators + 8 B registers).
constexpr int kWideRows = 4;
constexpr int64_t kWidePanels[kWideRows + 1] = {0, 4, 4, 2, 2};
constexpr KernelFn kWide[kWideRows + 1] = {nullptr, Kernel<1, 4>, Kernel<2, 4>, Kernel<3, 2>, Kernel<4, 2>};

// rows x kc fp32 values of A (lda apart) to bf16 rows `ld` apart (ld a multiple of 32). The tail of each row up
// to the next multiple of 32 is zero: masked loads read nothing past kc, and an odd kc gets a zero partner.
void ConvertA(const float* a, int64_t lda, int64_t rows, int64_t kc, uint16_t* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = a + r * lda;
    uint16_t* out = dst + r * ld;
    for (int64_t t = 0; t < kc; t += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(avx512::ColumnMask(kc - t), src + t);
      const __m512 hi = _mm512_maskz_loadu_ps(avx512::ColumnMask(kc - t - 16), src + t + 16);
      _mm512_store_si512(out + t, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

}  // namespace

void bf16gemm_12x32_avx512bf16(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
                               int64_t n_end) {
  if (DoneWithoutProducts(p, m_begin, m_end, n_begin, n_end)) return;
  const SgemmPackedB& packed = *p.packed_b;
  assert(packed.format == PackedFormat::kBf16Pairs32 && !p.trans_a && n_begin % kNr == 0);
  const int64_t k = p.k;
  // Rows padded by one cache line past a multiple of 32: at K >= 1024 a 2 KB stride would put the 12 broadcast
  // rows of a tile in two L1 sets.
  const int64_t ld = (std::min(k, kKc) + 31) / 32 * 32 + 32;
  thread_local std::vector<uint16_t, Aligned64Allocator<uint16_t>> a_block;
  if (a_block.size() < static_cast<std::size_t>(kMc * ld)) a_block.resize(static_cast<std::size_t>(kMc * ld));
  const int64_t panel_elements = PackedPanelElements(PackedFormat::kBf16Pairs32, k);
  const bool has_epilogue = HasEpilogue(p);
  for (int64_t ib = m_begin; ib < m_end; ib += kMc) {
    const int64_t block_rows = std::min(kMc, m_end - ib);
    for (int64_t k0 = 0; k0 < k; k0 += kKc) {
      const int64_t kc = std::min(kKc, k - k0);
      const bool accumulate = k0 > 0;
      const bool last_block = k0 + kc == k;
      ConvertA(p.a + ib * p.lda + k0, p.lda, block_rows, kc, a_block.data(), ld);
      const int64_t kp = (kc + 1) / 2, k_offset = (k0 / 2) * 64;
      // Groups of 4 panels (128 columns: 256 KB of B at kKc, L2-resident) are swept by every strip of the block.
      for (int64_t g0 = n_begin; g0 < n_end; g0 += 4 * kNr) {
        const int64_t g1 = std::min(n_end, g0 + 4 * kNr);
        for (int64_t i0 = 0; i0 < block_rows; i0 += 12) {
          const int64_t rows = std::min<int64_t>(12, block_rows - i0);
          const uint16_t* a = a_block.data() + i0 * ld;
          float* c = p.c + (ib + i0) * p.ldc;
          auto run = [&](KernelFn kernel, int64_t j0, int64_t j1) {
            const int64_t cols = j1 - j0 - (j1 - j0 - 1) / kNr * kNr;  // columns of the last panel
            GemmEpilogue epilogue{p.bias ? p.bias + j0 : nullptr, p.activation,
                                  p.residual ? p.residual + (ib + i0) * p.ldr + j0 : nullptr, p.ldr};
            kernel(kp, a, ld, packed.bf16.data() + (j0 / kNr) * panel_elements + k_offset, panel_elements, c + j0,
                   p.ldc, avx512::ColumnMask(cols), avx512::ColumnMask(cols - 16), p.alpha, p.beta, accumulate,
                   last_block && has_epilogue ? &epilogue : nullptr);
          };
          int64_t j0 = g0;
          if (rows <= kWideRows) {
            for (const int64_t wide = kWidePanels[rows] * kNr; j0 + wide <= g1; j0 += wide) run(kWide[rows], j0, j0 + wide);
          }
          for (; j0 < g1; j0 += kNr) run(kKernels[rows], j0, std::min(g1, j0 + kNr));
        }
      }
    }
  }
}

}  // namespace coreserve::kernels
