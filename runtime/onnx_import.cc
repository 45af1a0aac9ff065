#include "runtime/onnx_import.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <vector>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "onnx/checker.h"
#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"
#include "runtime/shape_inference.h"
#include "runtime/status_macros.h"

namespace coreserve::runtime {
namespace {

namespace fs = std::filesystem;

template <typename Dst, typename Field>
void CopyField(const Field& field, Tensor& t) {
  Dst* out = t.data<Dst>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<Dst>(field.Get(i));
}

absl::Status ReadExternal(const onnx::TensorProto& proto, const std::string& model_dir, Tensor& t) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() == "location") location = kv.value();
    if (kv.key() == "offset") offset = std::stoll(kv.value());
    if (kv.key() == "length") length = std::stoll(kv.value());
  }
  const fs::path rel(location);
  // External data must stay inside the model's folder: no absolute paths, no "..".
  if (location.empty() || rel.is_absolute() ||
      std::any_of(rel.begin(), rel.end(), [](const fs::path& part) { return part == ".."; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("initializer '", proto.name(), "': external data location '", location, "' is not inside the model folder"));
  }
  const std::string path = (fs::path(model_dir) / rel).string();
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("initializer '", proto.name(), "': cannot open ", path));
  if (length >= 0 && static_cast<std::size_t>(length) != t.bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("initializer '", proto.name(), "': external length ", length,
                                                   " does not match ", t.bytes(), " bytes of its shape"));
  }
  file.seekg(offset);
  file.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.bytes()));
  if (static_cast<std::size_t>(file.gcount()) != t.bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("initializer '", proto.name(), "': ", path, " is too short"));
  }
  return absl::OkStatus();
}

// Element count of `dims`, or -1 when a dim is negative or the product exceeds 2^40 elements.
int64_t CheckedElements(const Shape& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) return -1;
    n *= d;
  }
  return n;
}

int64_t TypedCount(const onnx::TensorProto& p, DataType type) {
  switch (type) {
    case DataType::kFloat32: return p.float_data_size();
    case DataType::kFloat64: return p.double_data_size();
    case DataType::kInt64: return p.int64_data_size();
    case DataType::kUInt64: case DataType::kUInt32: return p.uint64_data_size();
    default: return p.int32_data_size();  // int32, int16, int8, uint16, uint8, bool, float16, bfloat16
  }
}

absl::StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto, const std::string& model_dir) {
  const DataType type = DataTypeFromOnnx(proto.data_type());
  if (type == DataType::kUndefined || type == DataType::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", proto.name(), "': unsupported element type ", proto.data_type()));
  }
  Shape shape(proto.dims().begin(), proto.dims().end());
  const int64_t elements = CheckedElements(shape);
  if (elements < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", proto.name(), "': invalid shape ", ShapeString(shape)));
  const std::size_t bytes = static_cast<std::size_t>(elements) * DataTypeSize(type);
  // Every size is checked against the data actually present before anything is allocated.
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    Tensor t = Tensor::Allocate(type, shape);
    RETURN_IF_ERROR(ReadExternal(proto, model_dir, t));
    return t;
  }
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != bytes) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", proto.name(), "': raw_data holds ", proto.raw_data().size(),
                                                     " bytes, its shape needs ", bytes));
    }
    Tensor t = Tensor::Allocate(type, shape);
    std::memcpy(t.raw(), proto.raw_data().data(), bytes);
    return t;
  }
  const int64_t count = TypedCount(proto, type);
  if (count != elements) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", proto.name(), "': holds ", count,
                                                   " values, its shape needs ", elements));
  }
  Tensor t = Tensor::Allocate(type, shape);
  switch (type) {
    case DataType::kFloat32: CopyField<float>(proto.float_data(), t); break;
    case DataType::kFloat64: CopyField<double>(proto.double_data(), t); break;
    case DataType::kInt64: CopyField<int64_t>(proto.int64_data(), t); break;
    case DataType::kUInt64: CopyField<uint64_t>(proto.uint64_data(), t); break;
    case DataType::kUInt32: CopyField<uint32_t>(proto.uint64_data(), t); break;
    case DataType::kInt32: CopyField<int32_t>(proto.int32_data(), t); break;
    case DataType::kInt16: CopyField<int16_t>(proto.int32_data(), t); break;
    case DataType::kInt8: CopyField<int8_t>(proto.int32_data(), t); break;
    case DataType::kUInt16: case DataType::kFloat16: case DataType::kBFloat16: CopyField<uint16_t>(proto.int32_data(), t); break;
    case DataType::kUInt8: CopyField<uint8_t>(proto.int32_data(), t); break;
    case DataType::kBool: CopyField<bool>(proto.int32_data(), t); break;
    default: break;
  }
  return t;
}

