#include "server/tfs_rest.h"

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/json_writer.h"
#include "server/v2_tensor.h"

namespace coreserve {
namespace {

constexpr std::size_t kMaxRank = 16;

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(what); }

// Every array at depth d of `v` has shape[d] items, and the leaves sit exactly at depth shape.size().
absl::Status CheckRectangular(const std::string& name, const rapidjson::Value& v, const runtime::Shape& shape,
                              std::size_t depth) {
  if (depth == shape.size()) {
    if (v.IsArray()) return Bad(absl::StrCat("input '", name, "': ragged nesting (an array where a value belongs)"));
    return absl::OkStatus();
  }
  if (!v.IsArray() || static_cast<int64_t>(v.Size()) != shape[depth]) {
    return Bad(absl::StrCat("input '", name, "': ragged nesting: the arrays at depth ", depth,
                            " must all have ", shape[depth], " items"));
  }
  for (const rapidjson::Value& item : v.GetArray()) RETURN_IF_ERROR(CheckRectangular(name, item, shape, depth + 1));
  return absl::OkStatus();
}

// The shape of `v`'s nested arrays, checked rectangular.
absl::StatusOr<runtime::Shape> JsonShape(const std::string& name, const rapidjson::Value& v) {
  runtime::Shape shape;
  for (const rapidjson::Value* p = &v; p->IsArray(); p = &(*p)[0]) {
    if (shape.size() == kMaxRank) return Bad(absl::StrCat("input '", name, "': nested deeper than ", kMaxRank));
    shape.push_back(p->Size());
    if (p->Empty()) break;
  }
  RETURN_IF_ERROR(CheckRectangular(name, v, shape, 0));
  return shape;
}

absl::StatusOr<runtime::Tensor> TensorFromNested(const runtime::TensorInfo& info, const rapidjson::Value& v) {
  ASSIGN_OR_RETURN(runtime::Shape shape, JsonShape(info.name, v));
  if (shape.empty()) {  // a scalar: TensorFromJson reads arrays
    rapidjson::Document one(rapidjson::kArrayType);
    rapidjson::Value copy(v, one.GetAllocator());
    one.PushBack(copy, one.GetAllocator());
    return TensorFromJson(info.name, info.type, shape, one);
  }
  return TensorFromJson(info.name, info.type, shape, v);
}

// Writes elements [*index, ...) of `t` as nested arrays for dims [dim, rank).
void WriteNested(JsonWriter& w, const runtime::Tensor& t, std::size_t dim, int64_t* index) {
  if (dim == t.shape().size()) {
    WriteJsonElement(w, t, (*index)++);
    return;
  }
  w.StartArray();
  for (int64_t i = 0; i < t.dim(static_cast<int64_t>(dim)); ++i) WriteNested(w, t, dim + 1, index);
  w.EndArray();
}

void WriteTensorInfo(JsonWriter& w, const runtime::TensorInfo& t) {
  w.Key(t.name.c_str());
  w.StartObject();
  w.Key("dtype");
  const char* dtype = "DT_INVALID";
  switch (t.type) {
    case runtime::DataType::kFloat32: dtype = "DT_FLOAT"; break;
    case runtime::DataType::kFloat64: dtype = "DT_DOUBLE"; break;
    case runtime::DataType::kFloat16: dtype = "DT_HALF"; break;
    case runtime::DataType::kBFloat16: dtype = "DT_BFLOAT16"; break;
    case runtime::DataType::kInt64: dtype = "DT_INT64"; break;
    case runtime::DataType::kInt32: dtype = "DT_INT32"; break;
    case runtime::DataType::kInt16: dtype = "DT_INT16"; break;
    case runtime::DataType::kInt8: dtype = "DT_INT8"; break;
    case runtime::DataType::kUInt8: dtype = "DT_UINT8"; break;
    case runtime::DataType::kUInt16: dtype = "DT_UINT16"; break;
    case runtime::DataType::kUInt32: dtype = "DT_UINT32"; break;
    case runtime::DataType::kUInt64: dtype = "DT_UINT64"; break;
    case runtime::DataType::kBool: dtype = "DT_BOOL"; break;
    case runtime::DataType::kString: dtype = "DT_STRING"; break;
    default: break;
  }
  w.String(dtype);
  w.Key("tensor_shape");
  w.StartObject();
  w.Key("dim");
  w.StartArray();
  for (int64_t d : t.shape) {
    w.StartObject();
    w.Key("size");
    w.String(std::to_string(d).c_str());  // TF Serving's JSON writes int64 as strings
    w.Key("name");
    w.String("");
    w.EndObject();
  }
  w.EndArray();
  w.Key("unknown_rank");
  w.Bool(false);
  w.EndObject();
  w.Key("name");
  WriteString(w, t.name);
  w.EndObject();
}

}  // namespace

