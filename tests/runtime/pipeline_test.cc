// Pipeline stages: a model cut into contiguous slices of its optimized graph computes, stage after stage, exactly
// what the whole session computes, and the stages partition its steps.
#include "runtime/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "tests/fixture_inputs.h"
#include "tests/onnx_builder.h"

namespace coreserve::runtime {
namespace {

using coreserve::testing::InputsFor;

TEST(Pipeline, StagesComputeExactlyWhatTheWholeSessionComputes) {
  for (const char* name : {"bert_ts_opset17", "gpt2_dynamo", "resnet_ts_opset17", "distilbert_ort_optimized"}) {
    auto whole = Session::Load(std::string(CORESERVE_FIXTURES_DIR) + "/" + name + ".onnx");
    ASSERT_TRUE(whole.ok()) << whole.status();
    std::mt19937 rng(5);
    const std::vector<Tensor> inputs = InputsFor(**whole, 2, 11, rng);
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

// y = Conv(Reshape(MatMul(x, W), [1, 4, 5, 5]), K) with 3x3 kernels, pads 1: a GEMM step and a convolution
// step whose flops are known by hand.
onnx::ModelProto MatMulThenConv() {
  using coreserve::testing::AddFloatInitializer;
  using coreserve::testing::AddOnnxNode;
  using coreserve::testing::AddTensorValue;
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("matmul-conv");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"2", "5", "8"});
  AddFloatInitializer(g, "W", {8, 10}, std::vector<float>(80, 0.25f));
  AddFloatInitializer(g, "K", {6, 4, 3, 3}, std::vector<float>(216, 0.5f));
  auto* shape = g->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(4);
  for (int64_t d : {1, 4, 5, 5}) shape->add_int64_data(d);
  AddOnnxNode(g, "MatMul", {"x", "W"}, "xw");
  AddOnnxNode(g, "Reshape", {"xw", "shape"}, "img");
  auto* conv = AddOnnxNode(g, "Conv", {"img", "K"}, "y");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"1", "6", "5", "5"});
  return m;
}

TEST(Pipeline, StepCostsCountEachGemmsAndConvolutionsArithmetic) {
  const auto dir = coreserve::testing::TempDir("pipeline-cost");
  auto whole = Session::Load(coreserve::testing::WriteModel(MatMulThenConv(), dir / "model.onnx"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  Tensor x = Tensor::Allocate(DataType::kFloat32, {2, 5, 8});
  for (int64_t i = 0; i < x.elements(); ++i) x.data<float>()[i] = 0.01f * static_cast<float>(i);
  std::vector<double> seconds;
  std::vector<Session::StepShapes> shapes;
  ASSERT_TRUE((*whole)->Run({x}, nullptr, &seconds, &shapes).ok());
  const std::vector<StepCost> cost = EstimateStepCosts(**whole, shapes);
  ASSERT_EQ(cost.size(), (*whole)->steps().size());
  double gemm_flops = 0, conv_flops = 0;
  for (std::size_t s = 0; s < cost.size(); ++s) {
    const std::string& op = (*whole)->graph().nodes[(*whole)->steps()[s]].op_type;
    if (op.find("MatMul") != std::string::npos) gemm_flops += cost[s].flops;
    if (op.find("Conv") != std::string::npos) conv_flops += cost[s].flops;
    EXPECT_GT(cost[s].bytes, 0) << op;
  }
  // [2, 5, 8] x [8, 10]: 100 outputs of 8 products; the convolution: 150 outputs of 4 x 3 x 3 products.
  EXPECT_EQ(gemm_flops, 2.0 * 100 * 8);
  EXPECT_EQ(conv_flops, 2.0 * 150 * 36);
}

TEST(Pipeline, StepCostOfASplitProductCountsEveryOutput) {
  // x [3, 16] x W [16, 96] + b, split into 32-column thirds: optimized into one FusedMatMul with three outputs.
  const onnx::ModelProto m = coreserve::testing::MatMulBiasSplitModel(16, {32, 32, 32}, 1);
  const auto dir = coreserve::testing::TempDir("pipeline-split-cost");
  auto whole = Session::Load(coreserve::testing::WriteModel(m, dir / "model.onnx"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ((*whole)->steps().size(), 1u);  // the Split is gone into the GEMM
  Tensor x = Tensor::Allocate(DataType::kFloat32, {3, 16});
  for (int64_t i = 0; i < x.elements(); ++i) x.data<float>()[i] = 0.5f;
  std::vector<double> seconds;
  std::vector<Session::StepShapes> shapes;
  ASSERT_TRUE((*whole)->Run({x}, nullptr, &seconds, &shapes).ok());
  EXPECT_EQ(EstimateStepCosts(**whole, shapes)[0].flops, 2.0 * 3 * 96 * 16);
}

TEST(Pipeline, MeasurementScalesTheEstimateOfEachOperatorType) {
  auto whole = Session::Load(std::string(CORESERVE_FIXTURES_DIR) + "/bert_ts_opset17.onnx");
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::mt19937 rng(5);
  std::vector<double> seconds;
  std::vector<Session::StepShapes> shapes;
  ASSERT_TRUE((*whole)->Run(InputsFor(**whole, 2, 11, rng), nullptr, &seconds, &shapes).ok());
  const std::vector<StepCost> cost = EstimateStepCosts(**whole, shapes);
  // Pretend every step took 1 ms: within each operator type the refined costs then add up to the type's
  // measured total, shared in proportion to the estimates.
  const std::vector<double> measured(seconds.size(), 1e-3);
  const std::vector<double> refined = RefineByMeasurement(**whole, cost, measured);
  ASSERT_EQ(refined.size(), measured.size());
  std::map<std::string, std::pair<double, int>> by_type;
  std::map<std::string, std::vector<std::pair<double, double>>> pairs;  // type -> (estimate, refined)
  for (std::size_t s = 0; s < refined.size(); ++s) {
    const std::string& op = (*whole)->graph().nodes[(*whole)->steps()[s]].op_type;
    by_type[op].first += refined[s];
    by_type[op].second += 1;
    pairs[op].push_back({cost[s].flops / 100e9 + cost[s].bytes / 20e9, refined[s]});
  }
  for (const auto& [op, total] : by_type) EXPECT_NEAR(total.first, 1e-3 * total.second, 1e-9) << op;
  ASSERT_GT(pairs["FusedMatMul"].size(), 2u);
  for (const auto& [est, ref] : pairs["FusedMatMul"]) {
    EXPECT_NEAR(ref / est, pairs["FusedMatMul"][0].second / pairs["FusedMatMul"][0].first, 1e-9);
  }
}

}  // namespace
}  // namespace coreserve::runtime
