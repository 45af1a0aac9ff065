// The vector math kernels against double-precision libm (an independent reference), over a dense sweep of the
// range that matters plus the special values, at every tail length.
#include "kernels/math/f32_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace coreserve::kernels {
namespace {

std::vector<F32MathKernels> Variants() {
  std::vector<F32MathKernels> v = {SelectF32Math(CpuFeatures{})};
  if (HostCpuFeatures().avx512) v.push_back(SelectF32Math(HostCpuFeatures()));
  return v;
}

std::vector<float> Sweep(float lo, float hi, int n) {
  std::vector<float> x;
  for (int i = 0; i <= n; ++i) x.push_back(lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n));
  for (float s : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-8f, -1e-8f, 0.4999f, 0.5f, 0.5001f, -0.5f}) x.push_back(s);
  return x;
}

TEST(F32Math, ExpWithinBound) {
  const std::vector<float> x = Sweep(-87.0f, 88.0f, 200001);
  for (const auto& k : Variants()) {
    std::vector<float> y(x.size());
    k.exp(x.size(), x.data(), y.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double want = std::exp(static_cast<double>(x[i]));
      ASSERT_LE(std::fabs(y[i] - want), 4e-7 * want) << k.name << " exp(" << x[i] << ")";
    }
    const float special[] = {-INFINITY, INFINITY, std::numeric_limits<float>::quiet_NaN(), -200.0f, 200.0f};
    float out[5];
    k.exp(5, special, out);
    EXPECT_EQ(out[0], 0.0f) << k.name;
    EXPECT_EQ(out[1], INFINITY) << k.name;
    EXPECT_TRUE(std::isnan(out[2])) << k.name;
    EXPECT_EQ(out[3], 0.0f) << k.name;
    EXPECT_EQ(out[4], INFINITY) << k.name;
  }
}

TEST(F32Math, ErfAndGeluWithinBound) {
  const std::vector<float> x = Sweep(-8.0f, 8.0f, 200001);
  for (const auto& k : Variants()) {
    std::vector<float> e(x.size()), g(x.size());
    k.erf(x.size(), x.data(), e.data());
    k.gelu(x.size(), x.data(), g.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double xd = x[i];
      const double want = std::erf(xd);
      ASSERT_LE(std::fabs(e[i] - want), 3e-7) << k.name << " erf(" << x[i] << ")";
      if (std::fabs(xd) < 0.5) {
        ASSERT_LE(std::fabs(e[i] - want), 2e-6 * std::fabs(want) + 1e-37) << k.name << " erf(" << x[i] << ")";
      }
      const double gelu = 0.5 * xd * (1.0 + std::erf(xd / std::sqrt(2.0)));
      ASSERT_LE(std::fabs(g[i] - gelu), 3e-7 * std::fabs(xd) + 1e-7 * std::fabs(gelu) + 1e-37) << k.name << " gelu(" << x[i] << ")";
    }
    const float special[] = {INFINITY, -INFINITY, std::numeric_limits<float>::quiet_NaN()};
    float out[3];
    k.erf(3, special, out);
    EXPECT_EQ(out[0], 1.0f) << k.name;
    EXPECT_EQ(out[1], -1.0f) << k.name;
    EXPECT_TRUE(std::isnan(out[2])) << k.name;
    // GELU's own erf saturates to exactly +-1: no residue of the approximation far from 0.
    const float far[] = {100.0f, -100.0f, 6.0f, -6.0f, std::numeric_limits<float>::quiet_NaN()};
    float g_far[5];
    k.gelu(5, far, g_far);
    EXPECT_EQ(g_far[0], 100.0f) << k.name;
    EXPECT_EQ(g_far[1], 0.0f) << k.name;
    EXPECT_EQ(g_far[2], 6.0f) << k.name;
    EXPECT_NEAR(g_far[3], 0.5 * -6.0 * std::erfc(6.0 / std::sqrt(2.0)), 1e-8) << k.name;
    EXPECT_TRUE(std::isnan(g_far[4])) << k.name;
  }
}

