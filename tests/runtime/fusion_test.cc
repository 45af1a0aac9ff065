// Every fusion leaves a graph's outputs unchanged (within 1e-5) and actually fires on the patterns exporters write.
#include "runtime/fusions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "kernels/cpu_features.h"
#include "runtime/onnx_import.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"

namespace coreserve::runtime {
namespace {

using coreserve::testing::AddFloatInitializer;
using coreserve::testing::AddOnnxNode;
using coreserve::testing::AddTensorValue;
using coreserve::testing::MatMulBiasSplitModel;
using coreserve::testing::TempDir;
using coreserve::testing::WriteModel;

int Count(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes) n += !node.dead && node.op_type == op;
  return n;
}

Tensor Random(DataType type, Shape shape, std::mt19937& rng, int64_t int_max = 0) {
  Tensor t = Tensor::Allocate(type, shape);
  std::uniform_real_distribution<float> d(-3, 3);
  for (int64_t i = 0; i < t.elements(); ++i) {
    if (type == DataType::kFloat32) t.data<float>()[i] = d(rng);
    if (type == DataType::kInt64) t.data<int64_t>()[i] = static_cast<int64_t>(rng() % int_max);
  }
  return t;
}

void ExpectSameOutputs(const std::string& path, const std::vector<Tensor>& inputs) {
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto fused = Session::Load(path, SessionOptions{.optimize = true});
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(fused.ok()) << fused.status();
  ThreadPool pool(2);
  auto a = (*plain)->Run(inputs, &pool);
  auto b = (*fused)->Run(inputs, &pool);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  for (std::size_t o = 0; o < a->size(); ++o) {
    ASSERT_EQ((*a)[o].shape(), (*b)[o].shape());
    for (int64_t i = 0; i < (*a)[o].elements(); ++i) {
      const float x = (*a)[o].data<float>()[i], y = (*b)[o].data<float>()[i];
      ASSERT_LE(std::fabs(x - y), 1e-5 * std::max(1.0f, std::fabs(x))) << path << " output " << o << " at " << i;
    }
  }
}

// x -> Div(sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5), as torch.onnx.export writes GELU, then MatMul + bias.
onnx::ModelProto TorchStyleGelu() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("gelu");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "8"});
  AddFloatInitializer(g, "sqrt2", {}, {1.4142135f});
  AddFloatInitializer(g, "one", {}, {1.0f});
  AddFloatInitializer(g, "half", {}, {0.5f});
  std::vector<float> w(320), b(40);
  for (int i = 0; i < 320; ++i) w[i] = std::sin(i * 0.37f);
  for (int i = 0; i < 40; ++i) b[i] = 0.1f * i - 2;
  AddFloatInitializer(g, "W", {8, 40}, w);
  AddFloatInitializer(g, "b", {40}, b);
  auto node = [g](const char* op, std::vector<std::string> in, const char* out) { AddOnnxNode(g, op, in, out); };
  node("MatMul", {"x", "W"}, "xw");
  node("Add", {"b", "xw"}, "h");  // bias on the left, as some exporters write it
  node("Div", {"h", "sqrt2"}, "s");
  node("Erf", {"s"}, "e");
  node("Add", {"e", "one"}, "e1");
  node("Mul", {"h", "e1"}, "m");
  node("Mul", {"m", "half"}, "y");
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"n", "40"});
  return m;
}

TEST(Fusions, TorchStyleGeluAndBiasFuseIntoOneGemm) {
  const auto dir = TempDir("fuse-gelu");
  const std::string path = WriteModel(TorchStyleGelu(), dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "FusedMatMul"), 1);
  EXPECT_EQ((*fused)->graph().nodes.size(), 1u);  // MatMul, Add and the five GELU nodes became one
  std::mt19937 rng(3);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {5, 8}, rng)});
}

TEST(Fusions, GeluNotFusedWhenAnIntermediateHasAnotherReader) {
  auto m = TorchStyleGelu();
  AddTensorValue(m.mutable_graph()->add_output(), "e", onnx::TensorProto::FLOAT, {"n", "40"});
  const auto dir = TempDir("fuse-gelu-shared");
  const std::string path = WriteModel(m, dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "Erf"), 1);  // still there: its output is a graph output
  std::mt19937 rng(4);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {3, 8}, rng)});
}

TEST(Fusions, DefaultBertModelFusesAndAgrees) {
  const std::string path = std::string(CORESERVE_MODELS_DIR) + "/bert_tiny/1/model.onnx";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not generated";
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok());
  // Per layer: one merged Q/K/V GEMM (storing Q, K and V as three outputs, no Split), the attention output, FFN1
  // (with GELU), FFN2; plus the pooler and the classifier.
  EXPECT_EQ(Count((*fused)->graph(), "FusedMatMul"), 2 * 4 + 2);
  EXPECT_EQ(Count((*fused)->graph(), "Split"), 0);
  EXPECT_EQ(Count((*fused)->graph(), "Erf"), 0);
  // Its scores are scaled by a Div after Q K^T (older exporters' form), absorbed into the attention's scale.
  EXPECT_EQ(Count((*fused)->graph(), "Attention"), 2);
  EXPECT_EQ(Count((*fused)->graph(), "Div"), 0);
  std::mt19937 rng(5);
  for (int64_t seq : {1, 9, 64}) {
    Tensor mask = Tensor::Allocate(DataType::kInt64, {2, seq});
    for (int64_t i = 0; i < 2 * seq; ++i) mask.data<int64_t>()[i] = (i % seq) < seq - (i / seq) * 2 || seq == 1;
    ExpectSameOutputs(path, {Random(DataType::kInt64, {2, seq}, rng, 1000), mask, Random(DataType::kInt64, {2, seq}, rng, 2)});
  }
}

