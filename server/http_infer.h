// KServe v2 inference over HTTP: POST /v2/models/{m}[/versions/{v}]/infer with JSON tensors and Triton's binary
// tensor extension (Inference-Header-Content-Length, binary_data_size, binary_data / binary_data_output).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/model_runner.h"

namespace coreserve {

// A parsed request body. `header_length` is the Inference-Header-Content-Length value, or -1 without one (the
// whole body is JSON).
struct HttpInferRequest {
  InferRequest request;
  std::vector<bool> binary_outputs;  // per requested output (all outputs when the request names none)
  bool all_binary = false;           // parameters.binary_data_output
  std::string id;
};
absl::StatusOr<HttpInferRequest> ParseHttpInferRequest(std::string_view body, int64_t header_length);

// The response body for `outputs`: JSON, then the binary outputs' bytes when any output is binary.
// *json_length is the JSON part's length (the response's Inference-Header-Content-Length).
std::string HttpInferResponse(const std::string& model, int64_t version, const HttpInferRequest& request,
                              const NamedTensors& outputs, std::size_t* json_length);

// The HTTP status of an error from the request path: 400, 404, 429, 503, else 500.
int HttpStatusFor(const absl::Status& status);

}  // namespace coreserve
