// The gRPC ModelInferRequest -> tensors conversion (typed contents and raw_input_contents), on whatever
// protobuf parses from the input, as gRPC would hand it over.
#include <cstdint>

#include "inference.pb.h"
#include "server/grpc_infer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto parsed = coreserve::InferRequestFromProto(request);
  if (parsed.ok()) coreserve::fuzz::TouchTensors(parsed->inputs);
  return 0;
}
