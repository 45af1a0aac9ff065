// What a ModelRunner measures: Triton's statistics extension figures (counts and cumulative durations of
// successful and failed requests, queue and compute time, per batch size) and the Prometheus histograms and
// failure counters built from the same observations. Thread-safe; readers take a Snapshot.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace coreserve {

// A count and a total duration, as Triton's StatisticDuration.
struct Duration {
  int64_t count = 0;
  int64_t ns = 0;
  void Add(int64_t d) {
    ++count;
    ns += d;
  }
};

// A Prometheus histogram with fixed upper bounds (seconds, or rows for batch sizes).
template <std::size_t N>
struct Histogram {
  std::array<double, N> bounds;
  std::array<int64_t, N> counts{};  // per bucket (not cumulative); the +Inf bucket is `count` minus their sum
  int64_t count = 0;
  double sum = 0;
  void Add(double v) {
    for (std::size_t i = 0; i < N; ++i) {
      if (v <= bounds[i]) {
        ++counts[i];
        break;
      }
    }
    ++count;
    sum += v;
  }
};

// Latency buckets from 100 us to 10 s: a tiny model at the bottom, BERT-base at batch 32 near the top.
inline constexpr std::array<double, 14> kLatencyBounds = {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
                                                          2.5e-2, 5e-2, 0.1,   0.25,   0.5,  1.0,  10.0};
inline constexpr std::array<double, 9> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

struct RunnerStats {
  int64_t inference_count = 0;  // requests computed
  int64_t execution_count = 0;  // model executions (a batch is one)
  int64_t last_inference_ms = 0;  // since the Unix epoch; 0 before the first
  Duration success, fail, queue, compute;
  std::map<int64_t, Duration> batches;  // rows in the execution -> its compute time
  std::map<std::string, int64_t> failures;  // reason -> requests
  Histogram<14> request_seconds{kLatencyBounds}, queue_seconds{kLatencyBounds}, compute_seconds{kLatencyBounds};
  Histogram<9> batch_rows{kBatchBounds};
};

class RunnerStatsRecorder {
 public:
  using Clock = std::chrono::steady_clock;
  // A request refused or failed for `reason` ("invalid_argument", "queue_full", "timeout", "cancelled",
  // "unavailable", "internal") after `waited` since it arrived.
  void Failure(const std::string& reason, Clock::duration waited);
  // One execution of `rows` rows for `requests` requests, computed in `compute`; then each request's success
  // with its queue time and total time are added by Success.
  void Execution(int64_t rows, int64_t requests, Clock::duration compute);
  void Success(Clock::duration queued, Clock::duration total);
  RunnerStats Snapshot() const;

 private:
  mutable std::mutex mu_;
  RunnerStats stats_;
};

}  // namespace coreserve