TEST(Fusions, DecomposedLayerNormFromTorchScriptOpset14) {
  const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/bert_ts_opset14.onnx";
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto fused = Session::Load(path);
  ASSERT_TRUE(plain.ok() && fused.ok());
  EXPECT_GT(Count((*plain)->graph(), "ReduceMean"), 0);
  EXPECT_EQ(Count((*fused)->graph(), "ReduceMean"), 0);
  EXPECT_EQ(Count((*fused)->graph(), "LayerNormalization"), 5);  // embeddings + 2 per layer x 2 layers
  std::mt19937 rng(6);
  Tensor mask = Tensor::Allocate(DataType::kInt64, {2, 12});
  for (int64_t i = 0; i < 24; ++i) mask.data<int64_t>()[i] = i < 20;
  ExpectSameOutputs(path, {Random(DataType::kInt64, {2, 12}, rng, 1000), mask, Random(DataType::kInt64, {2, 12}, rng, 2)});
}

TEST(Fusions, Gpt2TanhGeluIntoTheGemmEpilogue) {
  const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/gpt2_ts_opset17.onnx";
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto fused = Session::Load(path);
  ASSERT_TRUE(plain.ok() && fused.ok());
  EXPECT_EQ(Count((*plain)->graph(), "Tanh"), 2);  // one GELU per layer, 2 layers
  for (const char* op : {"Tanh", "Pow", "FastGelu", "Gemm"}) EXPECT_EQ(Count((*fused)->graph(), op), 0) << op;
  std::mt19937 rng(9);
  Tensor mask = Tensor::Allocate(DataType::kInt64, {2, 10});
  for (int64_t i = 0; i < 20; ++i) mask.data<int64_t>()[i] = i < 17;
  ExpectSameOutputs(path, {Random(DataType::kInt64, {2, 10}, rng, 1000), mask});
}

TEST(Fusions, ConvAddReluFromTorchvisionBlocks) {
  // torch.onnx.export folds BatchNormalization itself; the Add (residual) and Relu remain for us to fuse.
  const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/resnet_ts_opset17.onnx";
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto fused = Session::Load(path);
  ASSERT_TRUE(plain.ok() && fused.ok());
  EXPECT_EQ(Count((*plain)->graph(), "Relu"), 19);
  for (const char* op : {"Relu", "Add", "Conv"}) EXPECT_EQ(Count((*fused)->graph(), op), 0) << op;
  // Channels-last from the first Conv to the pooling: one Transpose in, one out.
  EXPECT_EQ(Count((*fused)->graph(), "Transpose"), 2);
  std::mt19937 rng(7);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {2, 3, 64, 64}, rng)});
}

TEST(Fusions, MatMulStoresEachSplitRangeInItsOwnOutput) {
  const auto dir = TempDir("fuse-split");
  const std::string path = WriteModel(MatMulBiasSplitModel(48, {64, 32, 64}, -1), dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "Split"), 0);
  EXPECT_EQ(Count((*fused)->graph(), "FusedMatMul"), 1);
  std::mt19937 rng(11);
  // Row counts around the 12-row micro-tile; 2 threads, so column tiles straddle the ranges.
  for (int64_t rows : {1, 13, 37, 130}) ExpectSameOutputs(path, {Random(DataType::kFloat32, {rows, 48}, rng)});
  // int8 (per-row quantized A shared by every column tile): the fused and unfused products agree, as the
  // integer sums are the same and only where the bias is added differs.
  auto q_plain = Session::Load(path, SessionOptions{.optimize = false, .precision = kernels::GemmPrecision::kInt8});
  auto q_fused = Session::Load(path, SessionOptions{.precision = kernels::GemmPrecision::kInt8});
  ASSERT_TRUE(q_plain.ok() && q_fused.ok());
  ThreadPool pool(2);
  const Tensor x = Random(DataType::kFloat32, {37, 48}, rng);
  auto a = (*q_plain)->Run({x}, &pool);
  auto b = (*q_fused)->Run({x}, &pool);
  ASSERT_TRUE(a.ok() && b.ok());
  for (std::size_t o = 0; o < 3; ++o) {
    ASSERT_EQ((*a)[o].shape(), (*b)[o].shape());
    for (int64_t i = 0; i < (*a)[o].elements(); ++i) {
      const float u = (*a)[o].data<float>()[i], v = (*b)[o].data<float>()[i];
      ASSERT_LE(std::fabs(u - v), 1e-4f * std::max(1.0f, std::fabs(u))) << "output " << o << " at " << i;
    }
  }
}

TEST(Fusions, SplitOffThePackedPanelsStaysASplit) {
  const auto dir = TempDir("fuse-split-unaligned");
  const std::string path = WriteModel(MatMulBiasSplitModel(48, {40, 56, 64}, -1), dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "Split"), 1);  // 40 does not start the second range on a 32-column panel
  std::mt19937 rng(12);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {13, 48}, rng)});
}

void SetInts(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& values) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void SetInt(onnx::NodeProto* n, const char* name, int64_t value) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

