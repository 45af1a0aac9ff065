// The ONNX model loader: protobuf parsing and the onnx checker, import into the runtime's graph (initializers,
// opsets, shape inference), then the session's optimization passes, memory plan and weight packing, as a
// model's load does. A bad model must come back as a status naming what is wrong.
#include <cstdint>
#include <string_view>

#include "onnx/onnx_pb.h"
#include "runtime/onnx_import.h"
#include "runtime/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = coreserve::runtime::ParseOnnxBytes(std::string_view(reinterpret_cast<const char*>(data), size),
                                                  "fuzz.onnx");
  if (!model.ok()) return 0;
  // External data must stay inside the model's folder; this one has no files.
  auto graph = coreserve::runtime::ImportOnnx(*model, "/nonexistent/fuzz-model");
  if (!graph.ok()) return 0;
  auto session = coreserve::runtime::Session::FromGraph(*std::move(graph));
  (void)session;
  return 0;
}
