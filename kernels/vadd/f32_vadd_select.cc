#include "kernels/vadd/f32_vadd.h"

namespace coreserve::kernels {

F32VaddKernel SelectF32Vadd(const CpuFeatures& f) {
#if defined(__x86_64__)
  if (f.avx512) return {"f32_vadd_avx512", f32_vadd_avx512};
  if (f.avx2_fma) return {"f32_vadd_avx2", f32_vadd_avx2};
#elif defined(__aarch64__)
  if (f.neon) return {"f32_vadd_neon", f32_vadd_neon};
#endif
  (void)f;
  return {"f32_vadd_scalar", f32_vadd_scalar};
}

const F32VaddKernel& F32Vadd() {
  static const F32VaddKernel kernel = SelectF32Vadd(ActiveCpuFeatures());
  return kernel;
}

}  // namespace coreserve::kernels
