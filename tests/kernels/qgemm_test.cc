// Every int8 GEMM implementation the CPU can run, against a scalar reference written from the contract in
// kernels/gemm/sgemm.h and qgemm.h:
//   - packing: per-column scales, s8 values and column sums exactly as the reference quantizes them;
//   - the integer part EXACTLY (fp32 A quantized per row, int32 output), over edge shapes;
//   - the fp32 output (alpha, beta, bias, every activation, strides, splits) against the reference applying the
//     identical dequantization formula, within 1e-5 relative, and bit-identical however M and N are split;
//   - MatMulInteger's exact int32 GEMM with u8/s8 A and B and zero points per tensor or per column;
//   - closeness to the true fp32 product within the quantization-step bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm/gemm_kernels.h"
#include "tests/kernels/gemm_test_util.h"

namespace coreserve::kernels {
namespace {

using testing::RandomFloats;

struct Impl {
  const char* name;
  QgemmFn fn;
  PackedFormat format;
  bool supported;
};

std::vector<Impl> Impls() {
  return {
      {"qgemm_u8s8_portable", qgemm_u8s8_portable, PackedFormat::kInt8Panel32, true},
#if defined(__x86_64__)
      {"qgemm_u8s8_avx2", qgemm_u8s8_avx2, PackedFormat::kInt8Quad32, HostCpuFeatures().avx2_fma},
      {"qgemm_u8s8_avx512vnni", qgemm_u8s8_avx512vnni, PackedFormat::kInt8Quad32, HostCpuFeatures().avx512_vnni},
#elif defined(__aarch64__)
      {"qgemm_u8s8_6x16_sdot", qgemm_u8s8_6x16_sdot, PackedFormat::kInt8Quad32, HostCpuFeatures().dotprod},
      {"qgemm_u8s8_8x8_usmmla", qgemm_u8s8_8x8_usmmla, PackedFormat::kInt8Octs32, HostCpuFeatures().i8mm},
#endif
  };
}

TEST(Qgemm, ImplementationsUnderTest) {
  for (const Impl& impl : Impls()) {
    if (!impl.supported) std::printf("[ SKIPPED  ] %s: not supported on this CPU\n", impl.name);
  }
}

TEST(Qgemm, PackedWeightsMatchReferenceQuantization) {
  std::mt19937 rng(3);
  for (PackedFormat format : {PackedFormat::kInt8Panel32, PackedFormat::kInt8Quad32, PackedFormat::kInt8Octs32}) {
    for (bool tb : {false, true}) {
      for (auto [k, n] : {std::pair<int64_t, int64_t>{1, 1}, {5, 33}, {130, 70}, {64, 96}}) {
        const int64_t ldb = (tb ? k : n) + 2;
        std::vector<float> b = RandomFloats((tb ? n : k) * ldb, rng, -3.0f, 3.0f);
        for (int64_t l = 0; l < k; ++l) (tb ? b[0 * ldb + l] : b[l * ldb + 0]) = 0.0f;  // column 0 all zero
        const std::vector<float> opb = testing::DenseOpB(b, ldb, tb, k, n);
        const testing::QuantizedB ref = testing::QuantizeBRef(opb, k, n);
        auto packed = testing::PackInTwo(format, b.data(), ldb, tb, k, n);
        ASSERT_EQ(packed->precision, GemmPrecision::kInt8);
        const int64_t padded_n = (n + 31) / 32 * 32;
        for (int64_t j = 0; j < padded_n; ++j) {
          ASSERT_EQ(packed->col_scale[j], j < n ? ref.scale[j] : 1.0f) << j;
          ASSERT_EQ(packed->col_sum[j], j < n ? ref.col_sum[j] : 0) << j;
        }
        EXPECT_EQ(packed->col_scale[0], 1.0f);  // the zero column
        std::vector<bool> real(packed->int8.size(), false);
        for (int64_t l = 0; l < k; ++l) {
          for (int64_t j = 0; j < n; ++j) {
            const int64_t at = PackedOffset(format, k, l, j);
            real[at] = true;
            ASSERT_EQ(packed->int8[at], ref.q[l * n + j]) << l << "," << j;
          }
        }
        for (std::size_t i = 0; i < real.size(); ++i) {
          if (!real[i]) {
            ASSERT_EQ(packed->int8[i], 0) << "padding at " << i;
          }
        }
      }
    }
  }
}

struct Case {
  int64_t m, n, k;
  float alpha = 1, beta = 0;
  int64_t pad = 0;
  bool bias = false;
  SgemmActivation act = SgemmActivation::kNone;
};

// Quantizes A and B with the reference, runs every implementation with int32 output (must equal the reference
// exactly) and with fp32 output (must match the reference's dequantization within 1e-5 relative, and be
// bit-identical whole and split).
void Check(const Case& c, std::mt19937& rng) {
  const int64_t lda = c.k + c.pad, ldb = c.n + c.pad, ldc = c.n + c.pad;
  std::vector<float> a = RandomFloats(c.m * lda, rng, -2.0f, 3.0f);
  if (c.m > 2) {
    for (int64_t l = 0; l < c.k; ++l) a[1 * lda + l] = 0.0f;                   // an all-zero row
    for (int64_t l = 0; l < c.k; ++l) a[2 * lda + l] = std::fabs(a[2 * lda + l]);  // min 0: zero point 0
  }
  const std::vector<float> b = RandomFloats(c.k * ldb, rng);
  const std::vector<float> c0 = RandomFloats(c.m * ldc, rng), bias = RandomFloats(c.n, rng);
  const testing::QuantizedB qb = testing::QuantizeBRef(testing::DenseOpB(b, ldb, false, c.k, c.n), c.k, c.n);

  std::vector<int32_t> want_s32(c.m * ldc, -7);
  std::vector<double> want(c.m * ldc), mag(c.m * ldc);
  for (int64_t i = 0; i < c.m; ++i) {
    const testing::QuantizedRow qa = testing::QuantizeRowRef(a.data() + i * lda, c.k);
    for (int64_t j = 0; j < c.n; ++j) {
      int64_t acc = 0, abs_acc = 0;
      for (int64_t l = 0; l < c.k; ++l) {
        acc += int64_t{qa.q[l]} * qb.q[l * c.n + j];
        abs_acc += std::abs(int64_t{qa.q[l]} - qa.zero_point) * std::abs(qb.q[l * c.n + j]);
      }
      const int64_t exact = acc - int64_t{qa.zero_point} * qb.col_sum[j];
      want_s32[i * ldc + j] = static_cast<int32_t>(exact);
      const float s = c.alpha * qa.scale * qb.scale[j];
      double y = static_cast<double>(static_cast<float>(exact) * s);
      const double cv = c0[i * ldc + j];
      if (c.beta != 0) y += double{c.beta} * cv;
      if (c.bias) y += bias[j];
      want[i * ldc + j] = testing::ActivateRef(y, c.act);
      mag[i * ldc + j] = std::fabs(s) * abs_acc + std::fabs(c.beta * cv) + (c.bias ? std::fabs(bias[j]) : 0.0);
    }
  }

  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    auto packed = testing::PackInTwo(impl.format, b.data(), ldb, false, c.k, c.n);
    QgemmProblem p;
    p.k = c.k;
    p.a_f32 = a.data(); p.lda = lda;
    p.packed_b = packed.get();
    p.ldc = ldc;
    p.alpha = c.alpha; p.beta = c.beta;
    p.bias = c.bias ? bias.data() : nullptr;
    p.activation = c.act;

    std::vector<int32_t> got_s32(c.m * ldc, -7);
    p.c_s32 = got_s32.data();
    testing::RunSplit(true, c.m, c.n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { impl.fn(p, m0, m1, n0, n1); });
    ASSERT_EQ(got_s32, want_s32) << impl.name << " int32 m=" << c.m << " n=" << c.n << " k=" << c.k;
    p.c_s32 = nullptr;

    std::vector<float> whole = c0;
    p.c_f32 = whole.data();
    impl.fn(p, 0, c.m, 0, c.n);
    std::vector<float> split = c0;
    p.c_f32 = split.data();
    testing::RunSplit(true, c.m, c.n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { impl.fn(p, m0, m1, n0, n1); });
    ASSERT_EQ(0, std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)))
        << impl.name << ": the split changed the result, m=" << c.m << " n=" << c.n << " k=" << c.k;
    // A quantized once beforehand (SgemmQuantizeRows, as ParallelGemm does for products split into column tiles),
    // rows ldq apart: the same bits, whole and split.
    const int64_t ldq = c.k + 5;
    std::vector<uint8_t> aq(c.m * ldq + 1);
    std::vector<float> a_scale(c.m);
    std::vector<int32_t> a_zero(c.m);
    SgemmQuantizeRows(a.data(), lda, c.k, 0, c.m, aq.data(), ldq, a_scale.data(), a_zero.data());
    for (int64_t i = 0; i < c.m; ++i) {
      const testing::QuantizedRow qa = testing::QuantizeRowRef(a.data() + i * lda, c.k);
      ASSERT_EQ(a_scale[i], qa.scale) << i;
      ASSERT_EQ(a_zero[i], qa.zero_point) << i;
      for (int64_t l = 0; l < c.k; ++l) ASSERT_EQ(aq[i * ldq + l], qa.q[l]) << i << "," << l;
    }
    const SgemmQuantizedA quantized{aq.data(), ldq, a_scale.data(), a_zero.data()};
    QgemmProblem pq = p;
    pq.a_f32 = nullptr;
    pq.a_quantized = &quantized;
    std::vector<float> prequantized = c0;
    pq.c_f32 = prequantized.data();
    testing::RunSplit(true, c.m, c.n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { impl.fn(pq, m0, m1, n0, n1); });
    ASSERT_EQ(0, std::memcmp(whole.data(), prequantized.data(), whole.size() * sizeof(float)))
        << impl.name << ": pre-quantized A changed the result, m=" << c.m << " n=" << c.n << " k=" << c.k;
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < ldc; ++j) {
        const float g = whole[i * ldc + j];
        if (j >= c.n) {
          ASSERT_EQ(g, c0[i * ldc + j]) << impl.name << " wrote outside C at " << i << "," << j;
          continue;
        }
        const double w = want[i * ldc + j], err = 1e-5 * mag[i * ldc + j];
        ASSERT_LE(std::fabs(g - w), err + testing::ActivationSlack(c.act, err, w) + 1e-30)
            << impl.name << " m=" << c.m << " n=" << c.n << " k=" << c.k << " alpha=" << c.alpha << " beta=" << c.beta
            << " at " << i << "," << j;
      }
    }
  }
}

