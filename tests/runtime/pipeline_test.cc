// Pipeline stages: a model cut into contiguous slices of its optimized graph computes, stage after stage, exactly
// what the whole session computes, and the stages partition its steps.
#include "runtime/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace coreserve::runtime {
namespace {

std::vector<Tensor> FixtureInputs(const Session& s, int64_t batch, int64_t seq, std::mt19937& rng) {
  std::vector<Tensor> inputs;
  for (const TensorInfo& info : s.inputs()) {
    if (info.name == "pixel_values") {
      Tensor t = Tensor::Allocate(DataType::kFloat32, {batch, 3, 64, 64});
      std::normal_distribution<float> d;
      for (int64_t i = 0; i < t.elements(); ++i) t.data<float>()[i] = d(rng);
      inputs.push_back(t);
      continue;
    }
    Tensor t = Tensor::Allocate(DataType::kInt64, {batch, seq});
    for (int64_t i = 0; i < t.elements(); ++i) {
      const int64_t p = i % seq;
      t.data<int64_t>()[i] = info.name == "input_ids" ? static_cast<int64_t>(rng() % 1000)
                             : info.name == "attention_mask" ? int64_t{p < seq - i / seq}
                                                             : int64_t{p >= seq / 2};
    }
    inputs.push_back(t);
  }
  return inputs;
}

TEST(Pipeline, StagesComputeExactlyWhatTheWholeSessionComputes) {
  for (const char* name : {"bert_ts_opset17", "gpt2_dynamo", "resnet_ts_opset17", "distilbert_ort_optimized"}) {
    auto whole = Session::Load(std::string(CORESERVE_FIXTURES_DIR) + "/" + name + ".onnx");
    ASSERT_TRUE(whole.ok()) << whole.status();
    std::mt19937 rng(5);
    const std::vector<Tensor> inputs = FixtureInputs(**whole, 2, 11, rng);
    ThreadPool pool(2);
    std::vector<double> seconds;
    auto want = (*whole)->Run(inputs, &pool, &seconds);
    ASSERT_TRUE(want.ok()) << want.status();
    for (int stages : {2, 3}) {
      SCOPED_TRACE(std::string(name) + ", " + std::to_string(stages) + " stages");
      auto cut = CutIntoStages(**whole, seconds, stages);
      ASSERT_TRUE(cut.ok()) << cut.status();
      ASSERT_EQ(static_cast<int>(cut->size()), stages);
      int next = 0;
      std::size_t nodes = 0;
      for (const PipelineStage& s : *cut) {
        EXPECT_EQ(s.first_step, next);
        EXPECT_GT(s.end_step, s.first_step);
        next = s.end_step;
        nodes += s.session->graph().nodes.size();
      }
      EXPECT_EQ(next, static_cast<int>((*whole)->steps().size()));
      EXPECT_EQ(nodes, (*whole)->graph().nodes.size());
      std::map<std::string, Tensor> values;
      for (std::size_t i = 0; i < inputs.size(); ++i) values[(*whole)->inputs()[i].name] = inputs[i];
      for (const PipelineStage& s : *cut) ASSERT_TRUE(RunStage(s, values, &pool).ok());
      for (std::size_t o = 0; o < want->size(); ++o) {
        const Tensor& a = (*want)[o];
        const Tensor& b = values.at((*whole)->outputs()[o].name);
        ASSERT_EQ(a.shape(), b.shape());
        EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.bytes()), 0) << "output " << o << " differs";
      }
    }
  }
}

TEST(Pipeline, CutsItCannotMakeAreRefused) {
  auto whole = Session::Load(std::string(CORESERVE_FIXTURES_DIR) + "/resnet_ts_opset17.onnx");
  ASSERT_TRUE(whole.ok());
  const int steps = static_cast<int>((*whole)->steps().size());
  std::vector<double> seconds(steps, 1.0);
  EXPECT_THAT(std::string(CutIntoStages(**whole, seconds, 1).status().message()), ::testing::HasSubstr("into 1 stages"));
  EXPECT_EQ(CutIntoStages(**whole, seconds, steps + 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(CutIntoStages(**whole, {1.0}, 2).status().message()),
              ::testing::HasSubstr(absl::StrCat("expected ", steps, " step times")));
  // Equal times: the steps are shared out evenly.
  auto even = CutIntoStages(**whole, seconds, 2);
  ASSERT_TRUE(even.ok()) << even.status();
  EXPECT_LE(std::abs((*even)[0].end_step - (steps - (*even)[0].end_step)), 1);
}

}  // namespace
}  // namespace coreserve::runtime
