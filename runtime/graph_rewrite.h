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
