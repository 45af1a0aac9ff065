// fp32 GEMM for SVE (Graviton3: 256-bit vectors): an 8-row x 2-vector register tile over kPanel32, vector-length
// agnostic.
//
// The vector length is read at run time (svcntw) and the 32 columns of a panel are covered in chunks of 2 vectors
// under whilelt predicates: at 256 bits 2 chunks of 16 columns, at 128 bits 4 of 8, at 512 bits 1 chunk of 32, and
// at longer or non-power-of-two lengths the predicates switch off the lanes past the panel, so no length reads or
// writes outside it. Per chunk and 4 K: each row's 4 K values are loaded once replicated into every 128-bit segment
// (ld1rqw) and FMLA by indexed element takes one lane per K step: 8 A loads + 8 B loads for 64 FMLAs; registers:
// 16 accumulators + 8 A + 2 B of the 32 z registers. SVE vector types are sizeless (no arrays of them), so the 8
// rows are spelled out by the ROWS macro. Strips of fewer than 8 rows repeat their last row in the spare
// accumulators (one code path for every strip); the driver uses only the tile's first `rows` rows. K % 4 runs one
// K step at a time.
// Compiled with -march=armv8.2-a+sve; called only when CpuFeatures::sve is set. The driver is in sgemm_arm64.cc.
#include <arm_sve.h>

#include "kernels/gemm/gemm_arm64.h"

namespace coreserve::kernels {
namespace {

constexpr int64_t kMr = 8;

#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

void Tile(int64_t kc, const float* a, int64_t lda, int64_t rows, const float* b, float* tile) {
  // Rows past `rows` read the last real row again (valid memory; their results are never used).
#define ROW_PTR(r) const float* a##r = a + (r < rows ? r : rows - 1) * lda;
  ROWS(ROW_PTR)
#undef ROW_PTR
  const int64_t vl = static_cast<int64_t>(svcntw());
  const svbool_t all = svptrue_b32();
  for (int64_t c0 = 0; c0 < kGemmPanel; c0 += 2 * vl) {
    const svbool_t p0 = svwhilelt_b32(c0, kGemmPanel), p1 = svwhilelt_b32(c0 + vl, kGemmPanel);
#define ACC_INIT(r) svfloat32_t acc##r##0 = svdup_n_f32(0.0f), acc##r##1 = svdup_n_f32(0.0f);
    ROWS(ACC_INIT)
#undef ACC_INIT
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
#define A_LOAD(r) const svfloat32_t q##r = svld1rq_f32(all, a##r + k);
      ROWS(A_LOAD)
#undef A_LOAD
#define FMA_LANE(r, L)                                \
  acc##r##0 = svmla_lane_f32(acc##r##0, b0, q##r, L); \
  acc##r##1 = svmla_lane_f32(acc##r##1, b1, q##r, L);
#define STEP(L)                                                                                               \
  {                                                                                                           \
    const svfloat32_t b0 = svld1_f32(p0, b + (k + L) * kGemmPanel + c0);                                      \
    const svfloat32_t b1 = svld1_f32(p1, b + (k + L) * kGemmPanel + c0 + vl);                                 \
    FMA_LANE(0, L) FMA_LANE(1, L) FMA_LANE(2, L) FMA_LANE(3, L) FMA_LANE(4, L) FMA_LANE(5, L) FMA_LANE(6, L) \
    FMA_LANE(7, L)                                                                                            \
  }
      STEP(0) STEP(1) STEP(2) STEP(3)
#undef STEP
#undef FMA_LANE
    }
    for (; k < kc; ++k) {
      const svfloat32_t b0 = svld1_f32(p0, b + k * kGemmPanel + c0);
      const svfloat32_t b1 = svld1_f32(p1, b + k * kGemmPanel + c0 + vl);
#define FMA_ONE(r)                                      \
  acc##r##0 = svmla_n_f32_x(all, acc##r##0, b0, a##r[k]); \
  acc##r##1 = svmla_n_f32_x(all, acc##r##1, b1, a##r[k]);
      ROWS(FMA_ONE)
#undef FMA_ONE
    }
#define STORE(r)                                          \
  svst1_f32(p0, tile + r * kGemmPanel + c0, acc##r##0); \
  svst1_f32(p1, tile + r * kGemmPanel + c0 + vl, acc##r##1);
    ROWS(STORE)
#undef STORE
  }
}

#undef ROWS

}  // namespace

void sgemm_8x2vl_sve(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  arm64::SgemmDriver(Tile, kMr, p, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
