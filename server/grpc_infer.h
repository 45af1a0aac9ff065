// KServe v2 ModelInfer messages <-> runner requests: inputs from `raw_input_contents` (one entry per input) or
// the typed `contents` fields, outputs always as `raw_output_contents` (as Triton answers, and as tritonclient
// reads them).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "inference.pb.h"
#include "server/model_runner.h"

namespace coreserve {

absl::StatusOr<InferRequest> InferRequestFromProto(const inference::ModelInferRequest& request);

void FillInferResponse(const std::string& model, int64_t version, const std::string& id, const NamedTensors& outputs,
                       inference::ModelInferResponse* response);

}  // namespace coreserve