TEST(Qgemm, EdgeShapesAgainstReference) {
  std::mt19937 rng(7);
  const int64_t dims[] = {1, 2, 3, 5, 6, 7, 11, 12, 13, 16, 24, 31, 32, 33, 47, 64, 65, 96, 97, 130};
  // Every K % 8 (the 4- and 8-deep K groups of the packed layouts) and every K quads % 4 (SDOT's 16-K unroll).
  const int64_t ks[] = {1, 6, 15, 16, 130, 259, 1004, 29};
  for (int64_t m : dims) {
    for (int64_t n : dims) Check({m, n, ks[(m + n) % 8]}, rng);
  }
}

TEST(Qgemm, AlphaBetaStridesAndEpilogues) {
  std::mt19937 rng(11);
  for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}}) {
    for (int64_t m : {1, 13, 50}) {
      for (int64_t n : {1, 33, 100}) Check({m, n, 300, alpha, beta, 3}, rng);
    }
  }
  for (auto act : {SgemmActivation::kNone, SgemmActivation::kRelu, SgemmActivation::kGelu, SgemmActivation::kGeluTanh}) {
    for (bool bias : {false, true}) {
      for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {13, 33, 300}, {200, 70, 768}, {7, 70, 0}}) {
        Check({m, n, k, 1.0f, 0.5f, 2, bias, act}, rng);
      }
    }
  }
}

