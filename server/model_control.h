// Changing the served models while serving (the repository extension: index, load, unload; and polling).
//
// A load reads the model folder afresh (newest version, config.yaml) into a new runner while the old one keeps
// serving; only a new entry that loaded is swapped into a new repository snapshot, so a failed reload leaves
// the old version serving and says why. Requests in flight hold the snapshot they started with, so the old
// runner answers them before it goes. One change at a time; requests to the other models never wait for it.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/config.h"
#include "server/server_state.h"

namespace coreserve {

class ModelControl {
 public:
  // With ModelControlMode::kPoll, starts a thread that rescans the repository every model_poll_seconds.
  ModelControl(ServerState* state, const ServerConfig& config);
  ~ModelControl();  // stops the polling thread

  struct IndexEntry {
    std::string name, version, state, reason;  // state: READY or UNAVAILABLE
  };
  // Whether a repository API request may go on, given its Authorization header (HTTP) or "authorization"
  // metadata (gRPC): OK when no token file is configured (model control off, index only) or the header carries
  // the file's bearer token; Unauthenticated or Unavailable otherwise (server/bearer_token.h). The frontends
  // call it before Index, Load and Unload.
  absl::Status Authorize(std::string_view authorization) const;

  // Every model folder of the repositories and every model served, by name.
  std::vector<IndexEntry> Index() const;

  // Loads `name` (or reloads it: its newest version and config). FailedPrecondition when model control is off;
  // NotFound when no repository holds the folder; InvalidArgument with the reason when it does not load.
  absl::Status Load(const std::string& name);
  // Stops serving `name`; it stays in the index as UNAVAILABLE ("unloaded") and does not count against readiness.
  absl::Status Unload(const std::string& name);

 private:
  absl::Status CheckEnabled() const;
  absl::Status LoadLocked(const std::string& name);
  // With polling: reloads every model whose folder changed since it was loaded (a new version, config.yaml or
  // model file) and loads new folders.
  void PollOnce();

  ServerState* state_;
  ServerConfig config_;
  mutable std::mutex mu_;  // one change at a time
  std::mutex poll_mu_;
  std::condition_variable poll_wake_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace coreserve
