// Small helpers the graph rewriting passes (fusions.cc, nhwc_layout.cc) share.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "runtime/graph.h"

namespace coreserve::runtime {

inline bool IsOp(const Node& n, const char* op, const char* domain = "") {
  return !n.dead && n.op_type == op && n.domain == domain;
}

// The single live node reading `value`, when the value has exactly one reader and is not a graph output.
inline int SoleConsumer(const Graph& g, int value) {
  if (value < 0 || g.values[value].graph_output) return -1;
  int found = -1;
  for (int c : g.values[value].consumers) {
    if (g.nodes[c].dead) continue;
    if (found >= 0 && found != c) return -1;
    found = c;
  }
  // A node reading the value twice still counts once; it must be the only reader.
  return found;
}

// The live node producing `value`, or -1 (graph inputs, constants, dead producers).
inline int LiveProducer(const Graph& g, int value) {
  if (value < 0) return -1;
  const int p = g.values[value].producer;
  return p >= 0 && !g.nodes[p].dead ? p : -1;
}

// Appends a node of `op` (in `domain`) reading `inputs` and writing `output`.
inline void AddNode(Graph& g, const std::string& op, const std::string& domain, std::vector<int> inputs, int output,
                    const std::string& name, Attributes attrs = {}) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.domain = domain;
  n.opset = 1;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  n.attributes = std::move(attrs);
  n.attributes.owner = n.Describe();
  g.nodes.push_back(std::move(n));
}

}  // namespace coreserve::runtime
