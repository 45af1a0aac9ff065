// One loaded model version and the thread that runs it: the Session, its intra-op ThreadPool (`threads` cores)
// and a bounded queue of requests. Without dynamic batching requests run one at a time, by priority then
// arrival; with it, the batcher (server/batch_policy.h) concatenates compatible requests on their first
// dimension (padding a transformer's sequences to the longest), runs them as one, and splits the outputs back.
//
// The front ends never compute: they convert a request into runtime tensors, Submit it and return; the result
// comes back through the callback on the runner's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/pipeline.h"
#include "runtime/session.h"
#include "runtime/thread_pool.h"
#include "server/batch_policy.h"
#include "server/model_config.h"
#include "server/runner_stats.h"

namespace coreserve {

using NamedTensors = std::vector<std::pair<std::string, runtime::Tensor>>;

struct InferRequest {
  NamedTensors inputs;               // every model input once, in any order
  std::vector<std::string> outputs;  // the outputs to return, in this order; empty: all, in the model's order
  int64_t priority = 0;              // 1 (first) .. the model's priority_levels; 0: its default level
  int64_t timeout_us = 0;            // time it may wait in the queue; 0: the model's default_timeout_us
  std::optional<BatchClock::time_point> deadline;  // the client's own (a gRPC deadline), if any
  std::function<bool()> cancelled;   // true once the client has gone (checked before computing); may be empty
};

using InferCallback = std::function<void(absl::StatusOr<NamedTensors>)>;

class ModelRunner {
 public:
  // Loads model.onnx at `path` in the config's precision and starts the runner's thread.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Load(const std::string& name, const std::string& path,
                                                           const ModelConfig& config);
  // Answers every request still queued, then stops.
  ~ModelRunner();

  // The runner as repository snapshots share it. Its last owner may be a request's callback running on one of
  // the runner's own threads (a gRPC answer holding the snapshot it started with, after a reload swapped that
  // snapshot out); a thread cannot join itself, so that deletion moves to a thread of its own.
  static std::shared_ptr<ModelRunner> Share(std::unique_ptr<ModelRunner> runner);
  // Waits until every deletion Share moved off a runner's thread has finished (the server's shutdown).
  static void WaitForRetired();

  const runtime::Session& session() const { return *session_; }
  // The model's inputs and outputs as clients see them: the session's, with the config's overrides applied.
  const std::vector<runtime::TensorInfo>& inputs() const { return inputs_; }
  const std::vector<runtime::TensorInfo>& outputs() const { return outputs_; }
  // Cores (intra-op threads) of all its instances together.
  int threads() const;
  // What each instance (core group) did: its CPUs (empty when unpinned), executions and time computing.
  struct StageStats {
    std::vector<int> cpus;
    int64_t runs = 0;
    double busy_seconds = 0;
    int64_t queue_depth = 0;  // batches waiting for the stage
  };
  struct InstanceStats {
    std::vector<StageStats> stages;  // a pipeline's stages; empty for an instance that runs the whole model
    std::vector<int> cpus;
    int threads = 0;
    int64_t executions = 0;
    double busy_seconds = 0;
    int64_t in_flight = 0;  // requests it is computing now
  };
  std::vector<InstanceStats> instance_stats() const;
  // Counts, durations and histograms of everything this runner did (server/runner_stats.h).
  RunnerStats stats() const { return stats_.Snapshot(); }
  // Requests waiting in the queue now.
  int64_t pending() const;
  // Requests being computed now (the requests of the batch that runs).
  int64_t in_flight() const { return in_flight_.load(); }

  // Checks the request against the model's inputs and outputs and the config's batch limit, then queues it.
  // `done` is called exactly once: at once (on this thread) with InvalidArgument for a bad request or
  // ResourceExhausted when the queue is full, else later on the runner's thread with the outputs or the error.
  void Submit(InferRequest request, InferCallback done);

