// The Prometheus endpoint (GET /metrics on the metrics listener) and the metrics every server exports:
// coreserve_build_info, coreserve_kernel_info, readiness gauges and the standard process_* figures.
//
// Front ends and schedulers register their own families on registry(); everything is read at scrape time.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/config.h"
#include "server/server_state.h"

namespace coreserve {

class MetricsServer {
 public:
  // Binds the listener. `state` must outlive the MetricsServer. Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const ListenerConfig& listener,
                                                              const ServerState* state);
  ~MetricsServer();

  int port() const { return port_; }
  prometheus::Registry& registry() { return *registry_; }

 private:
  MetricsServer() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> state_collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

// "host:port" for IPv4 and names, "[host]:port" for IPv6 literals.
std::string JoinHostPort(const std::string& host, int port);

}  // namespace coreserve
