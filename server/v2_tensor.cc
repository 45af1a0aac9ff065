#include "server/v2_tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/v2_datatype.h"

namespace coreserve {
namespace {

using runtime::DataType;

absl::Status Bad(const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("input '", name, "': ", what));
}

// Appends the numbers of `v` (a number, a bool or arrays of them) to `out` in row-major order. Nesting deeper
// than the shape's rank is refused, so a hostile body cannot recurse without bound.
absl::Status Flatten(const std::string& name, const rapidjson::Value& v, int depth, int max_depth,
                     std::vector<const rapidjson::Value*>& out) {
  if (v.IsArray()) {
    if (depth >= max_depth) return Bad(name, "data is nested deeper than the shape's rank");
    for (const rapidjson::Value& item : v.GetArray()) RETURN_IF_ERROR(Flatten(name, item, depth + 1, max_depth, out));
    return absl::OkStatus();
  }
  out.push_back(&v);
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadInteger(const std::string& name, const rapidjson::Value& v, int64_t index, T* out) {
  if constexpr (std::is_unsigned_v<T>) {
    if (!v.IsUint64()) return Bad(name, absl::StrCat("element ", index, " is not a non-negative integer"));
    const uint64_t x = v.GetUint64();
    if (x > std::numeric_limits<T>::max()) return Bad(name, absl::StrCat("element ", index, " is out of range"));
    *out = static_cast<T>(x);
  } else {
    if (!v.IsInt64()) return Bad(name, absl::StrCat("element ", index, " is not an integer"));
    const int64_t x = v.GetInt64();
    if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) {
      return Bad(name, absl::StrCat("element ", index, " is out of range"));
    }
    *out = static_cast<T>(x);
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadFloat(const std::string& name, const rapidjson::Value& v, int64_t index, T* out) {
  if (!v.IsNumber()) return Bad(name, absl::StrCat("element ", index, " is not a number"));
  *out = static_cast<T>(v.GetDouble());
  return absl::OkStatus();
}

template <typename T>
absl::Status Fill(const std::string& name, const std::vector<const rapidjson::Value*>& values, T* out) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    const int64_t index = static_cast<int64_t>(i);
    if constexpr (std::is_same_v<T, bool>) {
      if (!values[i]->IsBool()) return Bad(name, absl::StrCat("element ", index, " is not true or false"));
      out[i] = values[i]->GetBool();
    } else if constexpr (std::is_floating_point_v<T>) {
      RETURN_IF_ERROR(ReadFloat(name, *values[i], index, &out[i]));
    } else {
      RETURN_IF_ERROR(ReadInteger(name, *values[i], index, &out[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DataType> V2DataTypeFromName(std::string_view name) {
  for (DataType t : {DataType::kBool, DataType::kUInt8, DataType::kUInt16, DataType::kUInt32, DataType::kUInt64,
                     DataType::kInt8, DataType::kInt16, DataType::kInt32, DataType::kInt64, DataType::kFloat16,
                     DataType::kBFloat16, DataType::kFloat32, DataType::kFloat64, DataType::kString}) {
    if (V2DataTypeName(t) == name) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown datatype '", std::string(name), "'"));
}

absl::StatusOr<int64_t> CheckedElementCount(const std::string& name, DataType type, const runtime::Shape& shape) {
  if (type == DataType::kString) return Bad(name, "BYTES tensors are not supported (no served model takes strings)");
  const int64_t size = static_cast<int64_t>(runtime::DataTypeSize(type));
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (d < 0) return Bad(name, absl::StrCat("dimension ", d, " in shape ", runtime::ShapeString(shape), " is negative"));
    // elements * d * size <= kMaxTensorBytes, checked without overflow.
    if (d > 0 && elements > kMaxTensorBytes / size / d) {
      return Bad(name, absl::StrCat("shape ", runtime::ShapeString(shape), " is larger than the ", kMaxTensorBytes,
                                    "-byte limit per tensor"));
    }
    elements *= d;
  }
  return elements;
}

absl::StatusOr<runtime::Tensor> TensorFromBytes(const std::string& name, DataType type, const runtime::Shape& shape,
                                                std::string_view bytes) {
  ASSIGN_OR_RETURN(int64_t elements, CheckedElementCount(name, type, shape));
  const std::size_t want = static_cast<std::size_t>(elements) * runtime::DataTypeSize(type);
  if (bytes.size() != want) {
    return Bad(name, absl::StrCat(bytes.size(), " bytes of data for shape ", runtime::ShapeString(shape), " of ",
                                  std::string(V2DataTypeName(type)), ", which needs ", want));
  }
  runtime::Tensor t = runtime::Tensor::Allocate(type, shape);
  if (want > 0) std::memcpy(t.raw(), bytes.data(), want);
  return t;
}

absl::StatusOr<runtime::Tensor> TensorFromJson(const std::string& name, DataType type, const runtime::Shape& shape,
                                               const rapidjson::Value& data) {
  ASSIGN_OR_RETURN(int64_t elements, CheckedElementCount(name, type, shape));
  if (type == DataType::kFloat16 || type == DataType::kBFloat16) {
    return Bad(name, absl::StrCat(std::string(V2DataTypeName(type)), " data has no JSON form; send it as binary data"));
  }
  if (!data.IsArray()) return Bad(name, "data must be an array");
  std::vector<const rapidjson::Value*> values;
  RETURN_IF_ERROR(Flatten(name, data, 0, std::max<int>(1, static_cast<int>(shape.size())), values));
  if (static_cast<int64_t>(values.size()) != elements) {
    return Bad(name, absl::StrCat(values.size(), " values of data for shape ", runtime::ShapeString(shape),
                                  ", which has ", elements));
  }
  runtime::Tensor t = runtime::Tensor::Allocate(type, shape);
  switch (type) {
    case DataType::kBool: RETURN_IF_ERROR(Fill(name, values, t.data<bool>())); break;
    case DataType::kUInt8: RETURN_IF_ERROR(Fill(name, values, t.data<uint8_t>())); break;
    case DataType::kUInt16: RETURN_IF_ERROR(Fill(name, values, t.data<uint16_t>())); break;
    case DataType::kUInt32: RETURN_IF_ERROR(Fill(name, values, t.data<uint32_t>())); break;
    case DataType::kUInt64: RETURN_IF_ERROR(Fill(name, values, t.data<uint64_t>())); break;
    case DataType::kInt8: RETURN_IF_ERROR(Fill(name, values, t.data<int8_t>())); break;
    case DataType::kInt16: RETURN_IF_ERROR(Fill(name, values, t.data<int16_t>())); break;
    case DataType::kInt32: RETURN_IF_ERROR(Fill(name, values, t.data<int32_t>())); break;
    case DataType::kInt64: RETURN_IF_ERROR(Fill(name, values, t.data<int64_t>())); break;
    case DataType::kFloat32: RETURN_IF_ERROR(Fill(name, values, t.data<float>())); break;
    case DataType::kFloat64: RETURN_IF_ERROR(Fill(name, values, t.data<double>())); break;
    default: return Bad(name, absl::StrCat(std::string(V2DataTypeName(type)), " data has no JSON form"));
  }
  return t;
}

void WriteJsonElement(JsonWriter& w, const runtime::Tensor& t, int64_t i) {
  switch (t.type()) {
    case DataType::kBool: w.Bool(t.data<bool>()[i]); break;
    case DataType::kUInt8: w.Uint(t.data<uint8_t>()[i]); break;
    case DataType::kUInt16: w.Uint(t.data<uint16_t>()[i]); break;
    case DataType::kUInt32: w.Uint(t.data<uint32_t>()[i]); break;
    case DataType::kUInt64: w.Uint64(t.data<uint64_t>()[i]); break;
    case DataType::kInt8: w.Int(t.data<int8_t>()[i]); break;
    case DataType::kInt16: w.Int(t.data<int16_t>()[i]); break;
    case DataType::kInt32: w.Int(t.data<int32_t>()[i]); break;
    case DataType::kInt64: w.Int64(t.data<int64_t>()[i]); break;
    // JSON has no NaN or infinity: such values are written as null rather than making the body invalid.
    case DataType::kFloat32: {
      const float v = t.data<float>()[i];
      std::isfinite(v) ? w.Double(v) : w.Null();
      break;
    }
    case DataType::kFloat64: {
      const double v = t.data<double>()[i];
      std::isfinite(v) ? w.Double(v) : w.Null();
      break;
    }
    default: w.Null(); break;  // FP16 / BF16 outputs are sent as binary data by the callers
  }
}

void WriteJsonData(JsonWriter& w, const runtime::Tensor& t) {
  w.StartArray();
  for (int64_t i = 0; i < t.elements(); ++i) WriteJsonElement(w, t, i);
  w.EndArray();
}

}  // namespace coreserve
