// coreserve's GEMM next to oneDNN's matmul (the anchor), in the same run, on the same shapes, inputs and thread
// counts: the BERT-base dense layers and the ResNet-50 convolutions as im2col GEMMs, in fp32, bf16 and int8, on 1
// and 2 threads. `make bench-kernels` runs it and bench/compare_gemm.py turns its JSON into the ratio table.
//
// Every case is one job: C (M x N, fp32) = A (M x K, fp32 activations) x B (K x N, fp32 weights), B prepared
// once outside timing by each side as it prepares weights at load. The timed region of each side, per call:
//   coreserve  runtime::ParallelGemm over a runtime::ThreadPool of T threads (the split the runtime's MatMul and
//              Gemm operators use) calling Sgemm on B packed by SgemmPackB(precision):
//                fp32  the fp32 kernel;
//                bf16  A rounded to bf16 on the fly inside the kernel, bf16 x bf16 products, fp32 accumulation;
//                int8  each row of A scanned for its range and quantized to u8 (per row), u8 x s8 products with
//                      int32 sums, dequantized to fp32 in the kernel's epilogue.
//   oneDNN     bench/onednn_matmul.h: the matmul primitive on weights reordered once to format_tag::any, with
//              OpenMP set to T threads; for bf16 and int8 also the reorder of A from f32 (to bf16, or to u8 with
//              one scale and zero point for the whole tensor, fixed from A's range outside timing).
// So for int8 coreserve does a little more (the per-row range scan); everything else is the same work.
//
// Before a case is timed, both sides compute it once and their outputs must agree (relative RMS difference under
// the precision's tolerance) or both are reported as errors: a misconfigured anchor never makes the table.
//
// The two sides of a case are timed as one benchmark, in alternating slices of about kSliceSeconds each (the
// order within a pair of slices alternating too), and the case's ratio is the median over kPairs pairs of the
// ratio within a pair. This host's speed drifts by 10-20% over minutes: two sides timed seconds or minutes apart
// (one after the other, or in random order) carry that drift into their ratio; two slices tens of milliseconds
// apart do not.
//
// Counters: coreserve_GFLOPS and onednn_GFLOPS (GOP/s for int8; 2 * M * N * K per call, wall time, over all of
// the side's slices), ratio (median over pairs of coreserve's rate / oneDNN's), ratio_min and ratio_max (its
// range), peak_GFLOPS (this machine's measured peak for the precision on T threads, bench/gemm_peak.h), rel_diff
// (the relative RMS difference of the two outputs). The label: "coreserve <kernel> | oneDNN <implementation>".
//
// Without oneDNN at build time the benchmark still builds and runs coreserve alone, and says so on stderr, in
// every row (onednn_GFLOPS absent, and the label) and in the JSON context ("onednn": "ABSENT ...").
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/gemm_peak.h"
#include "kernels/gemm/sgemm.h"
#include "runtime/ops/gemm_util.h"
#include "runtime/thread_pool.h"
#if CORESERVE_HAVE_ONEDNN
#include "bench/onednn_matmul.h"
#endif

