// Splits GEMMs over the context's thread pool in (rows x column-panels) tasks.
#pragma once

#include <functional>
#include <vector>

#include "kernels/gemm/qgemm.h"
#include "kernels/gemm/sgemm.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {

// Columns [begin, begin + width) of a GEMM's C stored in their own matrix: C[i, j] at c[i * ldc + j - begin].
// A merged Q|K|V projection writes its three results straight into three tensors this way, with no Split copy.
struct GemmOutputSegment {
  int64_t begin = 0, width = 0;
  float* c = nullptr;
  int64_t ldc = 0;
};

// Runs `batches` GEMMs of the same M x N, the i-th described by args_of(i), as tasks of whole micro-tiles
// (rows in multiples of 12, columns in multiples of kernels::SgemmNStep()), enough of them to keep every thread
// of the pool busy. With `segments` (batches == 1; they cover [0, N) in order, each `begin` a multiple of
// SgemmNStep()), C is stored by segment and args_of's c and ldc are unused.
void ParallelGemm(const OpContext& ctx, int64_t batches, int64_t m, int64_t n,
                  const std::function<kernels::SgemmArgs(int64_t)>& args_of,
                  const std::vector<GemmOutputSegment>& segments = {});

// The exact integer GEMM q (all of its M x N) over the pool, in 48-row x 256-column tiles.
void ParallelQgemm(const OpContext& ctx, const kernels::QgemmArgs& q);

// The float result of an integer GEMM whose int32 sums were written into y's own storage (rows x n): in place,
// y = act(float(sum) * scale[j] + bias[j] + residual[i, j]) with act Relu when `relu`; bias and residual (rows x n,
// row stride n) may be null.
void ScaleInt32InPlace(const OpContext& ctx, float* y, int64_t rows, int64_t n, const float* scale, const float* bias,
                       const float* residual, bool relu);

}  // namespace coreserve::runtime
