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
  const VersionPolicy& policy = e.config.version_policy;
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest:
      c->mutable_version_policy()->mutable_latest()->set_num_versions(static_cast<uint32_t>(policy.latest));
      break;
    case VersionPolicy::Kind::kAll:
      c->mutable_version_policy()->mutable_all();
      break;
    case VersionPolicy::Kind::kSpecific:
      for (int64_t v : policy.versions) c->mutable_version_policy()->mutable_specific()->add_versions(v);
      break;
  }
  auto* group = c->add_instance_group();
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  group->set_count(e.runner != nullptr ? static_cast<int32_t>(e.runner->instance_stats().size()) : 1);
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
  w.Key("version_policy");
  w.StartObject();
  const inference::ModelVersionPolicy& policy = c.version_policy();
  if (policy.has_all()) {
    w.Key("all");
    w.StartObject();
    w.EndObject();
  } else if (policy.has_specific()) {
    w.Key("specific");
    w.StartObject();
    w.Key("versions");
    w.StartArray();
    for (int64_t v : policy.specific().versions()) w.String(std::to_string(v).c_str());  // int64 as a string, as protobuf's JSON
    w.EndArray();
    w.EndObject();
  } else {
    w.Key("latest");
    w.StartObject();
    w.Key("num_versions");
    w.Uint(policy.latest().num_versions());
    w.EndObject();
  }
  w.EndObject();
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

void FillModelStatistics(const ModelEntry& e, inference::ModelStatistics* out) {
  const RunnerStats s = e.runner ? e.runner->stats() : RunnerStats{};
  auto set = [](inference::StatisticDuration* d, const Duration& from) {
    d->set_count(static_cast<uint64_t>(from.count));
    d->set_ns(static_cast<uint64_t>(from.ns));
  };
  out->set_name(e.name);
  out->set_version(std::to_string(e.version));
  out->set_last_inference(static_cast<uint64_t>(s.last_inference_ms));
  out->set_inference_count(static_cast<uint64_t>(s.inference_count));
  out->set_execution_count(static_cast<uint64_t>(s.execution_count));
  auto* is = out->mutable_inference_stats();
  set(is->mutable_success(), s.success);
  set(is->mutable_fail(), s.fail);
  set(is->mutable_queue(), s.queue);
  // The runtime reads request tensors in place and hands outputs over without copies: input and output handling
  // is inside compute_infer, and compute_input / compute_output count the executions with 0 ns.
  set(is->mutable_compute_input(), Duration{s.compute.count, 0});
  set(is->mutable_compute_infer(), s.compute);
  set(is->mutable_compute_output(), Duration{s.compute.count, 0});
  is->mutable_cache_hit();
  is->mutable_cache_miss();
  for (const auto& [rows, d] : s.batches) {
    auto* b = out->add_batch_stats();
    b->set_batch_size(static_cast<uint64_t>(rows));
    set(b->mutable_compute_input(), Duration{d.count, 0});
    set(b->mutable_compute_infer(), d);
    set(b->mutable_compute_output(), Duration{d.count, 0});
  }
}

std::string ModelStatsJson(const inference::ModelStatisticsResponse& response) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  auto duration = [&w](const char* key, const inference::StatisticDuration& d) {
    w.Key(key);
    w.StartObject();
    w.Key("count");
    w.Uint64(d.count());
    w.Key("ns");
    w.Uint64(d.ns());
    w.EndObject();
  };
  w.StartObject();
  w.Key("model_stats");
  w.StartArray();
  for (const inference::ModelStatistics& m : response.model_stats()) {
    w.StartObject();
    w.Key("name");
    WriteString(w, m.name());
    w.Key("version");
    WriteString(w, m.version());
    w.Key("last_inference");
    w.Uint64(m.last_inference());
    w.Key("inference_count");
    w.Uint64(m.inference_count());
    w.Key("execution_count");
    w.Uint64(m.execution_count());
    const inference::InferStatistics& is = m.inference_stats();
    w.Key("inference_stats");
    w.StartObject();
    duration("success", is.success());
    duration("fail", is.fail());
    duration("queue", is.queue());
    duration("compute_input", is.compute_input());
    duration("compute_infer", is.compute_infer());
    duration("compute_output", is.compute_output());
    duration("cache_hit", is.cache_hit());
    duration("cache_miss", is.cache_miss());
    w.EndObject();
    w.Key("batch_stats");
    w.StartArray();
    for (const inference::InferBatchStatistics& b : m.batch_stats()) {
      w.StartObject();
      w.Key("batch_size");
      w.Uint64(b.batch_size());
      duration("compute_input", b.compute_input());
      duration("compute_infer", b.compute_infer());
      duration("compute_output", b.compute_output());
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return buffer.GetString();
}

}  // namespace coreserve