std::vector<float> Wave(int64_t count, float phase) {
  std::vector<float> v(static_cast<std::size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[i] = 0.3f * std::sin(phase + 0.61f * static_cast<float>(i));
  return v;
}

// Convolutions and pools of every geometry the NHWC kernels handle (pads, strides, dilations, auto_pad, 1x1
// strided, bias-less, fused Relu, a same-shape and a broadcast residual, ceil-mode MaxPool, GlobalAveragePool),
// values read by operators that stay NCHW (Sigmoid, a grouped Conv) and graph outputs at every layout boundary.
onnx::ModelProto ConvLayoutZoo() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("conv_zoo");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "5", "h", "w"});
  auto weights = [&](const char* name, std::vector<int64_t> dims, float phase) {
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    AddFloatInitializer(g, name, dims, Wave(count, phase));
  };
  weights("w1", {8, 5, 3, 3}, 0.1f);
  weights("b1", {8}, 0.2f);
  weights("w2", {8, 8, 3, 3}, 0.3f);
  weights("w3", {8, 8, 1, 1}, 0.4f);
  weights("b3", {8}, 0.5f);
  weights("w4", {6, 8, 3, 3}, 0.6f);
  weights("w5", {6, 6, 1, 1}, 0.7f);
  weights("wg", {8, 4, 3, 3}, 0.8f);
  weights("w6", {8, 5, 1, 1}, 0.9f);
  weights("r6", {1, 8, 1, 1}, 1.0f);
  weights("w7", {4, 5, 2, 2}, 1.1f);
  auto conv = [&](std::vector<std::string> in, const char* out, std::vector<int64_t> pads, std::vector<int64_t> strides,
                  std::vector<int64_t> dilations = {1, 1}) {
    auto* n = AddOnnxNode(g, "Conv", in, out);
    if (!pads.empty()) SetInts(n, "pads", pads);
    SetInts(n, "strides", strides);
    SetInts(n, "dilations", dilations);
    return n;
  };
  conv({"x", "w1", "b1"}, "c1", {1, 1, 1, 1}, {1, 1});
  AddOnnxNode(g, "Relu", {"c1"}, "r1");
  conv({"r1", "w2"}, "c2", {0, 1, 1, 0}, {2, 2});
  conv({"r1", "w3", "b3"}, "c3", {0, 0, 0, 0}, {1, 1});
  AddOnnxNode(g, "Add", {"c3", "r1"}, "a3");
  AddOnnxNode(g, "Relu", {"a3"}, "r3");
  conv({"r3", "w4"}, "c4", {2, 2, 2, 2}, {1, 1}, {2, 2});
  conv({"c4", "w5"}, "c5", {0, 0, 0, 0}, {2, 2});
  AddOnnxNode(g, "Sigmoid", {"c4"}, "s4");
  AddOnnxNode(g, "GlobalAveragePool", {"c5"}, "gap");
  auto* pool = AddOnnxNode(g, "MaxPool", {"c2"}, "mp");
  SetInts(pool, "kernel_shape", {3, 3});
  SetInts(pool, "strides", {2, 2});
  SetInts(pool, "pads", {1, 1, 1, 1});
  SetInt(pool, "ceil_mode", 1);
  SetInt(conv({"r1", "wg"}, "cg", {1, 1, 1, 1}, {1, 1}), "group", 2);
  conv({"x", "w6"}, "c6", {0, 0, 0, 0}, {1, 1});
  AddOnnxNode(g, "Add", {"c6", "r6"}, "a6");
  AddOnnxNode(g, "Relu", {"a6"}, "r6out");
  auto* same = AddOnnxNode(g, "Conv", {"x", "w7"}, "c7");
  SetInts(same, "strides", {2, 2});
  auto* pad = same->add_attribute();
  pad->set_name("auto_pad");
  pad->set_type(onnx::AttributeProto::STRING);
  pad->set_s("SAME_UPPER");
  for (const char* out : {"c2", "r3", "s4", "gap", "mp", "cg", "r6out", "c7"}) {
    AddTensorValue(g->add_output(), out, onnx::TensorProto::FLOAT, {"d0", "d1", "d2", "d3"});
  }
  return m;
}

TEST(Fusions, ConvChainsRunChannelsLast) {
  const auto dir = TempDir("conv-zoo");
  const std::string path = WriteModel(ConvLayoutZoo(), dir / "zoo.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  const Graph& g = (*fused)->graph();
  EXPECT_EQ(Count(g, "NhwcConv"), 7);
  EXPECT_EQ(Count(g, "Conv"), 1);  // the grouped one
  EXPECT_EQ(Count(g, "NhwcMaxPool"), 1);
  EXPECT_EQ(Count(g, "NhwcGlobalAveragePool"), 1);
  std::mt19937 rng(21);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {2, 5, 11, 13}, rng)});
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {1, 5, 7, 8}, rng)});
  // Enough pixels (>= 2 threads x 96 rows) for the im2col-per-task path.
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {1, 5, 24, 20}, rng)});
}

// A byte initializer (u8 or s8 per `type`) of `dims`.
void AddByteInitializer(onnx::GraphProto* g, const std::string& name, int type, const std::vector<int64_t>& dims,
                        const std::vector<int>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  for (int v : values) t->add_int32_data(v);  // ONNX stores 8-bit values in int32_data
}

// quantize_static's QDQ MatMuls: activations quantized to u8 with one scale, weights s8 with a scale per column
// (and a bias Add after it), or u8 with one scale and a nonzero zero point.
onnx::ModelProto QdqMatMuls() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("qdq");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "16"});
  AddFloatInitializer(g, "sx", {}, {0.03f});
  AddByteInitializer(g, "zx", onnx::TensorProto::UINT8, {}, {131});
  std::vector<int> w1(16 * 24), w2(16 * 24), zw1(24, 0);
  for (int i = 0; i < 16 * 24; ++i) {
    w1[i] = (i * 37) % 255 - 127;
    w2[i] = (i * 53) % 256;
  }
  AddByteInitializer(g, "w1", onnx::TensorProto::INT8, {16, 24}, w1);
  AddByteInitializer(g, "zw1", onnx::TensorProto::INT8, {24}, zw1);
  AddFloatInitializer(g, "sw1", {24}, Wave(24, 0.5f));
  AddByteInitializer(g, "w2", onnx::TensorProto::UINT8, {16, 24}, w2);
  AddByteInitializer(g, "zw2", onnx::TensorProto::UINT8, {}, {3});
  AddFloatInitializer(g, "sw2", {}, {0.004f});
  AddFloatInitializer(g, "b1", {24}, Wave(24, 1.5f));
  AddOnnxNode(g, "QuantizeLinear", {"x", "sx", "zx"}, "xq");
  AddOnnxNode(g, "DequantizeLinear", {"xq", "sx", "zx"}, "xd");
  SetInt(AddOnnxNode(g, "DequantizeLinear", {"w1", "sw1", "zw1"}, "w1d"), "axis", 1);
  AddOnnxNode(g, "DequantizeLinear", {"w2", "sw2", "zw2"}, "w2d");
  AddOnnxNode(g, "MatMul", {"xd", "w1d"}, "h1");
  AddOnnxNode(g, "Add", {"b1", "h1"}, "y1");
  AddOnnxNode(g, "MatMul", {"xd", "w2d"}, "y2");
  AddTensorValue(g->add_output(), "y1", onnx::TensorProto::FLOAT, {"n", "24"});
  AddTensorValue(g->add_output(), "y2", onnx::TensorProto::FLOAT, {"n", "24"});
  return m;
}

