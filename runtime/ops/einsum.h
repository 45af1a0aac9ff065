// Einsum's equation, shared by the operator (ops/einsum.cc) and the shape inference.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tensor.h"

namespace coreserve::runtime {

// An equation such as "bhqd,bhkd->bhqk" or "...ii" parsed into labels: 0-25 for A-Z, 26-51 for a-z and
// kEllipsis where "..." stands for the dims the explicit labels leave over.
struct EinsumEquation {
  static constexpr int kEllipsis = -1;
  std::vector<std::vector<int>> inputs;
  std::optional<std::vector<int>> output;  // nullopt for the implicit form (no "->")
};

// InvalidArgument naming the problem for a malformed equation.
absl::StatusOr<EinsumEquation> ParseEinsum(const std::string& text);

// The labels of each operand of these ranks with every "..." expanded, and those of the output. Ellipsis dims
// are numbered from 52 and aligned from the right, as numpy broadcasts them; the implicit output is the ellipsis
// followed by the labels that occur once, in alphabetical order.
struct EinsumLabels {
  std::vector<std::vector<int>> inputs;
  std::vector<int> output;
};
absl::StatusOr<EinsumLabels> ExpandEinsum(const EinsumEquation& eq, const std::vector<int64_t>& ranks);

// The output shape for inputs of these shapes (-1 where unknown), or nullopt when a rank is unknown or the
// shapes do not fit the equation.
std::optional<Shape> EinsumShape(const std::string& equation, const std::vector<std::optional<Shape>>& inputs);

}  // namespace coreserve::runtime
