// runtime::ParallelGemm: however it splits a product into tasks, pre-quantizes A (int8) or re-lays A out (fp32
// rows a multiple of 4 KB apart), the result is the one a single kernel call over the whole product gives, bit
// for bit (sgemm.h: a row's result depends only on that row), and fp32 agrees with the double-precision
// reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/gemm/sgemm.h"
#include "runtime/op.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/thread_pool.h"

namespace coreserve::runtime {
namespace {

using kernels::GemmPrecision;

std::vector<float> Random(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = d(rng);
  return v;
}

// batches x (M x N) products of different A (lda apart) with one packed B, through ParallelGemm on `threads`,
// against one Sgemm call per batch over the whole product.
void Check(GemmPrecision precision, int64_t batches, int64_t m, int64_t n, int64_t k, int64_t lda, int threads) {
  SCOPED_TRACE(::testing::Message() << "precision " << static_cast<int>(precision) << " batches " << batches << " m "
                                    << m << " n " << n << " k " << k << " lda " << lda << " threads " << threads);
  std::mt19937 rng(static_cast<unsigned>(m * 7 + n * 13 + k + batches));
  const std::vector<float> a = Random(batches * m * lda, rng), b = Random(k * n, rng), bias = Random(n, rng);
  if (!kernels::SgemmUsesPackedB(precision)) GTEST_SKIP() << "no packed kernel on this CPU";
  const auto packed = kernels::SgemmPackB(b.data(), n, false, k, n, precision);
  auto args_for = [&](int64_t batch, float* c) {
    kernels::SgemmArgs args;
    args.m = m;
    args.n = n;
    args.k = k;
    args.a = a.data() + batch * m * lda;
    args.lda = lda;
    args.packed_b = packed.get();
    args.c = c + batch * m * n;
    args.ldc = n;
    args.bias = bias.data();
    return args;
  };
  std::vector<float> whole(static_cast<std::size_t>(batches * m * n), NAN);
  for (int64_t batch = 0; batch < batches; ++batch) kernels::Sgemm(args_for(batch, whole.data()), 0, m, 0, n);

  ThreadPool pool(threads);
  OpContext ctx;
  ctx.pool = &pool;
  std::vector<float> split(whole.size(), NAN);
  ParallelGemm(ctx, batches, m, n, [&](int64_t batch) { return args_for(batch, split.data()); });
  ASSERT_EQ(0, std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)));

  if (precision != GemmPrecision::kFp32) return;
  for (int64_t batch = 0; batch < batches; ++batch) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double want = bias[j], mag = std::fabs(bias[j]);
        for (int64_t l = 0; l < k; ++l) {
          const double x = a[(batch * m + i) * lda + l], y = b[l * n + j];
          want += x * y;
          mag += std::fabs(x * y);
        }
        ASSERT_NEAR(split[(batch * m + i) * n + j], want, 1e-6 * mag) << "batch " << batch << " row " << i << " col " << j;
      }
    }
  }
}

// K = 1024 with lda = K puts A's rows 4 KB apart (the case ParallelGemm copies to padded rows); lda = K + 8 and
// K = 300 do not. N = 200 and 768 split into several column tiles; batches of different A must each see their own.
TEST(ParallelGemm, MatchesOneWholeKernelCallAndTheReference) {
  for (GemmPrecision precision : {GemmPrecision::kFp32, GemmPrecision::kBf16, GemmPrecision::kInt8}) {
    for (auto [k, lda] : {std::tuple<int64_t, int64_t>{1024, 1024}, {1024, 1032}, {300, 300}}) {
      for (auto [batches, m, n] : {std::tuple<int64_t, int64_t, int64_t>{1, 37, 768}, {3, 13, 200}, {1, 1, 200}}) {
        for (int threads : {1, 2}) Check(precision, batches, m, n, k, lda, threads);
      }
    }
  }
}

}  // namespace
}  // namespace coreserve::runtime