TEST(Fusions, QdqMatMulRunsOnIntegerKernels) {
  const auto dir = TempDir("qdq");
  const std::string path = WriteModel(QdqMatMuls(), dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "MatMulIntegerToFloat"), 2);
  EXPECT_EQ(Count((*fused)->graph(), "MatMul"), 0);
  EXPECT_EQ(Count((*fused)->graph(), "Add"), 0);  // the bias rides along
  std::mt19937 rng(31);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {5, 16}, rng)});
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {1, 16}, rng)});
}

// Linear + residual Add twice: once with a residual of the output's shape (added in the GEMM epilogue), once
// with one that broadcasts (added after the GEMM).
onnx::ModelProto LinearPlusResidual() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("residual");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "8"});
  AddTensorValue(g->add_input(), "r", onnx::TensorProto::FLOAT, {"n", "40"});
  AddFloatInitializer(g, "W", {8, 40}, Wave(320, 0.2f));
  AddFloatInitializer(g, "b", {40}, Wave(40, 0.7f));
  AddFloatInitializer(g, "row", {1, 40}, Wave(40, 1.9f));
  AddTensorValue(g->add_input(), "x2", onnx::TensorProto::FLOAT, {"n", "8"});
  AddOnnxNode(g, "MatMul", {"x", "W"}, "xw");
  AddOnnxNode(g, "Add", {"xw", "b"}, "h");
  AddOnnxNode(g, "Add", {"r", "h"}, "y");  // residual on the left, as some exporters write it
  AddOnnxNode(g, "MatMul", {"x2", "W"}, "xw2");  // another input: siblings of x would merge into one GEMM
  AddOnnxNode(g, "Add", {"b", "xw2"}, "h2");
  AddOnnxNode(g, "Add", {"h2", "row"}, "y2");
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"n", "40"});
  AddTensorValue(g->add_output(), "y2", onnx::TensorProto::FLOAT, {"n", "40"});
  return m;
}

// quantize_static's QDQ convolutions: u8 activations with a zero point, s8 weights per output channel with an
// int32 bias (dequantized), padding and stride, then Relu; and a 1x1 one with one weight scale and no bias.
onnx::ModelProto QdqConvs() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("qdq_conv");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "4", "9", "9"});
  AddFloatInitializer(g, "sx", {}, {0.02f});
  AddByteInitializer(g, "zx", onnx::TensorProto::UINT8, {}, {120});
  std::vector<int> w1(8 * 4 * 9), w2(6 * 4), zeros(8, 0);
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<int>((i * 41) % 255) - 127;
  for (std::size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<int>((i * 29) % 200) - 100;
  AddByteInitializer(g, "w1", onnx::TensorProto::INT8, {8, 4, 3, 3}, w1);
  AddByteInitializer(g, "zw1", onnx::TensorProto::INT8, {8}, zeros);
  std::vector<float> sw1 = Wave(8, 0.3f);
  for (float& v : sw1) v = 0.002f + 0.004f * std::fabs(v);
  AddFloatInitializer(g, "sw1", {8}, sw1);
  auto* bq = g->add_initializer();
  bq->set_name("b1q");
  bq->set_data_type(onnx::TensorProto::INT32);
  bq->add_dims(8);
  for (int i = 0; i < 8; ++i) bq->add_int32_data(i * 300 - 1000);
  std::vector<float> sb1(8);
  for (int i = 0; i < 8; ++i) sb1[i] = 0.02f * sw1[i];
  AddFloatInitializer(g, "sb1", {8}, sb1);
  AddByteInitializer(g, "w2", onnx::TensorProto::INT8, {6, 4, 1, 1}, w2);
  AddFloatInitializer(g, "sw2", {}, {0.005f});
  AddOnnxNode(g, "QuantizeLinear", {"x", "sx", "zx"}, "xq");
  AddOnnxNode(g, "DequantizeLinear", {"xq", "sx", "zx"}, "xd");
  SetInt(AddOnnxNode(g, "DequantizeLinear", {"w1", "sw1", "zw1"}, "w1d"), "axis", 0);
  SetInt(AddOnnxNode(g, "DequantizeLinear", {"b1q", "sb1"}, "b1d"), "axis", 0);
  AddOnnxNode(g, "DequantizeLinear", {"w2", "sw2"}, "w2d");
  auto* c1 = AddOnnxNode(g, "Conv", {"xd", "w1d", "b1d"}, "c1");
  SetInts(c1, "pads", {1, 1, 1, 1});
  SetInts(c1, "strides", {2, 2});
  AddOnnxNode(g, "Relu", {"c1"}, "y1");
  AddOnnxNode(g, "Conv", {"xd", "w2d"}, "y2");
  AddTensorValue(g->add_output(), "y1", onnx::TensorProto::FLOAT, {"n", "8", "5", "5"});
  AddTensorValue(g->add_output(), "y2", onnx::TensorProto::FLOAT, {"n", "6", "9", "9"});
  return m;
}

TEST(Fusions, QdqConvRunsOnIntegerKernels) {
  const auto dir = TempDir("qdq-conv");
  const std::string path = WriteModel(QdqConvs(), dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "NhwcConv"), 2);
  EXPECT_EQ(Count((*fused)->graph(), "Conv"), 0);
  EXPECT_EQ(Count((*fused)->graph(), "DequantizeLinear"), 0);  // x is read quantized, the weights packed as s8
  EXPECT_EQ(Count((*fused)->graph(), "Relu"), 0);
  std::mt19937 rng(43);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {2, 4, 9, 9}, rng)});
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {1, 4, 9, 9}, rng)});
}

