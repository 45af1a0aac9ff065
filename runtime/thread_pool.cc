#include "runtime/thread_pool.h"

#include <algorithm>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace coreserve::runtime {
namespace {

// Spin iterations before a worker (or the caller waiting for workers) sleeps: an operator follows the previous
// one within microseconds, and a futex wake-up costs tens of them. ~2^14 pauses is tens of microseconds.
constexpr int kSpin = 1 << 14;

inline void Pause() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

}  // namespace

bool PinCurrentThread(int cpu) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;  // 0: the calling thread
#else
  (void)cpu;
  return false;
#endif
}

ScopedAffinity::ScopedAffinity(const std::vector<int>& cpus) {
#if defined(__linux__)
  if (cpus.empty()) return;
  cpu_set_t old_set, new_set;
  if (sched_getaffinity(0, sizeof old_set, &old_set) != 0) return;
  CPU_ZERO(&new_set);
  for (int c : cpus) CPU_SET(c, &new_set);
  if (CPU_EQUAL(&old_set, &new_set) || sched_setaffinity(0, sizeof new_set, &new_set) != 0) return;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &old_set)) saved_.push_back(c);
  }
#else
  (void)cpus;
#endif
}

ScopedAffinity::~ScopedAffinity() {
#if defined(__linux__)
  if (saved_.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : saved_) CPU_SET(c, &set);
  sched_setaffinity(0, sizeof set, &set);
#endif
}

void NameThread(std::thread& thread, const char* name) {
#if defined(__linux__)
  pthread_setname_np(thread.native_handle(), name);
#else
  (void)thread;
  (void)name;
#endif
}

ThreadPool::ThreadPool(int threads, std::vector<int> cpus) {
  for (int i = 1; i < threads; ++i) {
    const int cpu = static_cast<std::size_t>(i) < cpus.size() ? cpus[i] : -1;
    workers_.emplace_back([this, cpu] {
      if (cpu >= 0) PinCurrentThread(cpu);
      WorkerLoop();
    });
    NameThread(workers_.back(), "cs-pool");
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunChunks() {
  for (;;) {
    const int64_t begin = next_.fetch_add(chunk_);
    if (begin >= total_) return;
    (*fn_)(begin, std::min(total_, begin + chunk_));
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    // Spin briefly for the next job, then sleep until one is published.
    bool got = false;
    for (int i = 0; i < kSpin; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_relaxed)) {
        got = true;
        break;
      }
      Pause();
    }
    if (!got) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    RunChunks();
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_one();
    }
  }
}

void ThreadPool::ParallelFor(int64_t total, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t max_chunk) {
  if (total <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t threads = this->threads();
  if (threads == 1 || total <= grain) {
    fn(0, total);
    return;
  }
  // About four chunks per thread balances uneven chunks without much scheduling overhead.
  int64_t chunk = std::max(grain, (total + threads * 4 - 1) / (threads * 4));
  if (max_chunk > 0) chunk = std::min(chunk, max_chunk);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    total_ = total;
    chunk_ = chunk;
    next_.store(0);
    active_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1, std::memory_order_release);  // publishes the job fields above
  }
  wake_.notify_all();
  RunChunks();
  for (int i = 0; i < kSpin && active_.load(std::memory_order_acquire) != 0; ++i) Pause();
  if (active_.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return active_.load() == 0; });
  }
  fn_ = nullptr;
}

}  // namespace coreserve::runtime
