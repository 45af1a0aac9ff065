// Every bf16 GEMM implementation the CPU can run, against the double-accumulating reference on bf16-rounded A and
// B (so the bound is the fp32 accumulation bound of sgemm_test), over edge shapes: M and N across every remainder
// of the 12 x 32, 8 x 8 and 6 x 16 tiles and the 96-row A block, K across the 1024 K block and every K % 4
// (zero-padded pairs and quads, the row-by-row K tail of kBf16Panel32), strided
// A and C with padding left untouched, alpha/beta, every epilogue, transposed B at pack time, and sub-ranges of
// M and N as threads use them. Plus: the result is within bf16 rounding of the true fp32 product.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm/gemm_kernels.h"
#include "tests/kernels/gemm_test_util.h"

namespace coreserve::kernels {
namespace {

using testing::RandomFloats;
using testing::RoundedToBf16;

struct Impl {
  const char* name;
  GemmFn fn;
  PackedFormat format;
  bool supported;
};

std::vector<Impl> Impls() {
  return {
      {"bf16gemm_portable", bf16gemm_portable, PackedFormat::kBf16Panel32, true},
#if defined(__x86_64__)
      {"bf16gemm_12x32_avx512bf16", bf16gemm_12x32_avx512bf16, PackedFormat::kBf16Pairs32,
       HostCpuFeatures().avx512_bf16},
      {"bf16gemm_12x32_avx512", bf16gemm_12x32_avx512, PackedFormat::kBf16Pairs32, HostCpuFeatures().avx512},
#elif defined(__aarch64__)
      {"bf16gemm_8x8_bfmmla", bf16gemm_8x8_bfmmla, PackedFormat::kBf16Quads32, HostCpuFeatures().bf16},
      {"bf16gemm_6x16_neon", bf16gemm_6x16_neon, PackedFormat::kBf16Panel32, HostCpuFeatures().neon},
#endif
  };
}

struct Case {
  int64_t m, n, k;
  bool tb = false;
  float alpha = 1, beta = 0;
  int64_t pad = 0;  // extra leading-dimension elements of A, B and C
  bool bias = false;
  SgemmActivation act = SgemmActivation::kNone;
  bool residual = false;
};

// Runs every supported implementation on `c` (whole and split into 2 x 2 tasks) and compares with the reference
// on rounded operands within 1e-5 of sum |a*b| (the fp32 accumulation bound, with margin).
void Check(const Case& c, std::mt19937& rng) {
  const int64_t lda = c.k + c.pad, b_rows = c.tb ? c.n : c.k, ldb = (c.tb ? c.k : c.n) + c.pad, ldc = c.n + c.pad;
  const std::vector<float> a = RandomFloats(c.m * lda, rng), b = RandomFloats(b_rows * ldb, rng);
  const std::vector<float> c0 = RandomFloats(c.m * ldc, rng), bias = RandomFloats(c.n, rng);
  const int64_t ldr = c.n + 2 * c.pad;
  const std::vector<float> residual = RandomFloats(c.m * ldr, rng);
  const std::vector<float> ar = RoundedToBf16(a), br = RoundedToBf16(b);

  SgemmArgs p;
  p.trans_b = c.tb;
  p.m = c.m; p.n = c.n; p.k = c.k; p.alpha = c.alpha; p.beta = c.beta;
  p.a = ar.data(); p.lda = lda; p.b = br.data(); p.ldb = ldb; p.ldc = ldc;
  p.bias = c.bias ? bias.data() : nullptr;
  p.residual = c.residual ? residual.data() : nullptr;
  p.ldr = ldr;
  p.activation = c.act;
  std::vector<float> want = c0;
  p.c = want.data();
  sgemm_reference(p);
  std::vector<double> mag(c.m * c.n);
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double s = std::fabs(c.beta * c0[i * ldc + j]) + (c.bias ? std::fabs(bias[j]) : 0.0) +
                 (c.residual ? std::fabs(residual[i * ldr + j]) : 0.0);
      for (int64_t l = 0; l < c.k; ++l) {
        s += std::fabs(double{c.alpha} * ar[i * lda + l] * (c.tb ? br[j * ldb + l] : br[l * ldb + j]));
      }
      mag[i * c.n + j] = s;
    }
  }

