// int8 GEMM for arm64 dotprod (Graviton2): SDOT by element over B packed as kInt8Quad32 (the layout the x86 VNNI
// kernel reads), exact int32 sums; the driver (qgemm_u8s8_arm64.cc) does the rest.
//
// SDOT multiplies 4 consecutive s8 of B (one column's K quad) with 4 s8 of A and adds them to one int32 lane, for 4
// columns at once; 16 bytes of a kInt8Quad32 row are exactly 4 columns x 4 K, and the "by element" form takes A's
// K quad from one 32-bit lane of a vector that holds 4 quads (16 K) of one row. There is no u8 x s8 dot product
// before I8MM (USDOT), so A's u8 values are flipped to s8 (a ^ 0x80 = a - 128) on load and the kernel returns
// sum (a - 128) * b; the driver adds 128 * colsum_j (kept in the packed B for the zero-point correction anyway),
// exactly, in wrapping int32.
// Tile: 6 rows x 16 columns = 24 accumulators + 6 A vectors + B loaded just before use (31 of 32 registers); per
// 16 K: 6 A loads + 16 B loads for 96 SDOTs. The 32-column panel is swept in two halves; K % 16 one quad at a time.
// Compiled with -march=armv8.2-a+dotprod; called only when CpuFeatures::dotprod is set.
#include <arm_neon.h>

#include <cstring>

#include "kernels/gemm/gemm_arm64.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kMr = 6;
constexpr int64_t kQuadRow = 4 * kGemmPanel;  // bytes of one K quad of a panel

// K quad L of each row's A vector against 16 columns of the quad row at bq. The lane must be a constant.
template <int MR, int L>
inline void Step(int32x4_t (&acc)[MR][4], const int8x16_t (&av)[MR], const int8_t* bq) {
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const int8x16_t bv = vld1q_s8(bq + 16 * c);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][c] = vdotq_laneq_s32(acc[r][c], bv, av[r], L);
  }
}

// tile[0:MR][0:16] (rows 32 apart) for the 16 columns whose quads start at b in each quad row.
template <int MR>
void Half(int64_t kq, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* tile) {
  int32x4_t acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) acc[r][c] = vdupq_n_s32(0);
  }
  const uint8x16_t flip = vdupq_n_u8(0x80);
  int64_t q = 0;
  for (; q + 4 <= kq; q += 4) {
    int8x16_t av[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) av[r] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a + r * lda + 4 * q), flip));
    const int8_t* bq = b + q * kQuadRow;
    Step<MR, 0>(acc, av, bq);
    Step<MR, 1>(acc, av, bq + kQuadRow);
    Step<MR, 2>(acc, av, bq + 2 * kQuadRow);
    Step<MR, 3>(acc, av, bq + 3 * kQuadRow);
  }
  for (; q < kq; ++q) {
    int8x16_t av[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      uint32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
      av[r] = vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_u32(vdupq_n_u32(quad)), flip));
    }
    Step<MR, 0>(acc, av, b + q * kQuadRow);
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) vst1q_s32(tile + r * kGemmPanel + 4 * c, acc[r][c]);
  }
}

template <int MR>
void Panel(int64_t kq, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* tile) {
  Half<MR>(kq, a, lda, b, tile);
  Half<MR>(kq, a, lda, b + 64, tile + 16);
}

void Tile(int64_t k, const uint8_t* a, int64_t lda, int64_t rows, const int8_t* b, int32_t* tile) {
  using Fn = void (*)(int64_t, const uint8_t*, int64_t, const int8_t*, int32_t*);
  static constexpr Fn kPanels[kMr + 1] = {nullptr, Panel<1>, Panel<2>, Panel<3>, Panel<4>, Panel<5>, Panel<6>};
  kPanels[rows]((k + 3) / 4, a, lda, b, tile);
}

constexpr arm64::QgemmTileKernel kKernel{PackedFormat::kInt8Quad32, kMr, 128, Tile};

}  // namespace

void qgemm_u8s8_6x16_sdot(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  arm64::QgemmDriver(kKernel, p, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
