// fp32 GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, op = optional transpose.
//
// sgemm_reference is the scalar definition every optimized kernel is tested against. Sgemm picks the fastest
// implementation for the active CPU features. Preconditions (asserted by callers): M, N, K >= 0; lda, ldb, ldc
// at least the row length of the stored matrix; C does not overlap A or B. With beta == 0, C is not read (NaN in
// C does not propagate).
#pragma once

#include <cstddef>
#include <cstdint>

namespace coreserve::kernels {

struct SgemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float beta = 0.0f;
  float* c = nullptr;
  int64_t ldc = 0;
};

void sgemm_reference(const SgemmArgs& args);

// Computes rows [m_begin, m_end) of C; the caller splits M across threads.
void Sgemm(const SgemmArgs& args, int64_t m_begin, int64_t m_end);

}  // namespace coreserve::kernels
