// Every f32_vadd variant the CPU can run, against the scalar reference, over lengths that cover each
// vector width's remainders and unaligned starts. IEEE addition is exact per element, so results must be
// bit-identical, NaN and signed zero included.
#include "kernels/vadd/f32_vadd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace coreserve::kernels {
namespace {

struct Variant {
  const char* name;
  F32VaddFn fn;
  bool supported;
};

std::vector<Variant> Variants() {
  const CpuFeatures& host = HostCpuFeatures();
  (void)host;
  return {
      {"scalar", f32_vadd_scalar, true},
#if defined(__x86_64__)
      {"avx2", f32_vadd_avx2, host.avx2_fma},
      {"avx512", f32_vadd_avx512, host.avx512},
#elif defined(__aarch64__)
      {"neon", f32_vadd_neon, host.neon},
#endif
  };
}

// The reference: plain C++ addition, independent of every kernel file.
void Reference(std::size_t n, const float* a, const float* b, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

TEST(F32Vadd, EveryVariantMatchesReference) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1e3f, 1e3f);
  for (const Variant& v : Variants()) {
    if (!v.supported) {
      std::printf("[ SKIPPED  ] %s: not supported on this CPU\n", v.name);
      continue;
    }
    for (std::size_t n = 0; n <= 130; ++n) {
      for (std::size_t offset = 0; offset < 3; ++offset) {
        // Guard floats around the buffers catch writes past either end.
        const float guard = 12345.0f;
        std::vector<float> a(n + offset + 2), b(n + offset + 2), out(n + offset + 2, guard), want(n);
        for (auto& x : a) x = dist(rng);
        for (auto& x : b) x = dist(rng);
        if (n > 2) {
          a[offset] = std::numeric_limits<float>::quiet_NaN();
          a[offset + 1] = -0.0f;
          b[offset + 1] = -0.0f;
          a[offset + 2] = std::numeric_limits<float>::infinity();
        }
        Reference(n, a.data() + offset, b.data() + offset, want.data());
        v.fn(n, a.data() + offset, b.data() + offset, out.data() + offset);
        for (std::size_t i = 0; i < offset; ++i) ASSERT_EQ(out[i], guard) << v.name << " wrote before start";
        // (n == 0: want is empty and its data() may be null, which memcmp must not see even for 0 bytes.)
        ASSERT_TRUE(n == 0 || std::memcmp(out.data() + offset, want.data(), n * sizeof(float)) == 0)
            << v.name << " n=" << n << " offset=" << offset;
        for (std::size_t i = offset + n; i < out.size(); ++i) ASSERT_EQ(out[i], guard) << v.name << " wrote past end";
      }
    }
  }
}

TEST(F32Vadd, InPlaceAliasing) {
  for (const Variant& v : Variants()) {
    if (!v.supported) continue;
    std::vector<float> a(77), b(77);
    for (std::size_t i = 0; i < a.size(); ++i) {
      a[i] = static_cast<float>(i) * 0.5f;
      b[i] = 3.0f - static_cast<float>(i);
    }
    std::vector<float> want(a.size());
    Reference(a.size(), a.data(), b.data(), want.data());
    v.fn(a.size(), a.data(), b.data(), a.data());
    EXPECT_EQ(a, want) << v.name;
  }
}

TEST(F32Vadd, SelectionFollowsFeatures) {
  CpuFeatures none;
  EXPECT_STREQ(SelectF32Vadd(none).name, "f32_vadd_scalar");
#if defined(__x86_64__)
  CpuFeatures avx2;
  avx2.avx2_fma = true;
  EXPECT_STREQ(SelectF32Vadd(avx2).name, "f32_vadd_avx2");
  CpuFeatures avx512 = avx2;
  avx512.avx512 = true;
  EXPECT_STREQ(SelectF32Vadd(avx512).name, "f32_vadd_avx512");
#elif defined(__aarch64__)
  CpuFeatures neon;
  neon.neon = true;
  EXPECT_STREQ(SelectF32Vadd(neon).name, "f32_vadd_neon");
#endif
  // The process-wide choice is the one the active features imply.
  EXPECT_STREQ(F32Vadd().name, SelectF32Vadd(ActiveCpuFeatures()).name);
}

}  // namespace
}  // namespace coreserve::kernels