  p.trans_b = false;
  p.a = a.data();  // the kernels round A themselves
  p.b = nullptr;
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    auto packed = testing::PackInTwo(impl.format, b.data(), ldb, c.tb, c.k, c.n);
    p.packed_b = packed.get();
    for (bool split : {false, true}) {
      std::vector<float> got = c0;
      p.c = got.data();
      testing::RunSplit(split, c.m, c.n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { impl.fn(p, m0, m1, n0, n1); });
      for (int64_t i = 0; i < c.m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
          const float w = want[i * ldc + j], g = got[i * ldc + j];
          if (j >= c.n) {
            ASSERT_EQ(g, c0[i * ldc + j]) << impl.name << " wrote outside C at " << i << "," << j;
            continue;
          }
          const double err = 1e-5 * mag[i * c.n + j];
          ASSERT_LE(std::fabs(g - w), err + testing::ActivationSlack(c.act, err, w) + 1e-30)
              << impl.name << " m=" << c.m << " n=" << c.n << " k=" << c.k << " tb=" << c.tb << " alpha=" << c.alpha
              << " beta=" << c.beta << " split=" << split << " at " << i << "," << j;
        }
      }
    }
  }
}

TEST(Bf16gemm, ImplementationsUnderTest) {
  for (const Impl& impl : Impls()) {
    if (!impl.supported) std::printf("[ SKIPPED  ] %s: not supported on this CPU\n", impl.name);
  }
}

// Packing rounds every element exactly as FloatToBfloat16 (ties to even, denormals kept, NaN quiet) into the
// format's layout, with zero padding, whichever packer (vector or scalar, B or B^T) runs.
TEST(Bf16gemm, PackedBitsMatchScalarRounding) {
  std::mt19937 rng(5);
  const float specials[] = {0.0f, -0.0f, 1.0f, 1.00390625f /* a tie */, 1.01171875f /* a tie, odd */, 1e-40f,
                            -3e-39f, 3.4e38f, std::numeric_limits<float>::infinity(), std::nanf(""), -65504.0f};
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    for (bool tb : {false, true}) {
      for (auto [k, n] : {std::pair<int64_t, int64_t>{1, 1}, {7, 33}, {64, 70}}) {
        const int64_t ldb = (tb ? k : n) + 1;
        std::vector<float> b = RandomFloats((tb ? n : k) * ldb, rng, -100.0f, 100.0f);
        for (std::size_t i = 0; i < b.size(); i += 3) b[i] = specials[(i / 3) % std::size(specials)];
        auto packed = testing::PackInTwo(impl.format, b.data(), ldb, tb, k, n);
        std::vector<bool> real(packed->bf16.size(), false);
        for (int64_t l = 0; l < k; ++l) {
          for (int64_t j = 0; j < n; ++j) {
            const int64_t at = PackedOffset(impl.format, k, l, j);
            real[at] = true;
            const float v = tb ? b[j * ldb + l] : b[l * ldb + j];
            ASSERT_EQ(packed->bf16[at], FloatToBfloat16(v)) << impl.name << " tb=" << tb << " at " << l << "," << j;
          }
        }
        for (std::size_t i = 0; i < real.size(); ++i) {
          if (!real[i]) {
            ASSERT_EQ(packed->bf16[i], 0) << impl.name << " padding at " << i;
          }
        }
      }
    }
  }
}

TEST(Bf16gemm, EdgeShapesAgainstReference) {
  std::mt19937 rng(7);
  const int64_t dims[] = {1, 2, 3, 5, 11, 12, 13, 16, 24, 31, 32, 33, 47, 63, 64, 65, 96, 127, 128, 130};
  const int64_t ks[] = {1, 2, 7, 130, 257, 1023, 1025};  // every K % 4: zero-padded pairs and quads
  for (int64_t m : dims) {
    for (int64_t n : dims) Check({m, n, ks[(m + n) % 7]}, rng);
  }
}

