// Exact integer GEMM for models that are already quantized (ONNX MatMulInteger):
//   C[i,j] (int32) = sum_k (A[i,k] - a_zero_point) * (B[k,j] - b_zero_point[j])
// on the same packed-B layouts and micro-kernels as Sgemm's int8 precision.
//
// B may be u8 or s8; u8 B is stored as s8 (b - 128) with its zero point lowered by 128, which changes no product.
// A may be u8 or s8; s8 A is read as u8 (a + 128) with its zero point raised by 128, likewise exact. Sums are
// int32 and wrap on overflow, as in ONNX Runtime; they cannot overflow while
// K * max|A - a_zero_point| * max|B - b_zero_point| < 2^31, and the kernels require K <= 65536.
#pragma once

#include <cstdint>
#include <memory>

#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {

// Packs B (K x N, row-major with leading dimension ldb, u8 or s8 per b_is_signed) for the active int8 kernel.
// b_zero_point: null for zero, else one value (per tensor) or N values (per column, when
// per_column_zero_point), of B's element type. The result (precision kInt8, col_scale 1) is for
// QgemmU8S8ToS32 only.
std::shared_ptr<const SgemmPackedB> QgemmPackB(const void* b, int64_t ldb, bool b_is_signed, int64_t k, int64_t n,
                                               const void* b_zero_point, bool per_column_zero_point);

struct QgemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;  // M x K, row-major; u8, or s8 when a_is_signed
  int64_t lda = 0;
  bool a_is_signed = false;
  int32_t a_zero_point = 0;  // per tensor, in A's element range
  const SgemmPackedB* packed_b = nullptr;  // from QgemmPackB
  int32_t* c = nullptr;
  int64_t ldc = 0;
};

// Computes C[m_begin:m_end, n_begin:n_end] exactly; callers split M and N across threads as for Sgemm (n_begin
// and n_end multiples of SgemmNStep(), or n_end == N). Runs the kernel that reads packed_b->format.
void QgemmU8S8ToS32(const QgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end);

}  // namespace coreserve::kernels
