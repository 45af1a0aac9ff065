// The operator interface: every operator, whatever its type, is built once at load from its node (parsing and
// validating attributes, pre-packing constant weights) and then run per request with one uniform signature.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/graph.h"
#include "runtime/tensor.h"
#include "runtime/thread_pool.h"

namespace coreserve::runtime {

// What an operator sees when it runs. Inputs are never null for required inputs; an omitted optional input
// is null. The operator fills every output it produces.
struct OpContext {
  std::vector<const Tensor*> inputs;
  std::vector<Tensor> outputs;
  ThreadPool* pool = nullptr;
  const Node* node = nullptr;
  // The memory plan's place for each output (set by the Session on runs of a planned input-shape signature): an
  // output of exactly `bytes` is placed at arena + offset instead of being allocated.
  struct Slot {
    int64_t offset = -1;
    int64_t bytes = 0;
  };
  std::vector<Slot> slots;
  std::byte* arena = nullptr;
  std::shared_ptr<void> arena_owner;

  const Tensor& in(std::size_t i) const { return *inputs[i]; }
  bool has(std::size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  // Per input, whether ReuseInput may hand its storage to an output (set by the Session).
  std::vector<bool> reusable;

  // Output i (uninitialised): its planned slot when it has one of this size, else a new allocation.
  Tensor& Output(std::size_t i, DataType type, Shape shape);
  // Output `out` as input `in` itself — same storage, shape and contents — for an operator that computes in
  // place (a convolution accumulating onto its residual), or null when the executor does not allow it: the input
  // is read again later, or shares its storage with another live tensor.
  Tensor* ReuseInput(std::size_t in, std::size_t out);
  // An InvalidArgument naming the node, for bad inputs found at run time.
  absl::Status Error(const std::string& what) const;
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual absl::Status Run(OpContext& ctx) const = 0;
};

// Builds the kernel for `node`; may read constant inputs from `graph` (values with `constant` set).
using OpFactory = std::function<absl::StatusOr<std::unique_ptr<OpKernel>>(const Graph& graph, const Node& node)>;

// A kernel from a plain function, for operators with no load-time state.
class FunctionKernel : public OpKernel {
 public:
  using Fn = std::function<absl::Status(OpContext&)>;
  explicit FunctionKernel(Fn fn) : fn_(std::move(fn)) {}
  absl::Status Run(OpContext& ctx) const override { return fn_(ctx); }

 private:
  Fn fn_;
};

class OpRegistry {
 public:
  // Every built-in operator; filled once, read-only afterwards (thread-safe to read).
  static const OpRegistry& Builtin();

  void Register(const std::string& domain, const std::string& op_type, OpFactory factory);
  // Registers a stateless operator.
  void Register(const std::string& domain, const std::string& op_type, FunctionKernel::Fn fn);
  const OpFactory* Find(const std::string& domain, const std::string& op_type) const;
  // "domain::op" keys (ai.onnx ops without the domain), sorted; for `coreserve inspect` and the docs.
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, OpFactory> factories_;
};

// The registration functions of each operator family (ops/*.cc); OpRegistry::Builtin calls them all.
void RegisterElementwiseOps(OpRegistry& r);
void RegisterShapeOps(OpRegistry& r);
void RegisterReduceOps(OpRegistry& r);
void RegisterNormOps(OpRegistry& r);
void RegisterMatMulOps(OpRegistry& r);
void RegisterConvPoolOps(OpRegistry& r);
void RegisterNhwcOps(OpRegistry& r);
void RegisterContribOps(OpRegistry& r);
void RegisterAttentionOps(OpRegistry& r);
void RegisterQuantizeOps(OpRegistry& r);
void RegisterEinsumOps(OpRegistry& r);

}  // namespace coreserve::runtime
