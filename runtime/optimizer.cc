#include "runtime/optimizer.h"

#include <new>

#include "absl/strings/str_cat.h"
#include "runtime/fusions.h"
#include "runtime/op.h"
#include "runtime/status_macros.h"

namespace coreserve::runtime {

namespace {
constexpr std::size_t kMaxFoldedBytes = std::size_t{1} << 30;
}  // namespace

absl::Status FoldConstants(Graph& graph) {
  ASSIGN_OR_RETURN(std::vector<int> order, graph.TopologicalOrder());
  for (int n : order) {
    Node& node = graph.nodes[n];
    bool all_constant = !node.inputs.empty();
    for (int in : node.inputs) {
      if (in >= 0 && !graph.values[in].constant) all_constant = false;
    }
    if (!all_constant) continue;
    const OpFactory* factory = OpRegistry::Builtin().Find(node.domain, node.op_type);
    if (factory == nullptr) continue;
    ASSIGN_OR_RETURN(std::unique_ptr<OpKernel> kernel, (*factory)(graph, node));
    OpContext ctx;
    ctx.node = &node;
    for (int in : node.inputs) ctx.inputs.push_back(in < 0 ? nullptr : &*graph.values[in].constant);
    ctx.outputs.resize(node.outputs.size());
    // A constant subgraph that fails would fail on every request: report it at load. So does one whose output
    // would exceed kMaxFoldedBytes: no model we serve has such a constant (GPT-2's largest weight is 154 MB),
    // and building it would take the memory of every model on the host.
    try {
      ScopedAllocationLimit limit(kMaxFoldedBytes);
      RETURN_IF_ERROR(kernel->Run(ctx));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(node.Describe(), ": its constant output would take more than ",
                                                       kMaxFoldedBytes >> 20, " MiB"));
    }
    for (std::size_t o = 0; o < node.outputs.size(); ++o) {
      const int out = node.outputs[o];
      if (out < 0) continue;
      Value& v = graph.values[out];
      v.type = ctx.outputs[o].type();
      v.shape = ctx.outputs[o].shape();
      v.constant = std::move(ctx.outputs[o]);
    }
    node.dead = true;
  }
  graph.RebuildEdges();
  return absl::OkStatus();
}

void RemoveDeadNodes(Graph& graph) {
  graph.RebuildEdges();
  bool changed = true;
  while (changed) {
    changed = false;
    for (int n = static_cast<int>(graph.nodes.size()) - 1; n >= 0; --n) {
      Node& node = graph.nodes[n];
      if (node.dead) continue;
      bool used = false;
      for (int out : node.outputs) {
        if (out < 0) continue;
        const Value& v = graph.values[out];
        if (v.graph_output) used = true;
        for (int c : v.consumers) used = used || !graph.nodes[c].dead;
      }
      if (!used) {
        node.dead = true;
        changed = true;
      }
    }
  }
  graph.Compact();
}

absl::Status Optimize(Graph& graph) {
  FuseQdqMatMul(graph);
  FuseQdqConv(graph);
  RETURN_IF_ERROR(FoldConstants(graph));
  RemoveDeadNodes(graph);
  FuseLayerNorm(graph);
  FuseGelu(graph);
  FuseGeluTanh(graph);
  FoldConvBatchNorm(graph);
  FuseConvAddRelu(graph);
  ConvertConvsToNhwc(graph);
  FuseMatMulBias(graph);
  FuseGemmBias(graph);
  FuseMatMulActivation(graph);
  MergeSiblingMatMuls(graph);
  FuseMatMulResidual(graph);
  FuseMatMulSplit(graph);
  FuseSwapLastAxesReshapes(graph);
  ComposeTransposes(graph);
  FusePermutedMatMul(graph);
  FuseMaskedSoftmax(graph);
  FuseAttention(graph);
  RemoveDeadNodes(graph);
  return absl::OkStatus();
}

}  // namespace coreserve::runtime