// The vector row quantizers agree with QuantizeRowU8Reference bit for bit on the awkward values too: NaN (skipped
// by the range, quantized to 0), signed zeros, infinities, denormals, evenly spaced values. Seen through the
// int32 output, which is exact, against the portable kernel (which calls the reference).
TEST(Qgemm, QuantizedSpecialValuesMatchReference) {
  const int64_t m = 6, n = 32;
  std::mt19937 rng(29);
  for (int64_t k : {5, 8, 37}) {
    std::vector<float> a = RandomFloats(m * k, rng, -4.0f, 4.0f);
    const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
    for (int64_t l = 0; l < k; ++l) {
      a[0 * k + l] = l % 3 == 0 ? nan : a[l];          // NaN among numbers
      a[1 * k + l] = l % 2 ? -0.0f : 0.0f;              // only zeros: scale 1
      a[2 * k + l] = l % 4 == 1 ? -inf : a[2 * k + l];  // infinities make the scale infinite
      a[3 * k + l] = static_cast<float>(l % 5) * 1e-39f - 2e-39f;  // denormals
      a[4 * k + l] = static_cast<float>(l) - 0.5f * static_cast<float>(k);  // evenly spaced, some on ties
    }
    a[5 * k + k - 1] = inf;
    const std::vector<float> b = RandomFloats(k * n, rng);
    std::vector<int32_t> want(m * n);
    for (const Impl& impl : Impls()) {
      if (!impl.supported) continue;
      auto packed = testing::PackInTwo(impl.format, b.data(), n, false, k, n);
      QgemmProblem p;
      p.k = k; p.a_f32 = a.data(); p.lda = k; p.packed_b = packed.get(); p.ldc = n;
      std::vector<int32_t> got(m * n);
      p.c_s32 = got.data();
      impl.fn(p, 0, m, 0, n);
      if (impl.fn == qgemm_u8s8_portable) {
        want = got;
        continue;
      }
      ASSERT_EQ(got, want) << impl.name << " k=" << k;
    }
  }
}

