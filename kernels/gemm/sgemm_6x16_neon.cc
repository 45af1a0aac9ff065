// fp32 GEMM for arm64 NEON (every arm64 CPU; Graviton2 runs this): a 6x16 register tile over kPanel32, the layout
// the x86 kernels read, so one packed format serves every fp32 kernel of both architectures.
//
// Why kPanel32 and not a NEON-specific packing: FMLA by element multiplies a whole B vector by one lane of an A
// vector, so B wants a row of consecutive columns (what a panel row is) and A wants a few consecutive K of one row
// (what row-major A already is). A is read in place, one 4-K vector per row (ld1), and each of its 4 lanes feeds
// one K step: per 4 K, 6 A loads + 16 B loads for 96 FMLAs. Registers: 24 accumulators (6 rows x 4 vectors of 4
// columns) + 6 A vectors + B loaded just before use = 31 of the 32 vector registers. A 32-column panel is swept in
// two 16-column halves (the panel row stride is 32 floats either way); K % 4 runs one K step at a time.
// Baseline armv8-a code: NEON is part of every arm64 CPU. The driver is in sgemm_arm64.cc.
#include <arm_neon.h>

#include "kernels/gemm/gemm_arm64.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kMr = 6;

// One K step (lane L of each row's A vector) on 16 columns at bk. The lane must be a constant: a template.
template <int MR, int L>
inline void Step(float32x4_t (&acc)[MR][4], const float32x4_t (&av)[MR], const float* bk) {
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const float32x4_t bv = vld1q_f32(bk + 4 * c);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][c] = vfmaq_laneq_f32(acc[r][c], bv, av[r], L);
  }
}

// tile[0:MR][0:16] (row stride 32) = A[0:MR, 0:kc] * B[0:kc, 16 columns] (b rows 32 floats apart).
template <int MR>
void Half(int64_t kc, const float* a, int64_t lda, const float* b, float* tile) {
  float32x4_t acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) acc[r][c] = vdupq_n_f32(0.0f);
  }
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    float32x4_t av[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) av[r] = vld1q_f32(a + r * lda + k);
    const float* bk = b + k * kGemmPanel;
    Step<MR, 0>(acc, av, bk);
    Step<MR, 1>(acc, av, bk + kGemmPanel);
    Step<MR, 2>(acc, av, bk + 2 * kGemmPanel);
    Step<MR, 3>(acc, av, bk + 3 * kGemmPanel);
  }
  for (; k < kc; ++k) {
    const float* bk = b + k * kGemmPanel;
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const float32x4_t bv = vld1q_f32(bk + 4 * c);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) acc[r][c] = vfmaq_n_f32(acc[r][c], bv, a[r * lda + k]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) vst1q_f32(tile + r * kGemmPanel + 4 * c, acc[r][c]);
  }
}

template <int MR>
void Panel(int64_t kc, const float* a, int64_t lda, const float* b, float* tile) {
  Half<MR>(kc, a, lda, b, tile);
  Half<MR>(kc, a, lda, b + 16, tile + 16);
}

void Tile(int64_t kc, const float* a, int64_t lda, int64_t rows, const float* b, float* tile) {
  using Fn = void (*)(int64_t, const float*, int64_t, const float*, float*);
  static constexpr Fn kPanels[kMr + 1] = {nullptr, Panel<1>, Panel<2>, Panel<3>, Panel<4>, Panel<5>, Panel<6>};
  kPanels[rows](kc, a, lda, b, tile);
}

}  // namespace

void sgemm_6x16_neon(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  arm64::SgemmDriver(Tile, kMr, p, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
