#include "server/http_infer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/json_writer.h"
#include "server/v2_datatype.h"
#include "server/v2_tensor.h"

namespace coreserve {
namespace {

absl::Status Malformed(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed inference request: ", what));
}

// parameters.<key> of a JSON object as a bool (false when absent).
absl::StatusOr<bool> BoolParameter(const rapidjson::Value& object, const char* key, const std::string& where) {
  if (!object.HasMember("parameters")) return false;
  const rapidjson::Value& params = object["parameters"];
  if (!params.IsObject()) return Malformed(absl::StrCat(where, "parameters must be an object"));
  if (!params.HasMember(key)) return false;
  if (!params[key].IsBool()) return Malformed(absl::StrCat(where, "parameters.", key, " must be true or false"));
  return params[key].GetBool();
}

absl::StatusOr<std::string> StringMember(const rapidjson::Value& object, const char* key, const std::string& where) {
  if (!object.HasMember(key) || !object[key].IsString()) {
    return Malformed(absl::StrCat(where, "'", key, "' must be a string"));
  }
  return std::string(object[key].GetString(), object[key].GetStringLength());
}

}  // namespace

absl::StatusOr<HttpInferRequest> ParseHttpInferRequest(std::string_view body, int64_t header_length) {
  if (header_length > static_cast<int64_t>(body.size())) {
    return Malformed(absl::StrCat("Inference-Header-Content-Length is ", header_length, " but the body has only ",
                                  body.size(), " bytes"));
  }
  const std::string_view json = header_length >= 0 ? body.substr(0, static_cast<std::size_t>(header_length)) : body;
  std::string_view binary = header_length >= 0 ? body.substr(static_cast<std::size_t>(header_length)) : std::string_view();
  rapidjson::Document doc;
  if (absl::Status parsed = ParseJsonObject(json, &doc); !parsed.ok()) return Malformed(std::string(parsed.message()));
  HttpInferRequest out;
  if (doc.HasMember("id")) {
    if (!doc["id"].IsString()) return Malformed("'id' must be a string");
    out.id = doc["id"].GetString();
  }
  ASSIGN_OR_RETURN(out.all_binary, BoolParameter(doc, "binary_data_output", ""));
  // Triton's scheduling parameters: priority (a level) and timeout (microseconds in the queue).
  if (doc.HasMember("parameters") && doc["parameters"].IsObject()) {
    const rapidjson::Value& params = doc["parameters"];
    for (auto [key, field] : {std::pair<const char*, int64_t*>{"priority", &out.request.priority},
                              std::pair<const char*, int64_t*>{"timeout", &out.request.timeout_us}}) {
      if (!params.HasMember(key)) continue;
      if (!params[key].IsInt64() || params[key].GetInt64() < 0) {
        return Malformed(absl::StrCat("parameters.", key, " must be a non-negative integer"));
      }
      *field = params[key].GetInt64();
    }
  }
  if (!doc.HasMember("inputs") || !doc["inputs"].IsArray()) return Malformed("'inputs' must be an array");
  for (const rapidjson::Value& in : doc["inputs"].GetArray()) {
    if (!in.IsObject()) return Malformed("each input must be an object");
    ASSIGN_OR_RETURN(std::string name, StringMember(in, "name", "input: "));
    const std::string where = absl::StrCat("input '", name, "': ");
    ASSIGN_OR_RETURN(std::string datatype, StringMember(in, "datatype", where));
    auto type = V2DataTypeFromName(datatype);
    if (!type.ok()) return absl::InvalidArgumentError(absl::StrCat(where, type.status().message()));
    if (!in.HasMember("shape") || !in["shape"].IsArray()) return Malformed(where + "'shape' must be an array");
    runtime::Shape shape;
    for (const rapidjson::Value& d : in["shape"].GetArray()) {
      if (!d.IsInt64()) return Malformed(where + "'shape' must hold integers");
      shape.push_back(d.GetInt64());
    }
    std::optional<int64_t> binary_size;
    if (in.HasMember("parameters") && in["parameters"].IsObject() && in["parameters"].HasMember("binary_data_size")) {
      const rapidjson::Value& size = in["parameters"]["binary_data_size"];
      if (!size.IsUint64()) return Malformed(where + "parameters.binary_data_size must be a non-negative integer");
      binary_size = static_cast<int64_t>(std::min<uint64_t>(size.GetUint64(), uint64_t{1} << 62));
    }
    runtime::Tensor tensor;
    if (binary_size) {
      if (in.HasMember("data")) return Malformed(where + "has both 'data' and parameters.binary_data_size");
      if (*binary_size > static_cast<int64_t>(binary.size())) {
        return absl::InvalidArgumentError(absl::StrCat(where, "binary_data_size is ", *binary_size, " but only ",
                                                       binary.size(), " bytes of binary data remain"));
      }
      ASSIGN_OR_RETURN(tensor, TensorFromBytes(name, *type, shape, binary.substr(0, static_cast<std::size_t>(*binary_size))));
      binary.remove_prefix(static_cast<std::size_t>(*binary_size));
    } else {
      if (!in.HasMember("data")) return Malformed(where + "has neither 'data' nor parameters.binary_data_size");
      ASSIGN_OR_RETURN(tensor, TensorFromJson(name, *type, shape, in["data"]));
    }
    out.request.inputs.emplace_back(std::move(name), std::move(tensor));
  }
  if (!binary.empty()) {
    return Malformed(absl::StrCat(binary.size(), " bytes of binary data follow the inputs' binary_data_size"));
  }
  if (doc.HasMember("outputs")) {
    if (!doc["outputs"].IsArray()) return Malformed("'outputs' must be an array");
    for (const rapidjson::Value& o : doc["outputs"].GetArray()) {
      if (!o.IsObject()) return Malformed("each output must be an object");
      ASSIGN_OR_RETURN(std::string name, StringMember(o, "name", "output: "));
      ASSIGN_OR_RETURN(bool binary_output, BoolParameter(o, "binary_data", absl::StrCat("output '", name, "': ")));
      out.request.outputs.push_back(std::move(name));
      out.binary_outputs.push_back(binary_output);
    }
  }
  return out;
}

std::string HttpInferResponse(const std::string& model, int64_t version, const HttpInferRequest& request,
                              const NamedTensors& outputs, std::size_t* json_length) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  std::string binary;
  w.StartObject();
  w.Key("model_name");
  WriteString(w, model);
  w.Key("model_version");
  WriteString(w, std::to_string(version));
  if (!request.id.empty()) {
    w.Key("id");
    WriteString(w, request.id);
  }
  w.Key("outputs");
  w.StartArray();
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& [name, t] = outputs[i];
    // FP16 and BF16 have no JSON form: they always go as binary data.
    const bool as_binary = request.all_binary || (i < request.binary_outputs.size() && request.binary_outputs[i]) ||
                           t.type() == runtime::DataType::kFloat16 || t.type() == runtime::DataType::kBFloat16;
    w.StartObject();
    w.Key("name");
    WriteString(w, name);
    w.Key("datatype");
    WriteString(w, V2DataTypeName(t.type()));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : t.shape()) w.Int64(d);
    w.EndArray();
    if (as_binary) {
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data_size");
      w.Uint64(t.bytes());
      w.EndObject();
      binary.append(static_cast<const char*>(t.raw()), t.bytes());
    } else {
      w.Key("data");
      WriteJsonData(w, t);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  std::string body(buffer.GetString(), buffer.GetSize());
  *json_length = body.size();
  body += binary;
  return body;
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kUnimplemented: return 501;
    default: return 500;
  }
}

}  // namespace coreserve
