// f32 elementwise add, out[i] = a[i] + b[i]: the simplest kernel family, and the template every family
// follows — one signature shared by every ISA variant, a scalar reference that always links, one file per
// ISA compiled with that ISA's flags only, and a selector that picks once from the active CPU features.
//
// Preconditions (asserted by callers, not checked here): a, b and out each hold n floats; out may alias a or
// b exactly but must not partially overlap them. No alignment is required.
#pragma once

#include <cstddef>

#include "kernels/cpu_features.h"

namespace coreserve::kernels {

using F32VaddFn = void (*)(std::size_t n, const float* a, const float* b, float* out);

struct F32VaddKernel {
  const char* name;  // e.g. "f32_vadd_avx512"
  F32VaddFn fn;
};

void f32_vadd_scalar(std::size_t n, const float* a, const float* b, float* out);
#if defined(__x86_64__)
void f32_vadd_avx2(std::size_t n, const float* a, const float* b, float* out);
void f32_vadd_avx512(std::size_t n, const float* a, const float* b, float* out);
#elif defined(__aarch64__)
void f32_vadd_neon(std::size_t n, const float* a, const float* b, float* out);
#endif

// The best variant `features` allow. Pure: tests call it with hand-made feature sets.
F32VaddKernel SelectF32Vadd(const CpuFeatures& features);

// SelectF32Vadd(ActiveCpuFeatures()), chosen on first use.
const F32VaddKernel& F32Vadd();

}  // namespace coreserve::kernels
