// bf16 "fastmath" GEMM for arm64 CPUs with NEON but without BF16 (Graviton2 = Neoverse N1, Armv8.0 cores, A64FX):
// the result definition of sgemm.h computed with fp32 FMLA, over B packed as kBf16Panel32.
//
// Why not the portable kernel: it is several times slower than sgemm_6x16_neon, so `precision: bf16` would make a
// model slower than fp32 on Graviton2. A product of two bf16 values is exact in fp32 (8-bit significands), so fp32
// FMLA on bf16 operands gives the bf16 products exactly; only the summation order differs from BFMMLA, within the
// usual fp32 bound. A bf16 value is the top half of its fp32 bit pattern, so widening 4 of them is one SHLL #16 of an
// 8-byte load, done here in the micro-kernel: B keeps its half-size packing, which is what makes bf16 faster than
// fp32 when the weights stream from memory (M = 1 reads half the bytes of sgemm_6x16_neon).
//
// Why kBf16Panel32 (K x 32 bf16 rows, the portable kernel's layout) and not kBf16Quads32 or a new format: FMLA by
// element multiplies a vector of consecutive columns of one K row of B by one lane of A, exactly what a kPanel32 row
// is for sgemm_6x16_neon; a kBf16Panel32 row is the same row at half the size. The BFMMLA quads interleave 4 K per
// column instead, which FMLA could only use with horizontal sums. So this is sgemm_6x16_neon's loop with B widened
// on the fly: per 4 K, 6 A loads (4 K of fp32) and 16 B loads of 4 bf16, each widened in its own register by SHLL,
// for 96 FMLA.
// A comes from the driver already rounded exactly as FloatToBfloat16 (denormals kept) and widened back to fp32,
// once per block: widening it here too would cost 6 more SHLL per 96 FMLA and, worse, makes GCC 12 spill a third
// of the accumulators. Registers: 24 accumulators (6 rows x 4 vectors of 4 columns) + 6 A vectors + 1 B vector =
// 31 of 32 (GCC 12 still keeps one accumulator on the stack: one store and one load per 96 FMLA, checked with
// objdump). The 32-column panel is swept in two 16-column halves; a K block's last K % 4 rows of B are added
// afterwards one row at a time (the panel has exactly K rows).
// Pitfall: FMLA keeps denormals only with FPCR.FZ clear (Linux's default); BFMMLA would flush them.
// Baseline armv8-a code: NEON is part of every arm64 CPU. The driver is in bf16gemm_arm64.cc.
#include <arm_neon.h>

#include "kernels/gemm/gemm_arm64.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kMr = 6;

// 4 bf16 values as fp32: each bit pattern shifted into the top half of a 32-bit lane (exact, NaN and denormals too).
inline float32x4_t Widen(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

// One K step (lane L of each row's A vector) on 16 columns at bk. The lane must be a constant: a template.
template <int MR, int L>
inline void Step(float32x4_t (&acc)[MR][4], const float32x4_t (&av)[MR], const uint16_t* bk) {
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const float32x4_t bv = Widen(bk + 4 * c);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][c] = vfmaq_laneq_f32(acc[r][c], bv, av[r], L);
  }
}

// tile[0:MR][0:16] (row stride 32) = A[0:MR, 0:kc & ~3] * B[0:kc & ~3, 16 columns] (b rows 32 bf16 apart): the
// block's whole K quads.
template <int MR>
void Half(int64_t kc, const float* a, int64_t lda, const uint16_t* b, float* tile) {
  float32x4_t acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) acc[r][c] = vdupq_n_f32(0.0f);
  }
  for (int64_t k = 0; k + 4 <= kc; k += 4) {
    float32x4_t av[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) av[r] = vld1q_f32(a + r * lda + k);
    const uint16_t* bk = b + k * kGemmPanel;
    Step<MR, 0>(acc, av, bk);
    Step<MR, 1>(acc, av, bk + kGemmPanel);
    Step<MR, 2>(acc, av, bk + 2 * kGemmPanel);
    Step<MR, 3>(acc, av, bk + 3 * kGemmPanel);
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) vst1q_f32(tile + r * kGemmPanel + 4 * c, acc[r][c]);
  }
}

// tile[0:MR][0:16] += A[0:MR, k0:kc] * B[k0:kc, 16 columns] for the block's last 1 to 3 K, one B row at a time (the
// panel has exactly K rows). Out of line: sharing Half's function makes GCC 12 spill accumulators in its main loop.
template <int MR>
[[gnu::noinline]] void HalfTail(int64_t k0, int64_t kc, const float* a, int64_t lda, const uint16_t* b, float* tile) {
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      float32x4_t acc = vld1q_f32(tile + r * kGemmPanel + 4 * c);
      for (int64_t k = k0; k < kc; ++k) acc = vfmaq_n_f32(acc, Widen(b + k * kGemmPanel + 4 * c), a[r * lda + k]);
      vst1q_f32(tile + r * kGemmPanel + 4 * c, acc);
    }
  }
}

template <int MR>
void Panel(int64_t kc, const float* a, int64_t lda, const uint16_t* b, float* tile) {
  Half<MR>(kc, a, lda, b, tile);
  Half<MR>(kc, a, lda, b + 16, tile + 16);
  if (const int64_t whole = kc & ~int64_t{3}; whole < kc) {
    HalfTail<MR>(whole, kc, a, lda, b, tile);
    HalfTail<MR>(whole, kc, a, lda, b + 16, tile + 16);
  }
}

void Tile(int64_t kc, const float* a, int64_t lda, int64_t rows, const uint16_t* b, float* tile) {
  using Fn = void (*)(int64_t, const float*, int64_t, const uint16_t*, float*);
  static constexpr Fn kPanels[kMr + 1] = {nullptr, Panel<1>, Panel<2>, Panel<3>, Panel<4>, Panel<5>, Panel<6>};
  kPanels[rows](kc, a, lda, b, tile);
}

}  // namespace

void bf16gemm_6x16_neon(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  arm64::Bf16Driver({PackedFormat::kBf16Panel32, kMr, nullptr, Tile}, p, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
