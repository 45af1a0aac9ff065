// A model cut into pipeline stages (issue "Placement"): contiguous ranges of the optimized graph's steps, each
// its own Session over its slice of the graph — its own kernels and packed weights — so that stage k can work on
// one request while stage k+1 works on the one before it, each on its own cores.
//
// The cut balances measured time: the caller profiles a run of the whole session (Session::Run's step_seconds)
// and the stages get about equal shares of it. Values cross a cut by name: a stage reads the graph inputs and the
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

// Cuts `whole` into `stages` (2 .. its number of steps) of about equal time by `step_seconds` (one entry per step
// of whole.steps()). InvalidArgument when it cannot be cut so.
absl::StatusOr<std::vector<PipelineStage>> CutIntoStages(const Session& whole, const std::vector<double>& step_seconds,
                                                         int stages);

// Runs `stage` on the named values it reads from `values` and adds the values it produces.
absl::Status RunStage(const PipelineStage& stage, std::map<std::string, Tensor>& values, ThreadPool* pool);

}  // namespace coreserve::runtime