void ApplyValueInfo(const onnx::ValueInfoProto& info, Value& v) {
  if (!info.type().has_tensor_type()) {
    v.type = DataType::kUndefined;  // sequence, map or optional: refused by the session for graph inputs/outputs
    return;
  }
  const auto& tt = info.type().tensor_type();
  v.type = DataTypeFromOnnx(tt.elem_type());
  if (tt.has_shape()) {
    Shape s;
    for (const auto& d : tt.shape().dim()) s.push_back(d.has_dim_value() ? d.dim_value() : -1);
    v.shape = s;
  }
}

absl::Status ReadAttributes(const onnx::NodeProto& proto, const std::string& model_dir, Node& node) {
  node.attributes.owner = node.Describe();
  for (const auto& a : proto.attribute()) {
    switch (a.type()) {
      case onnx::AttributeProto::FLOAT: node.attributes.Set(a.name(), a.f()); break;
      case onnx::AttributeProto::INT: node.attributes.Set(a.name(), static_cast<int64_t>(a.i())); break;
      case onnx::AttributeProto::STRING: node.attributes.Set(a.name(), a.s()); break;
      case onnx::AttributeProto::FLOATS:
        node.attributes.Set(a.name(), std::vector<float>(a.floats().begin(), a.floats().end()));
        break;
      case onnx::AttributeProto::INTS:
        node.attributes.Set(a.name(), std::vector<int64_t>(a.ints().begin(), a.ints().end()));
        break;
      case onnx::AttributeProto::STRINGS:
        node.attributes.Set(a.name(), std::vector<std::string>(a.strings().begin(), a.strings().end()));
        break;
      case onnx::AttributeProto::TENSOR: {
        auto t = TensorFromProto(a.t(), model_dir);
        if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": attribute '", a.name(), "': ", t.status().message()));
        node.attributes.Set(a.name(), *std::move(t));
        break;
      }
      default:
        // Graph and sparse attributes belong to operators the runtime does not implement (If, Loop, ...); the
        // unsupported-operator check reports those nodes.
        break;
    }
  }
  return absl::OkStatus();
}

// The tensor a Constant node produces, from whichever value attribute it carries.
absl::StatusOr<Tensor> ConstantValue(const Node& node) {
  const Attributes& a = node.attributes;
  if (a.Has("value")) return a.TensorValue("value");
  if (a.Has("value_float")) {
    ASSIGN_OR_RETURN(float v, a.Float("value_float", 0));
    Tensor t = Tensor::Allocate(DataType::kFloat32, {});
    *t.data<float>() = v;
    return t;
  }
  if (a.Has("value_int")) {
    ASSIGN_OR_RETURN(int64_t v, a.Int("value_int", 0));
    Tensor t = Tensor::Allocate(DataType::kInt64, {});
    *t.data<int64_t>() = v;
    return t;
  }
  if (a.Has("value_ints")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> v, a.Ints("value_ints", {}));
    Tensor t = Tensor::Allocate(DataType::kInt64, {static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.data<int64_t>());
    return t;
  }
  if (a.Has("value_floats")) {
    const auto* v = std::get_if<std::vector<float>>(&a.all().at("value_floats"));
    if (v == nullptr) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": value_floats must be floats"));
    Tensor t = Tensor::Allocate(DataType::kFloat32, {static_cast<int64_t>(v->size())});
    std::copy(v->begin(), v->end(), t.data<float>());
    return t;
  }
  return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": no supported value attribute"));
}

