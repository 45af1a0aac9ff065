// The dynamic batcher's policy, as a pure function: no threads, explicit times.
#include "server/batch_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

namespace coreserve {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using std::chrono::microseconds;

const BatchClock::time_point t0{};

QueuedRequest Req(int64_t batch, int64_t arrival_us, std::string key = "a", int64_t priority = 0) {
  QueuedRequest r;
  r.batch = batch;
  r.shape_key = std::move(key);
  r.priority = priority;
  r.arrival = t0 + microseconds(arrival_us);
  return r;
}

BatchPolicy Policy(int64_t max, std::vector<int64_t> preferred, int64_t delay_us) {
  return BatchPolicy{max, std::move(preferred), microseconds(delay_us)};
}

TEST(BatchPolicy, WithoutBatchingEachRequestRunsAloneInArrivalOrder) {
  const auto d = DecideBatch({Req(1, 5), Req(1, 1), Req(1, 3)}, Policy(0, {}, 0), t0 + microseconds(10));
  EXPECT_THAT(d.run, ElementsAre(1));
}

TEST(BatchPolicy, NoDelayTakesEverythingCompatibleThatFits) {
  const std::vector<QueuedRequest> q = {Req(2, 0), Req(1, 1, "b"), Req(3, 2), Req(4, 3), Req(1, 4)};
  // 2 + 3 = 5; the 4 does not fit in 8, and ends the batch (the 1 behind it does not overtake it).
  const auto d = DecideBatch(q, Policy(8, {}, 0), t0 + microseconds(5));
  EXPECT_THAT(d.run, ElementsAre(0, 2));
  EXPECT_FALSE(d.wake);
}

TEST(BatchPolicy, FullBatchRunsBeforeTheDelay) {
  const auto d = DecideBatch({Req(2, 0), Req(2, 1)}, Policy(4, {}, 1000), t0 + microseconds(2));
  EXPECT_THAT(d.run, ElementsAre(0, 1));
}

TEST(BatchPolicy, WaitsForTheDelayThenRunsWhatItHas) {
  const std::vector<QueuedRequest> q = {Req(1, 100), Req(1, 150)};
  auto d = DecideBatch(q, Policy(8, {}, 500), t0 + microseconds(300));
  EXPECT_THAT(d.run, IsEmpty());
  ASSERT_TRUE(d.wake);
  EXPECT_EQ(*d.wake, t0 + microseconds(600));  // the oldest request's arrival + the delay
  d = DecideBatch(q, Policy(8, {}, 500), t0 + microseconds(600));
  EXPECT_THAT(d.run, ElementsAre(0, 1));
}

TEST(BatchPolicy, LargestPreferredPrefixRunsAtOnce) {
  const std::vector<QueuedRequest> q = {Req(2, 0), Req(2, 1), Req(1, 2), Req(1, 3)};
  // Prefix sizes 2, 4, 5, 6: preferred 4 and 6 are both reachable; 6 is the largest.
  auto d = DecideBatch(q, Policy(16, {4, 6}, 100000), t0 + microseconds(4));
  EXPECT_THAT(d.run, ElementsAre(0, 1, 2, 3));
  d = DecideBatch(q, Policy(16, {4, 8}, 100000), t0 + microseconds(4));
  EXPECT_THAT(d.run, ElementsAre(0, 1));
  d = DecideBatch(q, Policy(16, {3, 8}, 100000), t0 + microseconds(4));
  EXPECT_THAT(d.run, IsEmpty());  // 3 is not a prefix size: wait
}

TEST(BatchPolicy, PriorityFirstThenArrival) {
  const std::vector<QueuedRequest> q = {Req(1, 0, "a", 2), Req(1, 1, "b", 1), Req(1, 2, "a", 1), Req(1, 3, "b", 1)};
  const auto d = DecideBatch(q, Policy(8, {}, 0), t0 + microseconds(5));
  EXPECT_THAT(d.run, ElementsAre(1, 3));  // the priority-1 "b" requests; "a" has a priority-1 one too, arrived later
}

TEST(BatchPolicy, ExpiredRequestsAreReportedNotRun) {
  std::vector<QueuedRequest> q = {Req(1, 0), Req(1, 1), Req(1, 2)};
  q[0].deadline = t0 + microseconds(50);
  q[2].deadline = t0 + microseconds(400);
  auto d = DecideBatch(q, Policy(8, {}, 1000), t0 + microseconds(100));
  EXPECT_THAT(d.expired, ElementsAre(0));
  EXPECT_THAT(d.run, IsEmpty());
  ASSERT_TRUE(d.wake);
  EXPECT_EQ(*d.wake, t0 + microseconds(400));  // the next deadline comes before the delay
}

TEST(BatchPolicy, OversizedHeadRunsAlone) {
  const auto d = DecideBatch({Req(9, 0), Req(1, 1)}, Policy(8, {}, 1000), t0);
  EXPECT_THAT(d.run, ElementsAre(0));
}

// Random queues: every decision is a valid batch (compatible, within the limit, no expired request) or a wake
// time in the future, and repeatedly running decisions drains the queue in a bounded number of steps.
TEST(BatchPolicy, RandomQueuesAlwaysDrain) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<QueuedRequest> q;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) {
      q.push_back(Req(1 + static_cast<int64_t>(rng() % 4), static_cast<int64_t>(rng() % 1000),
                      rng() % 2 ? "a" : "b", static_cast<int64_t>(rng() % 3)));
      if (rng() % 4 == 0) q.back().deadline = t0 + microseconds(static_cast<int64_t>(rng() % 3000));
    }
    const BatchPolicy policy = Policy(1 + static_cast<int64_t>(rng() % 8), {2, 4}, static_cast<int64_t>(rng() % 2000));
    BatchClock::time_point now = t0 + microseconds(1000);
    for (int step = 0; !q.empty(); ++step) {
      ASSERT_LT(step, 100) << "trial " << trial;
      const BatchDecision d = DecideBatch(q, policy, now);
      std::vector<bool> remove(q.size(), false);
      for (std::size_t i : d.expired) {
        ASSERT_LE(*q[i].deadline, now);
        remove[i] = true;
      }
      int64_t total = 0;
      for (std::size_t i : d.run) {
        ASSERT_FALSE(remove[i]);
        ASSERT_EQ(q[i].shape_key, q[d.run[0]].shape_key);
        total += q[i].batch;
        remove[i] = true;
      }
      if (d.run.size() > 1) {
        ASSERT_LE(total, policy.max_batch_size);
      }
      if (d.run.empty() && d.expired.empty()) {
        ASSERT_TRUE(d.wake);
        ASSERT_GT(*d.wake, now);
        now = *d.wake;
      }
      std::vector<QueuedRequest> rest;
      for (std::size_t i = 0; i < q.size(); ++i) {
        if (!remove[i]) rest.push_back(q[i]);
      }
      q = std::move(rest);
    }
  }
}

}  // namespace
}  // namespace coreserve
