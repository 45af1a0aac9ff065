#include "runtime/model_info.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "onnx/onnx_pb.h"
#include "runtime/onnx_import.h"
#include "runtime/status_macros.h"

namespace coreserve::runtime {
namespace {

TensorInfo ToTensorInfo(const onnx::ValueInfoProto& value) {
  TensorInfo info;
  info.name = value.name();
  if (!value.type().has_tensor_type()) return info;
  const auto& tensor = value.type().tensor_type();
  info.type = DataTypeFromOnnx(tensor.elem_type());
  for (const auto& dim : tensor.shape().dim()) {
    info.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  }
  return info;
}

}  // namespace

absl::StatusOr<ModelInfo> ReadModelInfo(const std::string& path) {
  ASSIGN_OR_RETURN(onnx::ModelProto model, ParseOnnxFile(path));
  ModelInfo info;
  info.path = path;
  info.ir_version = model.ir_version();
  info.producer = model.producer_name();
  if (!model.producer_version().empty()) absl::StrAppend(&info.producer, " ", model.producer_version());
  for (const auto& opset : model.opset_import()) info.opsets[opset.domain()] = opset.version();

  const auto& graph = model.graph();
  std::set<std::string> initializers;
  for (const auto& init : graph.initializer()) initializers.insert(init.name());
  for (const auto& input : graph.input()) {
    // Before IR version 4 initializers were also listed as graph inputs; they are weights, not inputs.
    if (!initializers.count(input.name())) info.inputs.push_back(ToTensorInfo(input));
  }
  for (const auto& output : graph.output()) info.outputs.push_back(ToTensorInfo(output));
  for (const auto& node : graph.node()) {
    const bool default_domain = node.domain().empty() || node.domain() == "ai.onnx";
    ++info.op_counts[default_domain ? node.op_type() : absl::StrCat(node.domain(), "::", node.op_type())];
  }
  return info;
}

}  // namespace coreserve::runtime
