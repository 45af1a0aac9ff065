#include <cassert>

#include "kernels/cpu_features.h"
#include "kernels/gemm/sgemm.h"

namespace coreserve::kernels {
namespace {

bool UseAvx512() {
#if defined(__x86_64__)
  static const bool use = ActiveCpuFeatures().avx512;
  return use;
#else
  return false;
#endif
}

}  // namespace

bool SgemmUsesPackedB() { return UseAvx512(); }

int64_t SgemmNStep() { return 32; }

const char* SgemmKernelName() { return UseAvx512() ? "sgemm_12x32_avx512" : "sgemm_portable"; }

std::shared_ptr<SgemmPackedB> SgemmAllocPackedB(int64_t k, int64_t n) {
  assert(SgemmUsesPackedB());
  auto packed = std::make_shared<SgemmPackedB>();
  packed->format = SgemmPackedB::Format::kPanel32;
  packed->k = k;
  packed->n = n;
  packed->data.resize(static_cast<std::size_t>(((n + 31) / 32) * k * 32));
  return packed;
}

void SgemmPackBColumns(const float* b, int64_t ldb, bool trans_b, int64_t col_begin, int64_t col_end,
                       SgemmPackedB* packed) {
  assert(col_begin % 32 == 0);
#if defined(__x86_64__)
  const float* src = trans_b ? b + col_begin * ldb : b + col_begin;
  sgemm_pack_b_panel32(src, ldb, trans_b, packed->k, col_end - col_begin, packed->data.data() + (col_begin / 32) * packed->k * 32);
#else
  (void)b; (void)ldb; (void)trans_b; (void)col_begin; (void)col_end; (void)packed;
#endif
}

std::shared_ptr<const SgemmPackedB> SgemmPackB(const float* b, int64_t ldb, bool trans_b, int64_t k, int64_t n) {
  auto packed = SgemmAllocPackedB(k, n);
  SgemmPackBColumns(b, ldb, trans_b, 0, n, packed.get());
  return packed;
}

void Sgemm(const SgemmArgs& args, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
#if defined(__x86_64__)
  if (UseAvx512() && !args.trans_a) {
    sgemm_12x32_avx512(args, m_begin, m_end, n_begin, n_end);
    return;
  }
#endif
  assert(args.packed_b == nullptr);  // packed weights exist only for the kernel that reads them
  sgemm_portable(args, m_begin, m_end, n_begin, n_end);
}

}  // namespace coreserve::kernels