// A 3x3 convolution whose weights (576 x 512 floats) exceed the L2 budget and whose 90x90 image exceeds one 4 MB
// im2col block: NhwcConv's blocked path, over several blocks, in fp32 and (QDQ) in integers. The fp32 one is
// dilated (its kernel rows are not contiguous runs), has fewer channels than the per-tap pointer path takes,
// and a 7x7 kernel, so its weights exceed L2: the three conditions that leave a convolution to im2col.
onnx::ModelProto LargeConv(bool qdq) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("large_conv");
  const int64_t ci = qdq ? 64 : 12, kernel = qdq ? 3 : 7;
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", std::to_string(ci), "90", "90"});
  std::string x = "x", w = "w";
  if (qdq) {
    AddFloatInitializer(g, "sx", {}, {0.03f});
    AddByteInitializer(g, "zx", onnx::TensorProto::UINT8, {}, {100});
    std::vector<int> wq(512 * 64 * 9);
    for (std::size_t i = 0; i < wq.size(); ++i) wq[i] = static_cast<int>((i * 37) % 255) - 127;
    AddByteInitializer(g, "wq", onnx::TensorProto::INT8, {512, 64, 3, 3}, wq);
    AddFloatInitializer(g, "sw", {}, {0.0005f});
    AddOnnxNode(g, "QuantizeLinear", {"x", "sx", "zx"}, "xq");
    AddOnnxNode(g, "DequantizeLinear", {"xq", "sx", "zx"}, "xd");
    AddOnnxNode(g, "DequantizeLinear", {"wq", "sw"}, "wd");
    x = "xd", w = "wd";
  } else {
    std::vector<float> wv = Wave(512 * ci * kernel * kernel, 0.4f);
    for (float& v : wv) v *= 0.1f;
    AddFloatInitializer(g, "w", {512, ci, kernel, kernel}, wv);
  }
  const int64_t dilation = qdq ? 1 : 2, pad = kernel / 2 * dilation;
  auto* conv = AddOnnxNode(g, "Conv", {x, w}, "y");
  SetInts(conv, "pads", {pad, pad, pad, pad});
  SetInts(conv, "dilations", {dilation, dilation});
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"n", "512", "90", "90"});
  return m;
}

TEST(Fusions, LargeConvolutionsInSeveralIm2colBlocks) {
  for (bool qdq : {false, true}) {
    const auto dir = TempDir(qdq ? "large-conv-qdq" : "large-conv");
    const std::string path = WriteModel(LargeConv(qdq), dir / "model.onnx");
    auto fused = Session::Load(path);
    ASSERT_TRUE(fused.ok()) << fused.status();
    EXPECT_EQ(Count((*fused)->graph(), "NhwcConv"), 1);
    std::mt19937 rng(47);
    ExpectSameOutputs(path, {Random(DataType::kFloat32, {1, qdq ? 64 : 12, 90, 90}, rng)});
  }
}

// Residual blocks with 16 channels (3x3 convolutions as Winograd F(2x2, 3x3), against the plain NCHW Conv): the
// first block's shortcut r1 is read again after it (by the Add making r3), so its convolution must not
// accumulate in r1's buffer; the second block's shortcut r3 is read last by its second convolution, a 3x3 one,
// whose output transform then adds it in place. The 9x11 image has few tiles (the Winograd steps run one after
// the other over the pool), the 2x20x14 batch many (each task takes its tiles through all three).
onnx::ModelProto ResidualBlocks() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("residual_blocks");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", "16", "h", "w"});
  // Weights scaled as trained ones are (|w| ~ 1 / sqrt(fan-in)), so activations stay near 1 through the blocks.
  auto scaled = [](std::vector<float> v, float by) {
    for (float& x : v) x *= by;
    return v;
  };
  AddFloatInitializer(g, "w1", {16, 16, 3, 3}, scaled(Wave(16 * 16 * 9, 0.1f), 0.1f));
  AddFloatInitializer(g, "b1", {16}, Wave(16, 0.2f));
  AddFloatInitializer(g, "w2", {16, 16, 1, 1}, scaled(Wave(16 * 16, 0.3f), 0.25f));
  AddFloatInitializer(g, "w3", {16, 16, 3, 3}, scaled(Wave(16 * 16 * 9, 0.4f), 0.1f));
  AddFloatInitializer(g, "b3", {16}, Wave(16, 0.5f));
  AddFloatInitializer(g, "w4", {16, 16, 1, 1}, scaled(Wave(16 * 16, 0.6f), 0.25f));
  AddFloatInitializer(g, "w5", {16, 16, 1, 1}, scaled(Wave(16 * 16, 0.7f), 0.25f));
  SetInts(AddOnnxNode(g, "Conv", {"x", "w1", "b1"}, "c1"), "pads", {1, 1, 1, 1});
  AddOnnxNode(g, "Relu", {"c1"}, "r1");
  AddOnnxNode(g, "Conv", {"r1", "w2"}, "c2a");
  AddOnnxNode(g, "Relu", {"c2a"}, "u");
  AddOnnxNode(g, "Conv", {"u", "w5"}, "c2");
  AddOnnxNode(g, "Add", {"c2", "r1"}, "a2");
  AddOnnxNode(g, "Relu", {"a2"}, "r2");
  AddOnnxNode(g, "Add", {"r2", "r1"}, "r3");
  AddOnnxNode(g, "Conv", {"r3", "w4"}, "c4");
  AddOnnxNode(g, "Relu", {"c4"}, "t");
  SetInts(AddOnnxNode(g, "Conv", {"t", "w3", "b3"}, "c3"), "pads", {1, 1, 1, 1});
  AddOnnxNode(g, "Add", {"r3", "c3"}, "a3");
  AddOnnxNode(g, "Relu", {"a3"}, "y");
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"n", "16", "h", "w"});
  return m;
}

