// The gRPC front end: inference.GRPCInferenceService (KServe v2) on the callback API, plus the standard
// grpc.health.v1.Health service.
//
// Handlers run on gRPC's own threads, only read ServerState and finish before returning; nothing blocks in
// a callback. RPCs this build does not serve answer UNIMPLEMENTED (gRPC's default for an unoverridden method).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/server_state.h"

namespace grpc {
class Server;
class Status;
}  // namespace grpc

namespace coreserve {

class V2GrpcService;
class ModelControl;

// The single absl::Status -> grpc::Status conversion (the two share canonical code numbers).
grpc::Status ToGrpcStatus(const absl::Status& status);

class GrpcFrontend {
 public:
  // Binds and starts serving. `state` must outlive the front end. Unavailable when the port cannot be bound.
  // `control` (may be null: no repository extension) must outlive it too.
  static absl::StatusOr<std::unique_ptr<GrpcFrontend>> Start(const ListenerConfig& listener, int64_t max_request_bytes,
                                                             const ServerState* state, ModelControl* control);
  ~GrpcFrontend();

  int port() const { return port_; }
  // What grpc.health.v1.Health reports, for the whole server and for inference.GRPCInferenceService.
  void SetServing(bool serving);
  // Stops accepting; RPCs in flight get until `grace_seconds` to finish, then are cancelled. Idempotent.
  void Stop(double grace_seconds);

 private:
  GrpcFrontend();
  std::unique_ptr<V2GrpcService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace coreserve