// SgemmQuantizeRows (the active CPU's fastest row quantizer, which may take rows in groups) against
// QuantizeRowU8Reference on the same awkward values, bit for bit: bytes, scale and zero point. 37 rows: whole and
// partial groups of 16, each kind of row in several positions of a group.
TEST(Qgemm, QuantizeRowsMatchesReferenceOnSpecialValues) {
  std::mt19937 rng(31);
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  for (int64_t k : {1, 5, 16, 37, 64, 147, 768}) {
    const int64_t m = 37;
    std::vector<float> a = RandomFloats(m * k, rng, -4.0f, 4.0f);
    for (int64_t i = 0; i < m; ++i) {
      float* row = a.data() + i * k;
      const float range = std::ldexp(1.0f, static_cast<int>(i % 9) * 4 - 16);  // 2^-16 .. 2^16
      for (int64_t l = 0; l < k; ++l) {
        switch (i % 6) {
          case 0: row[l] = l % 3 == 0 ? nan : row[l]; break;
          case 1: row[l] = l % 2 ? -0.0f : 0.0f; break;
          case 2: row[l] = l % 4 == 1 ? -inf : row[l]; break;
          case 3: row[l] = static_cast<float>(l % 5) * 1e-39f - 2e-39f; break;
          case 4: row[l] = std::abs(row[l]) * range; break;  // no negatives: z = 0
          default: row[l] *= range;
        }
      }
    }
    std::vector<uint8_t> got(m * k);
    std::vector<float> scale(m);
    std::vector<int32_t> zero_point(m);
    SgemmQuantizeRows(a.data(), k, k, 0, m, got.data(), k, scale.data(), zero_point.data());
    for (int64_t i = 0; i < m; ++i) {
      std::vector<uint8_t> want(k);
      float want_scale;
      int32_t want_zero_point;
      QuantizeRowU8Reference(a.data() + i * k, k, want.data(), &want_scale, &want_zero_point);
      EXPECT_EQ(0, std::memcmp(&scale[i], &want_scale, sizeof(float))) << "k=" << k << " row " << i;
      EXPECT_EQ(zero_point[i], want_zero_point) << "k=" << k << " row " << i;
      EXPECT_EQ(std::vector<uint8_t>(got.begin() + i * k, got.begin() + (i + 1) * k), want) << "k=" << k << " row " << i;
    }
  }
}

