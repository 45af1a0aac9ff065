// The dynamic batcher's decision, with Triton's semantics, as a pure function of the queue, the policy and the
// time — so it is tested without threads or clocks (tests/server/batch_policy_test.cc).
//
// Requests batch together when their inputs agree in everything but the first (batch) dimension (`shape_key`).
// The request that runs next is the best by (priority, arrival); it takes the compatible requests behind it in
// that order while their batch sizes add up to at most max_batch_size. That batch runs now when it is full, when
// a prefix of it makes a preferred size (the largest such prefix runs, at once), or when its oldest request has
// waited max_queue_delay_us; otherwise the batcher waits until then. Requests past their deadline are answered
// with an error instead of run.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coreserve {

using BatchClock = std::chrono::steady_clock;

struct BatchPolicy {
  int64_t max_batch_size = 0;                  // 0: no batching, every request runs alone
  std::vector<int64_t> preferred_batch_sizes;  // any order
  std::chrono::microseconds max_queue_delay{0};
};

struct QueuedRequest {
  int64_t batch = 1;     // its first dimension
  std::string shape_key;  // equal keys batch together
  int64_t priority = 0;  // smaller runs first
  BatchClock::time_point arrival;
  std::optional<BatchClock::time_point> deadline;
};

struct BatchDecision {
  std::vector<std::size_t> run;      // queue indices of the batch to run now, in batch order
  std::vector<std::size_t> expired;  // queue indices past their deadline
  std::optional<BatchClock::time_point> wake;  // when nothing runs: decide again then (or on a new request)
};

BatchDecision DecideBatch(const std::vector<QueuedRequest>& queue, const BatchPolicy& policy,
                          BatchClock::time_point now);

}  // namespace coreserve
