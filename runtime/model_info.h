// What a model file declares: its inputs, outputs and operator sets, read without building a session.
//
// ReadModelInfo parses an ONNX file with the onnx library and runs its checker, so a file that is not a valid
// ONNX model is refused at load, with the path and the checker's reason, instead of at the first request.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/data_type.h"

namespace coreserve::runtime {

struct TensorInfo {
  std::string name;
  DataType type = DataType::kUndefined;
  std::vector<int64_t> shape;  // -1 for a dimension that is symbolic or unknown
};

struct ModelInfo {
  std::string path;
  int64_t ir_version = 0;
  std::string producer;                   // producer_name and producer_version, as written
  std::map<std::string, int64_t> opsets;  // domain ("" is ai.onnx) -> version
  std::vector<TensorInfo> inputs;         // graph inputs that are not initializers
  std::vector<TensorInfo> outputs;
  std::map<std::string, int64_t> op_counts;  // "domain::OpType" (or "OpType" for ai.onnx) -> nodes
};

// Reads and checks the ONNX model at `path`. Errors: NotFound when the file cannot be read,
// InvalidArgument when it does not parse or the checker rejects it; the message names the path.
// Thread-safe: it touches no shared state.
absl::StatusOr<ModelInfo> ReadModelInfo(const std::string& path);

}  // namespace coreserve::runtime
