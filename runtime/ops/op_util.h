// Helpers shared by the operator implementations: axes, broadcasting, reading small integer tensors, type
// dispatch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "runtime/op.h"
#include "runtime/status_macros.h"
#include "runtime/tensor.h"

namespace coreserve::runtime {

// Maps a possibly negative axis into [0, rank); InvalidArgument when out of range.
absl::StatusOr<int64_t> NormalizeAxis(const OpContext& ctx, int64_t axis, int64_t rank);

// The values of an int64 or int32 tensor (shape inputs such as Reshape's shape or Slice's starts).
absl::StatusOr<std::vector<int64_t>> ReadInts(const OpContext& ctx, const Tensor& t, const char* what);

// Row-wise broadcasting of N inputs to one output (numpy rules): the output is walked as `outer` rows of
// `inner` elements; for each row, RowOffsets gives each input's element offset, and within the row input k
// advances by inner_step[k] (1, or 0 when that input is broadcast along the last axis).
struct Broadcast {
  Shape out;
  int64_t outer = 1, inner = 1;
  std::vector<std::vector<int64_t>> strides;  // per input: element stride per output dim (0 when broadcast)
  std::vector<int64_t> inner_step;

  void RowOffsets(int64_t row, int64_t* offsets) const;
  // Each input's element offset for output element `index` (batched MatMuls: index = batch over `out`).
  void ElementOffsets(int64_t index, int64_t* offsets) const;
};
absl::StatusOr<Broadcast> PlanBroadcast(const OpContext& ctx, const std::vector<const Shape*>& shapes);

// y = y + residual (numpy broadcasting to y's shape, which must not change), then Relu when `relu`: the
// fallback of the GEMM epilogues' residual (fused Conv and FusedMatMul) when the residual broadcasts.
absl::Status AddResidual(const OpContext& ctx, Tensor& y, const Tensor& residual, bool relu);

// x.permute(perm) materialized (the Transpose operator's kernel); InvalidArgument for a bad permutation.
absl::StatusOr<Tensor> PermuteTensor(const OpContext& ctx, const Tensor& x, const std::vector<int64_t>& perm);

// Rows processed per parallel task so each task does at least ~32K element operations.
inline int64_t RowGrain(int64_t inner) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(inner, 1)); }

}  // namespace coreserve::runtime

namespace coreserve::runtime {

// ParallelFor on the context's pool, or inline when there is none (constant folding at load).
template <typename Fn>
void Parallel(const OpContext& ctx, int64_t total, int64_t grain, Fn&& fn) {
  if (ctx.pool == nullptr) {
    if (total > 0) fn(int64_t{0}, total);
    return;
  }
  ctx.pool->ParallelFor(total, grain, std::function<void(int64_t, int64_t)>(fn));
}

}  // namespace coreserve::runtime