 private:
  struct Job {
    std::vector<runtime::Tensor> inputs;  // in the session's input order
    std::vector<int> outputs;             // indices into the session's outputs
    int64_t sequence = -1;                // its length along the padded inputs' dim 1, when it may be padded
    InferCallback done;
    std::function<bool()> cancelled;
    QueuedRequest queued;  // what the batch policy sees
  };
  ModelRunner() = default;
  // Whether the calling thread is one of this runner's instance or stage threads.
  bool OnOwnThread() const;
  absl::StatusOr<Job> Prepare(InferRequest request) const;
  // A batch taken from the queue, on its way through an instance (one Session run, or a pipeline's stages).
  struct Batch {
    std::vector<Job> jobs;  // the live requests, in batch order
    int64_t rows = 0;       // their rows added up
    int64_t sequence = -1;  // the length padded inputs were padded to; -1: none
    BatchClock::time_point dispatched;
    std::vector<runtime::Tensor> inputs;            // in the session's input order
    std::map<std::string, runtime::Tensor> values;  // a pipeline's values by name
    absl::Status status;                            // the error of a stage that failed
  };
  // One stage of a pipeline instance: its slice of the model, its pool pinned to its cores, the thread that runs
  // each batch handed to it and hands it on, and the bounded queue in front of it.
  struct Stage {
    const runtime::PipelineStage* slice = nullptr;  // shared by the pipeline's copies
    std::vector<int> cpus;
    std::unique_ptr<runtime::ThreadPool> pool;
    std::thread thread;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<Batch>> queue;
    bool stop = false;
    std::atomic<int64_t> runs{0};
    std::atomic<int64_t> busy_ns{0};
  };
  // One instance: its pool (pinned to its core group, if any) or its pipeline's stages, and the thread that takes
  // batches for it.
  // The pool every model without a layout shares (model_runner.cc).
  struct SharedPool;
  struct Instance {
    std::vector<int> cpus;
    std::unique_ptr<runtime::ThreadPool> pool;    // null for a pipeline and for the default layout
    std::shared_ptr<SharedPool> shared;           // the default layout's pool: no threads, groups or pipeline
    std::vector<std::unique_ptr<Stage>> stages;   // empty unless a pipeline
    std::thread thread;
    std::atomic<int64_t> executions{0};
    std::atomic<int64_t> busy_ns{0};
    std::atomic<int64_t> in_flight{0};
  };
  // An instance's thread: takes the batch the policy chooses whenever the instance is free.
  void Loop(Instance& instance);
  // Runs `jobs` (one, or a batch of compatible ones) on `instance` and answers each; a pipeline instance hands
  // them to its first stage and returns once it has taken them.
  void Execute(std::vector<Job> jobs, Instance& instance);
  // The live requests of `jobs` (the cancelled ones answered) made into one batch; null when none is left.
  std::unique_ptr<Batch> Begin(std::vector<Job> jobs, Instance& instance);
  // Checks the outputs and answers each request of the batch.
  void Finish(std::unique_ptr<Batch> batch, absl::StatusOr<std::vector<runtime::Tensor>> outputs, Instance& instance);
  // A batch of several requests whose run failed: runs each request again on its own (on `stage_pool`, a
  // pipeline's last stage, or else the instance's pool) and finishes each with its own result, so that one
  // request whose input makes the model fail does not fail the requests batched with it.
  void RetryAlone(std::unique_ptr<Batch> batch, Instance& instance, runtime::ThreadPool* stage_pool);
  // A pipeline stage's thread, and handing a batch to a stage (waiting while one already waits there).
  void StageLoop(Instance& instance, std::size_t k);
  static void Hand(Stage& stage, std::unique_ptr<Batch> batch);
  // Cuts the model into the config's pipeline stages by a profiled run.
  absl::Status CutPipeline();
  // Session::Run of `feeds` on the instance's pool, in its turn when the pool is shared.
  absl::StatusOr<std::vector<runtime::Tensor>> RunOnPool(const Instance& instance,
                                                          const std::vector<runtime::Tensor>& feeds);
  // The whole model on `feeds` (through the stages in order, for a pipeline), on the first instance's pools.
  absl::StatusOr<std::vector<runtime::Tensor>> RunWhole(const std::vector<runtime::Tensor>& feeds);
  // Inputs for a load-time run: zeros (an attention_mask: ones) of the first warm-up's shapes, else of the
  // declared ones with a dynamic batch of 1 and other dynamic dims of `dynamic`; InvalidArgument when a shape does
  // not fit.
  absl::StatusOr<std::vector<runtime::Tensor>> ProbeFeeds(const WarmupRun* run, int64_t dynamic) const;
  // Which inputs pad along dim 1 and which outputs follow the sequence (see ModelConfig::pad_sequences): none
  // when the model has no attention mask or its outputs do not behave so at sequence lengths 1 and 2.
  void DetectSequencePadding();
  // The config's inputs/outputs overrides onto the session's; InvalidArgument naming the tensor when one names
  // no tensor of the model or does not fit its shape.
  absl::Status ApplyOverrides();
  // The config's warm-up runs; InvalidArgument naming the run and input when a shape does not fit the model.
  absl::Status WarmUp();
  // The batch's inputs: each concatenated on dim 0, padded inputs first padded with zeros to `sequence`.
  std::vector<runtime::Tensor> BatchInputs(const std::vector<Job>& jobs, int64_t rows, int64_t sequence) const;

  std::string name_;
  ModelConfig config_;
  std::unique_ptr<runtime::Session> session_;
  std::vector<runtime::TensorInfo> inputs_, outputs_;
  std::vector<runtime::PipelineStage> slices_;  // the model cut into pipeline stages, when configured
  std::vector<std::unique_ptr<Instance>> instances_;
  std::shared_ptr<void> cores_;  // the CPUs its groups or stages hold (server/cpus.h CoreAllocator)
  BatchPolicy policy_;
  std::vector<bool> padded_inputs_;     // per session input: padded along dim 1 in a batch
  int mask_input_ = -1;                 // the attention_mask input, when padded_inputs_ is set
  std::vector<bool> sequence_outputs_;  // per session output: dim 1 is the sequence, cut back per request
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Job> queue_;  // in arrival order
  bool stopping_ = false;
  int busy_ = 0;  // instances between taking a batch from the queue and its last callback returning
  mutable std::atomic<uint64_t> next_solo_{0};  // numbers the shape keys of requests that cannot batch
  std::atomic<int64_t> in_flight_{0};           // requests being computed, over every instance
  RunnerStatsRecorder stats_;
};

}  // namespace coreserve
