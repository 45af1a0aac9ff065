// The whole server: metrics, HTTP and gRPC listeners over one ServerState, and the model repository.
//
// Start() binds every listener first (so liveness answers while models load), then loads the repository and
// turns ready. Shutdown() turns readiness false at once, lets in-flight requests finish within the grace period,
// then closes the listeners.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/grpc_frontend.h"
#include "server/http_frontend.h"
#include "server/metrics.h"
#include "server/model_control.h"
#include "server/server_state.h"

namespace coreserve {

class Server {
 public:
  // Unavailable when a listener cannot bind; NotFound/InvalidArgument when a repository root is unusable.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerConfig& config);
  ~Server();

  int http_port() const { return http_->port(); }
  int grpc_port() const { return grpc_->port(); }
  int metrics_port() const { return metrics_->port(); }
  const ServerState& state() const { return *state_; }

  // Idempotent; safe to call from any one thread.
  void Shutdown();

 private:
  Server() = default;
  ServerConfig config_;
  std::unique_ptr<ServerState> state_;
  std::unique_ptr<ModelControl> control_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<HttpFrontend> http_;
  std::unique_ptr<GrpcFrontend> grpc_;
};

}  // namespace coreserve
