// Every fp32 GEMM implementation the CPU can run, against the double-accumulating reference, over edge shapes:
// M and N across every remainder of the 12 x 32, 6 x 16 and 8 x 2-vector tiles, K across the 512 and 1024 K-blocks
// and every K % 4, transposes, alpha/beta, leading dimensions wider than the matrices, packed and unpacked B, and
// sub-ranges of M and N as threads use them. The SVE kernel runs at 128, 256 and 512-bit vectors (and at other
// lengths in SveAnyVectorLength).
#include "tests/kernels/gemm_test_util.h"

#include "kernels/gemm/sgemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
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
  bool sve = false;  // vector-length agnostic: run at several lengths
};

std::vector<Impl> Impls() {
  return {
      {"portable", sgemm_portable, true, false},
#if defined(__x86_64__)
      {"avx512", sgemm_12x32_avx512, HostCpuFeatures().avx512, true},
      {"avx2", sgemm_6x16_avx2, HostCpuFeatures().avx2_fma, true},
#elif defined(__aarch64__)
      {"neon", sgemm_6x16_neon, HostCpuFeatures().neon, true},
      {"sve", sgemm_8x2vl_sve, HostCpuFeatures().sve, true, true},
#endif
  };
}

// Runs body() once, or for a vector-length agnostic kernel once per vector length in `bits`.
template <typename Fn>
void ForEachLength(const Impl& impl, std::initializer_list<int> bits, Fn body) {
#if defined(__aarch64__)
  if (impl.sve) {
    testing::ForEachSveLength(bits, [&](int vl) {
      SCOPED_TRACE("SVE vector length " + std::to_string(vl) + " bits");
      body();
    });
    return;
  }
#endif
  (void)impl;
  (void)bits;
  body();
}
constexpr std::initializer_list<int> kSveLengths = {128, 256, 512};

struct Case {
  int64_t m, n, k;
  bool ta = false, tb = false;
  float alpha = 1, beta = 0;
  int64_t pad = 0;  // extra leading-dimension elements
  bool bias = false;
  SgemmActivation act = SgemmActivation::kNone;
  bool residual = false;
};

// One test problem: operands, the reference result and, per element of C, the sum of |a*b| terms that bounds the
// fp32 rounding error. Made once per case and shared by every implementation (the reference dominates the run
// time under qemu).
struct Problem {
  Case c;
  int64_t lda, ldb, ldc, ldr;
  std::vector<float> a, b, c0, bias, residual, want;
  std::vector<double> mag;

  Problem(const Case& cs, std::mt19937& rng) : c(cs) {
    std::uniform_real_distribution<float> dist(-1, 1);
    const int64_t a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
    const int64_t b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
    lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
    ldr = c.n + 2 * c.pad;
    a.resize(a_rows * lda), b.resize(b_rows * ldb), c0.resize(c.m * ldc), bias.resize(c.n), residual.resize(c.m * ldr);
    for (auto* v : {&a, &b, &c0, &bias, &residual}) {
      for (auto& x : *v) x = dist(rng);
    }
    want = c0;
    SgemmArgs p = Args();
    p.c = want.data();
    sgemm_reference(p);
    mag.resize(c.m * c.n);
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        double s = std::fabs(c.beta * c0[i * ldc + j]) + (c.bias ? std::fabs(bias[j]) : 0.0) +
                   (c.residual ? std::fabs(residual[i * ldr + j]) : 0.0);
        for (int64_t l = 0; l < c.k; ++l) {
          const float av = c.ta ? a[l * lda + i] : a[i * lda + l];
          const float bv = c.tb ? b[j * ldb + l] : b[l * ldb + j];
          s += std::fabs(static_cast<double>(c.alpha) * av * bv);
        }
        mag[i * c.n + j] = s;
      }
    }
  }

  SgemmArgs Args() const {
    SgemmArgs p;
    p.trans_a = c.ta; p.trans_b = c.tb;
    p.m = c.m; p.n = c.n; p.k = c.k; p.alpha = c.alpha; p.beta = c.beta;
    p.a = a.data(); p.lda = lda; p.b = b.data(); p.ldb = ldb; p.ldc = ldc;
    p.bias = c.bias ? bias.data() : nullptr;
    p.residual = c.residual ? residual.data() : nullptr;
    p.ldr = ldr;
    p.activation = c.act;
    return p;
  }
};

