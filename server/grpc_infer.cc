#include "server/grpc_infer.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/v2_datatype.h"
#include "server/v2_tensor.h"

namespace coreserve {
namespace {

using runtime::DataType;

// Copies a typed contents field into a new tensor of element type T, checking the count and each value's range.
template <typename T, typename Field>
absl::StatusOr<runtime::Tensor> FromContents(const std::string& name, DataType type, const runtime::Shape& shape,
                                             int64_t elements, const Field& field) {
  if (static_cast<int64_t>(field.size()) != elements) {
    return absl::InvalidArgumentError(absl::StrCat("input '", name, "': ", field.size(), " values in contents for shape ",
                                                   runtime::ShapeString(shape), ", which has ", elements));
  }
  runtime::Tensor t = runtime::Tensor::Allocate(type, shape);
  T* out = t.data<T>();
  for (int64_t i = 0; i < elements; ++i) {
    const auto v = field.Get(static_cast<int>(i));
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) < sizeof(v)) {
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
        return absl::InvalidArgumentError(absl::StrCat("input '", name, "': element ", i, " is out of range"));
      }
    }
    out[i] = static_cast<T>(v);
  }
  return t;
}

absl::StatusOr<runtime::Tensor> TensorFromContents(const std::string& name, DataType type, const runtime::Shape& shape,
                                                   const inference::InferTensorContents& c) {
  ASSIGN_OR_RETURN(int64_t n, CheckedElementCount(name, type, shape));
  switch (type) {
    case DataType::kBool: return FromContents<bool>(name, type, shape, n, c.bool_contents());
    case DataType::kInt8: return FromContents<int8_t>(name, type, shape, n, c.int_contents());
    case DataType::kInt16: return FromContents<int16_t>(name, type, shape, n, c.int_contents());
    case DataType::kInt32: return FromContents<int32_t>(name, type, shape, n, c.int_contents());
    case DataType::kInt64: return FromContents<int64_t>(name, type, shape, n, c.int64_contents());
    case DataType::kUInt8: return FromContents<uint8_t>(name, type, shape, n, c.uint_contents());
    case DataType::kUInt16: return FromContents<uint16_t>(name, type, shape, n, c.uint_contents());
    case DataType::kUInt32: return FromContents<uint32_t>(name, type, shape, n, c.uint_contents());
    case DataType::kUInt64: return FromContents<uint64_t>(name, type, shape, n, c.uint64_contents());
    case DataType::kFloat32: return FromContents<float>(name, type, shape, n, c.fp32_contents());
    case DataType::kFloat64: return FromContents<double>(name, type, shape, n, c.fp64_contents());
    default:
      return absl::InvalidArgumentError(absl::StrCat("input '", name, "': ", std::string(V2DataTypeName(type)),
                                                     " has no typed contents; send it in raw_input_contents"));
  }
}

}  // namespace

absl::StatusOr<InferRequest> InferRequestFromProto(const inference::ModelInferRequest& request) {
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(request.raw_input_contents_size(), " raw_input_contents for ",
                                                   request.inputs_size(), " inputs; give one per input or none"));
  }
  InferRequest out;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& in = request.inputs(i);
    auto type = V2DataTypeFromName(in.datatype());
    if (!type.ok()) return absl::InvalidArgumentError(absl::StrCat("input '", in.name(), "': ", type.status().message()));
    const runtime::Shape shape(in.shape().begin(), in.shape().end());
    runtime::Tensor tensor;
    if (raw) {
      if (in.has_contents()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", in.name(), "': has contents although raw_input_contents carries the inputs"));
      }
      ASSIGN_OR_RETURN(tensor, TensorFromBytes(in.name(), *type, shape, request.raw_input_contents(i)));
    } else {
      ASSIGN_OR_RETURN(tensor, TensorFromContents(in.name(), *type, shape, in.contents()));
    }
    out.inputs.emplace_back(in.name(), std::move(tensor));
  }
  for (const auto& o : request.outputs()) out.outputs.push_back(o.name());
  // Triton's scheduling parameters (tritonclient sends priority as uint64, timeout as int64).
  for (auto [key, field] : {std::pair<const char*, int64_t*>{"priority", &out.priority},
                            std::pair<const char*, int64_t*>{"timeout", &out.timeout_us}}) {
    auto it = request.parameters().find(key);
    if (it == request.parameters().end()) continue;
    const inference::InferParameter& p = it->second;
    if (p.has_int64_param() && p.int64_param() >= 0) {
      *field = p.int64_param();
    } else if (p.has_uint64_param() && p.uint64_param() <= static_cast<uint64_t>(INT64_MAX)) {
      *field = static_cast<int64_t>(p.uint64_param());
    } else {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", key, "' must be a non-negative integer"));
    }
  }
  return out;
}

void FillInferResponse(const std::string& model, int64_t version, const std::string& id, const NamedTensors& outputs,
                       inference::ModelInferResponse* response) {
  response->set_model_name(model);
  response->set_model_version(std::to_string(version));
  response->set_id(id);
  for (const auto& [name, t] : outputs) {
    auto* o = response->add_outputs();
    o->set_name(name);
    o->set_datatype(std::string(V2DataTypeName(t.type())));
    for (int64_t d : t.shape()) o->add_shape(d);
    response->add_raw_output_contents(static_cast<const char*>(t.raw()), t.bytes());
  }
}

}  // namespace coreserve
