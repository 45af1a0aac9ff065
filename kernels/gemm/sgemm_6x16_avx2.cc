// fp32 GEMM for AVX2 + FMA (CPUs without AVX-512): a 6x16 register tile over B packed as kPanel32, the AVX-512
// kernel's layout, so packing is the same whichever of the two runs.
//
// Per k step the tile loads 16 columns of a panel row (2 ymm) and, for each of 6 rows, broadcasts one A element
// into two FMAs: 12 accumulators + 2 B + 1 broadcast = 15 of the 16 ymm registers. A 32-column panel is swept in
// two 16-column halves; the panel row stride is 32 floats either way. K is blocked (kKc) so a panel's block of B
// (kKc x 32 floats, 64 KB) stays in L2 while the strips of A stream past it; A is read in place, 6 sequential
// streams. The accumulators go through a small tile in L1 to the epilogue, so the register allocation of the K
// loop never competes with the epilogue's (with 16 registers GCC 12 would otherwise spill in the loop).
// Compiled with the AVX2 flags; called only when CpuFeatures::avx2_fma is set.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_avx2.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kNr = 32;  // panel width of kPanel32
constexpr int64_t kMr = 6;
constexpr int64_t kKc = 512;

// tile[0:MR][0:16] = A[0:MR, 0:kc] * B[0:kc, 16 columns] (b: the half panel, rows kNr floats apart). The row
// loops are unrolled by pragma so GCC 12 keeps the accumulator arrays in registers (see
// qgemm_u8s8_avx512vnni.cc).
template <int MR>
void Accumulate(int64_t kc, const float* a, int64_t lda, const float* b, float* tile) {
  __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b + k * kNr);
    const __m256 b1 = _mm256_load_ps(b + k * kNr + 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + k);
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    _mm256_store_ps(tile + 16 * r, acc0[r]);
    _mm256_store_ps(tile + 16 * r + 8, acc1[r]);
  }
}

using AccumulateFn = void (*)(int64_t, const float*, int64_t, const float*, float*);
constexpr AccumulateFn kAccumulate[kMr + 1] = {nullptr,       Accumulate<1>, Accumulate<2>, Accumulate<3>,
                                               Accumulate<4>, Accumulate<5>, Accumulate<6>};

}  // namespace

void sgemm_6x16_avx2(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (DoneWithoutProducts(p, m_begin, m_end, n_begin, n_end)) return;
  const int64_t k = p.k;
  int64_t first_panel = 0;
  const float* panels = Panel32For(p, n_begin, n_end, &first_panel);
  const bool has_epilogue = HasEpilogue(p);
  alignas(32) float tile[kMr * 16];
  for (int64_t k0 = 0; k0 < k; k0 += kKc) {
    const int64_t kc = std::min(kKc, k - k0);
    const bool accumulate = k0 > 0;
    const bool last = k0 + kc == k && has_epilogue;
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kNr) {
      const float* panel = panels + ((j0 - n_begin) / kNr + first_panel) * k * kNr + k0 * kNr;
      for (int64_t h = 0; h < 2 && j0 + 16 * h < n_end; ++h) {
        const int64_t jh = j0 + 16 * h, cols = std::min<int64_t>(16, n_end - jh);
        const __m256i mask0 = avx2::LaneMask(cols), mask1 = avx2::LaneMask(cols - 8);
        for (int64_t i0 = m_begin; i0 < m_end; i0 += kMr) {
          const int64_t rows = std::min(kMr, m_end - i0);
          kAccumulate[rows](kc, p.a + i0 * p.lda + k0, p.lda, panel + 16 * h, tile);
          const __m256 alpha = _mm256_set1_ps(p.alpha);
          for (int64_t r = 0; r < rows; ++r) {
            float* row = p.c + (i0 + r) * p.ldc + jh;
            const float* bias = p.bias ? p.bias + jh : nullptr;
            const float* residual = p.residual ? p.residual + (i0 + r) * p.ldr + jh : nullptr;
            avx2::StoreRow8(row, _mm256_mul_ps(_mm256_load_ps(tile + 16 * r), alpha), mask0, p.beta, accumulate, bias,
                            p.activation, last, residual);
            if (cols > 8) {
              avx2::StoreRow8(row + 8, _mm256_mul_ps(_mm256_load_ps(tile + 16 * r + 8), alpha), mask1, p.beta,
                              accumulate, bias ? bias + 8 : nullptr, p.activation, last,
                              residual ? residual + 8 : nullptr);
            }
          }
        }
      }
    }
  }
}

}  // namespace coreserve::kernels
