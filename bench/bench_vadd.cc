// f32_vadd variants at L1-, L2- and memory-sized lengths, in GB/s of traffic (two loads and one store per
// element). The scalar reference is the anchor measured in the same run: compare each variant's bytes_per_second
// to scalar's at the same length.
#include <benchmark/benchmark.h>

#include <vector>

#include "kernels/vadd/f32_vadd.h"

namespace {

using namespace coreserve::kernels;

void Run(benchmark::State& state, F32VaddFn fn, bool supported) {
  if (!supported) {
    state.SkipWithError("not supported on this CPU");
    return;
  }
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  std::vector<float> a(n, 1.0f), b(n, 2.0f), out(n);
  for (auto _ : state) {
    fn(n, a.data(), b.data(), out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 3 * sizeof(float)));
}

void BM_scalar(benchmark::State& s) { Run(s, f32_vadd_scalar, true); }
BENCHMARK(BM_scalar)->Arg(1024)->Arg(65536)->Arg(4 << 20);
#if defined(__x86_64__)
void BM_avx2(benchmark::State& s) { Run(s, f32_vadd_avx2, HostCpuFeatures().avx2_fma); }
void BM_avx512(benchmark::State& s) { Run(s, f32_vadd_avx512, HostCpuFeatures().avx512); }
BENCHMARK(BM_avx2)->Arg(1024)->Arg(65536)->Arg(4 << 20);
BENCHMARK(BM_avx512)->Arg(1024)->Arg(65536)->Arg(4 << 20);
#elif defined(__aarch64__)
void BM_neon(benchmark::State& s) { Run(s, f32_vadd_neon, HostCpuFeatures().neon); }
BENCHMARK(BM_neon)->Arg(1024)->Arg(65536)->Arg(4 << 20);
#endif

}  // namespace

BENCHMARK_MAIN();
