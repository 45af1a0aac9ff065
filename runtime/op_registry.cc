#include "absl/strings/str_cat.h"
#include "runtime/op.h"

namespace coreserve::runtime {
namespace {

std::string Key(const std::string& domain, const std::string& op_type) {
  return (domain.empty() || domain == "ai.onnx") ? op_type : absl::StrCat(domain, "::", op_type);
}

}  // namespace

Tensor& OpContext::Output(std::size_t i, DataType type, Shape shape) {
  if (i < slots.size() && slots[i].offset >= 0 && arena != nullptr) {
    int64_t bytes = 0;
    if (!__builtin_mul_overflow(ElementCount(shape), static_cast<int64_t>(DataTypeSize(type)), &bytes) &&
        bytes == slots[i].bytes) {
      outputs[i] = Tensor::Wrap(type, std::move(shape), arena + slots[i].offset, arena_owner);
      return outputs[i];
    }
  }
  outputs[i] = Tensor::Allocate(type, std::move(shape));
  return outputs[i];
}

Tensor* OpContext::ReuseInput(std::size_t in, std::size_t out) {
  if (in >= reusable.size() || !reusable[in] || !has(in)) return nullptr;
  outputs[out] = *inputs[in];
  return &outputs[out];
}

absl::Status OpContext::Error(const std::string& what) const {
  return absl::InvalidArgumentError(absl::StrCat(node ? node->Describe() : std::string("operator"), ": ", what));
}

const OpRegistry& OpRegistry::Builtin() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterElementwiseOps(*r);
    RegisterShapeOps(*r);
    RegisterReduceOps(*r);
    RegisterNormOps(*r);
    RegisterMatMulOps(*r);
    RegisterConvPoolOps(*r);
    RegisterNhwcOps(*r);
    RegisterContribOps(*r);
    RegisterAttentionOps(*r);
    RegisterQuantizeOps(*r);
    RegisterEinsumOps(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::Register(const std::string& domain, const std::string& op_type, OpFactory factory) {
  factories_[Key(domain, op_type)] = std::move(factory);
}

void OpRegistry::Register(const std::string& domain, const std::string& op_type, FunctionKernel::Fn fn) {
  Register(domain, op_type, [fn](const Graph&, const Node&) -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    return std::unique_ptr<OpKernel>(new FunctionKernel(fn));
  });
}

const OpFactory* OpRegistry::Find(const std::string& domain, const std::string& op_type) const {
  auto it = factories_.find(Key(domain, op_type));
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [key, factory] : factories_) names.push_back(key);
  return names;
}

}  // namespace coreserve::runtime
