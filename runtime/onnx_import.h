// ONNX model file -> Graph. Parsing and checking use the onnx library; initializers (inline or external data)
// become constant values, Constant nodes are folded into constants, every node records its domain's opset, and
// the runtime's own shape inference (shape_inference.h) completes the values' types and shapes.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "runtime/graph.h"

namespace onnx {
class ModelProto;
}

namespace coreserve::runtime {

// Reads and checks the model at `path` (the checker runs on models within the onnx library's IR and opset range;
// newer ones rely on the session's own validation). NotFound when unreadable; InvalidArgument (naming the path)
// when it does not parse or the checker rejects it.
absl::StatusOr<onnx::ModelProto> ParseOnnxFile(const std::string& path);

// The same for a model already in memory; `source` names it in errors (the fuzz target's entry point).
absl::StatusOr<onnx::ModelProto> ParseOnnxBytes(std::string_view bytes, const std::string& source);

// Converts a checked model. `model_dir` resolves external-data files, which must stay inside it.
absl::StatusOr<Graph> ImportOnnx(const onnx::ModelProto& model, const std::string& model_dir);

// A serialized TensorProto file (as in the ONNX backend test data) -> Tensor.
absl::StatusOr<Tensor> ReadTensorProtoFile(const std::string& path);

// ParseOnnxFile + ImportOnnx.
absl::StatusOr<Graph> LoadOnnxGraph(const std::string& path);

}  // namespace coreserve::runtime