absl::StatusOr<TfsPredictRequest> ParseTfsPredict(std::string_view body, const std::vector<runtime::TensorInfo>& inputs) {
  rapidjson::Document doc;
  if (absl::Status parsed = ParseJsonObject(body, &doc, /*nan_and_inf=*/true); !parsed.ok()) {
    return Bad(absl::StrCat("malformed predict request: ", parsed.message()));
  }
  const bool rows = doc.HasMember("instances"), columns = doc.HasMember("inputs");
  if (rows == columns) return Bad("a predict request has exactly one of 'instances' (rows) and 'inputs' (columns)");
  if (doc.HasMember("signature_name") &&
      (!doc["signature_name"].IsString() || (std::string(doc["signature_name"].GetString()) != "serving_default" &&
                                             std::string(doc["signature_name"].GetString()) != ""))) {
    return Bad("signature_name: an ONNX model has one signature, 'serving_default'");
  }
  TfsPredictRequest out;
  out.rows = rows;
  const bool single = inputs.size() == 1;
  if (rows) {
    const rapidjson::Value& instances = doc["instances"];
    if (!instances.IsArray() || instances.Empty()) return Bad("'instances' must be a non-empty list, one item per row");
    for (const runtime::TensorInfo& info : inputs) {
      // This input's column: item[name] of each instance (or the item itself for a one-input model).
      rapidjson::Document column(rapidjson::kArrayType);
      for (rapidjson::SizeType i = 0; i < instances.Size(); ++i) {
        const rapidjson::Value& item = instances[i];
        const rapidjson::Value* value = &item;
        if (item.IsObject()) {
          if (!item.HasMember(info.name.c_str())) return Bad(absl::StrCat("instance ", i, " has no input '", info.name, "'"));
          value = &item[info.name.c_str()];
        } else if (!single) {
          return Bad(absl::StrCat("instance ", i, " must be an object of the model's inputs (it has ", inputs.size(),
                                  ")"));
        }
        column.PushBack(rapidjson::Value(*value, column.GetAllocator()), column.GetAllocator());
      }
      ASSIGN_OR_RETURN(runtime::Tensor t, TensorFromNested(info, column));
      out.request.inputs.emplace_back(info.name, std::move(t));
    }
    return out;
  }
  const rapidjson::Value& in = doc["inputs"];
  if (in.IsObject()) {
    for (const auto& member : in.GetObject()) {
      const std::string name(member.name.GetString(), member.name.GetStringLength());
      const runtime::TensorInfo* info = nullptr;
      for (const runtime::TensorInfo& t : inputs) info = t.name == name ? &t : info;
      if (info == nullptr) return Bad(absl::StrCat("the model has no input '", name, "'"));
      ASSIGN_OR_RETURN(runtime::Tensor t, TensorFromNested(*info, member.value));
      out.request.inputs.emplace_back(name, std::move(t));
    }
  } else {
    if (!single) return Bad(absl::StrCat("'inputs' must be an object of the model's ", inputs.size(), " inputs"));
    ASSIGN_OR_RETURN(runtime::Tensor t, TensorFromNested(inputs[0], in));
    out.request.inputs.emplace_back(inputs[0].name, std::move(t));
  }
  return out;
}

std::string TfsPredictResponse(const NamedTensors& outputs, bool rows) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  const bool single = outputs.size() == 1;
  w.StartObject();
  if (rows) {
    w.Key("predictions");
    w.StartArray();
    const int64_t n = outputs.empty() || outputs[0].second.rank() == 0 ? 0 : outputs[0].second.dim(0);
    for (int64_t r = 0; r < n; ++r) {
      if (!single) w.StartObject();
      for (const auto& [name, t] : outputs) {
        if (!single) w.Key(name.c_str());
        int64_t index = r * (t.dim(0) > 0 ? t.elements() / t.dim(0) : 0);
        WriteNested(w, t, 1, &index);
      }
      if (!single) w.EndObject();
    }
    w.EndArray();
  } else {
    w.Key("outputs");
    if (!single) w.StartObject();
    for (const auto& [name, t] : outputs) {
      if (!single) w.Key(name.c_str());
      int64_t index = 0;
      WriteNested(w, t, 0, &index);
    }
    if (!single) w.EndObject();
  }
  w.EndObject();
  return buffer.GetString();
}

std::string TfsStatusJson(const ModelEntry& e, bool all_versions) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("model_version_status");
  w.StartArray();
  // The entry asked for (one version, or the newest) first, then the model's other served versions.
  std::vector<int64_t> versions = {e.version};
  for (int64_t v : e.served) {
    if (all_versions && v != e.version) versions.push_back(v);
  }
  for (int64_t v : versions) {
    const bool ready = v != e.version || e.ready;
    w.StartObject();
    w.Key("version");
    w.String(std::to_string(v).c_str());
    w.Key("state");
    w.String(ready ? "AVAILABLE" : "END");
    w.Key("status");
    w.StartObject();
    w.Key("error_code");
    w.String(ready ? "OK" : "UNKNOWN");
    w.Key("error_message");
    WriteString(w, ready ? "" : e.ClientError());
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

std::string TfsMetadataJson(const ModelEntry& e) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("model_spec");
  w.StartObject();
  w.Key("name");
  WriteString(w, e.name);
  w.Key("signature_name");
  w.String("");
  w.Key("version");
  w.String(std::to_string(e.version).c_str());
  w.EndObject();
  w.Key("metadata");
  w.StartObject();
  w.Key("signature_def");
  w.StartObject();
  w.Key("signature_def");
  w.StartObject();
  w.Key("serving_default");
  w.StartObject();
  w.Key("inputs");
  w.StartObject();
  for (const runtime::TensorInfo& t : e.info.inputs) WriteTensorInfo(w, t);
  w.EndObject();
  w.Key("outputs");
  w.StartObject();
  for (const runtime::TensorInfo& t : e.info.outputs) WriteTensorInfo(w, t);
  w.EndObject();
  w.Key("method_name");
  w.String("tensorflow/serving/predict");
  w.EndObject();
  w.EndObject();
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return buffer.GetString();
}

}  // namespace coreserve
