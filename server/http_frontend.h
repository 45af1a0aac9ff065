// The HTTP/REST front end (cpp-httplib): KServe v2 health, server and model metadata, and inference.
//
// Handlers run on httplib's worker threads. Metadata handlers only read ServerState; an inference handler
// parses the request, queues it on the model's runner and waits for the result (httplib answers a request on
// the thread that read it), so the compute itself never runs on these threads.
// Every error is JSON, {"error": "..."}, with a 4xx/5xx status.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/http_listener.h"
#include "server/server_state.h"

namespace coreserve {

class ModelControl;

class HttpFrontend {
 public:
  // Binds the listener and starts serving on a background thread. `state` and `control` must outlive the front
  // end.
  // Bodies over `max_request_bytes` are refused with 413.
  static absl::StatusOr<std::unique_ptr<HttpFrontend>> Start(const ListenerConfig& listener, int64_t max_request_bytes,
                                                             const ServerState* state, ModelControl* control);

  int port() const { return listener_->port(); }
  // Waits (at most `seconds`) for clients to close their connections; while the server shuts down every answer
  // asks them to ("Connection: close").
  void Drain(double seconds) { listener_->Drain(seconds); }
  // Stops accepting, waits for handlers in flight, joins the listener thread. Idempotent.
  void Stop() { listener_->Stop(); }

 private:
  explicit HttpFrontend(std::unique_ptr<HttpListener> listener) : listener_(std::move(listener)) {}
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace coreserve
