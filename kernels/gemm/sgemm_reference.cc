#include <cmath>

#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {

void sgemm_reference(const SgemmArgs& p) {
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      double acc = 0;  // double accumulation: the reference must be at least as accurate as any kernel
      for (int64_t l = 0; l < p.k; ++l) {
        const float a = p.a_rows ? p.a_rows[i * p.a_taps + l / (p.k / p.a_taps)][l % (p.k / p.a_taps)]
                        : p.trans_a ? p.a[l * p.lda + i]
                                    : p.a[i * p.lda + l];
        const float b = p.trans_b ? p.b[j * p.ldb + l] : p.b[l * p.ldb + j];
        acc += static_cast<double>(a) * b;
      }
      float& c = p.c[i * p.ldc + j];
      double y = p.alpha * acc + (p.beta == 0.0f ? 0.0 : static_cast<double>(p.beta) * c);
      if (p.bias) y += p.bias[j];
      if (p.residual) y += p.residual[i * p.ldr + j];
      if (p.activation == SgemmActivation::kRelu) y = y > 0 ? y : 0;
      if (p.activation == SgemmActivation::kGelu) y = 0.5 * y * (1.0 + std::erf(y / std::sqrt(2.0)));
      if (p.activation == SgemmActivation::kGeluTanh) {
        y = 0.5 * y * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (y + 0.044715 * y * y * y)));
      }
      c = static_cast<float>(y);
    }
  }
}

}  // namespace coreserve::kernels
