// The runtime's graph IR: values (tensors flowing between nodes, graph inputs, constants) and nodes (operators),
// imported from ONNX once at load and then rewritten by the optimizer passes.
//
// Values and nodes refer to each other by index. Removing a node marks it dead (Node::dead) instead of erasing
// it, so indices stay valid while passes run; Graph::Compact() drops dead nodes at the end.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/gemm/sgemm.h"
#include "runtime/tensor.h"

namespace coreserve::runtime {

// An ONNX attribute value. Graph-valued attributes (If/Loop bodies) are not supported.
using AttributeValue =
    std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>, std::vector<std::string>,
                 Tensor>;

struct Node;

// Typed attribute access whose errors name the node, its op type and the attribute.
class Attributes {
 public:
  void Set(const std::string& name, AttributeValue value) { values_[name] = std::move(value); }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  const std::map<std::string, AttributeValue>& all() const { return values_; }

  // Missing → the fallback; present with another type → InvalidArgument.
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t fallback) const;
  absl::StatusOr<float> Float(const std::string& name, float fallback) const;
  absl::StatusOr<std::string> String(const std::string& name, const std::string& fallback) const;
  absl::StatusOr<std::vector<int64_t>> Ints(const std::string& name, std::vector<int64_t> fallback) const;
  // Missing → NotFound (required tensor attributes such as Constant's value).
  absl::StatusOr<Tensor> TensorValue(const std::string& name) const;

  // Context for error messages, set by the importer: "node 'x' (Conv)".
  std::string owner;

 private:
  template <typename T>
  absl::StatusOr<T> Get(const std::string& name, T fallback, const char* kind) const;
  std::map<std::string, AttributeValue> values_;
};

struct Value {
  std::string name;
  DataType type = DataType::kUndefined;
  std::optional<Shape> shape;       // known dims; -1 where symbolic or unknown; nullopt when rank is unknown
  std::optional<Tensor> constant;   // initializers and folded constants
  int producer = -1;                // node index; -1 for graph inputs and constants
  std::vector<int> consumers;       // node indices (a node appears once per input that uses the value)
  bool graph_input = false;
  bool graph_output = false;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;               // "" for ai.onnx
  int64_t opset = 0;                // the model's opset version for the node's domain
  std::vector<int> inputs;          // value indices; -1 for an omitted optional input
  std::vector<int> outputs;         // value indices; -1 for an omitted optional output
  Attributes attributes;
  bool dead = false;

  // "node 'name' (Domain::OpType)", for messages.
  std::string Describe() const;
};

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;          // non-constant graph inputs, in model order
  std::vector<int> outputs;
  std::map<std::string, int64_t> opsets;
  // The precision the GEMMs of this graph run in (chosen per model at load; see SessionOptions::precision).
  kernels::GemmPrecision gemm_precision = kernels::GemmPrecision::kFp32;

  // Index of the value named `name`, creating it if new.
  int ValueId(const std::string& name);
  // Index of an existing value, or -1.
  int FindValue(const std::string& name) const;
  // Adds a constant value; returns its index.
  int AddConstant(const std::string& name, Tensor tensor);

  // Recomputes Value::producer/consumers from the live nodes.
  void RebuildEdges();
  // Removes dead nodes, renumbering node indices, and rebuilds edges.
  void Compact();
  // Live node indices in an order where every node follows the producers of its inputs; InvalidArgument
  // naming a node on a cycle or with an input nothing produces.
  absl::StatusOr<std::vector<int>> TopologicalOrder() const;
  // A value name not yet used, derived from `base`.
  std::string UniqueName(const std::string& base);

 private:
  std::map<std::string, int> by_name_;
  int64_t unique_counter_ = 0;
};

}  // namespace coreserve::runtime