TEST(Bf16gemm, KBlocksRowBlocksAndLargeM) {
  std::mt19937 rng(9);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{13, 40, 1024}, {5, 33, 2048}, {3, 64, 2051},
                         {200, 33, 65}, {97, 70, 300}}) {
    Check({m, n, k}, rng);
  }
}

TEST(Bf16gemm, TransposedBAlphaBetaStridesAndSplits) {
  std::mt19937 rng(11);
  for (bool tb : {false, true}) {
    for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}}) {
      for (int64_t m : {1, 13, 50}) {
        for (int64_t n : {1, 33, 100}) Check({m, n, 300, tb, alpha, beta, 3}, rng);
      }
    }
  }
}

TEST(Bf16gemm, EpilogueBiasAndActivations) {
  std::mt19937 rng(13);
  for (auto act : {SgemmActivation::kNone, SgemmActivation::kRelu, SgemmActivation::kGelu, SgemmActivation::kGeluTanh}) {
    for (bool bias : {false, true}) {
      for (bool residual : {false, true}) {
        for (float beta : {0.0f, 0.5f}) {
          for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {13, 33, 300}, {50, 100, 1025},
                                 {7, 70, 0}}) {
            Check({m, n, k, false, 1.0f, beta, 2, bias, act, residual}, rng);
          }
        }
      }
    }
  }
}

TEST(Bf16gemm, BetaZeroIgnoresNanInC) {
  std::vector<float> a(4 * 5, 1.0f), b(5 * 40, 2.0f), c(4 * 40, std::nanf(""));
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    auto packed = testing::PackInTwo(impl.format, b.data(), 40, false, 5, 40);
    SgemmArgs p;
    p.m = 4; p.n = 40; p.k = 5;
    p.a = a.data(); p.lda = 5; p.packed_b = packed.get(); p.c = c.data(); p.ldc = 40;
    impl.fn(p, 0, 4, 0, 40);
    for (float v : c) ASSERT_EQ(v, 10.0f) << impl.name;
  }
}

// The semantics are the intended ones: against the exact product of the unrounded fp32 operands, the error is
// that of rounding each operand to bf16 (relative 2^-9 each, so 2^-8 per product) plus fp32 accumulation.
TEST(Bf16gemm, CloseToTrueFp32Product) {
  std::mt19937 rng(17);
  const int64_t m = 40, n = 96, k = 768;
  const std::vector<float> a = RandomFloats(m * k, rng), b = RandomFloats(k * n, rng);
  SgemmArgs p;
  p.m = m; p.n = n; p.k = k;
  p.a = a.data(); p.lda = k; p.b = b.data(); p.ldb = n; p.ldc = n;
  std::vector<float> exact(m * n);
  p.c = exact.data();
  sgemm_reference(p);
  p.b = nullptr;
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    auto packed = testing::PackInTwo(impl.format, b.data(), n, false, k, n);
    p.packed_b = packed.get();
    std::vector<float> got(m * n);
    p.c = got.data();
    impl.fn(p, 0, m, 0, n);
    double worst = 0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double mag = 0;
        for (int64_t l = 0; l < k; ++l) mag += std::fabs(double{a[i * k + l]} * b[l * n + j]);
        const double rel = std::fabs(got[i * n + j] - exact[i * n + j]) / mag;
        ASSERT_LE(rel, std::ldexp(1.0, -8) + 1e-5) << impl.name << " at " << i << "," << j;
        worst = std::max(worst, rel);
      }
    }
    // And it is really bf16, not fp32 in disguise: random operands lose well over fp32's precision somewhere.
    EXPECT_GT(worst, 1e-5) << impl.name;
  }
}

}  // namespace
}  // namespace coreserve::kernels
