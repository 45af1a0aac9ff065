// Runs one httplib::Server on one address and port in a background thread. Shared by the inference HTTP
// front end and the metrics endpoint, so both bind, report and stop the same way.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace httplib {
class Server;
}

namespace coreserve {

class HttpListener {
 public:
  // Binds `server` (routes already added) and starts serving with up to `threads` connection threads (made as
  // connections arrive, one per open connection). `name` prefixes error messages. Unavailable when the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(std::unique_ptr<httplib::Server> server,
                                                             const ListenerConfig& listener, const std::string& name,
                                                             int threads);
  ~HttpListener();  // Stop()s

  int port() const { return port_; }
  // The shutdown's drain, so that Stop() closes no connection a client has sent (or is sending) a request on:
  // refuses new connections, accepts those already queued, then waits until no connection is open, or `seconds`
  // have passed. Connections end after a response marked "Connection: close" (the front end marks them while
  // shutting down) or when idle for the keep-alive timeout. Call it once, before Stop().
  void Drain(double seconds);
  // Stops accepting, lets handlers in flight finish, joins the thread. Idempotent.
  void Stop();

  // How long an idle keep-alive connection is kept open.
  static constexpr int kKeepAliveSeconds = 5;
  // How long the accept loop waits for a connection before it reports itself idle (Drain() waits for that).
  static constexpr int kIdleMicros = 50'000;
  struct Connections;  // the count of open connections, kept by the listener's task queue

 private:
  HttpListener() = default;
  std::shared_ptr<Connections> connections_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> finished_{false};  // set by thread_ when the serve loop has returned
  int port_ = 0;
  int listen_fd_ = -1;
};

// "host:port" for IPv4 and names, "[host]:port" for IPv6 literals.
std::string JoinHostPort(const std::string& host, int port);

}  // namespace coreserve
