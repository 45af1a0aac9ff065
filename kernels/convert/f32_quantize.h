// f32 -> u8 / s8 quantization with one scale and zero point (ONNX QuantizeLinear per tensor, which QDQ models
// apply to every activation): y = saturate(round_half_even(x / scale) + zero_point), NaN -> 0. Every variant
// gives the scalar definition's bytes exactly (the division is IEEE in all of them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu_features.h"

namespace coreserve::kernels {

// y holds n bytes: uint8_t when !is_signed (zero_point in [0, 255]), int8_t when is_signed ([-128, 127]).
using F32QuantizeFn = void (*)(std::size_t n, const float* x, float scale, int32_t zero_point, bool is_signed,
                               void* y);

struct F32QuantizeKernel {
  const char* name;
  F32QuantizeFn fn;
};

void f32_quantize_scalar(std::size_t n, const float* x, float scale, int32_t zero_point, bool is_signed, void* y);
#if defined(__x86_64__)
void f32_quantize_avx512(std::size_t n, const float* x, float scale, int32_t zero_point, bool is_signed, void* y);
#endif

// The best variant `features` allow (pure, for tests), and the active CPU's, chosen on first use.
F32QuantizeKernel SelectF32Quantize(const CpuFeatures& features);
const F32QuantizeKernel& F32Quantize();

}  // namespace coreserve::kernels
