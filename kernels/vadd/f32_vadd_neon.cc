// NEON is part of the arm64 baseline, so this file needs no extra flags.
#include <arm_neon.h>

#include "kernels/vadd/f32_vadd.h"

namespace coreserve::kernels {

void f32_vadd_neon(std::size_t n, const float* a, const float* b, float* out) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    vst1q_f32(out + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
    vst1q_f32(out + i + 4, vaddq_f32(vld1q_f32(a + i + 4), vld1q_f32(b + i + 4)));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace coreserve::kernels
