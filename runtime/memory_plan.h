// Memory planning: places the intermediate buffers of one run in a single arena so buffers whose lifetimes do not
// overlap share memory. The planner is a pure function of sizes and lifetimes (steps, inclusive), so it is tested
// without running a model; the Session records the sizes and lifetimes on the first run of each input-shape
// signature and reuses the plan for later runs with the same shapes.
#pragma once

#include <cstdint>
#include <vector>

namespace coreserve::runtime {

struct BufferLifetime {
  int64_t bytes = 0;
  int first_step = 0;  // the step that writes it
  int last_step = 0;   // the last step that reads it (>= first_step)
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // per buffer, 64-byte aligned
  int64_t arena_bytes = 0;       // the planned peak: the arena that holds every buffer at its offset
  int64_t total_bytes = 0;       // every buffer's (aligned) size added up: the memory without reuse
};

// Greedy by size: the largest buffers are placed first, each at the lowest offset free of every placed buffer
// alive at the same time. Two buffers alive at a common step never overlap.
MemoryPlan PlanMemory(const std::vector<BufferLifetime>& buffers);

}  // namespace coreserve::runtime
