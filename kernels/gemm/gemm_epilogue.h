// The scalar GEMM epilogue (activation of one element), shared by the portable kernels so every precision
// applies the same formulas as sgemm_portable.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {

inline float ApplyActivation(float y, SgemmActivation act) {
  switch (act) {
    case SgemmActivation::kRelu:
      return y > 0.0f ? y : 0.0f;
    case SgemmActivation::kGelu:
      return 0.5f * y * (1.0f + std::erf(y * 0.70710678118654752f));
    case SgemmActivation::kGeluTanh:
      return 0.5f * y * (1.0f + std::tanh(0.7978845608028654f * (y + 0.044715f * y * y * y)));
    case SgemmActivation::kNone:
      break;
  }
  return y;
}

// C[m_begin:m_end, n_begin:n_end] = act(beta * C + bias + residual): the whole GEMM when K == 0 (no products),
// which the micro-kernels, built around at least one K step, hand to this instead.
inline void GemmEpilogueOnly(float* c, int64_t ldc, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end,
                             float beta, const float* bias, SgemmActivation act, const float* residual = nullptr,
                             int64_t ldr = 0) {
  for (int64_t i = m_begin; i < m_end; ++i) {
    for (int64_t j = n_begin; j < n_end; ++j) {
      float y = beta != 0.0f ? beta * c[i * ldc + j] : 0.0f;
      if (bias) y += bias[j];
      if (residual) y += residual[i * ldr + j];
      c[i * ldc + j] = ApplyActivation(y, act);
    }
  }
}

// Whether the arguments (SgemmArgs or QgemmProblem) ask for more than alpha and beta: a bias, a residual or an
// activation, which the kernels apply on the last K block.
template <typename Args>
inline bool HasEpilogue(const Args& p) {
  return p.bias != nullptr || p.residual != nullptr || p.activation != SgemmActivation::kNone;
}

// The start every fp32/bf16 driver shares: true when there is nothing left to do — an empty range, or K == 0,
// whose whole result (beta * C through the epilogue) GemmEpilogueOnly writes here.
inline bool DoneWithoutProducts(const SgemmArgs& p, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  if (m_end <= m_begin || n_end <= n_begin) return true;
  if (p.k != 0) return false;
  GemmEpilogueOnly(p.c, p.ldc, m_begin, m_end, n_begin, n_end, p.beta, p.bias, p.activation, p.residual, p.ldr);
  return true;
}

}  // namespace coreserve::kernels
