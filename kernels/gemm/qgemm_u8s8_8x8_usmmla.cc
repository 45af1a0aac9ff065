// int8 GEMM for arm64 I8MM (Graviton3): USMMLA over B packed as kInt8Octs32, exact int32 sums of u8 A x s8 B; the
// driver (qgemm_u8s8_arm64.cc) does the rest.
//
// USMMLA multiplies a 2x8 block of u8 A (two rows, 8 consecutive K) by the transpose of a 2x8 block of s8 B (two
// columns, the same 8 K) and adds the 2x2 int32 product to 4 lanes: 32 multiply-adds per instruction, twice SDOT's,
// and u8 x s8 directly (no flip and correction). kInt8Octs32 stores each 2x8 B block as one 16-byte vector (column
// j's 8 K, then column j+1's) in the order the kernel walks them; A stays two plain u8 rows whose 8-K halves are
// loaded side by side. Tile: 8 rows x 8 columns = 4 row pairs x 4 column pairs = 16 accumulators, each
// [r0c0 r0c1 r1c0 r1c1]; + 4 A + 4 B = 24 of the 32 vector registers. Per 8 K: 8 half-vector A loads and 4 B loads
// for 16 USMMLA. The 32-column panel is swept in 4 chunks of 8 columns. Products and sums are exact: |sum| <=
// K * 255 * 128 < 2^31 for K <= 65536.
// Compiled with -march=armv8.2-a+i8mm; called only when CpuFeatures::i8mm is set.
#include <arm_neon.h>

#include "kernels/gemm/gemm_arm64.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kOctRow = 8 * kGemmPanel;  // bytes of one K oct of a panel

// tile[0:2 PAIRS][0:32] = A[0:2 PAIRS, 0:8 ko] * B[0:8 ko, panel].
template <int PAIRS>
void Panel(int64_t ko, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* tile) {
  for (int chunk = 0; chunk < 4; ++chunk) {
    const int8_t* bc = b + chunk * 64;  // 4 column pairs x 16 bytes
    int32x4_t acc[PAIRS][4];
#pragma GCC unroll 4
    for (int p = 0; p < PAIRS; ++p) {
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) acc[p][t] = vdupq_n_s32(0);
    }
    for (int64_t o = 0; o < ko; ++o) {
      int8x16_t bv[4];
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) bv[t] = vld1q_s8(bc + o * kOctRow + 16 * t);
#pragma GCC unroll 4
      for (int p = 0; p < PAIRS; ++p) {
        const uint8_t* r0 = a + 2 * p * lda + 8 * o;
        const uint8x16_t av = vcombine_u8(vld1_u8(r0), vld1_u8(r0 + lda));
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) acc[p][t] = vusmmlaq_s32(acc[p][t], av, bv[t]);
      }
    }
#pragma GCC unroll 4
    for (int p = 0; p < PAIRS; ++p) {
      int32_t* row0 = tile + 2 * p * kGemmPanel + chunk * 8;
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        vst1_s32(row0 + 2 * t, vget_low_s32(acc[p][t]));
        vst1_s32(row0 + kGemmPanel + 2 * t, vget_high_s32(acc[p][t]));
      }
    }
  }
}

void Tile(int64_t k, const uint8_t* a, int64_t lda, int64_t rows, const int8_t* b, int32_t* tile) {
  using Fn = void (*)(int64_t, const uint8_t*, int64_t, const int8_t*, int32_t*);
  static constexpr Fn kPanels[5] = {nullptr, Panel<1>, Panel<2>, Panel<3>, Panel<4>};
  kPanels[(rows + 1) / 2]((k + 7) / 8, a, lda, b, tile);
}

constexpr arm64::QgemmTileKernel kKernel{PackedFormat::kInt8Octs32, 8, 0, Tile};

}  // namespace

void qgemm_u8s8_8x8_usmmla(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  arm64::QgemmDriver(kKernel, p, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