namespace {

using coreserve::kernels::GemmPrecision;
namespace kernels = coreserve::kernels;
namespace runtime = coreserve::runtime;

constexpr GemmPrecision kPrecisions[] = {GemmPrecision::kFp32, GemmPrecision::kBf16, GemmPrecision::kInt8};
constexpr int kThreads[] = {1, 2};

const char* PrecisionName(GemmPrecision p) {
  return p == GemmPrecision::kFp32 ? "fp32" : p == GemmPrecision::kBf16 ? "bf16" : "int8";
}

#if CORESERVE_HAVE_ONEDNN
// Largest relative RMS difference between the two outputs that still counts as agreement. fp32 and bf16 round
// A and B the same way on both sides, so only the order of fp32 additions differs. int8 differs by design
// (coreserve quantizes A per row, the oneDNN side per tensor): each side is ~0.5% RMS from the exact product,
// while a wrong scale or zero point is off by tens of percent.
double Tolerance(GemmPrecision p) {
  return p == GemmPrecision::kFp32 ? 1e-5 : p == GemmPrecision::kBf16 ? 1e-4 : 2e-2;
}
#endif

// ---- The shapes. `name` is the model, and for ResNet-50 the first layer with that GEMM shape.
struct GemmShape {
  std::string name;
  int64_t m, n, k;
};

std::vector<GemmShape> Shapes() {
  std::vector<GemmShape> shapes;
  // BERT-base dense layers: M tokens x (N, K) of the Q/K/V/output projections, FFN up and FFN down.
  for (int64_t m : {1, 8, 32, 128, 512}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{768, 768}, {3072, 768}, {768, 3072}}) {
      shapes.push_back({"bert", m, n, k});
    }
  }
  // torchvision's resnet50 at 1x3x224x224, each convolution as the GEMM of its im2col form: M = output pixels
  // (batch 1), N = Cout, K = Cin * kh * kw, weights as B (the GEMM NhwcConv runs; its im2col and row-strip split
  // are not timed here). Its 53 convolutions have these 20 distinct shapes (how many convolutions share each in
  // brackets); the downsample of layer1.0 has the shape of its conv3.
  const GemmShape resnet[] = {
      {"conv1", 12544, 64, 147},            // [1] 7x7 s2
      {"layer1.0.conv1", 3136, 64, 64},     // [1]
      {"layer1.0.conv2", 3136, 64, 576},    // [3] 3x3
      {"layer1.0.conv3", 3136, 256, 64},    // [4] conv3 x3 + downsample
      {"layer1.1.conv1", 3136, 64, 256},    // [2]
      {"layer2.0.conv1", 3136, 128, 256},   // [1]
      {"layer2.0.conv2", 784, 128, 1152},   // [4] 3x3 (s2 in layer2.0)
      {"layer2.0.conv3", 784, 512, 128},    // [4]
      {"layer2.0.downsample", 784, 512, 256},  // [1] s2
      {"layer2.1.conv1", 784, 128, 512},    // [3]
      {"layer3.0.conv1", 784, 256, 512},    // [1]
      {"layer3.0.conv2", 196, 256, 2304},   // [6] 3x3
      {"layer3.0.conv3", 196, 1024, 256},   // [6]
      {"layer3.0.downsample", 196, 1024, 512},  // [1]
      {"layer3.1.conv1", 196, 256, 1024},   // [5]
      {"layer4.0.conv1", 196, 512, 1024},   // [1]
      {"layer4.0.conv2", 49, 512, 4608},    // [3] 3x3
      {"layer4.0.conv3", 49, 2048, 512},    // [3]
      {"layer4.0.downsample", 49, 2048, 1024},  // [1]
      {"layer4.1.conv1", 49, 512, 2048},    // [2]
  };
  for (const GemmShape& s : resnet) shapes.push_back({"resnet50." + s.name, s.m, s.n, s.k});
  return shapes;
}

// coreserve's CPUs: 0 .. threads - 1 when this machine has them, otherwise none. As the server pins an
// instance's threads to its cores, the pool's worker i stays on CPU i + 1 and the calling thread is kept to CPU 0
// while coreserve's slices run (BenchPair). oneDNN's OpenMP threads run as OpenMP places them by default (they
// are created before any pinning, so they do not inherit it).
std::vector<int> PoolCpus(int threads) {
  if (static_cast<int>(std::thread::hardware_concurrency()) < threads) return {};
  std::vector<int> cpus(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) cpus[static_cast<std::size_t>(i)] = i;
  return cpus;
}

// ---- One case: both sides of one (shape, precision, threads).
struct CaseKey {
  GemmPrecision precision;
  int64_t m, n, k;
  int threads;
  bool operator==(const CaseKey&) const = default;
};

