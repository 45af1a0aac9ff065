// A model cut into pipeline stages (issue "Placement"): contiguous ranges of the optimized graph's steps, each
// its own Session over its slice of the graph — its own kernels and packed weights — so that stage k can work on
// one request while stage k+1 works on the one before it, each on its own cores.
//
// The cut balances estimated cost refined by measurement: a profiled run of the whole session gives each step's
// shapes and time; each step's cost is estimated from its arithmetic and the bytes it touches (EstimateStepCosts),
// and converted to seconds at the rate its operator type ran at in that run (RefineByMeasurement), so steps of
// one type are weighed by their size rather than by one noisy timing each; the stages get about equal shares. Values cross a cut by name: a stage reads the graph inputs and the
// values earlier stages produced, and produces the values later stages or the graph's outputs read. Run in order
// on the same inputs, the stages compute exactly what the whole session computes (the same kernels on the same
// shapes).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/session.h"

namespace coreserve::runtime {

struct PipelineStage {
  std::unique_ptr<Session> session;  // inputs() and outputs() name the values it reads and produces
  int first_step = 0, end_step = 0;  // its steps of the whole session, [first_step, end_step)
  double seconds = 0;                // its share of the profiled time
};

// A step's cost by its shapes: multiply-adds x 2 of the GEMM-like operators (MatMul, Gemm, FusedMatMul,
// PermutedMatMul, the integer MatMuls; Conv, NhwcConv, IntegerConv), and the bytes of every input (weights
// included) and output.
struct StepCost {
  double flops = 0;
  double bytes = 0;
};
std::vector<StepCost> EstimateStepCosts(const Session& whole, const std::vector<Session::StepShapes>& shapes);

// Seconds per step: each step's estimate (flops at 100 GFLOP/s plus bytes at 20 GB/s: a core's order of
// magnitude, which sets only how flops weigh against bytes) scaled by its operator type's measured / estimated
// total in `measured`. Steps whose type has no estimate keep their measured time.
std::vector<double> RefineByMeasurement(const Session& whole, const std::vector<StepCost>& estimate,
                                        const std::vector<double>& measured);

// Cuts `whole` into `stages` (2 .. its number of steps) of about equal time by `step_seconds` (one entry per step
// of whole.steps()). InvalidArgument when it cannot be cut so.
absl::StatusOr<std::vector<PipelineStage>> CutIntoStages(const Session& whole, const std::vector<double>& step_seconds,
                                                         int stages);

// Runs `stage` on the named values it reads from `values` and adds the values it produces.
absl::Status RunStage(const PipelineStage& stage, std::map<std::string, Tensor>& values, ThreadPool* pool);

}  // namespace coreserve::runtime
