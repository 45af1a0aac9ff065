// GEMM dispatch: which kernel each precision selects for a set of CPU features (including CORESERVE_ISA caps),
// that the active choice follows ActiveCpuFeatures(), and that packed weights always run on the kernel that reads
// their layout, through the public API (SgemmPackB / SgemmAllocPackedB + SgemmPackBColumns, Sgemm,
// QgemmPackB, QgemmU8S8ToS32). ctest also runs this binary under every CORESERVE_ISA cap of the architecture, and
// on arm64 on emulated CPUs without the extensions (Graviton2-like neoverse-n1, Armv8.0 cortex-a57, a64fx) and at
// a 256-bit SVE vector length (tests/kernels/CMakeLists.txt).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm/gemm_kernels.h"
#include "tests/kernels/gemm_test_util.h"

namespace coreserve::kernels {
namespace {

std::string NameFor(GemmPrecision precision, const CpuFeatures& features) {
  const GemmKernel* k = SelectGemmKernel(precision, features);
  return k ? k->name : "sgemm_portable";
}

CpuFeatures Capped(const char* cap) {
  CpuFeatures f = HostCpuFeatures();
  EXPECT_TRUE(ApplyIsaCap(cap, &f)) << cap;
  return f;
}

// What each precision should run on `f`: the names every engineer can check against /proc/cpuinfo.
void ExpectSelection(const CpuFeatures& f) {
#if defined(__x86_64__)
  EXPECT_EQ(NameFor(GemmPrecision::kFp32, f), f.avx512     ? "sgemm_12x32_avx512"
                                              : f.avx2_fma ? "sgemm_6x16_avx2"
                                                           : "sgemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kBf16, f), f.avx512_bf16 ? "bf16gemm_12x32_avx512bf16"
                                              : f.avx512    ? "bf16gemm_12x32_avx512"
                                                            : "bf16gemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kInt8, f), f.avx512_vnni ? "qgemm_u8s8_avx512vnni"
                                              : f.avx2_fma  ? "qgemm_u8s8_avx2"
                                                            : "qgemm_u8s8_portable");
#elif defined(__aarch64__)
  EXPECT_EQ(NameFor(GemmPrecision::kFp32, f), f.sve    ? "sgemm_8x2vl_sve"
                                              : f.neon ? "sgemm_6x16_neon"
                                                       : "sgemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kBf16, f), f.bf16   ? "bf16gemm_8x8_bfmmla"
                                              : f.neon ? "bf16gemm_6x16_neon"
                                                       : "bf16gemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kInt8, f), f.i8mm      ? "qgemm_u8s8_8x8_usmmla"
                                              : f.dotprod ? "qgemm_u8s8_6x16_sdot"
                                                          : "qgemm_u8s8_portable");
#else
  EXPECT_EQ(NameFor(GemmPrecision::kFp32, f), "sgemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kBf16, f), "bf16gemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kInt8, f), "qgemm_u8s8_portable");
#endif
}

TEST(SgemmDispatch, SelectionFollowsFeaturesAndCaps) {
  ExpectSelection(HostCpuFeatures());
  ExpectSelection(CpuFeatures{});
  const CpuFeatures scalar = Capped("scalar");
  EXPECT_EQ(NameFor(GemmPrecision::kBf16, scalar), "bf16gemm_portable");
  EXPECT_EQ(NameFor(GemmPrecision::kInt8, scalar), "qgemm_u8s8_portable");
  EXPECT_EQ(SelectGemmKernel(GemmPrecision::kFp32, scalar), nullptr);
#if defined(__x86_64__)
  for (const char* cap : {"avx2", "avx512", "avx512_vnni", "native"}) ExpectSelection(Capped(cap));
  // CORESERVE_ISA=avx512 takes bf16 and VNNI away: bf16 runs on fp32 FMAs over the same packed layout, int8
  // on AVX2; =avx2 takes AVX-512 away: fp32 runs the AVX2 kernel on the same packed layout.
  if (HostCpuFeatures().avx512) {
    EXPECT_EQ(NameFor(GemmPrecision::kBf16, Capped("avx512")), "bf16gemm_12x32_avx512");
    EXPECT_EQ(SelectGemmKernel(GemmPrecision::kBf16, Capped("avx512"))->format, PackedFormat::kBf16Pairs32);
    EXPECT_EQ(NameFor(GemmPrecision::kInt8, Capped("avx512")), "qgemm_u8s8_avx2");
  }
  if (HostCpuFeatures().avx2_fma) {
    EXPECT_EQ(NameFor(GemmPrecision::kFp32, Capped("avx2")), "sgemm_6x16_avx2");
    EXPECT_EQ(SelectGemmKernel(GemmPrecision::kFp32, Capped("avx2"))->format, PackedFormat::kPanel32);
  }
#elif defined(__aarch64__)
  for (const char* cap : {"neon", "dotprod", "sve", "native"}) ExpectSelection(Capped(cap));
  // Every arm64 fallback is reachable by a cap: "sve" leaves SVE fp32 with SDOT int8 and NEON bf16, "dotprod"
  // (Graviton2) NEON fp32 and bf16 with SDOT int8, "neon" (Armv8.0) NEON fp32 and bf16 with the portable int8.
  const CpuFeatures& host = HostCpuFeatures();
  if (host.sve) {
    EXPECT_EQ(NameFor(GemmPrecision::kFp32, Capped("sve")), "sgemm_8x2vl_sve");
  }
  if (host.dotprod) {
    EXPECT_EQ(NameFor(GemmPrecision::kInt8, Capped("sve")), "qgemm_u8s8_6x16_sdot");
    EXPECT_EQ(NameFor(GemmPrecision::kInt8, Capped("dotprod")), "qgemm_u8s8_6x16_sdot");
  }
  if (host.neon) {
    EXPECT_EQ(NameFor(GemmPrecision::kFp32, Capped("dotprod")), "sgemm_6x16_neon");
    EXPECT_EQ(NameFor(GemmPrecision::kFp32, Capped("neon")), "sgemm_6x16_neon");
    for (const char* cap : {"neon", "dotprod", "sve"}) {
      EXPECT_EQ(NameFor(GemmPrecision::kBf16, Capped(cap)), "bf16gemm_6x16_neon") << cap;
      EXPECT_EQ(SelectGemmKernel(GemmPrecision::kBf16, Capped(cap))->format, PackedFormat::kBf16Panel32) << cap;
    }
  }
  EXPECT_EQ(NameFor(GemmPrecision::kInt8, Capped("neon")), "qgemm_u8s8_portable");
  // SVE and NEON read the same fp32 layout, SDOT the x86 int8 one: weights packed for one run on the other.
  if (host.neon) {
    EXPECT_STREQ(GemmKernelForFormat(PackedFormat::kPanel32, Capped("neon"))->name, "sgemm_6x16_neon");
  }
  if (host.dotprod) {
    EXPECT_STREQ(GemmKernelForFormat(PackedFormat::kInt8Quad32, Capped("dotprod"))->name, "qgemm_u8s8_6x16_sdot");
  }
  // The NEON bf16 kernel reads the portable kernel's layout, and takes it over wherever NEON is.
  if (host.neon) {
    EXPECT_STREQ(GemmKernelForFormat(PackedFormat::kBf16Panel32, Capped("neon"))->name, "bf16gemm_6x16_neon");
  }
  EXPECT_STREQ(GemmKernelForFormat(PackedFormat::kBf16Panel32, Capped("scalar"))->name, "bf16gemm_portable");
  // A CPU without the extension has no kernel for its format, so such weights are never packed there.
  EXPECT_EQ(GemmKernelForFormat(PackedFormat::kInt8Octs32, Capped("sve")), nullptr);
  EXPECT_EQ(GemmKernelForFormat(PackedFormat::kBf16Quads32, Capped("sve")), nullptr);
#endif
}

TEST(SgemmDispatch, ActiveKernelsFollowActiveFeatures) {
  const CpuFeatures& f = ActiveCpuFeatures();
  for (GemmPrecision p : {GemmPrecision::kFp32, GemmPrecision::kBf16, GemmPrecision::kInt8}) {
    EXPECT_EQ(SgemmKernelName(p), NameFor(p, f));
    EXPECT_EQ(SgemmUsesPackedB(p), SelectGemmKernel(p, f) != nullptr);
  }
  EXPECT_STREQ(SgemmKernelName(), SgemmKernelName(GemmPrecision::kFp32));
  std::printf("[ KERNELS  ] %s, %s, %s on %s\n", SgemmKernelName(), SgemmKernelName(GemmPrecision::kBf16),
              SgemmKernelName(GemmPrecision::kInt8), DescribeCpuFeatures(f).c_str());
  EXPECT_TRUE(SgemmUsesPackedB(GemmPrecision::kBf16));
  EXPECT_TRUE(SgemmUsesPackedB(GemmPrecision::kInt8));
  if (const char* cap = std::getenv("CORESERVE_ISA"); cap != nullptr && std::string(cap) == "scalar") {
    EXPECT_STREQ(SgemmKernelName(GemmPrecision::kBf16), "bf16gemm_portable");
    EXPECT_STREQ(SgemmKernelName(GemmPrecision::kInt8), "qgemm_u8s8_portable");
  }
}

// Every format is read by exactly the kernels listed for it, and every kernel's format is one the packers make.
TEST(SgemmDispatch, RecordsTieKernelsToFormats) {
  const CpuFeatures& f = HostCpuFeatures();
  for (GemmPrecision p : {GemmPrecision::kFp32, GemmPrecision::kBf16, GemmPrecision::kInt8}) {
    const GemmKernel* k = SelectGemmKernel(p, f);
    if (k == nullptr) continue;
    EXPECT_EQ(k->precision, p);
    EXPECT_EQ(GemmKernelForFormat(k->format, f), k) << k->name;
    EXPECT_EQ(p == GemmPrecision::kInt8, k->qgemm != nullptr) << k->name;
    EXPECT_EQ(p != GemmPrecision::kInt8, k->gemm != nullptr) << k->name;
  }
}

// The public API end to end in each precision on the active kernels (whatever CORESERVE_ISA selected): packing
// in column ranges as the runtime does, Sgemm on sub-ranges, bias + residual + Relu (fused by the kernel or folded
// into C by Sgemm), results within each precision's bound of fp32.
TEST(SgemmDispatch, PublicApiEveryPrecision) {
  std::mt19937 rng(5);
  const int64_t m = 30, n = 80, k = 200;
  const std::vector<float> a = testing::RandomFloats(m * k, rng), b = testing::RandomFloats(k * n, rng);
  const std::vector<float> bias = testing::RandomFloats(n, rng), residual = testing::RandomFloats(m * (n + 3), rng);
  SgemmArgs p;
  p.m = m; p.n = n; p.k = k;
  p.a = a.data(); p.lda = k; p.b = b.data(); p.ldb = n; p.ldc = n;
  p.bias = bias.data();
  p.residual = residual.data();
  p.ldr = n + 3;
  p.activation = SgemmActivation::kRelu;
  std::vector<float> exact(m * n);
  p.c = exact.data();
  sgemm_reference(p);
  for (GemmPrecision precision : {GemmPrecision::kFp32, GemmPrecision::kBf16, GemmPrecision::kInt8}) {
    if (!SgemmUsesPackedB(precision)) continue;
    // Two ways to pack: whole, or allocated then filled in column ranges.
    auto whole = SgemmPackB(b.data(), n, false, k, n, precision);
    auto ranges = SgemmAllocPackedB(k, n, precision);
    SgemmPackBColumns(b.data(), n, false, 32, n, ranges.get());
    SgemmPackBColumns(b.data(), n, false, 0, 32, ranges.get());
    EXPECT_EQ(whole->precision, precision);
    EXPECT_EQ(whole->format, SelectGemmKernel(precision, ActiveCpuFeatures())->format);
    for (const SgemmPackedB* packed : {whole.get(), static_cast<const SgemmPackedB*>(ranges.get())}) {
      SgemmArgs q = p;
      q.b = nullptr;
      q.packed_b = packed;
      std::vector<float> got(m * n);
      q.c = got.data();
      testing::RunSplit(true, m, n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { Sgemm(q, m0, m1, n0, n1); });
      const double tol = precision == GemmPrecision::kFp32 ? 1e-5 : precision == GemmPrecision::kBf16 ? 1e-2 : 3e-2;
      for (int64_t i = 0; i < m * n; ++i) {
        ASSERT_NEAR(got[i], exact[i], tol * std::sqrt(double(k))) << SgemmKernelName(precision) << " at " << i;
      }
    }
  }
}

// Indirect A (SgemmArgs::a_rows) as a convolution uses it: the rows of a 3x3 window over an H x W x C image with
// padding taps pointing at zeros, on the active kernels of every precision (read in place by the kernels that
// can, gathered by Sgemm for the others). Against the reference on the same table for fp32, and against Sgemm on
// the explicitly gathered A for every precision. Channel counts span one K block of several taps, taps longer
// than a K block (1100 > 1024), and row counts that are not whole micro-tiles.
TEST(SgemmDispatch, IndirectAEveryPrecision) {
  std::mt19937 rng(11);
  for (const int64_t c : {int64_t{5}, int64_t{64}, int64_t{1100}}) {
    const int64_t h = 5, w = 7, taps = 9, k = taps * c, n = 40, m = h * w;
    const std::vector<float> image = testing::RandomFloats(h * w * c, rng), b = testing::RandomFloats(k * n, rng);
    const std::vector<float> zeros(c, 0.0f);
    const std::vector<float> bias = testing::RandomFloats(n, rng), residual = testing::RandomFloats(m * n, rng);
    std::vector<const float*> rows(m * taps);
    std::vector<float> gathered(m * k);
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        for (int64_t t = 0; t < taps; ++t) {
          const int64_t iy = y + t / 3 - 1, ix = x + t % 3 - 1;
          const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
          const float* run = inside ? image.data() + (iy * w + ix) * c : zeros.data();
          rows[(y * w + x) * taps + t] = run;
          std::copy(run, run + c, gathered.begin() + (y * w + x) * k + t * c);
        }
      }
    }
    SgemmArgs p;
    p.m = m; p.n = n; p.k = k;
    p.a_rows = rows.data(); p.a_taps = taps;
    p.b = b.data(); p.ldb = n; p.ldc = n;
    p.bias = bias.data();
    p.residual = residual.data();
    p.ldr = n;
    p.activation = SgemmActivation::kRelu;
    std::vector<float> exact(m * n);
    p.c = exact.data();
    sgemm_reference(p);
    for (GemmPrecision precision : {GemmPrecision::kFp32, GemmPrecision::kBf16, GemmPrecision::kInt8}) {
      if (!SgemmUsesPackedB(precision)) continue;
      auto packed = SgemmPackB(b.data(), n, false, k, n, precision);
      SgemmArgs q = p;
      q.packed_b = packed.get();
      std::vector<float> got(m * n), direct(m * n);
      q.c = got.data();
      testing::RunSplit(true, m, n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { Sgemm(q, m0, m1, n0, n1); });
      SgemmArgs g = q;
      g.a_rows = nullptr;
      g.a = gathered.data(); g.lda = k;
      g.c = direct.data();
      Sgemm(g, 0, m, 0, n);
      const double tol = precision == GemmPrecision::kFp32 ? 1e-5 : precision == GemmPrecision::kBf16 ? 1e-2 : 3e-2;
      for (int64_t i = 0; i < m * n; ++i) {
        ASSERT_NEAR(got[i], direct[i], 1e-5 * std::sqrt(double(k))) << SgemmKernelName(precision) << " c=" << c << " at " << i;
        ASSERT_NEAR(got[i], exact[i], tol * std::sqrt(double(k))) << SgemmKernelName(precision) << " c=" << c << " at " << i;
      }
    }
  }
}

TEST(SgemmDispatch, PublicIntegerApi) {
  const int64_t m = 5, n = 40, k = 9;
  std::vector<uint8_t> a(m * k), b(k * n);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 37);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 91);
  const uint8_t b_zp = 131;
  auto packed = QgemmPackB(b.data(), n, false, k, n, &b_zp, false);
  EXPECT_EQ(packed->format, SelectGemmKernel(GemmPrecision::kInt8, ActiveCpuFeatures())->format);
  QgemmArgs q;
  q.m = m; q.n = n; q.k = k;
  q.a = a.data(); q.lda = k; q.a_zero_point = 3;
  q.packed_b = packed.get();
  std::vector<int32_t> c(m * n);
  q.c = c.data(); q.ldc = n;
  QgemmU8S8ToS32(q, 0, m, 0, 32);
  QgemmU8S8ToS32(q, 0, m, 32, n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int32_t want = 0;
      for (int64_t l = 0; l < k; ++l) want += (a[i * k + l] - 3) * (b[l * n + j] - 131);
      ASSERT_EQ(c[i * n + j], want) << i << "," << j;
    }
  }
}

}  // namespace
}  // namespace coreserve::kernels
