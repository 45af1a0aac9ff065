// Winograd F(2x2, 3x3): the weight transform, the transforms at the architecture's baseline ISA, and the
// selector.
#include "kernels/conv/winograd_f23.h"

#include "kernels/conv/winograd_f23_impl.h"

namespace coreserve::kernels {

void WinogradF23Weights(const float* w, int64_t co, int64_t ci, float* u) {
  // G (4 x 3) = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]; U = G g G^T, in double, rounded once.
  static constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  for (int64_t o = 0; o < co; ++o) {
    for (int64_t c = 0; c < ci; ++c) {
      const float* g = w + (o * ci + c) * 9;
      double gg[4][3];  // G g
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 3; ++j) gg[i][j] = kG[i][0] * g[j] + kG[i][1] * g[3 + j] + kG[i][2] * g[6 + j];
      }
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
          const double value = gg[i][0] * kG[j][0] + gg[i][1] * kG[j][1] + gg[i][2] * kG[j][2];
          u[((4 * i + j) * ci + c) * co + o] = static_cast<float>(value);
        }
      }
    }
  }
}

void winograd_f23_input_portable(const WinogradF23Shape& s, const float* x, int64_t t0, int64_t t1, float* v,
                                 int64_t v_stride) {
  winograd_impl::Input(s, x, t0, t1, v, v_stride);
}

void winograd_f23_output_portable(const WinogradF23Shape& s, const float* m, int64_t m_stride, int64_t t0,
                                  int64_t t1, const float* bias, const float* residual, bool relu, float* y) {
  winograd_impl::Output(s, m, m_stride, t0, t1, bias, residual, relu, y);
}

WinogradF23Kernel SelectWinogradF23(const CpuFeatures& f) {
#if defined(__x86_64__)
  if (f.avx512) return {"winograd_f23_avx512", winograd_f23_input_avx512, winograd_f23_output_avx512};
#endif
  (void)f;
  return {"winograd_f23_portable", winograd_f23_input_portable, winograd_f23_output_portable};
}

const WinogradF23Kernel& WinogradF23() {
  static const WinogradF23Kernel kernel = SelectWinogradF23(ActiveCpuFeatures());
  return kernel;
}

}  // namespace coreserve::kernels