TEST(Fusions, ConvolutionsAccumulateInPlaceOnlyOntoDeadShortcuts) {
  const auto dir = TempDir("residual-blocks");
  const std::string path = WriteModel(ResidualBlocks(), dir / "model.onnx");
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto fused = Session::Load(path);
  ASSERT_TRUE(plain.ok() && fused.ok());
  EXPECT_EQ(Count((*fused)->graph(), "NhwcConv"), 5);
  EXPECT_EQ(Count((*fused)->graph(), "Add"), 1);  // r3; the other two are in the convolutions' epilogues
  std::mt19937 rng(53);
  ThreadPool pool(2);
  for (const Shape& shape : {Shape{1, 16, 9, 11}, Shape{2, 16, 20, 14}}) {
    const Tensor x = Random(DataType::kFloat32, shape, rng);
    auto want = (*plain)->Run({x}, &pool);
    ASSERT_TRUE(want.ok()) << want.status();
    // The first run of a shape records the memory plan, the later ones run in its arena.
    for (int run = 0; run < 3; ++run) {
      auto got = (*fused)->Run({x}, &pool);
      ASSERT_TRUE(got.ok()) << got.status();
      const Tensor &a = (*want)[0], &b = (*got)[0];
      ASSERT_EQ(a.shape(), b.shape());
      for (int64_t i = 0; i < a.elements(); ++i) {
        const float u = a.data<float>()[i], v = b.data<float>()[i];
        ASSERT_LE(std::fabs(u - v), 1e-5 * std::max(1.0f, std::fabs(u))) << "run " << run << " at " << i;
      }
    }
    // Channels-last X, r1, u, r2, r3, t and the last convolution's output before its Transpose to y: the last
    // one is r3's own buffer, so six.
    auto stats = (*fused)->MemoryPlanFor({shape});
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->buffers, 6);
  }
}

TEST(Fusions, ResidualAddIntoTheGemmEpilogue) {
  const auto dir = TempDir("residual");
  const std::string path = WriteModel(LinearPlusResidual(), dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ(Count((*fused)->graph(), "Add"), 0);
  std::mt19937 rng(41);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {13, 8}, rng), Random(DataType::kFloat32, {13, 40}, rng),
                           Random(DataType::kFloat32, {13, 8}, rng)});
}

TEST(Fusions, ConvBatchNormFolding) {
  const std::string path = std::string(CORESERVE_MODELS_DIR) + "/resnet_tiny/1/model.onnx";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not generated";
  auto plain = Session::Load(path, SessionOptions{.optimize = false});
  auto fused = Session::Load(path);
  ASSERT_TRUE(plain.ok() && fused.ok());
  EXPECT_EQ(Count((*plain)->graph(), "BatchNormalization"), 6);
  for (const char* op : {"BatchNormalization", "Relu", "Add"}) EXPECT_EQ(Count((*fused)->graph(), op), 0) << op;
  std::mt19937 rng(8);
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {3, 3, 32, 32}, rng)});
}

}  // namespace
}  // namespace coreserve::runtime

namespace coreserve::runtime {
namespace {

// Runs with shapes A, B, A again (new data each time) on one session: the second A reuses the cached shape-only
// results, and every output must equal a fresh session's (no cache) on the same inputs.
TEST(ShapeCache, ReusedAcrossRunsAndShapesWithoutChangingOutputs) {
  const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/gpt2_ts_opset17.onnx";  // causal mask from shapes
  auto cached = Session::Load(path);
  ASSERT_TRUE(cached.ok());
  std::mt19937 rng(10);
  ThreadPool pool(2);
  int run = 0;
  for (int64_t seq : {7, 13, 7, 13, 7}) {
    Tensor ids = Random(DataType::kInt64, {2, seq}, rng, 1000);
    Tensor mask = Tensor::Allocate(DataType::kInt64, {2, seq});
    for (int64_t i = 0; i < 2 * seq; ++i) mask.data<int64_t>()[i] = (i % seq) < seq - (i / seq) * 3;
    auto got = (*cached)->Run({ids, mask}, &pool);
    auto fresh = Session::Load(path);
    ASSERT_TRUE(got.ok() && fresh.ok());
    auto want = (*fresh)->Run({ids, mask}, &pool);
    ASSERT_TRUE(want.ok());
    ASSERT_EQ((*got)[0].shape(), (*want)[0].shape());
    EXPECT_EQ(0, std::memcmp((*got)[0].raw(), (*want)[0].raw(), (*got)[0].bytes())) << "run " << run << " seq " << seq;
    ++run;
  }
  EXPECT_EQ((*cached)->shape_cache_size(), 2u);  // one entry per distinct input shape signature
}

}  // namespace
}  // namespace coreserve::runtime

namespace coreserve::runtime {
namespace {

// MatMul(Transpose(X) * 0.5, Transpose(Y)) -> Transpose, with Y given at rank 4 (strided path) or rank 3
// (broadcast: the fused op's materializing fallback); outputs must equal the unfused graph's.
onnx::ModelProto PermutedModel(bool y_rank3) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("permuted");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"2", "5", "3", "4"});  // [b, s, h, d]
  if (y_rank3) {
    AddTensorValue(g->add_input(), "y", onnx::TensorProto::FLOAT, {"3", "4", "6"});    // [h, d, n]
  } else {
    AddTensorValue(g->add_input(), "y", onnx::TensorProto::FLOAT, {"2", "6", "3", "4"});  // [b, n, h, d]
  }
  AddFloatInitializer(g, "half", {}, {0.5f});
  auto node = [g](const char* op, std::vector<std::string> in, const char* out, std::vector<int64_t> perm = {}) {
    AddOnnxNode(g, op, in, out, perm);
  };
  node("Transpose", {"x"}, "xt", {0, 2, 1, 3});  // [b, h, s, d]
  node("Mul", {"xt", "half"}, "xs");
  if (y_rank3) {
    node("MatMul", {"xs", "y"}, "p");  // [b, h, s, n] by broadcasting y over b
  } else {
    node("Transpose", {"y"}, "yt", {0, 2, 3, 1});  // [b, h, d, n]
    node("MatMul", {"xs", "yt"}, "p");
  }
  node("Transpose", {"p"}, "out", {0, 2, 1, 3});  // [b, s, h, n]
  AddTensorValue(g->add_output(), "out", onnx::TensorProto::FLOAT, {"2", "5", "3", "6"});
  return m;
}

TEST(Fusions, PermutedMatMulStridedAndFallback) {
  for (bool y_rank3 : {false, true}) {
    const auto dir = TempDir(y_rank3 ? "permuted-fallback" : "permuted");
    const std::string path = WriteModel(PermutedModel(y_rank3), dir / "model.onnx");
    auto fused = Session::Load(path);
    ASSERT_TRUE(fused.ok()) << fused.status();
    EXPECT_EQ(Count((*fused)->graph(), "PermutedMatMul"), 1) << y_rank3;
    EXPECT_EQ(Count((*fused)->graph(), "Transpose"), 0) << y_rank3;
    std::mt19937 rng(11);
    ExpectSameOutputs(path, {Random(DataType::kFloat32, {2, 5, 3, 4}, rng),
                             Random(DataType::kFloat32, y_rank3 ? Shape{3, 4, 6} : Shape{2, 6, 3, 4}, rng)});
  }
}

}  // namespace
}  // namespace coreserve::runtime

