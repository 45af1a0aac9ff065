#include "runtime/model_info.h"

#include <gtest/gtest.h>

#include "runtime/onnx_import.h"

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

// The file describes only the graph's input and output; loading infers every intermediate: static dims, the
// symbolic batch as -1, and a Reshape target computed from Shape (data propagation) and from a constant.
TEST(LoadOnnxGraph, InfersShapesTheFileDoesNotGive) {
  auto model = TinyMatMulModel();
  auto* g = model.mutable_graph();
  g->mutable_node(0)->set_output(0, "h");
  auto* shape_of = g->add_node();
  shape_of->set_op_type("Shape");
  shape_of->add_input("x");
  shape_of->add_output("xs");
  auto* target = g->add_initializer();
  target->set_name("target");
  target->set_data_type(onnx::TensorProto::INT64);
  target->add_dims(3);
  for (int64_t v : {0, 2, 1}) target->add_int64_data(v);
  auto* reshape = g->add_node();
  reshape->set_op_type("Reshape");
  reshape->add_input("h");
  reshape->add_input("target");
  reshape->add_output("r");
  auto* relu = g->add_node();
  relu->set_op_type("Relu");
  relu->add_input("r");
  relu->add_output("y3");
  g->mutable_output(0)->set_name("y3");
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_param("z");
  const auto dir = TempDir("infer-shapes");
  const std::string path = coreserve::testing::WriteModel(model, dir / "model.onnx");
  auto graph = LoadOnnxGraph(path);
  ASSERT_TRUE(graph.ok()) << graph.status();
  auto shape_of_value = [&](const char* name) {
    const int id = graph->FindValue(name);
    EXPECT_GE(id, 0) << name;
    return id >= 0 && graph->values[id].shape ? *graph->values[id].shape : Shape{99};
  };
  EXPECT_EQ(shape_of_value("h"), (Shape{-1, 2}));
  EXPECT_EQ(shape_of_value("xs"), (Shape{2}));
  EXPECT_EQ(shape_of_value("r"), (Shape{-1, 2, 1}));
  EXPECT_EQ(shape_of_value("y3"), (Shape{-1, 2, 1}));
}

}  // namespace
}  // namespace coreserve::runtime