TEST(Qgemm, BetaZeroIgnoresNanInC) {
  std::vector<float> a(4 * 5, 1.0f), b(5 * 40, 2.0f), c(4 * 40, std::nanf(""));
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    auto packed = testing::PackInTwo(impl.format, b.data(), 40, false, 5, 40);
    QgemmProblem p;
    p.k = 5; p.a_f32 = a.data(); p.lda = 5; p.packed_b = packed.get(); p.c_f32 = c.data(); p.ldc = 40;
    impl.fn(p, 0, 4, 0, 40);
    for (float v : c) ASSERT_NEAR(v, 10.0f, 1e-5f) << impl.name;  // 1 and 2 quantize exactly (to 255 and 127)
  }
}

// MatMulInteger: C = (A - a_zp)(B - b_zp) exactly, for every mix of u8/s8 A and B and of zero points.
TEST(Qgemm, IntegerGemmExact) {
  std::mt19937 rng(19);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    for (bool a_signed : {false, true}) {
      for (bool b_signed : {false, true}) {
        for (int zp_kind : {0, 1, 2}) {  // none, per tensor, per column
          for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {13, 33, 7}, {30, 70, 258}}) {
            const int64_t lda = k + 1, ldb = n + 3, ldc = n + 2;
            std::vector<uint8_t> a(m * lda), b(k * ldb), bzp(n);
            for (auto& v : a) v = static_cast<uint8_t>(byte(rng));
            for (auto& v : b) v = static_cast<uint8_t>(byte(rng));
            for (auto& v : bzp) v = static_cast<uint8_t>(byte(rng));
            const int32_t a_zp = a_signed ? static_cast<int8_t>(byte(rng)) : byte(rng);
            auto as_int = [](uint8_t v, bool is_signed) { return is_signed ? int32_t{static_cast<int8_t>(v)} : int32_t{v}; };
            auto packed = PackIntegerB(impl.format, b.data(), ldb, b_signed, k, n, zp_kind ? bzp.data() : nullptr,
                                       zp_kind == 2);
            QgemmProblem p;
            p.k = k;
            p.a_u8 = a.data(); p.lda = lda;
            p.a_flip = a_signed ? 0x80 : 0;
            p.a_zero_point = a_zp + (a_signed ? 128 : 0);
            p.packed_b = packed.get();
            std::vector<int32_t> got(m * ldc, -5);
            p.c_s32 = got.data(); p.ldc = ldc;
            testing::RunSplit(true, m, n, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) { impl.fn(p, m0, m1, n0, n1); });
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t j = 0; j < ldc; ++j) {
                int64_t want = -5;
                if (j < n) {
                  const int32_t zb = zp_kind == 0 ? 0 : as_int(bzp[zp_kind == 2 ? j : 0], b_signed);
                  want = 0;
                  for (int64_t l = 0; l < k; ++l) {
                    want += int64_t{as_int(a[i * lda + l], a_signed) - a_zp} * (as_int(b[l * ldb + j], b_signed) - zb);
                  }
                }
                ASSERT_EQ(got[i * ldc + j], want) << impl.name << " a_signed=" << a_signed << " b_signed=" << b_signed
                                                  << " zp=" << zp_kind << " m=" << m << " n=" << n << " k=" << k
                                                  << " at " << i << "," << j;
              }
            }
          }
        }
      }
    }
  }
}

