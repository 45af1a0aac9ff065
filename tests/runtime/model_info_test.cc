#include "runtime/model_info.h"

#include <gtest/gtest.h>

#include "tests/onnx_builder.h"

namespace coreserve::runtime {
namespace {

using coreserve::testing::TempDir;
using coreserve::testing::TinyMatMulModel;
using coreserve::testing::WriteModel;

TEST(ReadModelInfo, ReportsInputsOutputsOpsetsAndOps) {
  const auto dir = TempDir("model-info");
  const std::string path = WriteModel(TinyMatMulModel(), dir / "model.onnx");
  auto info = ReadModelInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->inputs.size(), 1u);
  EXPECT_EQ(info->inputs[0].name, "x");
  EXPECT_EQ(info->inputs[0].type, DataType::kFloat32);
  EXPECT_EQ(info->inputs[0].shape, (std::vector<int64_t>{-1, 4}));
  ASSERT_EQ(info->outputs.size(), 1u);
  EXPECT_EQ(info->outputs[0].name, "y");
  EXPECT_EQ(info->outputs[0].shape, (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(info->opsets.at(""), 17);
  EXPECT_EQ(info->op_counts.at("MatMul"), 1);
  EXPECT_EQ(info->ir_version, 8);
  EXPECT_EQ(info->producer, "coreserve-test");
}

TEST(ReadModelInfo, InitializersListedAsInputsAreNotInputs) {
  const auto dir = TempDir("model-info-ir3");
  const std::string path = WriteModel(TinyMatMulModel(/*list_initializer_as_input=*/true), dir / "model.onnx");
  auto info = ReadModelInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->inputs.size(), 1u);
  EXPECT_EQ(info->inputs[0].name, "x");
}

TEST(ReadModelInfo, MissingFileIsNotFound) {
  auto info = ReadModelInfo("/nonexistent/model.onnx");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(info.status().message().find("/nonexistent/model.onnx"), std::string::npos);
}

TEST(ReadModelInfo, GarbageIsInvalidArgumentNamingThePath) {
  const auto dir = TempDir("model-info-garbage");
  const std::string path = (dir / "model.onnx").string();
  std::ofstream(path) << "this is not a protobuf \xff\xff\xff\xff";
  auto info = ReadModelInfo(path);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(info.status().message().find(path), std::string::npos);
}

TEST(ReadModelInfo, CheckerRejectsUnknownOperator) {
  auto model = TinyMatMulModel();
  model.mutable_graph()->mutable_node(0)->set_op_type("NoSuchOp");
  const auto dir = TempDir("model-info-badop");
  const std::string path = WriteModel(model, dir / "model.onnx");
  auto info = ReadModelInfo(path);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(info.status().message().find("NoSuchOp"), std::string::npos) << info.status();
}

TEST(ReadModelInfo, CheckerRejectsUndefinedInput) {
  auto model = TinyMatMulModel();
  model.mutable_graph()->mutable_node(0)->set_input(1, "missing_weight");
  const auto dir = TempDir("model-info-missing");
  const std::string path = WriteModel(model, dir / "model.onnx");
  auto info = ReadModelInfo(path);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(info.status().message().find("missing_weight"), std::string::npos) << info.status();
}

}  // namespace
}  // namespace coreserve::runtime
