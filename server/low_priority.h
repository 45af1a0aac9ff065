// Work that must not slow down serving — reading and optimizing a model while other models answer requests —
// runs on a thread of its own at the lowest CPU priority (nice 19), so the scheduler gives the serving threads
// the cores first.
#pragma once

#include <functional>

namespace coreserve {

// The nice value of low-priority work.
inline constexpr int kLowPriorityNice = 19;

// Runs `work` on a new thread whose nice value is kLowPriorityNice and waits for it. Threads started by `work`
// inherit that priority (Linux), so `work` should start none that outlive it; the calling thread's priority is
// unchanged.
void RunAtLowPriority(const std::function<void()>& work);

}  // namespace coreserve