// The largest K the kernels accept, at the extremes of both operands: the int32 sums do not overflow.
TEST(Qgemm, LargestKAtExtremesIsExact) {
  const int64_t k = 65536, n = 32;
  std::vector<uint8_t> a(2 * k), b(k * n);
  for (int64_t l = 0; l < k; ++l) {
    a[l] = 255;
    a[k + l] = 255;
  }
  for (int64_t l = 0; l < k; ++l) {
    for (int64_t j = 0; j < n; ++j) b[l * n + j] = j % 2 ? 0 : 255;
  }
  std::vector<uint8_t> b_s8(k * n);  // the same values, -128 and 127, as s8 bytes
  for (std::size_t i = 0; i < b.size(); ++i) b_s8[i] = b[i] ^ 0x80;
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    // u8 B with zero point 128 (stored as s8 b - 128, zero point 0) and s8 B without one: the same products.
    const uint8_t b_zp = 128;
    auto from_u8 = PackIntegerB(impl.format, b.data(), n, false, k, n, &b_zp, false);
    auto from_s8 = PackIntegerB(impl.format, b_s8.data(), n, true, k, n, nullptr, false);
    EXPECT_TRUE(from_u8->col_zero_point.empty());
    for (const auto* packed : {from_u8.get(), from_s8.get()}) {
      QgemmProblem p;
      p.k = k; p.a_u8 = a.data(); p.lda = k; p.ldc = n;
      std::vector<int32_t> got(2 * n);
      p.packed_b = packed;
      p.c_s32 = got.data();
      impl.fn(p, 0, 2, 0, n);
      for (int64_t j = 0; j < 2 * n; ++j) ASSERT_EQ(got[j], (j % 2 ? -128 : 127) * 255 * k) << impl.name << " " << j;
    }
  }
}

// The semantics are the intended ones: against the exact fp32 product, each term a*b is off by at most
// |a| s_j / 2 + |b^| s_i / 2 (half a quantization step of each operand).
TEST(Qgemm, CloseToTrueFp32Product) {
  std::mt19937 rng(23);
  const int64_t m = 24, n = 64, k = 768;
  const std::vector<float> a = RandomFloats(m * k, rng, -1.0f, 2.0f), b = RandomFloats(k * n, rng);
  SgemmArgs ref;
  ref.m = m; ref.n = n; ref.k = k;
  ref.a = a.data(); ref.lda = k; ref.b = b.data(); ref.ldb = n; ref.ldc = n;
  std::vector<float> exact(m * n);
  ref.c = exact.data();
  sgemm_reference(ref);
  const testing::QuantizedB qb = testing::QuantizeBRef(b, k, n);
  for (const Impl& impl : Impls()) {
    if (!impl.supported) continue;
    auto packed = testing::PackInTwo(impl.format, b.data(), n, false, k, n);
    QgemmProblem p;
    p.k = k; p.a_f32 = a.data(); p.lda = k; p.packed_b = packed.get();
    std::vector<float> got(m * n);
    p.c_f32 = got.data(); p.ldc = n;
    impl.fn(p, 0, m, 0, n);
    for (int64_t i = 0; i < m; ++i) {
      const float s_a = testing::QuantizeRowRef(a.data() + i * k, k).scale;
      for (int64_t j = 0; j < n; ++j) {
        double bound = 0, mag = 0;
        for (int64_t l = 0; l < k; ++l) {
          const double av = std::fabs(a[i * k + l]), bv = std::fabs(b[l * n + j]);
          bound += av * qb.scale[j] / 2 + (bv + qb.scale[j] / 2) * s_a / 2;
          mag += av * bv;
        }
        ASSERT_LE(std::fabs(got[i * n + j] - exact[i * n + j]), 1.001 * bound + 1e-5 * mag)
            << impl.name << " at " << i << "," << j;
      }
    }
  }
}

}  // namespace
}  // namespace coreserve::kernels
