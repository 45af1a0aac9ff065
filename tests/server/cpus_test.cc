// The CPUs the server may use (affinity cut to the cgroup quota), the layout of core groups on them, and the
// pinning of an instance's pool threads to its group.
#include "server/cpus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/thread_pool.h"

namespace coreserve {
namespace {

using ::testing::HasSubstr;

TEST(Cpus, QuotaFromCgroupCpuMax) {
  EXPECT_EQ(CpusFromCpuMax("200000 100000\n"), 2);
  EXPECT_EQ(CpusFromCpuMax("150000 100000"), 2);  // 1.5 CPUs of time: two cores to run on
  EXPECT_EQ(CpusFromCpuMax("50000 100000"), 1);
  EXPECT_EQ(CpusFromCpuMax("max 100000"), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax(""), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("garbage here"), std::nullopt);
}

TEST(Cpus, UsableCpusAreInTheAffinitySet) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  const std::vector<int> cpus = UsableCpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_LE(static_cast<int>(cpus.size()), CPU_COUNT(&set));
  for (int c : cpus) EXPECT_TRUE(CPU_ISSET(c, &set)) << c;
  EXPECT_EQ(AvailableCpus(), static_cast<int>(cpus.size()));
}

TEST(Cpus, GroupsTakeConsecutiveCpusOrFailNamingTheLayout) {
  auto layout = LayGroups({1, 2}, {0, 2, 5, 7});
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(*layout, (std::vector<std::vector<int>>{{0}, {2, 5}}));
  auto too_many = LayGroups({2, 1}, {0, 1});
  ASSERT_FALSE(too_many.ok());
  EXPECT_THAT(std::string(too_many.status().message()),
              HasSubstr("groups [2, 1] need 3 cores, but the server may use 2 (CPUs 0,1)"));
}

// Models' groups get CPUs of their own; a model's own CPUs (another version of it) stay available to it; sharing
// is explicit; CPUs come back when the last holder goes.
TEST(Cpus, ModelsGetCpusOfTheirOwnUnlessTheyShare) {
  CoreAllocator cores;
  const std::vector<int> cpus = {0, 1};
  auto a = cores.Reserve("a", {1}, false, cpus);
  auto b = cores.Reserve("b", {1}, false, cpus);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->groups, (std::vector<std::vector<int>>{{0}}));
  EXPECT_EQ(b->groups, (std::vector<std::vector<int>>{{1}}));
  auto c = cores.Reserve("c", {1}, false, cpus);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("groups [1] need 1 cores, but only 0 of the server's 2 are free (CPUs ); other models' groups "
                        "hold the rest: a (CPUs 0), b (CPUs 1) (share_cores: true lets"));
  auto a2 = cores.Reserve("a", {1}, false, cpus);  // a reload of a, while its first version still runs
  ASSERT_TRUE(a2.ok()) << a2.status();
  EXPECT_EQ(a2->groups, (std::vector<std::vector<int>>{{0}}));
  auto shared = cores.Reserve("c", {2}, true, cpus);
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(shared->groups, (std::vector<std::vector<int>>{{0, 1}}));
  a = absl::InternalError("released");  // a's first version goes...
  EXPECT_FALSE(cores.Reserve("c", {1}, false, cpus).ok());  // ...but its reload still holds CPU 0
  a2 = absl::InternalError("released");
  auto c2 = cores.Reserve("c", {1}, false, cpus);
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->groups, (std::vector<std::vector<int>>{{0}}));
  EXPECT_THAT(std::string(cores.Reserve("d", {3}, false, cpus).status().message()),
              HasSubstr("groups [3] need 3 cores, but the server may use 2 (CPUs 0,1)"));
}

TEST(Cpus, UnheldCpusAndTheirGenerationFollowReservations) {
  CoreAllocator cores;
  const std::vector<int> cpus = {0, 1, 2};
  uint64_t g0 = 0, g1 = 0, g2 = 0;
  EXPECT_EQ(cores.Unheld(cpus, &g0), cpus);
  auto a = cores.Reserve("a", {1}, false, cpus);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(cores.Unheld(cpus, &g1), (std::vector<int>{1, 2}));
  EXPECT_NE(g1, g0);
  auto shared = cores.Reserve("b", {3}, true, cpus);  // share_cores holds nothing
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(cores.Unheld(cpus, nullptr), (std::vector<int>{1, 2}));
  EXPECT_EQ(cores.generation(), g1);
  a = absl::InternalError("released");
  EXPECT_EQ(cores.Unheld(cpus, &g2), cpus);
  EXPECT_NE(g2, g1);
}

// Each worker of a pool built with CPUs runs only on its CPU.
TEST(Cpus, PoolWorkersArePinnedToTheirCpus) {
  const std::vector<int> cpus = UsableCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  runtime::ThreadPool pool(2, {cpus[0], cpus[1]});
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<int> worker_masks_cpu;
  bool other_cpu_seen = false;
  std::condition_variable worker_took;
  int worker_chunks = 0;
  // The caller's chunks wait for a worker's, so the worker always takes some however busy the machine is.
  pool.ParallelFor(64, 1, [&](int64_t, int64_t) {
    std::unique_lock<std::mutex> lock(mu);
    if (std::this_thread::get_id() == caller) {
      worker_took.wait_for(lock, std::chrono::seconds(60), [&] { return worker_chunks > 0; });
      return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    ++worker_chunks;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) worker_masks_cpu.insert(c);
    }
    other_cpu_seen = other_cpu_seen || sched_getcpu() != cpus[1];
    worker_took.notify_all();
  }, 1);
  ASSERT_GT(worker_chunks, 0) << "the worker never took a chunk";
  EXPECT_EQ(worker_masks_cpu, (std::set<int>{cpus[1]}));
  EXPECT_FALSE(other_cpu_seen);
}

}  // namespace
}  // namespace coreserve
