// The scalar definition of f32_quantize (and the selector). Built with -fno-trapping-math (kernels/CMakeLists.txt)
// so GCC turns its float selects into vector code on the baseline ISA too.
#include <cstdint>

#include "kernels/convert/f32_quantize.h"

namespace coreserve::kernels {
namespace {

template <typename Q>
void Quantize(std::size_t n, const float* x, float scale, int32_t zero_point, Q* y, float lo, float hi) {
  const float zp = static_cast<float>(zero_point);
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: (t + kMagic) - kMagic rounds half to even for |t| < 2^22
  for (std::size_t i = 0; i < n; ++i) {
    float t = x[i] / scale;
    t = t > 1024.0f ? 1024.0f : t;  // far past either end of the byte range: saturates the same, and keeps the
    t = t < -1024.0f ? -1024.0f : t;  // rounding trick exact
    float v = ((t + kMagic) - kMagic) + zp;
    v = v > hi ? hi : v;
    v = v < lo ? lo : v;
    // Through int32: NaN converts to INT32_MIN, whose low byte is 0.
    y[i] = static_cast<Q>(static_cast<int32_t>(v));
  }
}

}  // namespace

void f32_quantize_scalar(std::size_t n, const float* x, float scale, int32_t zero_point, bool is_signed, void* y) {
  if (is_signed) {
    Quantize(n, x, scale, zero_point, static_cast<int8_t*>(y), -128.0f, 127.0f);
  } else {
    Quantize(n, x, scale, zero_point, static_cast<uint8_t*>(y), 0.0f, 255.0f);
  }
}

F32QuantizeKernel SelectF32Quantize(const CpuFeatures& f) {
#if defined(__x86_64__)
  if (f.avx512) return {"f32_quantize_avx512", f32_quantize_avx512};
#endif
  (void)f;
  return {"f32_quantize_scalar", f32_quantize_scalar};
}

const F32QuantizeKernel& F32Quantize() {
  static const F32QuantizeKernel kernel = SelectF32Quantize(ActiveCpuFeatures());
  return kernel;
}

}  // namespace coreserve::kernels
