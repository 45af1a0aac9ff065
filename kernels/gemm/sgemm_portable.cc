// A portable fp32 GEMM: row-at-a-time axpy form (C[i,:] += A[i,k] * B[k,:]), which the compiler vectorizes for
// the baseline ISA. The ISA-specific micro-kernels replace it where the CPU allows.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {

void sgemm_portable(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  const int64_t n = n_end - n_begin, k = p.k;
  if (n <= 0) return;
  // op(B)[:, n_begin:n_end] as a row-major K x n panel, copied when B is transposed.
  std::vector<float> bt;
  const float* b = p.b + n_begin;
  int64_t ldb = p.ldb;
  if (p.trans_b) {
    bt.resize(static_cast<std::size_t>(k * n));
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t l = 0; l < k; ++l) bt[l * n + j] = p.b[(n_begin + j) * p.ldb + l];
    }
    b = bt.data();
    ldb = n;
  }
  std::vector<float> acc(static_cast<std::size_t>(n));
  for (int64_t i = m_begin; i < m_end; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t l = 0; l < k; ++l) {
      const float a = p.trans_a ? p.a[l * p.lda + i] : p.a[i * p.lda + l];
      const float* brow = b + l * ldb;
      for (int64_t j = 0; j < n; ++j) acc[j] += a * brow[j];
    }
    float* c = p.c + i * p.ldc + n_begin;
    if (p.beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) c[j] = p.alpha * acc[j];
    } else {
      for (int64_t j = 0; j < n; ++j) c[j] = p.alpha * acc[j] + p.beta * c[j];
    }
    if (p.bias) {
      for (int64_t j = 0; j < n; ++j) c[j] += p.bias[n_begin + j];
    }
    if (p.residual) {
      const float* r = p.residual + i * p.ldr + n_begin;
      for (int64_t j = 0; j < n; ++j) c[j] += r[j];
    }
    if (p.activation == SgemmActivation::kRelu) {
      for (int64_t j = 0; j < n; ++j) c[j] = c[j] > 0.0f ? c[j] : 0.0f;
    } else if (p.activation == SgemmActivation::kGelu) {
      for (int64_t j = 0; j < n; ++j) c[j] = 0.5f * c[j] * (1.0f + std::erf(c[j] * 0.70710678118654752f));
    } else if (p.activation == SgemmActivation::kGeluTanh) {
      for (int64_t j = 0; j < n; ++j) {
        const float v = c[j];
        c[j] = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      }
    }
  }
}

}  // namespace coreserve::kernels
