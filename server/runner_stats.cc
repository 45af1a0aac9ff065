#include "server/runner_stats.h"

namespace coreserve {
namespace {

int64_t Ns(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

void RunnerStatsRecorder::Failure(const std::string& reason, Clock::duration waited) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.fail.Add(Ns(waited));
  ++stats_.failures[reason];
}

void RunnerStatsRecorder::Execution(int64_t rows, int64_t requests, Clock::duration compute) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.execution_count;
  stats_.inference_count += requests;
  stats_.last_inference_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  stats_.compute.Add(Ns(compute));
  stats_.batches[rows].Add(Ns(compute));
  stats_.compute_seconds.Add(Seconds(compute));
  stats_.batch_rows.Add(static_cast<double>(rows));
}

void RunnerStatsRecorder::Success(Clock::duration queued, Clock::duration total) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.success.Add(Ns(total));
  stats_.queue.Add(Ns(queued));
  stats_.queue_seconds.Add(Seconds(queued));
  stats_.request_seconds.Add(Seconds(total));
}

RunnerStats RunnerStatsRecorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace coreserve
