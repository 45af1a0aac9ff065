// Operator fusions: rewrite recognized subgraphs into single fused operators. Each keeps the graph's outputs
// unchanged within float rounding (tests compare fused and unfused runs), and fires only when every replaced
// intermediate value has no other reader and is not a graph output.
#pragma once

#include "runtime/graph.h"

namespace coreserve::runtime {

// MatMul(DequantizeLinear(a_q, s_a, z_a), DequantizeLinear(W_q, s_w, z_w)) with constant scales and zero points,
// s_a per tensor and s_w per tensor or per column, W_q a constant u8/s8 matrix (quantize_static's QDQ form) ->
// coreserve::MatMulIntegerToFloat(a_q, W_q, z_a, z_w, s_a * s_w[, bias]): the integer product on the int8 kernels,
// with a following constant bias Add absorbed.
// Runs before constant folding (qdq_fusion.cc says why).
int FuseQdqMatMul(Graph& graph);

// Conv(DequantizeLinear(x_q, s_x, z_x), DequantizeLinear(W_q, s_w, 0), bias) with one group, s_x per tensor and s_w
// per tensor or per output channel (quantize_static's QDQ Conv) -> coreserve::IntegerConv(x_q, W_q, bias, -,
// s_x * s_w, z_x), which the layout pass turns into an integer NhwcConv. Before constant folding.
int FuseQdqConv(Graph& graph);

// x * 0.5 * (1 + erf(x / sqrt 2)) in the association orders exporters write -> com.microsoft::Gelu(x).
int FuseGelu(Graph& graph);

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) as GPT-2's exporters write it -> com.microsoft::FastGelu(x).
int FuseGeluTanh(Graph& graph);

// MatMul(A, W) + b, with W a constant matrix and b a constant vector over W's columns ->
// coreserve::FusedMatMul(A, W, b), whose bias is applied in the GEMM's epilogue.
int FuseMatMulBias(Graph& graph);

// Gemm(A, W, c) with a constant W, a constant vector c, alpha = beta = 1 and no transposed A -> FusedMatMul (W
// transposed once here when transB is set), so GPT-2's and classifier heads' Gemms get the packed-weight epilogue.
int FuseGemmBias(Graph& graph);

// Several FusedMatMul (no activation) reading the same input with weights of the same K — attention's Q, K and V
// projections — -> one FusedMatMul over the concatenated weights, then a Split: one wide GEMM instead of three.
int MergeSiblingMatMuls(Graph& graph);

// FusedMatMul (no activation) + Add(other) -> FusedMatMul with `other` as a fourth input, added in the GEMM's
// epilogue (a transformer's residual connection before its LayerNorm); run after MergeSiblingMatMuls.
int FuseMatMulResidual(Graph& graph);

// FusedMatMul (no residual) whose output only a Split along the last axis reads -> the FusedMatMul with a `split`
// attribute and the Split's outputs, each column range stored straight into its own tensor: the merged Q|K|V
// projection without copying its product again (GPT-2's c_attn, with a Reshape before its Split, is not matched).
// Ranges must start on packed panels (multiples of kernels::SgemmNStep()); run after FuseMatMulResidual.
int FuseMatMulSplit(Graph& graph);

// Reshape(Transpose(Reshape(X, [-1, d2, d3]), [0, 2, 1]), [d0, d1, d3, d2]) for a rank-4 X, the shape targets
// proved from Shape(X) symbolically (the dynamo exporter's K^T in attention) -> Transpose(X, [0, 1, 3, 2]).
int FuseSwapLastAxesReshapes(Graph& graph);

// Transpose(Transpose(X, p), q), the inner one read only by the outer (and by Shape nodes, rewritten) ->
// Transpose(X, p∘q).
int ComposeTransposes(Graph& graph);

// MatMul whose operands are Transposes (rank 4) of other tensors, optionally scaled by scalar Muls, and whose
// result is optionally transposed -> coreserve::PermutedMatMul: strided batched GEMMs with the scalars in alpha, no
// transposed copies (attention's Q K^T and P V with their head split/merge).
int FusePermutedMatMul(Graph& graph);

// Softmax(scores + mask) over the last axis, optionally followed by the NaN guard Where(IsNaN(p), 0, p) that newer
// exporters add for fully masked rows -> coreserve::MaskedSoftmax: one pass per row.
int FuseMaskedSoftmax(Graph& graph);

// PermutedMatMul(Q, K) -> MaskedSoftmax (or a last-axis Softmax) -> PermutedMatMul(P, V), Q, K and V each read
// through a head-split Transpose -> coreserve::Attention: per (batch, head) block of query rows, scores, mask,
// softmax and P V in one pass without materializing the [B, H, S, T] scores.
int FuseAttention(Graph& graph);

// FusedMatMul followed (directly or through one Reshape) by Relu, GELU or FastGelu without bias -> the activation
// moves into the GEMM epilogue.
int FuseMatMulActivation(Graph& graph);

// The decomposed LayerNorm older exporters write (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul gamma,
// Add beta, over the last axis) -> LayerNormalization.
int FuseLayerNorm(Graph& graph);

// Conv followed by inference BatchNormalization with constant statistics -> one Conv with scaled weights and bias.
int FoldConvBatchNorm(Graph& graph);

// Conv [+ Add(residual)] + Relu -> one Conv whose GEMM adds the residual and applies Relu in its epilogue
// (attributes coreserve_residual=1, coreserve_activation="relu"; the residual becomes a fourth input).
int FuseConvAddRelu(Graph& graph);

// Conv (2-D, constant float32 weights, one group) -> coreserve::NhwcConv between Transposes to and from NHWC,
// and MaxPool / GlobalAveragePool of an NHWC value -> their NHWC forms; Transposes that cancel are never made,
// so a chain of convolutions runs channels-last throughout (nhwc_layout.cc says why).
int ConvertConvsToNhwc(Graph& graph);

}  // namespace coreserve::runtime