// The onnx library's checker refuses models newer than itself (Debian 12 ships onnx 1.12: IR version 8, opset
// 17), although the runtime can run them. Such models skip the checker; the session's own validation (graph
// structure, operators, attributes, tensor sizes) still applies to them.
bool CheckerUnderstands(const onnx::ModelProto& model) {
  if (model.ir_version() > onnx::IR_VERSION) return false;
  const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  for (const auto& opset : model.opset_import()) {
    const std::string domain = opset.domain() == "ai.onnx" ? "" : opset.domain();
    auto it = known.find(domain);
    if (it != known.end() && opset.version() > it->second.second) return false;
  }
  return true;
}

// Inputs the com.microsoft operators the runtime implements cannot do without (the onnx library has no schemas
// for them): by position, as ONNX Runtime's contrib schemas define them.
const std::map<std::string, std::vector<int>>& ContribRequiredInputs() {
  static const auto* table = new std::map<std::string, std::vector<int>>{
      {"Attention", {0, 1}},                          // input, weights (bias, mask, past optional)
      {"SkipLayerNormalization", {0, 1, 2}},          // input, skip, gamma
      {"EmbedLayerNormalization", {0, 2, 3, 5, 6}},   // input_ids, word/position embeddings, gamma, beta
      {"BiasGelu", {0, 1}},
      {"FastGelu", {0}},
      {"Gelu", {0}},
  };
  return *table;
}

// The node has every input its operator requires, and no more inputs or fewer outputs than the operator has:
// kernels read required inputs without checking for them. Operators the onnx library knows are checked against
// its schema for the model's opset (also for models too new for its checker); com.microsoft ones against
// ContribRequiredInputs. Others are left to the session, which lists every operator it does not implement.
absl::Status CheckArity(const Node& node) {
  auto missing = [&](std::size_t i) {
    return i >= node.inputs.size() || node.inputs[i] < 0;
  };
  if (node.domain == "com.microsoft") {
    const auto& table = ContribRequiredInputs();
    const auto it = table.find(node.op_type);
    if (it == table.end()) return absl::OkStatus();
    for (int i : it->second) {
      if (missing(static_cast<std::size_t>(i))) {
        return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": input ", i, " is required"));
      }
    }
    if (node.outputs.empty()) return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": has no output"));
    return absl::OkStatus();
  }
  if (!node.domain.empty()) return absl::OkStatus();
  const onnx::OpSchema* schema =
      onnx::OpSchemaRegistry::Schema(node.op_type, static_cast<int>(std::min<int64_t>(node.opset, INT32_MAX)), "");
  if (schema == nullptr) return absl::OkStatus();
  // An opset newer than the library's gets the library's latest schema, which may take fewer inputs than the
  // operator now does (ReduceMean's axes became an input in opset 18): only the required inputs are checked.
  const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  const auto range = known.find("");
  const bool newer = range == known.end() || node.opset > range->second.second;
  const auto& formal = schema->inputs();
  for (std::size_t i = 0; i < formal.size(); ++i) {
    if (formal[i].GetOption() == onnx::OpSchema::Single && missing(i)) {
      return absl::InvalidArgumentError(
          absl::StrCat(node.Describe(), ": input ", i, " ('", formal[i].GetName(), "') is required"));
    }
  }
  // Kernels write their required outputs without checking for them either, and no operator has dropped one.
  if (static_cast<int>(node.outputs.size()) < schema->min_output()) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": ", node.outputs.size(),
                                                   " outputs, the operator has at least ", schema->min_output()));
  }
  if (newer) return absl::OkStatus();
  if (static_cast<int>(node.inputs.size()) > schema->max_input()) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": ", node.inputs.size(),
                                                   " inputs, the operator takes at most ", schema->max_input()));
  }
  if (static_cast<int>(node.outputs.size()) > schema->max_output()) {
    return absl::InvalidArgumentError(absl::StrCat(node.Describe(), ": ", node.outputs.size(),
                                                   " outputs, the operator has at most ", schema->max_output()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<onnx::ModelProto> ParseOnnxFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open model file"));
  std::stringstream bytes;
  bytes << file.rdbuf();
  const std::string text = bytes.str();
  return ParseOnnxBytes(text, path);
}

absl::StatusOr<onnx::ModelProto> ParseOnnxBytes(std::string_view bytes, const std::string& source) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not an ONNX model (protobuf parse failed)"));
  }
  if (CheckerUnderstands(model)) {
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ONNX checker: ", e.what()));
    }
  }
  return model;
}