TEST(F32Math, TanhWithinBound) {
  const std::vector<float> x = Sweep(-12.0f, 12.0f, 200001);
  for (const auto& k : Variants()) {
    std::vector<float> y(x.size());
    k.tanh(x.size(), x.data(), y.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double want = std::tanh(static_cast<double>(x[i]));
      ASSERT_LE(std::fabs(y[i] - want), 2e-7) << k.name << " tanh(" << x[i] << ")";
      if (std::fabs(x[i]) < 0.25f) {
        ASSERT_LE(std::fabs(y[i] - want), 1e-6 * std::fabs(want) + 1e-37) << k.name << " tanh(" << x[i] << ")";
      }
    }
    std::vector<float> gt(x.size());
    k.gelu_tanh(x.size(), x.data(), gt.data());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double v = x[i];
      const double want = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
      ASSERT_LE(std::fabs(gt[i] - want), 3e-7 * std::fabs(v) + 1e-7 * std::fabs(want) + 1e-37) << k.name << " gelu_tanh(" << x[i] << ")";
    }
    const float special[] = {INFINITY, -INFINITY, std::numeric_limits<float>::quiet_NaN()};
    float out[3];
    k.tanh(3, special, out);
    EXPECT_EQ(out[0], 1.0f) << k.name;
    EXPECT_EQ(out[1], -1.0f) << k.name;
    EXPECT_TRUE(std::isnan(out[2])) << k.name;
  }
}

TEST(F32Math, SoftmaxEveryLength) {
  for (const auto& k : Variants()) {
    for (std::size_t n = 1; n <= 70; ++n) {
      std::vector<float> x(n), y(n + 1, 777.0f);
      for (std::size_t i = 0; i < n; ++i) x[i] = std::sin(static_cast<float>(i) * 1.7f) * 20.0f;
      k.softmax(n, x.data(), y.data());
      double mx = -1e30, sum = 0;
      for (float v : x) mx = std::max<double>(mx, v);
      for (float v : x) sum += std::exp(v - mx);
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(y[i], std::exp(x[i] - mx) / sum, 1e-6) << k.name << " n=" << n << " i=" << i;
      }
      ASSERT_EQ(y[n], 777.0f) << k.name << " wrote past the end";
    }
  }
}

TEST(F32Math, LayerNormAgainstDouble) {
  std::vector<float> gamma(800), beta(800);
  for (std::size_t i = 0; i < gamma.size(); ++i) {
    gamma[i] = 0.5f + 0.001f * static_cast<float>(i);
    beta[i] = std::cos(static_cast<float>(i));
  }
  for (const auto& k : Variants()) {
    for (std::size_t n : {1u, 7u, 16u, 17u, 64u, 768u, 771u}) {
      std::vector<float> x(n), y(n + 1, 99.0f);
      for (std::size_t i = 0; i < n; ++i) x[i] = 3.0f + std::sin(static_cast<float>(i) * 0.9f) * 2.0f;  // offset mean
      for (bool with_beta : {false, true}) {
        float mean = 0, inv = 0;
        k.layernorm(n, x.data(), gamma.data(), with_beta ? beta.data() : nullptr, 1e-5f, y.data(), &mean, &inv);
        double m = 0, v = 0;
        for (float t : x) m += t;
        m /= n;
        for (float t : x) v += (t - m) * (t - m);
        const double inv_want = 1.0 / std::sqrt(v / n + 1e-5);
        ASSERT_NEAR(mean, m, 1e-5 * std::fabs(m)) << k.name << " n=" << n;
        ASSERT_NEAR(inv, inv_want, 1e-5 * inv_want) << k.name << " n=" << n;
        for (std::size_t i = 0; i < n; ++i) {
          const double want = (x[i] - m) * inv_want * gamma[i] + (with_beta ? beta[i] : 0.0);
          ASSERT_NEAR(y[i], want, 2e-5 * (1 + std::fabs(want))) << k.name << " n=" << n << " i=" << i;
        }
        ASSERT_EQ(y[n], 99.0f) << k.name << " wrote past the end";
      }
    }
  }
}

TEST(F32Math, TailsAndAliasing) {
  for (const auto& k : Variants()) {
    for (std::size_t n = 0; n <= 40; ++n) {
      std::vector<float> x(n + 1, 5.0f), y(n + 1, -3.0f);
      for (std::size_t i = 0; i < n; ++i) x[i] = 0.1f * static_cast<float>(i) - 1.0f;
      k.gelu(n, x.data(), y.data());
      EXPECT_EQ(y[n], -3.0f) << k.name << " wrote past the end, n=" << n;
      std::vector<float> in_place(x.begin(), x.begin() + n);
      k.gelu(n, in_place.data(), in_place.data());
      for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(in_place[i], y[i]) << k.name;
    }
  }
}

}  // namespace
}  // namespace coreserve::kernels
