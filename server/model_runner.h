// One loaded model version and the thread that runs it: the Session, its intra-op ThreadPool (`threads` cores)
// and a bounded queue of requests, run one at a time in arrival order.
//
// The front ends never compute: they convert a request into runtime tensors, Submit it and return; the result
// comes back through the callback on the runner's thread. (This queue is where the dynamic batcher goes.)
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/session.h"
#include "runtime/thread_pool.h"
#include "server/model_config.h"

namespace coreserve {

using NamedTensors = std::vector<std::pair<std::string, runtime::Tensor>>;

struct InferRequest {
  NamedTensors inputs;               // every model input once, in any order
  std::vector<std::string> outputs;  // the outputs to return, in this order; empty: all, in the model's order
};

using InferCallback = std::function<void(absl::StatusOr<NamedTensors>)>;

class ModelRunner {
 public:
  // Loads model.onnx at `path` in the config's precision and starts the runner's thread.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Load(const std::string& name, const std::string& path,
                                                           const ModelConfig& config);
  // Answers every request still queued, then stops.
  ~ModelRunner();

  const runtime::Session& session() const { return *session_; }
  const ModelConfig& config() const { return config_; }
  int threads() const { return pool_->threads(); }

  // Checks the request against the model's inputs and outputs and the config's batch limit, then queues it.
  // `done` is called exactly once: at once (on this thread) with InvalidArgument for a bad request or
  // ResourceExhausted when the queue is full, else later on the runner's thread with the outputs or the error.
  void Submit(InferRequest request, InferCallback done);

 private:
  struct Job {
    std::vector<runtime::Tensor> inputs;  // in the session's input order
    std::vector<int> outputs;             // indices into the session's outputs
    InferCallback done;
  };
  ModelRunner() = default;
  absl::StatusOr<Job> Prepare(InferRequest request) const;
  void Loop();

  std::string name_;
  ModelConfig config_;
  std::unique_ptr<runtime::Session> session_;
  std::unique_ptr<runtime::ThreadPool> pool_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  bool running_ = false;  // a request is between being taken from the queue and its callback returning
  std::thread thread_;
};

}  // namespace coreserve
