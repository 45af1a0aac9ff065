// The memory planner (a pure function) and the Session's planned runs: buffers alive together never overlap, the
// arena is far below the sum of the buffers on real models, and planned runs give bit-identical outputs to the
// first (allocating) run of a fresh session, also with several threads running at once.
#include "runtime/memory_plan.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "runtime/session.h"
#include "tests/fixture_inputs.h"

namespace coreserve::runtime {
namespace {

using coreserve::testing::InputsFor;

void ExpectValid(const std::vector<BufferLifetime>& buffers, const MemoryPlan& plan) {
  ASSERT_EQ(plan.offsets.size(), buffers.size());
  int last_step = 0;
  for (const auto& b : buffers) last_step = std::max(last_step, b.last_step);
  // The arena can be no smaller than the most bytes alive at one step.
  int64_t most_alive = 0;
  for (int step = 0; step <= last_step; ++step) {
    int64_t alive = 0;
    for (const auto& b : buffers) {
      if (b.first_step <= step && step <= b.last_step) alive += (b.bytes + 63) / 64 * 64;
    }
    most_alive = std::max(most_alive, alive);
  }
  EXPECT_GE(plan.arena_bytes, most_alive);
  EXPECT_LE(plan.arena_bytes, plan.total_bytes);
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    EXPECT_EQ(plan.offsets[i] % 64, 0);
    EXPECT_LE(plan.offsets[i] + buffers[i].bytes, plan.arena_bytes);
    for (std::size_t j = i + 1; j < buffers.size(); ++j) {
      const bool together = buffers[i].first_step <= buffers[j].last_step && buffers[j].first_step <= buffers[i].last_step;
      const bool apart = plan.offsets[i] + buffers[i].bytes <= plan.offsets[j] ||
                         plan.offsets[j] + buffers[j].bytes <= plan.offsets[i];
      EXPECT_TRUE(!together || apart) << "buffers " << i << " and " << j << " overlap while both alive";
    }
  }
}

TEST(PlanMemory, ChainReusesMemory) {
  // a -> b -> c -> d: each buffer lives from its step to the next one, so two slots suffice.
  std::vector<BufferLifetime> chain = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 3}};
  const MemoryPlan plan = PlanMemory(chain);
  ExpectValid(chain, plan);
  EXPECT_EQ(plan.arena_bytes, 2 * 1024);
  EXPECT_EQ(plan.total_bytes, 4 * 1024);
}

TEST(PlanMemory, RandomLifetimes) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferLifetime> buffers(1 + rng() % 60);
    for (auto& b : buffers) {
      b.bytes = 1 + rng() % 100000;
      b.first_step = static_cast<int>(rng() % 40);
      b.last_step = b.first_step + static_cast<int>(rng() % 10);
    }
    ExpectValid(buffers, PlanMemory(buffers));
  }
}

TEST(PlanMemory, Empty) {
  const MemoryPlan plan = PlanMemory({});
  EXPECT_EQ(plan.arena_bytes, 0);
}

void ExpectIdentical(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t o = 0; o < a.size(); ++o) {
    ASSERT_EQ(a[o].shape(), b[o].shape()) << what;
    EXPECT_EQ(0, std::memcmp(a[o].raw(), b[o].raw(), a[o].bytes())) << what << " output " << o;
  }
}

TEST(MemoryPlan, PlannedRunsMatchFreshRunsOnExporterModels) {
  for (const char* name : {"bert_ts_opset17", "gpt2_dynamo", "distilbert_ort_optimized", "resnet_ts_opset17"}) {
    const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/" + name + ".onnx";
    auto session = Session::Load(path);
    ASSERT_TRUE(session.ok()) << session.status();
    ThreadPool pool(2);
    std::mt19937 rng(9);
    for (auto [batch, seq] : {std::pair<int64_t, int64_t>{1, 16}, {3, 37}, {1, 16}}) {
      // Three runs of the same shapes with different values: the first records, the others use the plan.
      for (int run = 0; run < 3; ++run) {
        const std::vector<Tensor> in = InputsFor(**session, batch, seq, rng);
        auto got = (*session)->Run(in, &pool);
        ASSERT_TRUE(got.ok()) << got.status();
        auto fresh = Session::Load(path);
        ASSERT_TRUE(fresh.ok());
        auto want = (*fresh)->Run(in, &pool);
        ASSERT_TRUE(want.ok());
        ExpectIdentical(*got, *want, std::string(name) + " run " + std::to_string(run));
      }
      std::vector<Shape> shapes;
      for (const Tensor& t : InputsFor(**session, batch, seq, rng)) shapes.push_back(t.shape());
      auto stats = (*session)->MemoryPlanFor(shapes);
      ASSERT_TRUE(stats.ok()) << stats.status();
      EXPECT_GT(stats->buffers, 10) << name;
      EXPECT_LT(stats->arena_bytes, stats->total_bytes / 2) << name << ": the plan should reuse memory";
    }
    EXPECT_FALSE((*session)->MemoryPlanFor({{7, 7}}).ok());
  }
}

TEST(MemoryPlan, ConcurrentPlannedRuns) {
  const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/bert_ts_opset17.onnx";
  auto session = Session::Load(path);
  ASSERT_TRUE(session.ok()) << session.status();
  std::mt19937 rng(3);
  std::vector<std::vector<Tensor>> inputs;
  std::vector<std::vector<Tensor>> want;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(InputsFor(**session, 2, 24, rng));
    auto fresh = Session::Load(path);
    ASSERT_TRUE(fresh.ok());
    auto out = (*fresh)->Run(inputs.back(), nullptr);
    ASSERT_TRUE(out.ok());
    want.push_back(*out);
  }
  ASSERT_TRUE((*session)->Run(inputs[0], nullptr).ok());  // records the plan
  std::vector<std::thread> threads;
  std::vector<std::vector<Tensor>> got(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < 5; ++r) {
        auto out = (*session)->Run(inputs[i], nullptr);
        if (out.ok()) got[i] = *out;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) ExpectIdentical(got[i], want[i], "thread " + std::to_string(i));
}

}  // namespace
}  // namespace coreserve::runtime
