#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {

void sgemm_reference(const SgemmArgs& p) {
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      double acc = 0;  // double accumulation: the reference must be at least as accurate as any kernel
      for (int64_t l = 0; l < p.k; ++l) {
        const float a = p.trans_a ? p.a[l * p.lda + i] : p.a[i * p.lda + l];
        const float b = p.trans_b ? p.b[j * p.ldb + l] : p.b[l * p.ldb + j];
        acc += static_cast<double>(a) * b;
      }
      float& c = p.c[i * p.ldc + j];
      c = static_cast<float>(p.alpha * acc) + (p.beta == 0.0f ? 0.0f : p.beta * c);
    }
  }
}

}  // namespace coreserve::kernels
