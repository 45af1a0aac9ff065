// Session: a loaded, optimized model ready to run.
//
// Load() parses and checks the ONNX file, imports it, verifies that every operator is implemented (listing all
// that are not, so a model fails at load rather than at its first request), folds constant subgraphs, removes
// dead nodes and builds one kernel per node. Run() executes the graph in topological order on the caller's
// thread pool, freeing each intermediate tensor after its last use.
//
// Steps whose results depend only on the input shapes (Shape, and everything computed from shapes and constants:
// the reshape targets, position ranges and masks exporters build) run once per input-shape signature; their
// results are cached and reused by later runs with the same shapes.
//
// Memory: the first run of an input-shape signature allocates each intermediate tensor and records its size and
// lifetime (views such as Reshape share their source's buffer and extend its lifetime); from them a memory plan
// places every intermediate in one arena, reusing memory between tensors whose lifetimes do not overlap. Later
// runs of that signature take an arena from a small pool and place their tensors at the planned offsets; a tensor
// that does not match its slot (a data-dependent size) is allocated as before, so a plan is never unsafe.
//
// Thread safety: a Session is immutable after Load() apart from those caches, which are guarded; Run() may be
// called from several threads at once (each call keeps its own tensors and arena), each with its own pool.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/graph.h"
#include "runtime/model_info.h"
#include "runtime/op.h"
#include "runtime/thread_pool.h"

namespace coreserve::runtime {

struct SessionOptions {
  bool optimize = true;  // constant folding, dead-node removal and fusions
  // The GEMMs' precision: kBf16 ("fastmath": bf16 products, fp32 accumulation) for every MatMul, Gemm, Conv and
  // attention projection; kInt8 quantizes the constant weights of MatMul and Gemm (symmetric per output channel)
  // at load and the activations per row at run time, leaving Conv in fp32. Weights are converted once, at load.
  kernels::GemmPrecision precision = kernels::GemmPrecision::kFp32;
};

class Session {
 public:
  static absl::StatusOr<std::unique_ptr<Session>> Load(const std::string& path, const SessionOptions& options = {});
  static absl::StatusOr<std::unique_ptr<Session>> FromGraph(Graph graph, const SessionOptions& options = {});

  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  const Graph& graph() const { return graph_; }

  // `inputs` in the order of inputs(); returns the outputs in the order of outputs(). InvalidArgument names
  // the input (wrong count, type or shape) or the node that failed; ResourceExhausted when memory runs out.
  // `pool` may be null (single-threaded).
  // `step_seconds`, when given, receives the wall time of each step (in the order of steps()), for profiling;
  // `step_shapes` the shapes each step read and wrote (a step the shape cache skipped keeps empty lists; an
  // absent optional input an empty shape), for cost estimates (runtime/pipeline.h).
  struct StepShapes {
    std::vector<Shape> inputs, outputs;
  };
  absl::StatusOr<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs, ThreadPool* pool,
                                          std::vector<double>* step_seconds = nullptr,
                                          std::vector<StepShapes>* step_shapes = nullptr) const;
  // The node index each step runs, in execution order.
  std::vector<int> steps() const;
  // Input-shape signatures whose shape-only results are cached (for tests and diagnostics).
  std::size_t shape_cache_size() const;

  // The memory plan made for input shapes `shapes` (after a run with them); NotFound before.
  struct MemoryStats {
    int64_t arena_bytes = 0;    // planned peak of the intermediate tensors
    int64_t unplanned_bytes = 0;  // intermediates the plan leaves to the allocator (the graph's outputs and their views)
    int64_t total_bytes = 0;    // the intermediates' sizes added up (the memory without reuse)
    int buffers = 0;
  };
  absl::StatusOr<MemoryStats> MemoryPlanFor(const std::vector<Shape>& shapes) const;

 private:
  Session() = default;
  absl::Status Build(const SessionOptions& options);

  struct Step {
    int node = 0;
    std::unique_ptr<OpKernel> kernel;
    bool shape_only = false;  // its outputs depend only on the input shapes
    // Per input: whether the operator may take over its storage for an output (OpContext::ReuseInput): the
    // step is the value's only remaining reader and the value is an intermediate of the run (not a graph input,
    // output, constant or shape-only result). Whether nothing else shares the storage is decided per run.
    std::vector<bool> may_reuse;
  };
  using ShapeOnlyValues = std::vector<std::pair<int, Tensor>>;  // value index -> tensor
  struct RunPlan {
    std::vector<int64_t> offset;  // per value: its place in the arena, -1 when not planned
    std::vector<int64_t> bytes;   // per value: the planned size
    std::vector<int> alias_root;  // per value: the planned value whose buffer it views, -1 for none
    std::vector<int> reused_input;  // per step: the input whose storage the recording run's operator took over, or -1
    MemoryStats stats;
  };
  // Records sizes and lifetimes during a first run; see Run().
  struct Recorder;
  std::shared_ptr<void> TakeArena(int64_t bytes) const;
  void ReturnArena(std::shared_ptr<void> arena, int64_t bytes) const;
  Graph graph_;
  std::vector<Step> steps_;
  std::vector<int> use_counts_;  // per value: how many step inputs read it
  std::vector<int> last_use_;    // per value: the last step that reads it (-1: none)
  std::vector<TensorInfo> inputs_, outputs_;
  bool has_shape_only_ = false;
  mutable std::mutex cache_mu_;
  mutable std::map<std::vector<Shape>, std::shared_ptr<const ShapeOnlyValues>> shape_cache_;
  mutable std::map<std::vector<Shape>, std::shared_ptr<const RunPlan>> plans_;
  mutable std::vector<std::pair<int64_t, std::shared_ptr<void>>> arena_pool_;  // (bytes, arena), idle
};

// The operators of `graph` the runtime does not implement, as "Op (N nodes)" entries; empty when all are.
std::vector<std::string> UnsupportedOperators(const Graph& graph);

}  // namespace coreserve::runtime
