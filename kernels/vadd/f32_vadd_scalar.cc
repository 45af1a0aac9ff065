#include "kernels/vadd/f32_vadd.h"

namespace coreserve::kernels {

void f32_vadd_scalar(std::size_t n, const float* a, const float* b, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace coreserve::kernels
