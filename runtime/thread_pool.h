// A fixed-size pool for intra-op parallelism: `threads - 1` workers plus the calling thread.
//
// The pool is the only source of extra threads in the runtime: a session uses the pool its caller gives it, sized
// to the cores of its instance, so the runtime never oversubscribes the cores it was given. ParallelFor blocks
// until every chunk has run. One ParallelFor at a time per pool (a session runs one node at a time). Workers spin
// for a few tens of microseconds after each job before sleeping, so back-to-back operators skip the wake-up.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace coreserve::runtime {

// Pins the calling thread to one CPU (sched_setaffinity on Linux); false when the system refuses.
bool PinCurrentThread(int cpu);
// Keeps the calling thread to `cpus` (sched_setaffinity) until it goes, then gives it back the CPUs it had.
// Empty `cpus`, or a system that refuses: no change.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const std::vector<int>& cpus);
  ~ScopedAffinity();
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

 private:
  std::vector<int> saved_;  // the CPUs to restore; empty when nothing was changed
};

// Names `thread` (at most 15 characters, as Linux keeps them) for top -H, perf and /proc/PID/task, from the
// thread that made it, so the name is there as soon as the thread is: the pool's workers are "cs-pool".
void NameThread(std::thread& thread, const char* name);

class ThreadPool {
 public:
  // `threads` >= 1; with 1 no worker thread is started and ParallelFor runs inline. With `cpus` (one per thread),
  // worker i is pinned to cpus[i + 1]; cpus[0] is the calling thread's, which its owner pins (PinCurrentThread).
  explicit ThreadPool(int threads, std::vector<int> cpus = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) over [0, total) in chunks of at least `grain` items, spread over the pool. fn must
  // be safe to call concurrently on disjoint ranges. `max_chunk` > 0 caps the chunk size (callers whose items
  // are already sized tasks, such as ParallelGemm's tiles, pass 1 so no thread takes two while another idles).
  void ParallelFor(int64_t total, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                   int64_t max_chunk = 0);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};  // bumped (under mu_) for each ParallelFor
  std::atomic<int> active_{0};           // workers still inside the current job
  std::atomic<bool> stop_{false};
  // The current job.
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t total_ = 0, chunk_ = 0;
  std::atomic<int64_t> next_{0};
};

}  // namespace coreserve::runtime