class Case {
 public:
  explicit Case(const CaseKey& key) : key_(key), pool_(key.threads, PoolCpus(key.threads)) {
    const int64_t m = key.m, n = key.n, k = key.k;
    std::mt19937 rng(static_cast<unsigned>(m * 131 + n * 7 + k));
    std::uniform_real_distribution<float> d(-1, 1);
    a_.resize(m * k);
    b_.resize(k * n);
    for (auto& v : a_) v = d(rng);
    for (auto& v : b_) v = d(rng);
    c_coreserve_.assign(m * n, 0.0f);
    c_onednn_.assign(m * n, 0.0f);
    // coreserve: weights packed once, as the runtime packs them at load.
    packed_ = kernels::SgemmUsesPackedB(key.precision) ? kernels::SgemmPackB(b_.data(), n, false, k, n, key.precision)
                                                       : nullptr;
    args_.m = m;
    args_.n = n;
    args_.k = k;
    args_.a = a_.data();
    args_.lda = k;
    args_.b = b_.data();
    args_.ldb = n;
    args_.packed_b = packed_.get();
    args_.c = c_coreserve_.data();
    args_.ldc = n;
    ctx_.pool = &pool_;
#if CORESERVE_HAVE_ONEDNN
    try {
      onednn_ = std::make_unique<coreserve::bench::OnednnMatmul>(key.precision, m, n, k, a_.data(), b_.data(),
                                                                 c_onednn_.data(), key.threads);
    } catch (const std::exception& e) {
      onednn_error_ = std::string("oneDNN could not build this case: ") + e.what();
    }
#else
    onednn_error_ = "oneDNN ABSENT: built without libdnnl-dev, no anchor in this run";
#endif
    // The agreement check, once, outside timing.
    RunCoreserve();
#if CORESERVE_HAVE_ONEDNN
    if (onednn_) {
      onednn_->Run();
      double diff = 0.0, ref = 0.0;
      for (int64_t i = 0; i < m * n; ++i) {
        const double x = c_coreserve_[i], y = c_onednn_[i];
        diff += (x - y) * (x - y);
        ref += y * y;
      }
      rel_diff_ = std::sqrt(diff / std::max(ref, 1e-30));
      if (!(rel_diff_ <= Tolerance(key.precision))) {
        char text[256];
        std::snprintf(text, sizeof text, "coreserve and oneDNN DISAGREE: relative RMS difference %.3g > %.3g (%s)",
                      rel_diff_, Tolerance(key.precision), onednn_->implementation().c_str());
        mismatch_ = text;
        std::fprintf(stderr, "bench_gemm_onednn: %s %lldx%lldx%lld t%d: %s\n", PrecisionName(key.precision),
                     static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k), key.threads,
                     text);
      }
    }
#endif
  }

  const CaseKey& key() const { return key_; }
  const std::string& mismatch() const { return mismatch_; }
  const std::string& onednn_error() const { return onednn_error_; }
  double rel_diff() const { return rel_diff_; }

  // coreserve's timed call.
  void RunCoreserve() {
    runtime::ParallelGemm(ctx_, 1, key_.m, key_.n, [this](int64_t) { return args_; });
  }

#if CORESERVE_HAVE_ONEDNN
  coreserve::bench::OnednnMatmul* onednn() { return onednn_.get(); }
#endif

 private:
  CaseKey key_;
  // 64-byte aligned, as the runtime allocates tensors: with std::vector's 16-byte alignment every 64-byte store
  // of C straddles two cache lines, which cost both sides ~15% on ResNet's short-K shapes.
  using Buffer = std::vector<float, kernels::Aligned64Allocator<float>>;
  Buffer a_, b_, c_coreserve_, c_onednn_;
  std::shared_ptr<const kernels::SgemmPackedB> packed_;
  kernels::SgemmArgs args_;
  runtime::ThreadPool pool_;
  runtime::OpContext ctx_;
#if CORESERVE_HAVE_ONEDNN
  std::unique_ptr<coreserve::bench::OnednnMatmul> onednn_;
#endif
  std::string onednn_error_, mismatch_;
  double rel_diff_ = -1.0;
};

// One live case at a time (its buffers and packed weights), kept while repetitions of it run back to back.
Case& GetCase(const CaseKey& key) {
  static std::unique_ptr<Case> current;
  if (!current || !(current->key() == key)) {
    current.reset();  // free the previous case's buffers first
    current = std::make_unique<Case>(key);
  }
  return *current;
}

constexpr double kSliceSeconds = 0.02;
constexpr int kPairs = 9;
// Untimed idle time before each slice. After a parallel region libgomp's idle threads spin (measured here: ~10 ms
// of CPU after each oneDNN call on 2 threads) before they sleep, and coreserve's pool spins for tens of
// microseconds: a slice started at once would share its cores with the other side's spinning threads.
constexpr auto kGap = std::chrono::milliseconds(15);

