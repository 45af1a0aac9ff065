// TensorFlow Serving's REST API for the served ONNX models: POST /v1/models/{m}[/versions/{v}]:predict in the
// row ("instances") and columnar ("inputs") formats, and GET /v1/models/{m}[/versions/{v}][/metadata].
//
// TF Serving's JSON carries no datatypes or shapes: each input's type is the model's, its shape is the nesting
// of the JSON arrays (which must be rectangular). Responses nest the outputs the same way: "predictions" (one
// entry per row) for a row request, "outputs" for a columnar one; a model with one output drops its name.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model_runner.h"
#include "server/repository.h"

namespace coreserve {

struct TfsPredictRequest {
  InferRequest request;
  bool rows = false;  // "instances" (row format) rather than "inputs" (columnar)
};

absl::StatusOr<TfsPredictRequest> ParseTfsPredict(std::string_view body, const std::vector<runtime::TensorInfo>& inputs);

std::string TfsPredictResponse(const NamedTensors& outputs, bool rows);

// GET /v1/models/{m}[/versions/{v}]: the state of that version (all served versions when none is named); GET
// .../metadata: its signature, as TF Serving's SignatureDef JSON.
std::string TfsStatusJson(const ModelEntry& entry, bool all_versions);
std::string TfsMetadataJson(const ModelEntry& entry);

}  // namespace coreserve
