// Winograd F(2x2, 3x3): the weight, input and output transforms of every variant the CPU runs, with the 16
// GEMMs between them done by plain loops, against the direct 3x3 convolution computed in double from its
// definition — over odd and even sizes, images smaller than a tile, channel counts on and off the 16-lane
// vectors, symmetric and one-sided padding, bias, residual (also in place) and Relu.
#include "kernels/conv/winograd_f23.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace coreserve::kernels {
namespace {

std::vector<WinogradF23Kernel> Variants() {
  std::vector<WinogradF23Kernel> v = {
      {"winograd_f23_portable", winograd_f23_input_portable, winograd_f23_output_portable}};
#if defined(__x86_64__)
  if (HostCpuFeatures().avx512) v.push_back(SelectWinogradF23(HostCpuFeatures()));
#endif
  return v;
}

std::vector<float> Random(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Case {
  int64_t n, h, w, ci, co, pad_top, pad_left, pad_bottom, pad_right;
};

// Direct convolution in double: y[img, oy, ox, o] = bias[o] + sum x[img, oy+i-pt, ox+j-pl, c] * w[o, c, i, j]
// (+ residual, then Relu).
std::vector<double> Direct(const Case& k, const std::vector<float>& x, const std::vector<float>& w,
                           const std::vector<float>& bias, const std::vector<float>* residual, bool relu) {
  const int64_t oh = k.h + k.pad_top + k.pad_bottom - 2, ow = k.w + k.pad_left + k.pad_right - 2;
  std::vector<double> y(static_cast<std::size_t>(k.n * oh * ow * k.co));
  for (int64_t img = 0; img < k.n; ++img) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        for (int64_t o = 0; o < k.co; ++o) {
          double sum = bias[o];
          for (int64_t i = 0; i < 3; ++i) {
            for (int64_t j = 0; j < 3; ++j) {
              const int64_t iy = oy + i - k.pad_top, ix = ox + j - k.pad_left;
              if (iy < 0 || iy >= k.h || ix < 0 || ix >= k.w) continue;
              for (int64_t c = 0; c < k.ci; ++c) {
                sum += static_cast<double>(x[((img * k.h + iy) * k.w + ix) * k.ci + c]) * w[((o * k.ci + c) * 3 + i) * 3 + j];
              }
            }
          }
          const std::size_t at = static_cast<std::size_t>(((img * oh + oy) * ow + ox) * k.co + o);
          if (residual) sum += (*residual)[at];
          y[at] = relu ? std::max(0.0, sum) : sum;
        }
      }
    }
  }
  return y;
}

