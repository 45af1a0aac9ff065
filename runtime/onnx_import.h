// ONNX model file -> Graph. Parsing and checking use the onnx library; initializers (inline or external data)
// become constant values, Constant nodes are folded into constants, and every node records its domain's opset.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "runtime/graph.h"

namespace onnx {
class ModelProto;
}

namespace coreserve::runtime {

// Reads and checks the model at `path` and infers the shapes of the values it does not describe (models within
// the onnx library's IR and opset range; newer ones keep the shapes their file gives). NotFound when unreadable;
// InvalidArgument (naming the path) when it does not parse or the checker rejects it.
absl::StatusOr<onnx::ModelProto> ParseOnnxFile(const std::string& path);

// Converts a checked model. `model_dir` resolves external-data files, which must stay inside it.
absl::StatusOr<Graph> ImportOnnx(const onnx::ModelProto& model, const std::string& model_dir);

// A serialized TensorProto file (as in the ONNX backend test data) -> Tensor.
absl::StatusOr<Tensor> ReadTensorProtoFile(const std::string& path);

// ParseOnnxFile + ImportOnnx.
absl::StatusOr<Graph> LoadOnnxGraph(const std::string& path);

}  // namespace coreserve::runtime
