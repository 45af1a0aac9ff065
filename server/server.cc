#include "server/server.h"

#include <algorithm>
#include <chrono>

#include "kernels/cpu_features.h"
#include "absl/strings/str_cat.h"
#include "runtime/status_macros.h"
#include "server/bearer_token.h"
#include "server/log.h"

namespace coreserve {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config) {
  auto server = std::unique_ptr<Server>(new Server());
  server->config_ = config;
  server->state_ = std::make_unique<ServerState>();

  std::string chosen;
  for (const auto& [family, kernel] : ChosenKernels()) absl::StrAppend(&chosen, chosen.empty() ? "" : " ", family, "=", kernel);
  LOG_INFO("cpu features: ", kernels::DescribeCpuFeatures(kernels::ActiveCpuFeatures()), "; kernels: ", chosen);

  if (!config.model_control_token_file.empty()) {  // fail now rather than at the first repository call
    RETURN_IF_ERROR(ReadTokenFile(config.model_control_token_file, "model_control_token_file").status());
  }
  ASSIGN_OR_RETURN(server->metrics_, MetricsServer::Start(config.metrics, server->state_.get(), config.hourly_price));
  server->control_ = std::make_unique<ModelControl>(server->state_.get(), config);
  ASSIGN_OR_RETURN(server->http_, HttpFrontend::Start(config.http, config.max_request_bytes, server->state_.get(),
                                                      server->control_.get()));
  ASSIGN_OR_RETURN(server->grpc_, GrpcFrontend::Start(config.grpc, config.max_request_bytes, server->state_.get(), server->control_.get()));
  // Tests and operators read these lines to find ports chosen with port 0.
  LOG_INFO("http listening on ", JoinHostPort(config.http.address, server->http_port()));
  LOG_INFO("grpc listening on ", JoinHostPort(config.grpc.address, server->grpc_port()));
  LOG_INFO("metrics listening on ", JoinHostPort(config.metrics.address, server->metrics_port()));

  ASSIGN_OR_RETURN(std::shared_ptr<const ModelRepository> repository,
                   ModelRepository::Load(config.model_repositories, config.model_defaults));
  server->state_->SetRepository(std::move(repository));
  const bool ready = server->state_->ready();
  server->grpc_->SetServing(ready);
  if (ready) {
    LOG_INFO("server ready");
  } else {
    LOG_WARNING("server not ready: a model failed to load (see above)");
  }
  return server;
}

void Server::Shutdown() {
  state_->BeginShutdown();
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration<double>(config_.shutdown_grace_seconds);
  if (grpc_) grpc_->Stop(config_.shutdown_grace_seconds);
  if (http_) {
    // Within the grace period, and no longer than an idle connection's keep-alive timeout (after which httplib
    // closes it anyway): connections still open then are cut.
    const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    http_->Drain(std::clamp(left, 0.0, static_cast<double>(HttpListener::kKeepAliveSeconds)));
    http_->Stop();
  }
  metrics_.reset();
  ModelRunner::WaitForRetired();  // a runner retired by a reload may still be answering its last requests
}

Server::~Server() { Shutdown(); }

}  // namespace coreserve
