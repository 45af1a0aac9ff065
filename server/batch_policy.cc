#include "server/batch_policy.h"

#include <algorithm>
#include <numeric>

namespace coreserve {

BatchDecision DecideBatch(const std::vector<QueuedRequest>& queue, const BatchPolicy& policy,
                          BatchClock::time_point now) {
  BatchDecision d;
  std::vector<std::size_t> live;
  for (std::size_t i = 0; i < queue.size(); ++i) {
    if (queue[i].deadline && *queue[i].deadline <= now) {
      d.expired.push_back(i);
    } else {
      live.push_back(i);
    }
  }
  if (live.empty()) return d;
  // Best first: priority, then arrival, then queue position.
  std::stable_sort(live.begin(), live.end(), [&](std::size_t a, std::size_t b) {
    if (queue[a].priority != queue[b].priority) return queue[a].priority < queue[b].priority;
    return queue[a].arrival < queue[b].arrival;
  });
  const QueuedRequest& head = queue[live[0]];
  if (policy.max_batch_size <= 0 || head.batch >= policy.max_batch_size) {
    d.run = {live[0]};
    return d;
  }
  // The compatible requests behind the head, in order, while they fit; the first that does not fit ends it, so a
  // large request is not overtaken indefinitely by small ones.
  std::vector<std::size_t> batch;
  int64_t total = 0;
  BatchClock::time_point oldest = head.arrival;
  for (std::size_t i : live) {
    if (queue[i].shape_key != head.shape_key) continue;
    if (total + queue[i].batch > policy.max_batch_size) break;
    batch.push_back(i);
    total += queue[i].batch;
    oldest = std::min(oldest, queue[i].arrival);
  }
  if (total == policy.max_batch_size) {
    d.run = batch;
    return d;
  }
  // The longest prefix whose size is a preferred one runs at once.
  int64_t prefix = 0;
  std::size_t best = 0;
  for (std::size_t n = 0; n < batch.size(); ++n) {
    prefix += queue[batch[n]].batch;
    if (std::find(policy.preferred_batch_sizes.begin(), policy.preferred_batch_sizes.end(), prefix) !=
        policy.preferred_batch_sizes.end()) {
      best = n + 1;
    }
  }
  if (best > 0) {
    d.run.assign(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(best));
    return d;
  }
  const BatchClock::time_point due = oldest + policy.max_queue_delay;
  if (due <= now) {
    d.run = batch;
    return d;
  }
  d.wake = due;
  for (std::size_t i : live) {
    if (queue[i].deadline) d.wake = std::min(*d.wake, *queue[i].deadline);
  }
  return d;
}

}  // namespace coreserve