namespace coreserve::runtime {
namespace {

// Softmax(scores + mask) with the exporters' NaN guard, including a row masked entirely with -inf (the guard turns
// its NaNs into zeros): one MaskedSoftmax, same outputs.
TEST(Fusions, MaskedSoftmaxWithNanGuard) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("masked_softmax");
  AddTensorValue(g->add_input(), "scores", onnx::TensorProto::FLOAT, {"2", "3", "4", "5"});
  AddTensorValue(g->add_input(), "mask", onnx::TensorProto::FLOAT, {"2", "1", "4", "5"});
  AddFloatInitializer(g, "zero", {}, {0.0f});
  auto node = [g](const char* op, std::vector<std::string> in, const char* out) { AddOnnxNode(g, op, in, out); };
  node("Add", {"scores", "mask"}, "s");
  node("Softmax", {"s"}, "p");
  node("IsNaN", {"p"}, "nan");
  node("Where", {"nan", "zero", "p"}, "y");
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"2", "3", "4", "5"});
  const auto dir = TempDir("masked-softmax");
  const std::string path = WriteModel(m, dir / "model.onnx");
  auto fused = Session::Load(path);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_EQ((*fused)->graph().nodes.size(), 1u);
  EXPECT_EQ(Count((*fused)->graph(), "MaskedSoftmax"), 1);
  std::mt19937 rng(12);
  Tensor mask = Tensor::Allocate(DataType::kFloat32, {2, 1, 4, 5});
  for (int64_t i = 0; i < mask.elements(); ++i) mask.data<float>()[i] = (i % 3 == 0) ? -INFINITY : 0.0f;
  for (int64_t j = 0; j < 5; ++j) mask.data<float>()[5 + j] = -INFINITY;  // batch 0, query 1: every key masked
  ExpectSameOutputs(path, {Random(DataType::kFloat32, {2, 3, 4, 5}, rng), mask});
}

}  // namespace
}  // namespace coreserve::runtime

namespace coreserve::runtime {
namespace {

// Scaled dot-product attention as exporters write it: Q, K, V [b, s, heads, d] split into heads by Transposes,
// Q and K scaled, Q K^T, + mask, Softmax (with or without the NaN guard), P V, heads merged by a Transpose.
// `kv_heads` 1 broadcasts one K/V head over every query head (MatMul's broadcasting); `masked` false uses a plain
// Softmax. Fused: one coreserve::Attention, same outputs.
onnx::ModelProto AttentionModel(int kv_heads, bool masked) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("attention");
  const std::string kvh = std::to_string(kv_heads);
  AddTensorValue(g->add_input(), "q", onnx::TensorProto::FLOAT, {"b", "s", "3", "8"});
  AddTensorValue(g->add_input(), "k", onnx::TensorProto::FLOAT, {"b", "t", kvh, "8"});
  AddTensorValue(g->add_input(), "v", onnx::TensorProto::FLOAT, {"b", "t", kvh, "8"});
  if (masked) AddTensorValue(g->add_input(), "mask", onnx::TensorProto::FLOAT, {"b", "1", "1", "t"});
  AddFloatInitializer(g, "scale", {}, {0.59460356f});  // 8^-1/4 on each side, as the SDPA exporters split it
  AddFloatInitializer(g, "zero", {}, {0.0f});
  auto node = [g](const char* op, std::vector<std::string> in, const char* out, std::vector<int64_t> perm = {}) {
    AddOnnxNode(g, op, in, out, perm);
  };
  node("Transpose", {"q"}, "qt", {0, 2, 1, 3});
  node("Mul", {"qt", "scale"}, "qs");
  node("Transpose", {"k"}, "kt", {0, 2, 3, 1});
  node("Mul", {"kt", "scale"}, "ks");
  node("Transpose", {"v"}, "vt", {0, 2, 1, 3});
  node("MatMul", {"qs", "ks"}, "scores");
  if (masked) {
    node("Add", {"scores", "mask"}, "masked");
    node("Softmax", {"masked"}, "p");
    node("IsNaN", {"p"}, "nan");
    node("Where", {"nan", "zero", "p"}, "probs");
  } else {
    node("Softmax", {"scores"}, "probs");
  }
  node("MatMul", {"probs", "vt"}, "ctx");
  node("Transpose", {"ctx"}, "out", {0, 2, 1, 3});
  AddTensorValue(g->add_output(), "out", onnx::TensorProto::FLOAT, {"b", "s", "3", "8"});
  return m;
}

TEST(Fusions, AttentionIntoOneOperator) {
  for (int kv_heads : {3, 1}) {
    for (bool masked : {true, false}) {
      const auto dir = TempDir("attention");
      const std::string path = WriteModel(AttentionModel(kv_heads, masked), dir / "model.onnx");
      auto fused = Session::Load(path);
      ASSERT_TRUE(fused.ok()) << fused.status();
      EXPECT_EQ((*fused)->graph().nodes.size(), 1u) << kv_heads << masked;
      EXPECT_EQ(Count((*fused)->graph(), "Attention"), 1) << kv_heads << masked;
      std::mt19937 rng(21);
      for (auto [b, s, t] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {2, 5, 7}, {3, 40, 40}}) {
        std::vector<Tensor> in = {Random(DataType::kFloat32, {b, s, 3, 8}, rng),
                                  Random(DataType::kFloat32, {b, t, kv_heads, 8}, rng),
                                  Random(DataType::kFloat32, {b, t, kv_heads, 8}, rng)};
        if (masked) {
          Tensor mask = Tensor::Allocate(DataType::kFloat32, {b, 1, 1, t});
          for (int64_t i = 0; i < mask.elements(); ++i) mask.data<float>()[i] = (i % t) >= t - (i / t) ? -INFINITY : 0.0f;
          mask.data<float>()[0] = -INFINITY;  // batch 0 has at least one key masked; with t == 1, every key
          in.push_back(mask);
        }
        ExpectSameOutputs(path, in);
      }
    }
  }
}

