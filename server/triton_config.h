// Triton's protocol extensions beyond KServe v2: the model configuration (a served model described as Triton's
// ModelConfig, the fields perf_analyzer and tritonclient read, filled once from the ModelEntry and rendered for
// gRPC as the message and for HTTP, GET /v2/models/{m}/config, as JSON with Triton's field names) and the
// statistics (GET /v2/models[/{m}]/stats, from the runners' counters).
#pragma once

#include <string>
#include <vector>

#include "inference.pb.h"
#include "server/repository.h"

namespace coreserve {

// The Triton protocol extensions this server implements, as server metadata lists them.
inline constexpr const char* kServerExtensions[] = {"binary_tensor_data", "model_configuration", "model_repository",
                                                    "schedule_policy", "statistics"};

// With max_batch_size > 0 the dims leave out the first (batch) dimension, as Triton's do.
void FillModelConfig(const ModelEntry& entry, inference::ModelConfig* config);

std::string ModelConfigJson(const inference::ModelConfig& config);

// The statistics of one model version (a model that is not ready reports zeros).
void FillModelStatistics(const ModelEntry& entry, inference::ModelStatistics* stats);

// {"model_stats": [...]}, Triton's JSON form of the response.
std::string ModelStatsJson(const inference::ModelStatisticsResponse& response);

}  // namespace coreserve
