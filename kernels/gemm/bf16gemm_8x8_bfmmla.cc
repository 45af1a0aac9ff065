// bf16 "fastmath" GEMM for arm64 BF16 (Graviton3): BFMMLA over B packed as kBf16Quads32, fp32 accumulation.
//
// BFMMLA multiplies a 2x4 bf16 block of A (two rows, 4 consecutive K) by the transpose of a 2x4 block of B (two
// columns, the same 4 K) and adds the 2x2 product to 4 fp32 lanes: 16 multiply-adds per instruction, twice
// BFDOT's. kBf16Quads32 stores each 2x4 B block as one 16-byte vector (column j's 4 K, then column j+1's), in the
// order the kernel walks them; A stays two plain bf16 rows, whose 4-K halves are loaded side by side (two 8-byte
// loads into one vector). Tile: 8 rows x 8 columns = 4 row pairs x 4 column pairs = 16 accumulators, holding
// [r0c0 r0c1 r1c0 r1c1] each; + 4 A + 4 B = 24 of the 32 vector registers. Per K quad: 8 A loads (half vectors)
// and 4 B loads for 16 BFMMLA. The 32-column panel is swept in 4 chunks of 8 columns.
//
// No BFDOT variant: every CPU with BF16 has BFMMLA (both come with FEAT_BF16), and CPUs without BF16 run
// bf16gemm_portable.
// Pitfall: like vdpbf16ps, BFMMLA flushes denormal inputs and outputs to zero (unless FEAT_EBF16 is enabled), so
// values below 2^-126 in A or B contribute 0; the conversion of A (bf16gemm_arm64.cc) itself keeps them.
// Compiled with -march=armv8.2-a+bf16; called only when CpuFeatures::bf16 is set. The driver is in
// bf16gemm_arm64.cc.
#include <arm_neon.h>

#include "kernels/gemm/gemm_arm64.h"

namespace coreserve::kernels {
namespace {

// tile[0:2 PAIRS][0:32] = A[0:2 PAIRS, 0:4 kq] * B[0:4 kq, panel].
template <int PAIRS>
void Panel(int64_t kq, const uint16_t* a, int64_t lda, const uint16_t* b, float* tile) {
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint16_t* bc = b + chunk * 32;  // 4 column pairs x 8 bf16
    float32x4_t acc[PAIRS][4];
#pragma GCC unroll 4
    for (int p = 0; p < PAIRS; ++p) {
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) acc[p][t] = vdupq_n_f32(0.0f);
    }
    for (int64_t q = 0; q < kq; ++q) {
      bfloat16x8_t bv[4];
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) bv[t] = vreinterpretq_bf16_u16(vld1q_u16(bc + q * 128 + t * 8));
#pragma GCC unroll 4
      for (int p = 0; p < PAIRS; ++p) {
        const uint16_t* r0 = a + 2 * p * lda + 4 * q;
        const bfloat16x8_t av = vreinterpretq_bf16_u16(vcombine_u16(vld1_u16(r0), vld1_u16(r0 + lda)));
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) acc[p][t] = vbfmmlaq_f32(acc[p][t], av, bv[t]);
      }
    }
#pragma GCC unroll 4
    for (int p = 0; p < PAIRS; ++p) {
      float* row0 = tile + 2 * p * kGemmPanel + chunk * 8;
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        vst1_f32(row0 + 2 * t, vget_low_f32(acc[p][t]));
        vst1_f32(row0 + kGemmPanel + 2 * t, vget_high_f32(acc[p][t]));
      }
    }
  }
}

// The block's K rounded up to whole quads: A and B are both zero-padded to a multiple of 4.
void Tile(int64_t kc, const uint16_t* a, int64_t lda, int64_t rows, const uint16_t* b, float* tile) {
  using Fn = void (*)(int64_t, const uint16_t*, int64_t, const uint16_t*, float*);
  static constexpr Fn kPanels[5] = {nullptr, Panel<1>, Panel<2>, Panel<3>, Panel<4>};
  kPanels[(rows + 1) / 2]((kc + 3) / 4, a, lda, b, tile);
}

}  // namespace

void bf16gemm_8x8_bfmmla(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  arm64::Bf16Driver({PackedFormat::kBf16Quads32, 8, Tile, nullptr}, p, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
