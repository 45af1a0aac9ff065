// Every fp32 GEMM implementation the CPU can run, against the double-accumulating reference, over edge shapes:
// M and N across every remainder of the 12 x 32 and 6 x 16 tiles, K across the 512 and 1024 K-blocks, transposes, alpha/beta, leading
// dimensions wider than the matrices, packed and unpacked B, and sub-ranges of M and N as threads use them.
#include "kernels/gemm/sgemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/cpu_features.h"

namespace coreserve::kernels {
namespace {

using Fn = void (*)(const SgemmArgs&, int64_t, int64_t, int64_t, int64_t);

struct Impl {
  const char* name;
  Fn fn;
  bool supported;
  bool packs;
};

std::vector<Impl> Impls() {
  return {
      {"portable", sgemm_portable, true, false},
#if defined(__x86_64__)
      {"avx512", sgemm_12x32_avx512, HostCpuFeatures().avx512, true},
      {"avx2", sgemm_6x16_avx2, HostCpuFeatures().avx2_fma, true},
#endif
  };
}

struct Case {
  int64_t m, n, k;
  bool ta = false, tb = false;
  float alpha = 1, beta = 0;
  int64_t pad = 0;  // extra leading-dimension elements
  bool bias = false;
  SgemmActivation act = SgemmActivation::kNone;
  bool residual = false;
};

// Runs `impl` on case `c` (optionally in 2 x 2 sub-range tasks and with packed B) and compares with the reference
// within 1e-5 of the sum of |a*b| terms (the fp32 rounding bound of a length-K dot product, with margin).
void Check(const Impl& impl, const Case& c, bool packed, bool split, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1, 1);
  const int64_t a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
  const int64_t b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
  const int64_t lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
  std::vector<float> a(a_rows * lda), b(b_rows * ldb), c0(c.m * ldc);
  for (auto& v : a) v = dist(rng);
  for (auto& v : b) v = dist(rng);
  for (auto& v : c0) v = dist(rng);
  std::vector<float> want = c0, got = c0;
  std::vector<float> bias(c.n);
  for (auto& v : bias) v = dist(rng);
  const int64_t ldr = c.n + 2 * c.pad;
  std::vector<float> residual(c.m * ldr);
  for (auto& v : residual) v = dist(rng);

  SgemmArgs p;
  p.trans_a = c.ta; p.trans_b = c.tb;
  p.m = c.m; p.n = c.n; p.k = c.k; p.alpha = c.alpha; p.beta = c.beta;
  p.a = a.data(); p.lda = lda; p.b = b.data(); p.ldb = ldb; p.ldc = ldc;
  p.bias = c.bias ? bias.data() : nullptr;
  p.residual = c.residual ? residual.data() : nullptr;
  p.ldr = ldr;
  p.activation = c.act;
  p.c = want.data();
  sgemm_reference(p);

  std::shared_ptr<SgemmPackedB> pb;
#if defined(__x86_64__)
  if (packed) {
    pb = std::make_shared<SgemmPackedB>();
    pb->k = c.k;
    pb->n = c.n;
    pb->data.resize(((c.n + 31) / 32) * c.k * 32);
    sgemm_pack_b_panel32(b.data(), ldb, c.tb, c.k, c.n, pb->data.data());
    p.packed_b = pb.get();
  }
#endif
  p.c = got.data();
  if (split) {
    const int64_t mm = c.m / 2, nn = (c.n / 2) / 32 * 32;
    impl.fn(p, 0, mm, 0, nn);
    impl.fn(p, mm, c.m, 0, nn);
    impl.fn(p, 0, mm, nn, c.n);
    impl.fn(p, mm, c.m, nn, c.n);
  } else {
    impl.fn(p, 0, c.m, 0, c.n);
  }
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float w = want[i * ldc + j], g = got[i * ldc + j];
      if (j >= c.n) {  // padding columns must be untouched
        ASSERT_EQ(g, c0[i * ldc + j]) << impl.name << " wrote outside C at " << i << "," << j;
        continue;
      }
      double mag = std::fabs(c.beta * c0[i * ldc + j]) + (c.bias ? std::fabs(bias[j]) : 0.0) +
                   (c.residual ? std::fabs(residual[i * ldr + j]) : 0.0);
      for (int64_t l = 0; l < c.k; ++l) {
        const float av = c.ta ? a[l * lda + i] : a[i * lda + l];
        const float bv = c.tb ? b[j * ldb + l] : b[l * ldb + j];
        mag += std::fabs(static_cast<double>(c.alpha) * av * bv);
      }
      // GELU's slope is at most ~1.13 and its vector form adds <= 3e-7 |y| (kernels/math/f32_math.h).
      const bool gelu = c.act == SgemmActivation::kGelu || c.act == SgemmActivation::kGeluTanh;
      const double act_err = gelu ? 0.2 * 1e-5 * mag + 4e-7 * std::fabs(w) + 2e-7 : 0.0;
      ASSERT_LE(std::fabs(g - w), 1e-5 * mag + act_err + 1e-30)
          << impl.name << " m=" << c.m << " n=" << c.n << " k=" << c.k << " ta=" << c.ta << " tb=" << c.tb
          << " packed=" << packed << " split=" << split << " at " << i << "," << j;
    }
  }
}

