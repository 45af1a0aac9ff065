// The Prometheus endpoint (GET /metrics on the metrics listener) and the metrics every server exports:
// coreserve_build_info, coreserve_kernel_info, readiness gauges and the standard process_* figures.
//
// Metric families live in prometheus-cpp's core Registry; the endpoint is served by the same HTTP stack as
// the inference API (prometheus-cpp's own civetweb exposer takes seconds to stop, which delays shutdown).
// Front ends and schedulers register their own families on registry(); everything is read at scrape time.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/registry.h"
#include "server/config.h"
#include "server/http_listener.h"
#include "server/server_state.h"

namespace coreserve {

// (family, kernel) for every kernel family, as chosen for the active CPU features; logged at start and exported as
// coreserve_kernel_info.
std::vector<std::pair<std::string, std::string>> ChosenKernels();

class MetricsServer {
 public:
  // Binds the listener. `state` must outlive the MetricsServer. Unavailable when the address cannot be bound.
  // `hourly_price` > 0 exports coreserve_cost_per_million_inferences (see docs/CONFIG.md).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const ListenerConfig& listener,
                                                              const ServerState* state, double hourly_price = 0);
  ~MetricsServer();

  int port() const { return listener_->port(); }
  prometheus::Registry& registry() { return *registry_; }
  // The exposition text of every registered family, as GET /metrics returns it. Thread-safe.
  std::string Scrape() const;

 private:
  MetricsServer() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Collectable> state_collector_;
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace coreserve
