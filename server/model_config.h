// How the server runs one model: <repository>/<model>/config.yaml, or the server config's `model_defaults`
// (the same keys), or the built-in defaults below. Every key is documented in docs/CONFIG.md; an unknown key or
// a bad value is an error naming the file, the key and the allowed values, and makes the model not ready.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"
#include "kernels/gemm/sgemm.h"

namespace coreserve {

// One warm-up entry: the model runs `count` times on inputs of these shapes (zeros; an attention_mask all ones)
// before it is ready, so the first requests find their memory plan made and the weights in memory.
struct WarmupRun {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;  // input name -> full shape
  int64_t count = 1;
};

// Which version folders a model serves (Triton's version_policy): the newest `latest` of them, all of them, or
// the listed ones.
struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int64_t latest = 1;
  std::vector<int64_t> versions;  // kSpecific
};

// The shape a model's input or output is declared with to clients (metadata, Triton's model configuration) and,
// for an input, the shape requests must fit: the model's own shape made more specific (-1: any size).
struct TensorOverride {
  std::string name;
  std::vector<int64_t> dims;
};

struct ModelConfig {
  // GEMM precision of the model's MatMul/Gemm/Conv weights, converted once at load (issue "Kernels"):
  // fp32, bf16 (bf16 products, fp32 accumulation) or int8 (weights quantized per column, activations per row).
  kernels::GemmPrecision precision = kernels::GemmPrecision::kFp32;
  // Intra-op threads of the model's instance; 0: every core the process may run on.
  int64_t threads = 0;
  // Data-parallel core groups (issue "Placement"): one instance of the model per entry, with that many cores,
  // each pinned to its own consecutive CPUs; empty: one unpinned instance of `threads`.
  std::vector<int64_t> groups;
  // Pipeline-parallel instances (issue "Placement"): the model cut into `stages` stages of `cores_per_stage` cores
  // each, requests streaming through; `copies` such pipelines side by side. stages 0: no pipeline.
  struct Pipeline {
    int64_t stages = 0;
    int64_t cores_per_stage = 1;
    int64_t copies = 1;
  } pipeline;
  // Whether this model's groups or stages may use CPUs other models' groups hold (laid from the first CPU);
  // otherwise each model's layout gets CPUs of its own.
  bool share_cores = false;
  // The largest first (batch) dimension a request may carry; 0: no limit.
  int64_t max_batch_size = 0;
  // Requests waiting behind the one running; one more is refused at once (HTTP 429, RESOURCE_EXHAUSTED).
  int64_t max_queue_size = 64;
  // Dynamic batching (the `dynamic_batching` mapping; needs max_batch_size > 0): queued requests whose inputs
  // agree beyond the first dimension run as one batch, concatenated on it, with server/batch_policy.h's rules.
  bool dynamic_batching = false;
  std::vector<int64_t> preferred_batch_sizes;
  int64_t max_queue_delay_us = 0;
  int64_t default_timeout_us = 0;      // a request's deadline when it gives none; 0: none
  int64_t priority_levels = 0;         // > 0: requests may ask for priority 1 (first) .. priority_levels
  int64_t default_priority_level = 0;  // the level of a request that asks none; 0: the middle level
  // Requests of different sequence lengths batch together, padded to the longest, when the model has an
  // `attention_mask` input (ModelRunner checks at load which inputs and outputs follow the sequence).
  bool pad_sequences = true;
  // Runs before the model is ready (at start, and before a reload replaces the serving version).
  std::vector<WarmupRun> warmup;
  VersionPolicy version_policy;
  std::vector<TensorOverride> inputs, outputs;
};

absl::StatusOr<kernels::GemmPrecision> ParsePrecision(std::string_view name);
const char* PrecisionName(kernels::GemmPrecision precision);

// Reads the keys of `node` (a mapping) over `defaults`. `source` names the file and `where` the mapping's key
// path ("" at the top of a model's config.yaml, "model_defaults" in the server config) in errors.
absl::StatusOr<ModelConfig> ReadModelConfig(const YAML::Node& node, const std::string& source,
                                            const std::string& where, ModelConfig defaults);

// <model_dir>/config.yaml over `defaults`, or `defaults` when the file does not exist.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir, const ModelConfig& defaults);

}  // namespace coreserve