// Runs `impl` on the problem (optionally in 2 x 2 sub-range tasks and with packed B) and compares with the
// reference within 1e-5 of the sum of |a*b| terms (the fp32 rounding bound of a length-K dot product, with margin).
void Verify(const Impl& impl, const Problem& pr, bool packed, bool split) {
  const Case& c = pr.c;
  const int64_t ldc = pr.ldc;
  SgemmArgs p = pr.Args();
  std::shared_ptr<SgemmPackedB> pb;
  if (packed) {
    pb = std::make_shared<SgemmPackedB>();
    pb->k = c.k;
    pb->n = c.n;
    pb->data.resize(((c.n + 31) / 32) * c.k * 32);
    sgemm_pack_b_panel32(pr.b.data(), pr.ldb, c.tb, c.k, c.n, pb->data.data());
    p.packed_b = pb.get();
  }
  std::vector<float> got = pr.c0;
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
      const float w = pr.want[i * ldc + j], g = got[i * ldc + j];
      if (j >= c.n) {  // padding columns must be untouched
        ASSERT_EQ(g, pr.c0[i * ldc + j]) << impl.name << " wrote outside C at " << i << "," << j;
        continue;
      }
      const double mag = pr.mag[i * c.n + j];
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
  // Around the K blocks (AVX-512 1024, AVX2 and arm64 512), every K % 4 (the by-element kernels' K unroll).
  const int64_t ks[] = {1, 7, 130, 513, 1023, 1024, 1025};
  for (const Impl& impl : Impls()) {
    if (!impl.supported) std::printf("[ SKIPPED  ] %s: not supported on this CPU\n", impl.name);
  }
  for (int64_t m : dims) {
    for (int64_t n : dims) {
      const Problem pr({m, n, ks[(m + n) % 7]}, rng);  // every K meets many (M, N) pairs without the full cube
      for (const Impl& impl : Impls()) {
        if (!impl.supported) continue;
        ForEachLength(impl, kSveLengths, [&] {
          Verify(impl, pr, false, false);
          if (impl.packs) Verify(impl, pr, true, false);
        });
      }
    }
  }
}

// The SVE kernel at vector lengths other than the common ones: non-powers of two (384, 640 bits), where the
// 32-column panel is not a whole number of vector pairs, and lengths of one vector per panel or more (1024, 2048).
TEST(Sgemm, SveAnyVectorLength) {
  std::mt19937 rng(8);
  for (int64_t m : {1, 7, 8, 9, 17}) {
    for (int64_t n : {1, 5, 12, 31, 32, 33, 70}) {
      for (int64_t k : {1, 6, 300}) {
        const Problem plain({m, n, k}, rng);
        const Problem fused({m, n, k, false, false, 0.5f, 1.0f, 1, true, SgemmActivation::kGelu, true}, rng);
        for (const Impl& impl : Impls()) {
          if (!impl.supported || !impl.sve) continue;
          ForEachLength(impl, {384, 640, 1024, 2048}, [&] {
            Verify(impl, plain, true, false);
            Verify(impl, fused, false, true);
          });
        }
      }
    }
  }
}

TEST(Sgemm, TransposesAlphaBetaStridesAndSplits) {
  std::mt19937 rng(11);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}}) {
        for (int64_t m : {1, 13, 50}) {
          for (int64_t n : {1, 33, 100, 130}) {  // 130: strips of 1-2 rows over 4 whole panels at once
            const Problem pr({m, n, 300, ta, tb, alpha, beta, 3}, rng);
            for (const Impl& impl : Impls()) {
              if (!impl.supported) continue;
              if (ta && impl.packs) continue;  // transposed A runs on the portable path (see Sgemm)
              ForEachLength(impl, kSveLengths, [&] {
                Verify(impl, pr, false, false);
                Verify(impl, pr, false, true);
                if (impl.packs) Verify(impl, pr, true, true);
              });
            }
          }
        }
      }
    }
  }
}

TEST(Sgemm, EpilogueBiasAndActivations) {
  std::mt19937 rng(13);
  for (auto act : {SgemmActivation::kNone, SgemmActivation::kRelu, SgemmActivation::kGelu, SgemmActivation::kGeluTanh}) {
    for (bool bias : {false, true}) {
      for (bool residual : {false, true}) {
        for (float beta : {0.0f, 0.5f}) {
          // {2, 130, 1025} and {16, 70, 300}: the AVX-512 kernel's multi-panel strips of few rows, with two K
          // blocks and after 12 whole rows.
          for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {13, 33, 300}, {50, 100, 1025},
                                 {7, 70, 0}, {2, 130, 1025}, {16, 70, 300}}) {
            const Problem pr({m, n, k, false, false, 1.0f, beta, 2, bias, act, residual}, rng);
            for (const Impl& impl : Impls()) {
              if (!impl.supported) continue;
              ForEachLength(impl, kSveLengths, [&] {
                Verify(impl, pr, false, false);
                Verify(impl, pr, false, true);
                if (impl.packs && k > 0) Verify(impl, pr, true, true);
              });
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
  const CpuFeatures& f = ActiveCpuFeatures();
#if defined(__x86_64__)
  EXPECT_STREQ(SgemmKernelName(), f.avx512 ? "sgemm_12x32_avx512" : f.avx2_fma ? "sgemm_6x16_avx2" : "sgemm_portable");
#elif defined(__aarch64__)
  EXPECT_STREQ(SgemmKernelName(), f.sve ? "sgemm_8x2vl_sve" : f.neon ? "sgemm_6x16_neon" : "sgemm_portable");
#else
  (void)f;
  EXPECT_STREQ(SgemmKernelName(), "sgemm_portable");
#endif
}

}  // namespace
}  // namespace coreserve::kernels
