// Test helper: writes small ONNX models with the onnx library's own protobuf API (not with our loader), so
// loader tests compare against what the file independently says.
#pragma once

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"
#include "tests/temp_dir.h"

namespace coreserve::testing {

inline void AddTensorValue(onnx::ValueInfoProto* v, const std::string& name, int elem_type,
                           const std::vector<std::string>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem_type);
  for (const std::string& d : dims) {
    auto* dim = t->mutable_shape()->add_dim();
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0]))) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
}

// Appends node `op` (named after its output) reading `inputs` and writing `output`; `perm`, when given, becomes
// its "perm" attribute.
inline onnx::NodeProto* AddOnnxNode(onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& inputs,
                                    const std::string& output, const std::vector<int64_t>& perm = {}) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(output);
  for (const auto& i : inputs) n->add_input(i);
  n->add_output(output);
  if (!perm.empty()) {
    auto* a = n->add_attribute();
    a->set_name("perm");
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t p : perm) a->add_ints(p);
  }
  return n;
}

// Adds a float initializer of `dims` holding `values`.
inline void AddFloatInitializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) t->add_float_data(v);
}

// Adds an int64 initializer of `dims` holding `values`.
inline void AddInt64Initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                const std::vector<int64_t>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t->add_dims(d);
  for (int64_t v : values) t->add_int64_data(v);
}

// y = MatMul(x, W) with x: float[batch, 4], W: float[4, 2] initializer, y: float[batch, 2].
// `list_initializer_as_input` writes W into graph.input too, as exporters before IR version 4 did.
inline onnx::ModelProto TinyMatMulModel(bool list_initializer_as_input = false) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("coreserve-test");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"batch", "4"});
  if (list_initializer_as_input) AddTensorValue(g->add_input(), "W", onnx::TensorProto::FLOAT, {"4", "2"});
  auto* w = g->add_initializer();
  w->set_name("W");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(4);
  w->add_dims(2);
  for (int i = 0; i < 8; ++i) w->add_float_data(0.5f * i);
  auto* node = g->add_node();
  node->set_op_type("MatMul");
  node->set_name("matmul0");
  node->add_input("x");
  node->add_input("W");
  node->add_output("y");
  AddTensorValue(g->add_output(), "y", onnx::TensorProto::FLOAT, {"batch", "2"});
  return m;
}

// y0, y1, ... = Split(MatMul(x, W) + b, widths) along `axis`, with x: float[n, k], W: float[k, sum(widths)] and b
// initializers of smooth nonzero values: a merged Q|K|V projection as the optimizer sees it.
inline onnx::ModelProto MatMulBiasSplitModel(int64_t k, const std::vector<int64_t>& widths, int64_t axis) {
  int64_t n = 0;
  for (int64_t w : widths) n += w;
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("matmul_split");
  AddTensorValue(g->add_input(), "x", onnx::TensorProto::FLOAT, {"n", std::to_string(k)});
  std::vector<float> w(static_cast<std::size_t>(k * n)), b(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.29f);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.05f * static_cast<float>(i) - 4;
  AddFloatInitializer(g, "W", {k, n}, w);
  AddFloatInitializer(g, "b", {n}, b);
  AddInt64Initializer(g, "widths", {static_cast<int64_t>(widths.size())}, widths);
  AddOnnxNode(g, "MatMul", {"x", "W"}, "xw");
  AddOnnxNode(g, "Add", {"xw", "b"}, "h");
  auto* split = g->add_node();
  split->set_op_type("Split");
  split->set_name("split");
  split->add_input("h");
  split->add_input("widths");
  auto* a = split->add_attribute();
  a->set_name("axis");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(axis);
  for (std::size_t i = 0; i < widths.size(); ++i) {
    std::string name = "y";
    name += std::to_string(i);
    split->add_output(name);
    AddTensorValue(g->add_output(), name, onnx::TensorProto::FLOAT, {"n", std::to_string(widths[i])});
  }
  return m;
}

inline std::string WriteModel(const onnx::ModelProto& model, const std::filesystem::path& path) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  model.SerializeToOstream(&out);
  return path.string();
}

}  // namespace coreserve::testing
