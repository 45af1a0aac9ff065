// Type and shape inference over the Graph IR, by one rule per operator the runtime implements.
//
// The optimizer decides by shapes (a Conv goes NHWC only when its input is known to be rank 4, attention fusion
// needs the ranks of Q, K and V), and a model's metadata shows its outputs' shapes, so every value should have
// the most the graph says about it. The onnx library's own inference stops at the newest opset it knows (Debian
// 12's onnx 1.12 knows opset 17, while PyTorch's dynamo exporter writes 18 and later), so the runtime infers for
// itself, for every model, with the same rules whatever the opset.
#pragma once

#include "runtime/graph.h"

namespace coreserve::runtime {

// Fills in the element type and shape of each value, in topological order: values the model file leaves
// undescribed get the inferred type and shape, and dims a file declares dynamic (-1) take a static size when the
// graph fixes it. The values of small integer tensors computed from shapes are followed too (Shape -> Gather ->
// Concat -> Reshape), with dims only known at run time kept unknown, so a Reshape's output rank is known even when
// its target is computed. Inference is advice, not validation: a rule that cannot decide (an unknown rank, a
// target computed from data) leaves the output as it was, a file's declaration that contradicts the rules is kept,
// and every shape is still checked when the model runs.
void InferShapes(Graph& graph);

}  // namespace coreserve::runtime
