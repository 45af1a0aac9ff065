// The arm64 fp32 GEMM driver (see gemm_arm64.h): B packed per call when it is not pre-packed, K blocked, and for each
// block, 32-column panel and strip of rows, the micro-kernel's tile through the NEON epilogue. The same
// arrangement as sgemm_6x16_avx2: a panel's K block of B (kKc x 32 floats, 64 KB) stays in L1/L2 while the strips of
// A stream past it; A is read in place.
#include <algorithm>
#include <vector>

#include "kernels/gemm/gemm_arm64.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_epilogue_neon.h"

namespace coreserve::kernels::arm64 {
namespace {
constexpr int64_t kKc = 512;
}  // namespace

void SgemmDriver(SgemmTileFn tile_fn, int64_t mr, const SgemmArgs& p, int64_t m_begin, int64_t m_end,
                 int64_t n_begin, int64_t n_end) {
  if (DoneWithoutProducts(p, m_begin, m_end, n_begin, n_end)) return;
  const int64_t k = p.k;
  int64_t first_panel = 0;
  const float* panels = Panel32For(p, n_begin, n_end, &first_panel);
  const bool has_epilogue = HasEpilogue(p);
  alignas(64) float tile[kMaxRows * kGemmPanel];
  for (int64_t k0 = 0; k0 < k; k0 += kKc) {
    const int64_t kc = std::min(kKc, k - k0);
    neon::RowEpilogue e = neon::BlockEpilogue(p, k0, kc, has_epilogue);
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kGemmPanel) {
      const float* panel = panels + ((j0 - n_begin) / kGemmPanel + first_panel) * k * kGemmPanel + k0 * kGemmPanel;
      const int64_t cols = std::min(kGemmPanel, n_end - j0);
      e.bias = p.bias ? p.bias + j0 : nullptr;
      for (int64_t i0 = m_begin; i0 < m_end; i0 += mr) {
        const int64_t rows = std::min(mr, m_end - i0);
        tile_fn(kc, p.a + i0 * p.lda + k0, p.lda, rows, panel, tile);
        for (int64_t r = 0; r < rows; ++r) {
          e.residual = p.residual ? p.residual + (i0 + r) * p.ldr + j0 : nullptr;
          neon::StoreRow(p.c + (i0 + r) * p.ldc + j0, tile + r * kGemmPanel, cols, e);
        }
      }
    }
  }
}

}  // namespace coreserve::kernels::arm64