TEST(WinogradF23, MatchesTheDirectConvolution) {
  const std::vector<Case> cases = {
      {1, 4, 4, 1, 1, 1, 1, 1, 1},   {2, 5, 7, 3, 5, 1, 1, 1, 1},    {1, 1, 1, 16, 16, 1, 1, 1, 1},
      {1, 2, 3, 17, 33, 1, 1, 1, 1}, {2, 9, 6, 32, 16, 0, 0, 0, 0},  {1, 8, 8, 20, 48, 1, 0, 0, 1},
      {1, 7, 7, 64, 31, 1, 1, 1, 1}, {3, 6, 11, 5, 18, 0, 1, 1, 0},  {1, 3, 3, 48, 64, 0, 0, 0, 0}};
  std::mt19937 rng(7);
  for (const WinogradF23Kernel& kernel : Variants()) {
    for (const Case& k : cases) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool relu = variant > 0, with_residual = variant > 0, in_place = variant == 2;
        WinogradF23Shape s;
        s.n = k.n, s.h = k.h, s.w = k.w, s.ci = k.ci, s.co = k.co, s.pad_top = k.pad_top, s.pad_left = k.pad_left;
        s.oh = k.h + k.pad_top + k.pad_bottom - 2, s.ow = k.w + k.pad_left + k.pad_right - 2;
        const std::vector<float> x = Random(static_cast<std::size_t>(k.n * k.h * k.w * k.ci), rng);
        const std::vector<float> w = Random(static_cast<std::size_t>(k.co * k.ci * 9), rng);
        const std::vector<float> bias = Random(static_cast<std::size_t>(k.co), rng);
        const std::size_t y_size = static_cast<std::size_t>(s.n * s.oh * s.ow * s.co);
        const std::vector<float> residual = Random(y_size, rng);
        const std::vector<double> want = Direct(k, x, w, bias, with_residual ? &residual : nullptr, relu);

        std::vector<float> u(static_cast<std::size_t>(16 * k.ci * k.co));
        WinogradF23Weights(w.data(), k.co, k.ci, u.data());
        // Tiles in two calls (a split at an odd tile), as callers split them over threads.
        const int64_t tiles = s.Tiles(), split = tiles / 2 + 1 > tiles ? tiles : tiles / 2 + 1;
        std::vector<float> v(static_cast<std::size_t>(16 * tiles * k.ci), NAN), m(static_cast<std::size_t>(16 * tiles * k.co));
        kernel.input(s, x.data(), 0, split, v.data(), tiles * k.ci);
        kernel.input(s, x.data(), split, tiles, v.data() + split * k.ci, tiles * k.ci);
        for (int e = 0; e < 16; ++e) {
          for (int64_t t = 0; t < tiles; ++t) {
            for (int64_t o = 0; o < k.co; ++o) {
              double sum = 0;
              for (int64_t c = 0; c < k.ci; ++c) {
                sum += static_cast<double>(v[(e * tiles + t) * k.ci + c]) * u[(e * k.ci + c) * k.co + o];
              }
              m[(e * tiles + t) * k.co + o] = static_cast<float>(sum);
            }
          }
        }
        std::vector<float> y = in_place ? residual : std::vector<float>(y_size, NAN);
        const float* r = !with_residual ? nullptr : in_place ? y.data() : residual.data();
        kernel.output(s, m.data(), tiles * k.co, 0, split, bias.data(), r, relu, y.data());
        kernel.output(s, m.data() + split * k.co, tiles * k.co, split, tiles, bias.data(), r, relu, y.data());

        double max_ref = 1.0;
        for (double value : want) max_ref = std::max(max_ref, std::abs(value));
        for (std::size_t i = 0; i < y_size; ++i) {
          ASSERT_NEAR(y[i], want[i], 2e-6 * max_ref * std::sqrt(9.0 * k.ci))
              << kernel.name << " case n=" << k.n << " h=" << k.h << " w=" << k.w << " ci=" << k.ci << " co=" << k.co
              << " pads " << k.pad_top << k.pad_left << k.pad_bottom << k.pad_right << " variant " << variant
              << " at " << i;
        }
      }
    }
  }
}

TEST(WinogradF23, WritesOnlyTheOutputsPixels) {
  // Odd output sizes: the last row and column of tiles hang over the edge, and nothing past Y may be written.
  WinogradF23Shape s;
  s.n = 1, s.h = 3, s.w = 5, s.ci = 4, s.co = 20, s.pad_top = 1, s.pad_left = 1, s.oh = 3, s.ow = 5;
  std::vector<float> x(static_cast<std::size_t>(s.h * s.w * s.ci), 1.0f);
  const int64_t tiles = s.Tiles();
  std::vector<float> m(static_cast<std::size_t>(16 * tiles * s.co), 1.0f);
  for (const WinogradF23Kernel& kernel : Variants()) {
    const std::size_t y_size = static_cast<std::size_t>(s.oh * s.ow * s.co);
    std::vector<float> y(y_size + 64, -7.0f);
    kernel.output(s, m.data(), tiles * s.co, 0, tiles, nullptr, nullptr, false, y.data());
    for (std::size_t i = 0; i < y_size; ++i) ASSERT_NE(y[i], -7.0f) << kernel.name << " at " << i;
    for (std::size_t i = y_size; i < y.size(); ++i) ASSERT_EQ(y[i], -7.0f) << kernel.name << " past Y at " << i;
  }
}

}  // namespace
}  // namespace coreserve::kernels
