// The portable bf16 GEMM, and the definition of what "bf16 fastmath" computes: A and B rounded to bfloat16
// (round to nearest even, as FloatToBfloat16), products and sums in fp32. Runs where the CPU lacks AVX512-BF16,
// on B packed as kBf16Panel32 (K x 32 panels of bf16). Row-at-a-time axpy form over one 32-column panel, which
// the compiler vectorizes for the baseline ISA.
#include <algorithm>
#include <cassert>
#include <vector>

#include "kernels/convert/half.h"
#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {

void bf16gemm_portable(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (m_end <= m_begin || n_end <= n_begin) return;
  assert(p.packed_b != nullptr && p.packed_b->format == PackedFormat::kBf16Panel32 && !p.trans_a);
  assert(n_begin % kGemmPanel == 0);
  const int64_t k = p.k;
  thread_local std::vector<float> a_row;
  a_row.resize(static_cast<std::size_t>(k));
  for (int64_t i = m_begin; i < m_end; ++i) {
    for (int64_t l = 0; l < k; ++l) a_row[l] = Bfloat16ToFloat(FloatToBfloat16(p.a[i * p.lda + l]));
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kGemmPanel) {
      const int64_t cols = std::min(kGemmPanel, n_end - j0);
      const uint16_t* panel = p.packed_b->bf16.data() + (j0 / kGemmPanel) * k * kGemmPanel;
      float acc[kGemmPanel] = {};
      for (int64_t l = 0; l < k; ++l) {
        const float av = a_row[l];
        const uint16_t* brow = panel + l * kGemmPanel;
        for (int64_t jj = 0; jj < kGemmPanel; ++jj) acc[jj] += av * Bfloat16ToFloat(brow[jj]);
      }
      float* c = p.c + i * p.ldc + j0;
      for (int64_t jj = 0; jj < cols; ++jj) {
        float y = p.alpha * acc[jj];
        if (p.beta != 0.0f) y += p.beta * c[jj];
        if (p.bias) y += p.bias[j0 + jj];
        if (p.residual) y += p.residual[i * p.ldr + j0 + jj];
        c[jj] = ApplyActivation(y, p.activation);
      }
    }
  }
}

}  // namespace coreserve::kernels
