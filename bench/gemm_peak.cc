#include "bench/gemm_peak.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/cpu_features.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace coreserve::bench {
namespace {

using kernels::GemmPrecision;

volatile float g_sink;

#if defined(__x86_64__)
// Each loop keeps 12 accumulators in registers (the pragma makes GCC scalarize the array, see
// kernels/gemm/qgemm_u8s8_avx512vnni.cc), starting from different values so the compiler cannot merge the
// chains, and sums them at the end so nothing is dead.
// Keeps the 12 chains alive: their first lanes summed into g_sink.
__attribute__((target("avx2,fma,avx512f"))) void Sink(const __m512 (&acc)[12]) {
  alignas(64) float out[16];
  float s = 0;
  for (const __m512& a : acc) {
    _mm512_store_ps(out, a);
    s += out[0];
  }
  g_sink = s;
}

__attribute__((target("avx2,fma,avx512f"))) void Fp32Loop(int64_t n) {
  __m512 acc[12];
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i + 1));
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm512_fmadd_ps(a, x, y);
  }
  Sink(acc);
}

__attribute__((target("avx2,fma,avx512f,avx512bf16"))) void Bf16Loop(int64_t n) {
  __m512 acc[12];
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, x);
  }
  Sink(acc);
}

__attribute__((target("avx2,fma,avx512f,avx512vnni"))) void Int8Loop(int64_t n) {
  __m512i acc[12];
  const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm512_dpbusd_epi32(a, x, y);
  }
  alignas(64) int32_t out[16];
  int32_t s = 0;
#pragma GCC unroll 12
  for (auto& a : acc) {
    _mm512_store_si512(out, a);
    s += out[0];
  }
  g_sink = static_cast<float>(s);
}
#endif

// Ops per second of `loop` (ops_per_iteration each) on one thread.
double RateOfLoop(void (*loop)(int64_t), double ops_per_iteration) {
  const int64_t iterations = 4'000'000;
  loop(iterations / 10);  // warm up (clock ramp)
  const auto t0 = std::chrono::steady_clock::now();
  loop(iterations);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ops_per_iteration * static_cast<double>(iterations) / seconds;
}

// The sum of the rates of `threads` threads running `loop` together.
double RateOnThreads(void (*loop)(int64_t), double ops_per_iteration, int threads) {
  if (threads <= 1) return RateOfLoop(loop, ops_per_iteration);
  std::vector<double> rates(threads, 0.0);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&rates, t, loop, ops_per_iteration] { rates[t] = RateOfLoop(loop, ops_per_iteration); });
  }
  double sum = 0.0;
  for (int t = 0; t < threads; ++t) {
    workers[t].join();
    sum += rates[t];
  }
  return sum;
}

double Measure(GemmPrecision precision, int threads) {
#if defined(__x86_64__)
  const kernels::CpuFeatures& cpu = kernels::HostCpuFeatures();
  switch (precision) {
    case GemmPrecision::kFp32: return cpu.avx512 ? RateOnThreads(Fp32Loop, 12 * 32, threads) : 0.0;
    case GemmPrecision::kBf16: return cpu.avx512_bf16 ? RateOnThreads(Bf16Loop, 12 * 64, threads) : 0.0;
    case GemmPrecision::kInt8: return cpu.avx512_vnni ? RateOnThreads(Int8Loop, 12 * 128, threads) : 0.0;
  }
#endif
  (void)precision;
  (void)threads;
  return 0.0;
}

}  // namespace

double MeasuredPeak(GemmPrecision precision, int threads) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, double> cache;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(static_cast<int>(precision), threads);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, Measure(precision, threads)).first;
  return it->second;
}

}  // namespace coreserve::bench
