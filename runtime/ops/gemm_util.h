// Splits GEMMs over the context's thread pool in (rows x column-panels) tasks.
#pragma once

#include <functional>

#include "kernels/gemm/sgemm.h"
#include "runtime/ops/op_util.h"

namespace coreserve::runtime {

// Runs `batches` GEMMs of the same M x N, the i-th described by args_of(i), as tasks of whole micro-tiles
// (rows in multiples of 12, columns in multiples of kernels::SgemmNStep()), enough of them to keep every thread
// of the pool busy.
void ParallelGemm(const OpContext& ctx, int64_t batches, int64_t m, int64_t n,
                  const std::function<kernels::SgemmArgs(int64_t)>& args_of);

}  // namespace coreserve::runtime
