// The portable int8 GEMM (u8 A x s8 B -> s32, then the int32 or dequantizing epilogue), on B packed as
// kInt8Panel32 (K x 32 panels of s8). It is also the plainest statement of the int8 arithmetic every vector
// kernel reproduces exactly: see QgemmRow in gemm_kernels.h. Row-at-a-time over one 32-column panel, which the
// compiler vectorizes for the baseline ISA.
#include <algorithm>
#include <cassert>
#include <vector>

#include "kernels/gemm/gemm_epilogue.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {

void qgemm_u8s8_portable(const QgemmProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (m_end <= m_begin || n_end <= n_begin) return;
  const SgemmPackedB& b = *p.packed_b;
  assert(b.format == PackedFormat::kInt8Panel32 && n_begin % kGemmPanel == 0);
  const int64_t k = p.k;
  const bool b_zero_points = !b.col_zero_point.empty();
  thread_local std::vector<uint8_t> qa;
  qa.resize(static_cast<std::size_t>(k));
  for (int64_t i = m_begin; i < m_end; ++i) {
    const QgemmRow row = PrepareQuantizedRow(p, i, k, b_zero_points, qa.data(), QuantizeRowU8Reference);
    for (int64_t j0 = n_begin; j0 < n_end; j0 += kGemmPanel) {
      const int64_t cols = std::min(kGemmPanel, n_end - j0);
      const int8_t* panel = b.int8.data() + (j0 / kGemmPanel) * k * kGemmPanel;
      int32_t acc[kGemmPanel] = {};
      for (int64_t l = 0; l < k; ++l) {
        const int32_t av = qa[l];
        const int8_t* brow = panel + l * kGemmPanel;
        for (int64_t jj = 0; jj < kGemmPanel; ++jj) acc[jj] += av * brow[jj];
      }
      for (int64_t jj = 0; jj < cols; ++jj) {
        const int64_t j = j0 + jj;
        // Wraps modulo 2^32 like the vector kernels' int32 lanes (the conversion is modular in C++20).
        int64_t v = int64_t{acc[jj]} - int64_t{row.zero_point} * b.col_sum[j];
        if (b_zero_points) v -= int64_t{b.col_zero_point[j]} * row.row_term;
        const auto exact = static_cast<int32_t>(v);
        if (p.c_s32 != nullptr) {
          p.c_s32[i * p.ldc + j] = exact;
          continue;
        }
        float* c = p.c_f32 + i * p.ldc + j;
        float y = static_cast<float>(exact) * (row.scale * b.col_scale[j]);
        if (p.beta != 0.0f) y += p.beta * *c;
        if (p.bias) y += p.bias[j];
        *c = ApplyActivation(y, p.activation);
      }
    }
  }
}

}  // namespace coreserve::kernels
