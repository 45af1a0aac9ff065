#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace coreserve::runtime {

MemoryPlan PlanMemory(const std::vector<BufferLifetime>& buffers) {
  MemoryPlan plan;
  plan.offsets.assign(buffers.size(), 0);
  auto aligned = [](int64_t bytes) { return (std::max<int64_t>(bytes, 1) + 63) / 64 * 64; };
  std::vector<std::size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first (ties: earliest first, so the plan does not depend on sort stability).
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (buffers[a].bytes != buffers[b].bytes) return buffers[a].bytes > buffers[b].bytes;
    return a < b;
  });
  std::vector<std::size_t> placed;
  std::vector<std::pair<int64_t, int64_t>> busy;  // [begin, end) of placed buffers alive with the current one
  for (std::size_t i : order) {
    const BufferLifetime& b = buffers[i];
    const int64_t size = aligned(b.bytes);
    plan.total_bytes += size;
    busy.clear();
    for (std::size_t j : placed) {
      const BufferLifetime& o = buffers[j];
      if (o.first_step <= b.last_step && b.first_step <= o.last_step) {
        busy.emplace_back(plan.offsets[j], plan.offsets[j] + aligned(o.bytes));
      }
    }
    std::sort(busy.begin(), busy.end());
    // The first gap (between busy ranges sorted by start) large enough.
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (begin - offset >= size) break;
      offset = std::max(offset, end);
    }
    plan.offsets[i] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(i);
  }
  return plan;
}

}  // namespace coreserve::runtime
