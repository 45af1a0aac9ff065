// fp32 GEMM at BERT-base shapes (M tokens x (N, K) of the dense layers), one thread, B pre-packed as the runtime
// packs weights. Reports GFLOPS per implementation; the portable implementation is the in-run anchor until the
// oneDNN comparison lands, and the machine's measured fp32 peak (~115 GFLOP/s per core here) is the ceiling.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm/sgemm.h"

namespace {

using namespace coreserve::kernels;

void Run(benchmark::State& state, bool avx512) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  if (avx512 && !HostCpuFeatures().avx512) {
    state.SkipWithError("no AVX-512");
    return;
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (auto& v : a) v = d(rng);
  for (auto& v : b) v = d(rng);
  SgemmArgs p;
  p.m = m; p.n = n; p.k = k;
  p.a = a.data(); p.lda = k; p.b = b.data(); p.ldb = n; p.c = c.data(); p.ldc = n;
  std::shared_ptr<SgemmPackedB> packed;
#if defined(__x86_64__)
  if (avx512) {
    packed = std::make_shared<SgemmPackedB>();
    packed->k = k; packed->n = n;
    packed->data.resize(((n + 31) / 32) * k * 32);
    sgemm_pack_b_panel32(b.data(), n, false, k, n, packed->data.data());
    p.packed_b = packed.get();
  }
#endif
  for (auto _ : state) {
#if defined(__x86_64__)
    if (avx512) sgemm_12x32_avx512(p, 0, m, 0, n); else sgemm_portable(p, 0, m, 0, n);
#else
    sgemm_portable(p, 0, m, 0, n);
#endif
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 8, 32, 128, 512}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{768, 768}, {3072, 768}, {768, 3072}}) b->Args({m, n, k});
  }
}

void BM_sgemm_portable(benchmark::State& s) { Run(s, false); }
void BM_sgemm_12x32_avx512(benchmark::State& s) { Run(s, true); }
BENCHMARK(BM_sgemm_portable)->Apply(Shapes)->MinTime(0.2);
BENCHMARK(BM_sgemm_12x32_avx512)->Apply(Shapes)->MinTime(0.2);

}  // namespace

BENCHMARK_MAIN();
