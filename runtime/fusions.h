// Operator fusions: rewrite recognized subgraphs into single fused operators. Each keeps the graph's outputs
// unchanged within float rounding (tests compare fused and unfused runs), and fires only when every replaced
// intermediate value has no other reader and is not a graph output.
#pragma once

#include "runtime/graph.h"

namespace coreserve::runtime {

// x * 0.5 * (1 + erf(x / sqrt 2)) in the association orders exporters write -> com.microsoft::Gelu(x).
int FuseGelu(Graph& graph);

// MatMul(A, W) + b, with W a constant matrix and b a constant vector over W's columns ->
// coreserve::FusedMatMul(A, W, b), whose bias is applied in the GEMM's epilogue.
int FuseMatMulBias(Graph& graph);

// FusedMatMul followed by Relu or GELU -> the activation moves into the GEMM epilogue.
int FuseMatMulActivation(Graph& graph);

}  // namespace coreserve::runtime
