// The exact integer entry points (qgemm.h) on the int8 kernels: B's type and zero points are folded into the
// packed s8 values and per-column sums once, A's type into a byte flip and its zero point.
#include "kernels/gemm/qgemm.h"

#include <cassert>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm/gemm_kernels.h"

namespace coreserve::kernels {

std::shared_ptr<SgemmPackedB> PackIntegerB(PackedFormat format, const void* b, int64_t ldb, bool b_is_signed, int64_t k,
                                           int64_t n, const void* b_zero_point, bool per_column_zero_point) {
  auto packed = AllocPackedB(format, k, n);
  // s8 B is stored as is; u8 B as b - 128 (in [-128, 127]) with its zero point lowered by 128.
  const int32_t shift = b_is_signed ? 0 : 128;
  auto value = [&](const void* base, int64_t index) -> int32_t {
    return b_is_signed ? int32_t{static_cast<const int8_t*>(base)[index]}
                       : int32_t{static_cast<const uint8_t*>(base)[index]};
  };
  bool any_zero_point = false;
  std::vector<int32_t> zero_point(static_cast<std::size_t>(n), -shift);
  if (b_zero_point != nullptr) {
    for (int64_t j = 0; j < n; ++j) zero_point[j] = value(b_zero_point, per_column_zero_point ? j : 0) - shift;
  }
  for (int64_t j = 0; j < n; ++j) any_zero_point |= zero_point[j] != 0;
  if (any_zero_point) {
    packed->col_zero_point.assign(packed->col_sum.size(), 0);
    for (int64_t j = 0; j < n; ++j) packed->col_zero_point[j] = zero_point[j];
  }
  for (int64_t l = 0; l < k; ++l) {
    for (int64_t j = 0; j < n; ++j) {
      const int32_t v = value(b, l * ldb + j) - shift;
      packed->int8[PackedOffset(packed->format, k, l, j)] = static_cast<int8_t>(v);
      packed->col_sum[j] += v;
    }
  }
  return packed;
}

std::shared_ptr<const SgemmPackedB> QgemmPackB(const void* b, int64_t ldb, bool b_is_signed, int64_t k, int64_t n,
                                               const void* b_zero_point, bool per_column_zero_point) {
  const GemmKernel* kernel = SelectGemmKernel(GemmPrecision::kInt8, ActiveCpuFeatures());
  return PackIntegerB(kernel->format, b, ldb, b_is_signed, k, n, b_zero_point, per_column_zero_point);
}

void QgemmU8S8ToS32(const QgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  assert(args.packed_b != nullptr && args.packed_b->precision == GemmPrecision::kInt8 && args.k == args.packed_b->k);
  const GemmKernel* kernel = GemmKernelForFormat(args.packed_b->format, ActiveCpuFeatures());
  assert(kernel != nullptr && kernel->qgemm != nullptr);
  QgemmProblem q;
  q.k = args.k;
  // s8 A is read as u8 a + 128 (flipping the sign bit), its zero point raised by 128.
  q.a_u8 = static_cast<const uint8_t*>(args.a);
  q.a_flip = args.a_is_signed ? 0x80 : 0;
  q.a_zero_point = args.a_zero_point + (args.a_is_signed ? 128 : 0);
  q.lda = args.lda;
  q.packed_b = args.packed_b;
  q.c_s32 = args.c;
  q.ldc = args.ldc;
  kernel->qgemm(q, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
