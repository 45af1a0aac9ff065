// Every f32_quantize variant the CPU runs against a reference written from ONNX QuantizeLinear's definition
// (libm nearbyint: round half to even; saturate; NaN -> 0 as the kernels define it), byte for byte, on ties,
// saturation, infinities, NaN, signed zeros, denormals and random values, for u8 and s8, at every tail length.
#include "kernels/convert/f32_quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace coreserve::kernels {
namespace {

int Reference(float x, float scale, int32_t zero_point, bool is_signed) {
  const float lo = is_signed ? -128.0f : 0.0f, hi = is_signed ? 127.0f : 255.0f;
  if (std::isnan(x)) return 0;
  const float v = std::nearbyint(x / scale) + static_cast<float>(zero_point);
  return static_cast<int>(std::fmin(std::fmax(v, lo), hi));
}

std::vector<F32QuantizeKernel> Variants() {
  std::vector<F32QuantizeKernel> v = {{"f32_quantize_scalar", f32_quantize_scalar}};
#if defined(__x86_64__)
  if (HostCpuFeatures().avx512) v.push_back({"f32_quantize_avx512", f32_quantize_avx512});
#endif
  return v;
}

TEST(F32Quantize, MatchesTheDefinitionByteForByte) {
  std::vector<float> x = {0.0f, -0.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 127.5f, 128.5f, 254.5f, 255.5f,
                          -127.5f, -128.5f, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::denorm_min(), 3.0e6f, -3.0e6f, 1023.5f, 1024.5f};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-400.0f, 400.0f);
  for (int i = 0; i < 300; ++i) x.push_back(d(rng));
  for (const auto& k : Variants()) {
    for (bool is_signed : {false, true}) {
      for (auto [scale, zp] : {std::pair<float, int32_t>{1.0f, 0}, {0.5f, is_signed ? -3 : 128}, {2.0f, is_signed ? 10 : 7},
                               {0.0137f, is_signed ? 0 : 255}}) {
        for (std::size_t n : {x.size(), std::size_t{1}, std::size_t{15}, std::size_t{17}, std::size_t{33}}) {
          std::vector<uint8_t> y(n, 0xAB);
          k.fn(n, x.data(), scale, zp, is_signed, y.data());
          for (std::size_t i = 0; i < n; ++i) {
            const int got = is_signed ? static_cast<int8_t>(y[i]) : y[i];
            ASSERT_EQ(got, Reference(x[i], scale, zp, is_signed))
                << k.name << " x=" << x[i] << " scale=" << scale << " zp=" << zp << " signed=" << is_signed;
          }
        }
      }
    }
  }
}

TEST(F32Quantize, WritesNothingPastN) {
  for (const auto& k : Variants()) {
    std::vector<float> x(40, 1.0f);
    std::vector<uint8_t> y(40, 0xAB);
    k.fn(19, x.data(), 1.0f, 0, false, y.data());
    for (std::size_t i = 19; i < y.size(); ++i) ASSERT_EQ(y[i], 0xAB) << k.name << " wrote at " << i;
  }
}

}  // namespace
}  // namespace coreserve::kernels
