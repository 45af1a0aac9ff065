// The HTTP/REST front end (cpp-httplib): KServe v2 health, server and model metadata routes.
//
// Handlers run on httplib's worker threads and only read ServerState; they never block on model work.
// Every error is JSON, {"error": "..."}, with a 4xx/5xx status.
#pragma once

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "server/server_state.h"

namespace httplib {
class Server;
}

namespace coreserve {

class HttpFrontend {
 public:
  // Binds the listener and starts serving on a background thread. `state` must outlive the front end.
  static absl::StatusOr<std::unique_ptr<HttpFrontend>> Start(const ListenerConfig& listener,
                                                             const ServerState* state);
  ~HttpFrontend();  // Stop()s

  int port() const { return port_; }
  // Stops accepting, waits for handlers in flight, joins the listener thread. Idempotent.
  void Stop();

 private:
  HttpFrontend() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace coreserve
