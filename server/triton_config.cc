#include "server/triton_config.h"

#include "server/json_writer.h"

namespace coreserve {
namespace {

inference::DataType TritonDataType(runtime::DataType t) {
  using runtime::DataType;
  switch (t) {
    case DataType::kBool: return inference::TYPE_BOOL;
    case DataType::kUInt8: return inference::TYPE_UINT8;
    case DataType::kUInt16: return inference::TYPE_UINT16;
    case DataType::kUInt32: return inference::TYPE_UINT32;
    case DataType::kUInt64: return inference::TYPE_UINT64;
    case DataType::kInt8: return inference::TYPE_INT8;
    case DataType::kInt16: return inference::TYPE_INT16;
    case DataType::kInt32: return inference::TYPE_INT32;
    case DataType::kInt64: return inference::TYPE_INT64;
    case DataType::kFloat16: return inference::TYPE_FP16;
    case DataType::kFloat32: return inference::TYPE_FP32;
    case DataType::kFloat64: return inference::TYPE_FP64;
    case DataType::kString: return inference::TYPE_STRING;
    case DataType::kBFloat16: return inference::TYPE_BF16;
    case DataType::kUndefined: break;
  }
  return inference::TYPE_INVALID;
}

template <typename Tensor>
void FillTensor(const runtime::TensorInfo& info, int64_t max_batch, Tensor* t) {
  t->set_name(info.name);
  t->set_data_type(TritonDataType(info.type));
  for (std::size_t d = max_batch > 0 && !info.shape.empty() ? 1 : 0; d < info.shape.size(); ++d) {
    t->add_dims(info.shape[d]);
  }
}

template <typename Tensors>
void WriteTensors(JsonWriter& w, const Tensors& tensors) {
  w.StartArray();
  for (const auto& t : tensors) {
    w.StartObject();
    w.Key("name");
    WriteString(w, t.name());
    w.Key("data_type");
    WriteString(w, inference::DataType_Name(t.data_type()));
    w.Key("dims");
    w.StartArray();
    for (int64_t d : t.dims()) w.Int64(d);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

void FillModelConfig(const ModelEntry& e, inference::ModelConfig* c) {
  c->set_name(e.name);
  c->set_platform("onnx_onnxv1");
  c->set_max_batch_size(static_cast<int32_t>(e.config.max_batch_size));
  for (const auto& t : e.info.inputs) FillTensor(t, e.config.max_batch_size, c->add_input());
  for (const auto& t : e.info.outputs) FillTensor(t, e.config.max_batch_size, c->add_output());
  auto* group = c->add_instance_group();
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  group->set_count(1);
  if (e.config.dynamic_batching) {
    auto* b = c->mutable_dynamic_batching();
    for (int64_t size : e.config.preferred_batch_sizes) b->add_preferred_batch_size(static_cast<int32_t>(size));
    b->set_max_queue_delay_microseconds(static_cast<uint64_t>(e.config.max_queue_delay_us));
  }
  (*c->mutable_parameters())["precision"].set_string_value(PrecisionName(e.config.precision));
}

std::string ModelConfigJson(const inference::ModelConfig& c) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("name");
  WriteString(w, c.name());
  w.Key("platform");
  WriteString(w, c.platform());
  w.Key("max_batch_size");
  w.Int(c.max_batch_size());
  w.Key("input");
  WriteTensors(w, c.input());
  w.Key("output");
  WriteTensors(w, c.output());
  w.Key("instance_group");
  w.StartArray();
  for (const auto& g : c.instance_group()) {
    w.StartObject();
    w.Key("kind");
    WriteString(w, inference::ModelInstanceGroup::Kind_Name(g.kind()));
    w.Key("count");
    w.Int(g.count());
    w.EndObject();
  }
  w.EndArray();
  if (c.has_dynamic_batching()) {
    w.Key("dynamic_batching");
    w.StartObject();
    w.Key("preferred_batch_size");
    w.StartArray();
    for (int32_t size : c.dynamic_batching().preferred_batch_size()) w.Int(size);
    w.EndArray();
    w.Key("max_queue_delay_microseconds");
    w.Uint64(c.dynamic_batching().max_queue_delay_microseconds());
    w.EndObject();
  }
  w.Key("parameters");
  w.StartObject();
  for (const auto& [key, value] : c.parameters()) {
    WriteString(w, key);
    w.StartObject();
    w.Key("string_value");
    WriteString(w, value.string_value());
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  return buffer.GetString();
}

}  // namespace coreserve
