// Load-time graph optimization passes. Each pass keeps the graph's outputs unchanged (tests check this
// against the unoptimized graph) and leaves Value::producer/consumers consistent.
#pragma once

#include "absl/status/status.h"
#include "runtime/graph.h"

namespace coreserve::runtime {

// Runs every pass in order: constant folding, dead-node removal, then the fusions (runtime/fusions.h).
absl::Status Optimize(Graph& graph);

// Evaluates nodes whose inputs are all constants, once, and turns their outputs into constants.
absl::Status FoldConstants(Graph& graph);

// Removes nodes none of whose outputs is used by a live node or is a graph output.
void RemoveDeadNodes(Graph& graph);

}  // namespace coreserve::runtime
