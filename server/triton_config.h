// Triton's model configuration extension: a served model described as Triton's ModelConfig (the fields
// perf_analyzer and tritonclient read), filled once from the ModelEntry and rendered for gRPC (the message) and
// HTTP (GET /v2/models/{m}/config, JSON with Triton's field names).
#pragma once

#include <string>

#include "inference.pb.h"
#include "server/repository.h"

namespace coreserve {

// The Triton protocol extensions this server implements, as server metadata lists them.
inline constexpr const char* kServerExtensions[] = {"binary_tensor_data", "model_configuration", "schedule_policy"};

// With max_batch_size > 0 the dims leave out the first (batch) dimension, as Triton's do.
void FillModelConfig(const ModelEntry& entry, inference::ModelConfig* config);

std::string ModelConfigJson(const inference::ModelConfig& config);

}  // namespace coreserve
