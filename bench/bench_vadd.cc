// f32_vadd variants at L1-, L2- and memory-sized lengths, in bytes/s of traffic (two loads and one store per
// element). The scalar reference is the anchor measured in the same run; the table printed at the end gives
// each variant's speed as a ratio to it at the same length.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
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

// Prints the usual console output, then each run's throughput relative to the scalar run of the same length.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      const std::string name = r.benchmark_name();  // "BM_<variant>/<length>"
      const std::size_t slash = name.find('/');
      const auto it = r.counters.find("bytes_per_second");
      if (slash == std::string::npos || it == r.counters.end()) continue;
      rates_[name.substr(slash + 1)][name.substr(3, slash - 3)] = it->second.value;
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n%-10s %-8s %10s %14s\n", "length", "variant", "GB/s", "x scalar");
    for (const auto& [length, by_variant] : rates_) {
      const auto scalar = by_variant.find("scalar");
      for (const auto& [variant, rate] : by_variant) {
        std::printf("%-10s %-8s %10.2f %14.2f\n", length.c_str(), variant.c_str(), rate / 1e9,
                    scalar == by_variant.end() ? 0.0 : rate / scalar->second);
      }
    }
  }

 private:
  std::map<std::string, std::map<std::string, double>> rates_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
