// GEMM at BERT-base shapes (M tokens x (N, K) of the dense layers), one thread, B pre-packed as the runtime packs
// weights, in every precision: fp32, bf16 (fastmath) and int8 (fp32 A quantized per call). Reports GFLOPS (for
// int8, GOPS: one multiply-add is 2 operations) and `of_peak`, the fraction of this core's peak for the
// precision, measured in the same run by a loop of independent FMA / vdpbf16ps / vpdpbusd instructions (the
// in-run anchor, bench/gemm_peak.h: ~115 GFLOP/s fp32, ~230 bf16, ~460 GOP/s int8 per Zen 4 core). The
// comparison with oneDNN at the same shapes is bench_gemm_onednn.
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <vector>

#include "bench/gemm_peak.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm/gemm_kernels.h"

namespace {

using namespace coreserve::kernels;

// The anchor: this core's measured peak for the precision (bench/gemm_peak.h).
double Peak(GemmPrecision precision) { return coreserve::bench::MeasuredPeak(precision, 1); }

// ---- The GEMMs.
struct Kernel {
  const char* name;
  GemmPrecision precision;
  PackedFormat format;
  bool supported;
  GemmFn gemm;    // fp32 / bf16, or
  QgemmFn qgemm;  // int8
  bool packs;     // false: the portable fp32 path on unpacked B
};

void Run(benchmark::State& state, const Kernel& kernel) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  if (!kernel.supported) {
    state.SkipWithError("not supported on this CPU");
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
  if (kernel.packs) {
    packed = AllocPackedB(kernel.format, k, n);
    switch (kernel.precision) {
      case GemmPrecision::kFp32: sgemm_pack_b_panel32(b.data(), n, false, k, n, packed->data.data()); break;
      case GemmPrecision::kBf16: PackBf16Columns(b.data(), n, false, 0, n, packed.get()); break;
      case GemmPrecision::kInt8: PackInt8Columns(b.data(), n, false, 0, n, packed.get()); break;
    }
    p.packed_b = packed.get();
  }
  QgemmProblem q;
  q.k = k; q.a_f32 = a.data(); q.lda = k; q.packed_b = packed.get(); q.c_f32 = c.data(); q.ldc = n;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (kernel.qgemm) {
      kernel.qgemm(q, 0, m, 0, n);
    } else {
      kernel.gemm(p, 0, m, 0, n);
    }
    benchmark::ClobberMemory();
  }
  const double ops = 2.0 * m * n * k;
  state.counters["GFLOPS"] = benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (const double peak = Peak(kernel.precision); peak > 0) {
    state.counters["of_peak"] = ops * static_cast<double>(state.iterations()) / seconds / peak;
  }
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 8, 32, 128, 512}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{768, 768}, {3072, 768}, {768, 3072}}) b->Args({m, n, k});
  }
}

#if defined(__x86_64__)
const Kernel kSgemmAvx512{"sgemm_12x32_avx512", GemmPrecision::kFp32, PackedFormat::kPanel32,
                          HostCpuFeatures().avx512, sgemm_12x32_avx512, nullptr, true};
const Kernel kSgemmAvx2{"sgemm_6x16_avx2", GemmPrecision::kFp32, PackedFormat::kPanel32, HostCpuFeatures().avx2_fma,
                        sgemm_6x16_avx2, nullptr, true};
const Kernel kBf16Avx512{"bf16gemm_12x32_avx512bf16", GemmPrecision::kBf16, PackedFormat::kBf16Pairs32,
                         HostCpuFeatures().avx512_bf16, bf16gemm_12x32_avx512bf16, nullptr, true};
const Kernel kQgemmVnni{"qgemm_u8s8_avx512vnni", GemmPrecision::kInt8, PackedFormat::kInt8Quad32,
                        HostCpuFeatures().avx512_vnni, nullptr, qgemm_u8s8_avx512vnni, true};
const Kernel kQgemmAvx2{"qgemm_u8s8_avx2", GemmPrecision::kInt8, PackedFormat::kInt8Quad32,
                        HostCpuFeatures().avx2_fma, nullptr, qgemm_u8s8_avx2, true};
void BM_sgemm_12x32_avx512(benchmark::State& s) { Run(s, kSgemmAvx512); }
void BM_sgemm_6x16_avx2(benchmark::State& s) { Run(s, kSgemmAvx2); }
void BM_bf16gemm_12x32_avx512bf16(benchmark::State& s) { Run(s, kBf16Avx512); }
void BM_qgemm_u8s8_avx512vnni(benchmark::State& s) { Run(s, kQgemmVnni); }
void BM_qgemm_u8s8_avx2(benchmark::State& s) { Run(s, kQgemmAvx2); }
BENCHMARK(BM_sgemm_12x32_avx512)->Apply(Shapes)->MinTime(0.2);
BENCHMARK(BM_sgemm_6x16_avx2)->Apply(Shapes)->MinTime(0.2);
BENCHMARK(BM_bf16gemm_12x32_avx512bf16)->Apply(Shapes)->MinTime(0.2);
BENCHMARK(BM_qgemm_u8s8_avx512vnni)->Apply(Shapes)->MinTime(0.2);
BENCHMARK(BM_qgemm_u8s8_avx2)->Apply(Shapes)->MinTime(0.2);
#endif
// The portable kernels, at the small shapes only (they are the fallbacks, not contenders).
const Kernel kSgemmPortable{"sgemm_portable", GemmPrecision::kFp32, PackedFormat::kPanel32, true, sgemm_portable,
                            nullptr, false};
const Kernel kBf16Portable{"bf16gemm_portable", GemmPrecision::kBf16, PackedFormat::kBf16Panel32, true,
                           bf16gemm_portable, nullptr, true};
const Kernel kQgemmPortable{"qgemm_u8s8_portable", GemmPrecision::kInt8, PackedFormat::kInt8Panel32, true, nullptr,
                            qgemm_u8s8_portable, true};
void SmallShapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 32}) b->Args({m, 768, 768});
}
void BM_sgemm_portable(benchmark::State& s) { Run(s, kSgemmPortable); }
void BM_bf16gemm_portable(benchmark::State& s) { Run(s, kBf16Portable); }
void BM_qgemm_u8s8_portable(benchmark::State& s) { Run(s, kQgemmPortable); }
BENCHMARK(BM_sgemm_portable)->Apply(SmallShapes)->MinTime(0.2);
BENCHMARK(BM_bf16gemm_portable)->Apply(SmallShapes)->MinTime(0.2);
BENCHMARK(BM_qgemm_u8s8_portable)->Apply(SmallShapes)->MinTime(0.2);

}  // namespace

BENCHMARK_MAIN();
