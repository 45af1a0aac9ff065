// Winograd F(2x2, 3x3) transforms compiled for AVX-512 (16 channels per zmm register); called only when
// CpuFeatures::avx512 is set.
#include "kernels/conv/winograd_f23_impl.h"

namespace coreserve::kernels {

void winograd_f23_input_avx512(const WinogradF23Shape& s, const float* x, int64_t t0, int64_t t1, float* v,
                               int64_t v_stride) {
  winograd_impl::Input(s, x, t0, t1, v, v_stride);
}

void winograd_f23_output_avx512(const WinogradF23Shape& s, const float* m, int64_t m_stride, int64_t t0,
                                int64_t t1, const float* bias, const float* residual, bool relu, float* y) {
  winograd_impl::Output(s, m, m_stride, t0, t1, bias, residual, relu, y);
}

}  // namespace coreserve::kernels
