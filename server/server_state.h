// What every front end asks before answering: is the server live, is it ready, which models does it serve.
//
// Thread-safe. The repository is swapped whole (readers keep the snapshot they took), so a request never
// sees a half-loaded repository.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "server/repository.h"

namespace coreserve {

class ServerState {
 public:
  void SetRepository(std::shared_ptr<const ModelRepository> repository);
  // nullptr until the first repository load finishes.
  std::shared_ptr<const ModelRepository> repository() const;

  // Readiness turns false at once and stays false; liveness is unaffected.
  void BeginShutdown() { shutting_down_.store(true); }
  bool shutting_down() const { return shutting_down_.load(); }

  bool live() const { return true; }
  // Ready: not shutting down, and every model of a loaded repository is ready.
  bool ready() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ModelRepository> repository_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace coreserve
