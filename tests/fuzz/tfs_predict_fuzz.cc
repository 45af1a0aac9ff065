// TensorFlow Serving's REST :predict parser (row "instances" and columnar "inputs"), whose shapes come from the
// JSON nesting and whose types come from the model. The first byte picks the model signature: a transformer
// (two INT64 [batch, seq] inputs), an image model (one FP32 [batch, 3, 4, 4]) or one BYTES/BOOL pair.
#include <cstdint>
#include <string_view>
#include <vector>

#include "server/tfs_rest.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using coreserve::runtime::DataType;
using coreserve::runtime::TensorInfo;

const std::vector<TensorInfo>& Signature(uint8_t choice) {
  static const std::vector<TensorInfo> kSignatures[] = {
      {{"input_ids", DataType::kInt64, {-1, -1}}, {"attention_mask", DataType::kInt64, {-1, -1}}},
      {{"pixel_values", DataType::kFloat32, {-1, 3, 4, 4}}},
      {{"text", DataType::kString, {-1}}, {"flag", DataType::kBool, {-1, 2}}},
  };
  return kSignatures[choice % 3];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto parsed = coreserve::ParseTfsPredict(body, Signature(data[0]));
  if (parsed.ok()) coreserve::fuzz::TouchTensors(parsed->request.inputs);
  return 0;
}