absl::StatusOr<Graph> ImportOnnx(const onnx::ModelProto& model, const std::string& model_dir) {
  Graph g;
  for (const auto& opset : model.opset_import()) {
    g.opsets[opset.domain() == "ai.onnx" ? "" : opset.domain()] = opset.version();
  }
  const auto& graph = model.graph();
  for (const auto& init : graph.initializer()) {
    ASSIGN_OR_RETURN(Tensor t, TensorFromProto(init, model_dir));
    g.AddConstant(init.name(), std::move(t));
  }
  for (const auto& input : graph.input()) {
    const int id = g.ValueId(input.name());
    Value& v = g.values[id];
    if (v.constant) continue;  // an initializer also listed as an input (IR < 4): a weight, not an input
    ApplyValueInfo(input, v);
    v.graph_input = true;
    g.inputs.push_back(id);
  }
  for (const auto& info : graph.value_info()) {
    const int id = g.ValueId(info.name());
    if (!g.values[id].constant) ApplyValueInfo(info, g.values[id]);
  }
  for (const auto& proto : graph.node()) {
    Node node;
    node.name = proto.name().empty() ? absl::StrCat(proto.op_type(), "_", g.nodes.size()) : proto.name();
    node.op_type = proto.op_type();
    node.domain = proto.domain() == "ai.onnx" ? "" : proto.domain();
    auto opset = g.opsets.find(node.domain);
    node.opset = opset == g.opsets.end() ? 0 : opset->second;
    for (const auto& in : proto.input()) node.inputs.push_back(in.empty() ? -1 : g.ValueId(in));
    for (const auto& out : proto.output()) node.outputs.push_back(out.empty() ? -1 : g.ValueId(out));
    if (node.domain == "coreserve") {  // the optimizer's own fused operators take trusted attributes only
      return absl::InvalidArgumentError(
          absl::StrCat(node.Describe(), ": the 'coreserve' operator domain is internal to the runtime"));
    }
    RETURN_IF_ERROR(CheckArity(node));
    RETURN_IF_ERROR(ReadAttributes(proto, model_dir, node));
    if (node.op_type == "Constant" && node.domain.empty() && node.outputs.size() == 1) {
      ASSIGN_OR_RETURN(Tensor t, ConstantValue(node));
      const std::string name = g.values[node.outputs[0]].name;
      g.AddConstant(name, std::move(t));
      continue;
    }
    g.nodes.push_back(std::move(node));
  }
  for (const auto& output : graph.output()) {
    const int id = g.ValueId(output.name());
    ApplyValueInfo(output, g.values[id]);
    g.values[id].graph_output = true;
    g.outputs.push_back(id);
  }
  g.RebuildEdges();
  InferShapes(g);
  return g;
}

absl::StatusOr<Tensor> ReadTensorProtoFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream bytes;
  bytes << file.rdbuf();
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes.str())) return absl::InvalidArgumentError(absl::StrCat(path, ": not a TensorProto"));
  return TensorFromProto(proto, fs::path(path).parent_path().string());
}

absl::StatusOr<Graph> LoadOnnxGraph(const std::string& path) {
  ASSIGN_OR_RETURN(onnx::ModelProto model, ParseOnnxFile(path));
  auto graph = ImportOnnx(model, fs::path(path).parent_path().string());
  if (!graph.ok()) return absl::Status(graph.status().code(), absl::StrCat(path, ": ", graph.status().message()));
  return graph;
}

}  // namespace coreserve::runtime