// Seconds taken by `calls` calls of fn, after the gap and one untimed call (which wakes the side's threads).
template <typename Fn>
double TimeCalls(Fn&& fn, int64_t calls) {
  std::this_thread::sleep_for(kGap);
  fn();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < calls; ++i) {
    fn();
    benchmark::ClobberMemory();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BenchPair(benchmark::State& state, CaseKey key) {
  Case& c = GetCase(key);
  if (!c.mismatch().empty()) {
    state.SkipWithError(c.mismatch().c_str());
    return;
  }
  // One timed slice of each side; time_onednn stays empty without the anchor.
  const std::vector<int> caller_cpu = PoolCpus(key.threads).empty() ? std::vector<int>{} : std::vector<int>{0};
  auto time_coreserve = [&](int64_t calls) {
    const runtime::ScopedAffinity pin(caller_cpu);
    return TimeCalls([&c] { c.RunCoreserve(); }, calls);
  };
  std::function<double(int64_t)> time_onednn;
  std::string label = std::string("coreserve ") + kernels::SgemmKernelName(key.precision) + " | oneDNN ";
#if CORESERVE_HAVE_ONEDNN
  if (coreserve::bench::OnednnMatmul* anchor = c.onednn()) {
    time_onednn = [anchor](int64_t calls) {
      return TimeCalls(
          [anchor] {
            anchor->UseThreads();
            anchor->Run();
          },
          calls);
    };
    label += anchor->implementation();
  }
#endif
  if (!time_onednn) label += c.onednn_error().empty() ? std::string("ABSENT") : c.onednn_error();
  state.SetLabel(label);
  // Calls per slice, from the slower side's fastest of 3 single (warm) calls.
  auto fastest_call = [](auto&& time_slice) {
    double best = time_slice(1);
    for (int i = 0; i < 2; ++i) best = std::min(best, time_slice(1));
    return best;
  };
  double one_call = fastest_call(time_coreserve);
  if (time_onednn) one_call = std::max(one_call, fastest_call(time_onednn));
  const int64_t calls = std::max<int64_t>(1, static_cast<int64_t>(kSliceSeconds / std::max(one_call, 1e-9)));
  double coreserve_seconds = 0.0, onednn_seconds = 0.0;
  std::vector<double> ratios;
  int64_t pair = 0;
  for (auto _ : state) {
    const bool coreserve_first = pair++ % 2 == 0;
    double core = coreserve_first ? time_coreserve(calls) : 0.0;
    const double dnnl = time_onednn ? time_onednn(calls) : 0.0;
    if (!coreserve_first) core = time_coreserve(calls);
    coreserve_seconds += core;
    onednn_seconds += dnnl;
    if (dnnl > 0.0) ratios.push_back(dnnl / core);
  }
  const double ops = 2.0 * static_cast<double>(key.m) * static_cast<double>(key.n) * static_cast<double>(key.k) *
                     static_cast<double>(calls) * static_cast<double>(state.iterations());
  state.counters["coreserve_GFLOPS"] = ops / coreserve_seconds / 1e9;
  state.counters["peak_GFLOPS"] = coreserve::bench::MeasuredPeak(key.precision, key.threads) / 1e9;
  if (!ratios.empty()) {
    std::sort(ratios.begin(), ratios.end());
    state.counters["onednn_GFLOPS"] = ops / onednn_seconds / 1e9;
    state.counters["ratio"] = ratios[ratios.size() / 2];
    state.counters["ratio_min"] = ratios.front();
    state.counters["ratio_max"] = ratios.back();
    state.counters["rel_diff"] = c.rel_diff();
  }
}

void ShoutIfNoAnchor() {
#if !CORESERVE_HAVE_ONEDNN
  std::fprintf(stderr,
               "\n"
               "**************************************************************************************\n"
               "** bench_gemm_onednn was built WITHOUT oneDNN (libdnnl-dev not found by CMake):     **\n"
               "** coreserve runs alone and there is NO ANCHOR in this run. Install it with          **\n"
               "** scripts/install-deps.sh (or apt-get install libdnnl-dev), then re-run cmake.      **\n"
               "**************************************************************************************\n\n");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args{argv[0]};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int args_count = static_cast<int>(args.size());
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;

  ShoutIfNoAnchor();
#if CORESERVE_HAVE_ONEDNN
  benchmark::AddCustomContext("onednn", coreserve::bench::OnednnMatmul::Description());
#else
  benchmark::AddCustomContext("onednn", "ABSENT: built without libdnnl-dev, no anchor in this run");
#endif
  // The peaks, measured up front while nothing else of ours runs.
  for (GemmPrecision p : kPrecisions) {
    for (int t : kThreads) {
      char value[32];
      std::snprintf(value, sizeof value, "%.1f", coreserve::bench::MeasuredPeak(p, t) / 1e9);
      benchmark::AddCustomContext(std::string("peak_GFLOPS_") + PrecisionName(p) + "_t" + std::to_string(t), value);
    }
  }

  for (const GemmShape& shape : Shapes()) {
    for (GemmPrecision p : kPrecisions) {
      for (int t : kThreads) {
        const CaseKey key{p, shape.m, shape.n, shape.k, t};
        const std::string base = shape.name + "/" + PrecisionName(p) + "/" + std::to_string(shape.m) + "x" +
                                 std::to_string(shape.n) + "x" + std::to_string(shape.k) + "/t" + std::to_string(t);
        benchmark::RegisterBenchmark((base + "/pair").c_str(), [key](benchmark::State& state) { BenchPair(state, key); })
            ->Iterations(kPairs)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  ShoutIfNoAnchor();
  benchmark::Shutdown();
  return 0;
}