TEST(Sgemm, EdgeShapesAgainstReference) {
  std::mt19937 rng(7);
  const int64_t dims[] = {1, 2, 3, 5, 11, 12, 13, 16, 24, 31, 32, 33, 47, 63, 64, 65, 96, 127, 128, 130};
  const int64_t ks[] = {1, 7, 130, 513, 1023, 1024, 1025};  // around the K blocks (AVX-512 1024, AVX2 512)
  for (const Impl& impl : Impls()) {
    if (!impl.supported) {
      std::printf("[ SKIPPED  ] %s: not supported on this CPU\n", impl.name);
      continue;
    }
    for (int64_t m : dims) {
      for (int64_t n : dims) {
        const int64_t k = ks[(m + n) % 7];  // every K meets many (M, N) pairs without the full cube
        Check(impl, {m, n, k}, false, false, rng);
        if (impl.packs) Check(impl, {m, n, k}, true, false, rng);
      }
    }
  }
}

TEST(Sgemm, TransposesAlphaBetaStridesAndSplits) {
  std::mt19937 rng(11);
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}}) {
          for (int64_t m : {1, 13, 50}) {
            for (int64_t n : {1, 33, 100}) {
              Case c{m, n, 300, ta, tb, alpha, beta, 3};
              if (ta && impl.packs) continue;  // transposed A runs on the portable path (see Sgemm)
              Check(impl, c, false, false, rng);
              Check(impl, c, false, true, rng);
              if (impl.packs) Check(impl, c, true, true, rng);
            }
          }
        }
      }
    }
  }
}

TEST(Sgemm, EpilogueBiasAndActivations) {
  std::mt19937 rng(13);
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    for (auto act : {SgemmActivation::kNone, SgemmActivation::kRelu, SgemmActivation::kGelu, SgemmActivation::kGeluTanh}) {
      for (bool bias : {false, true}) {
        for (bool residual : {false, true}) {
          for (float beta : {0.0f, 0.5f}) {
            for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {13, 33, 300}, {50, 100, 1025},
                                   {7, 70, 0}}) {
              Case c{m, n, k, false, false, 1.0f, beta, 2, bias, act, residual};
              Check(impl, c, false, false, rng);
              Check(impl, c, false, true, rng);
              if (impl.packs && k > 0) Check(impl, c, true, true, rng);
            }
          }
        }
      }
    }
  }
}

// The vector epilogues' GELU over the whole range, where the Exp behind erf and tanh saturates (K = 1, B = 1:
// C = act(a) exactly).
TEST(Sgemm, GeluEpilogueOverWideRange) {
  const int64_t m = 1, n = 400;
  std::vector<float> a(1, 1.0f), b(n), c(n), want(n);
  for (int64_t j = 0; j < n; ++j) b[j] = -100.0f + 200.0f * static_cast<float>(j) / (n - 1) + 0.01f;
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    for (auto act : {SgemmActivation::kGelu, SgemmActivation::kGeluTanh}) {
      SgemmArgs p;
      p.m = m; p.n = n; p.k = 1;
      p.a = a.data(); p.lda = 1; p.b = b.data(); p.ldb = n; p.ldc = n;
      p.activation = act;
      p.c = want.data();
      sgemm_reference(p);
      p.c = c.data();
      impl.fn(p, 0, m, 0, n);
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_NEAR(c[j], want[j], 4e-7 * std::fabs(b[j]) + 2e-7) << impl.name << " at x=" << b[j];
      }
    }
  }
}

TEST(Sgemm, BetaZeroIgnoresNanInC) {
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    std::vector<float> a(4 * 5, 1.0f), b(5 * 40, 2.0f), c(4 * 40, std::nanf(""));
    SgemmArgs p;
    p.m = 4; p.n = 40; p.k = 5;
    p.a = a.data(); p.lda = 5; p.b = b.data(); p.ldb = 40; p.c = c.data(); p.ldc = 40;
    impl.fn(p, 0, 4, 0, 40);
    for (float v : c) ASSERT_EQ(v, 10.0f) << impl.name;
  }
}

TEST(Sgemm, DispatchMatchesFeatures) {
#if defined(__x86_64__)
  const CpuFeatures& f = ActiveCpuFeatures();
  EXPECT_STREQ(SgemmKernelName(), f.avx512 ? "sgemm_12x32_avx512" : f.avx2_fma ? "sgemm_6x16_avx2" : "sgemm_portable");
#else
  EXPECT_STREQ(SgemmKernelName(), "sgemm_portable");
#endif
}

}  // namespace
}  // namespace coreserve::kernels