// With the model in bf16, the fused attention computes Q K^T and P V with bf16 products: its outputs move away from
// the fp32 ones (so bf16 really runs), by what bf16 rounding of the operands explains. A score is a dot product of
// 8 values of |x| <= 3, so its rounding error is ~8 * 9 * 2^-8 / sqrt(8) ~ 0.1 at worst (typically far less), and
// the outputs, softmax-weighted means of |V| <= 3, move by a small multiple of that: 0.01-0.05 measured, 0.25
// allowed; a K read with the wrong transposition moves them by ~5.
TEST(Fusions, AttentionInBf16WithinItsRounding) {
  const auto dir = TempDir("attention-bf16");
  const std::string path = WriteModel(AttentionModel(3, true), dir / "model.onnx");
  auto fp32 = Session::Load(path);
  auto bf16 = Session::Load(path, SessionOptions{.precision = kernels::GemmPrecision::kBf16});
  ASSERT_TRUE(fp32.ok() && bf16.ok());
  ThreadPool pool(2);
  std::mt19937 rng(23);
  for (auto [b, s, t] : {std::tuple<int64_t, int64_t, int64_t>{2, 5, 7}, {3, 40, 40}}) {
    std::vector<Tensor> in = {Random(DataType::kFloat32, {b, s, 3, 8}, rng),
                              Random(DataType::kFloat32, {b, t, 3, 8}, rng),
                              Random(DataType::kFloat32, {b, t, 3, 8}, rng),
                              Tensor::Allocate(DataType::kFloat32, {b, 1, 1, t})};
    std::fill(in[3].data<float>(), in[3].data<float>() + in[3].elements(), 0.0f);
    auto want = (*fp32)->Run(in, &pool);
    auto got = (*bf16)->Run(in, &pool);
    ASSERT_TRUE(want.ok() && got.ok());
    double max_diff = 0;
    for (int64_t i = 0; i < (*want)[0].elements(); ++i) {
      max_diff = std::max<double>(max_diff, std::fabs((*want)[0].data<float>()[i] - (*got)[0].data<float>()[i]));
    }
    EXPECT_GT(max_diff, 1e-6) << "bf16 attention gave the fp32 result: not computed in bf16";
    EXPECT_LT(max_diff, 0.25) << b << "x" << s << "x" << t;
  }
}

// An int8 model has no weights in attention to quantize: its two products run in bf16 where the CPU multiplies
// bf16 natively (the same bits as a bf16 session), else in fp32 (the same bits as an fp32 session).
TEST(Fusions, AttentionInInt8ModelsRunsBf16WhereNative) {
  const auto dir = TempDir("attention-int8");
  const std::string path = WriteModel(AttentionModel(3, true), dir / "model.onnx");
  const kernels::CpuFeatures& cpu = kernels::ActiveCpuFeatures();
  const bool native = cpu.avx512_bf16 || cpu.bf16;
  auto int8 = Session::Load(path, SessionOptions{.precision = kernels::GemmPrecision::kInt8});
  auto same = Session::Load(path, SessionOptions{.precision = native ? kernels::GemmPrecision::kBf16
                                                                     : kernels::GemmPrecision::kFp32});
  ASSERT_TRUE(int8.ok() && same.ok());
  ThreadPool pool(2);
  std::mt19937 rng(29);
  std::vector<Tensor> in = {Random(DataType::kFloat32, {2, 40, 3, 8}, rng), Random(DataType::kFloat32, {2, 40, 3, 8}, rng),
                            Random(DataType::kFloat32, {2, 40, 3, 8}, rng),
                            Tensor::Allocate(DataType::kFloat32, {2, 1, 1, 40})};
  std::fill(in[3].data<float>(), in[3].data<float>() + in[3].elements(), 0.0f);
  auto want = (*same)->Run(in, &pool);
  auto got = (*int8)->Run(in, &pool);
  ASSERT_TRUE(want.ok() && got.ok());
  ASSERT_EQ((*want)[0].elements(), (*got)[0].elements());
  EXPECT_EQ(0, std::memcmp((*want)[0].data<float>(), (*got)[0].data<float>(), (*got)[0].elements() * sizeof(float)))
      << (native ? "bf16" : "fp32") << " expected";
}

}  // namespace
}  // namespace coreserve::runtime

namespace coreserve::runtime {
namespace {

// The dynamo exporter writes K^T as Reshape -> Transpose(0, 2, 1) -> Reshape over the head-split K, with the
// reshape targets computed from Shape(K): proved symbolically, it becomes one Transpose, composes with the head
// split, and the whole attention fuses as in the TorchScript exports.
TEST(Fusions, DynamoAttentionThroughSymbolicReshapes) {
  for (const char* name : {"bert_dynamo", "gpt2_dynamo"}) {
    const std::string path = std::string(CORESERVE_FIXTURES_DIR) + "/" + name + ".onnx";
    auto fused = Session::Load(path);
    ASSERT_TRUE(fused.ok()) << fused.status();
    EXPECT_EQ(Count((*fused)->graph(), "Attention"), 2) << name;  // both layers
    std::mt19937 rng(17);
    for (int64_t seq : {1, 13}) {
      std::vector<Tensor> in;
      for (const TensorInfo& info : (*fused)->inputs()) {
        if (info.name == "attention_mask") {
          Tensor mask = Tensor::Allocate(DataType::kInt64, {2, seq});
          for (int64_t i = 0; i < 2 * seq; ++i) mask.data<int64_t>()[i] = (i % seq) < seq - (i / seq) * 3 || i % seq == 0;
          in.push_back(mask);
        } else {
          in.push_back(Random(DataType::kInt64, {2, seq}, rng, info.name == "token_type_ids" ? 2 : 1000));
        }
      }
      ExpectSameOutputs(path, in);
    }
  }
}

}  // namespace
}  // namespace coreserve::runtime
