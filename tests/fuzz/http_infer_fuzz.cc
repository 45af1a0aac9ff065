// The KServe v2 HTTP request parser: JSON tensors and Triton's binary tensor extension. The first two bytes
// choose the Inference-Header-Content-Length (little-endian; 0xffff: none, the whole body is JSON), the rest is
// the body. Parsed requests have every tensor byte read.
#include <cstdint>
#include <string_view>

#include "server/http_infer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int raw = data[0] | (data[1] << 8);
  const int64_t header_length = raw == 0xffff ? -1 : raw;
  const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  auto parsed = coreserve::ParseHttpInferRequest(body, header_length);
  if (parsed.ok()) coreserve::fuzz::TouchTensors(parsed->request.inputs);
  return 0;
}
