#include "server/http_listener.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace coreserve {

struct HttpListener::Connections {
  std::mutex mu;
  std::condition_variable closed;
  int open = 0;
};

namespace {

// httplib's thread pool, counting the connections it is serving: each task is one connection, from accept to
// close (all its keep-alive requests).
class CountingTaskQueue : public httplib::TaskQueue {
 public:
  CountingTaskQueue(int threads, std::shared_ptr<HttpListener::Connections> connections)
      : pool_(static_cast<std::size_t>(threads)), connections_(std::move(connections)) {}
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(connections_->mu);
      ++connections_->open;
    }
    pool_.enqueue([fn = std::move(fn), c = connections_] {
      fn();
      std::lock_guard<std::mutex> lock(c->mu);
      if (--c->open == 0) c->closed.notify_all();
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  std::shared_ptr<HttpListener::Connections> connections_;
};

}  // namespace

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(std::unique_ptr<httplib::Server> server,
                                                                   const ListenerConfig& listener,
                                                                   const std::string& name, int threads) {
  auto l = std::unique_ptr<HttpListener>(new HttpListener());
  l->server_ = std::move(server);
  httplib::Server& s = *l->server_;
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the same port and silently take
  // half the connections. SO_REUSEADDR alone still allows a quick restart over TIME_WAIT sockets, and a
  // port that is really in use fails to bind, as it should.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.set_tcp_nodelay(true);  // small JSON replies must not wait for Nagle's algorithm
  // httplib closes a keep-alive connection after 5 requests by default; a client with requests in flight on
  // several connections (perf_analyzer at concurrency 16) can race that close and see the connection reset.
  s.set_keep_alive_max_count(1000);
  s.set_keep_alive_timeout(kKeepAliveSeconds);
  l->connections_ = std::make_shared<Connections>();
  s.new_task_queue = [threads, c = l->connections_] { return new CountingTaskQueue(threads, c); };
  const int port = listener.port == 0 ? s.bind_to_any_port(listener.address)
                                      : (s.bind_to_port(listener.address, listener.port) ? listener.port : -1);
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat(name, ": cannot listen on ", JoinHostPort(listener.address, listener.port)));
  }
  l->port_ = port;
  HttpListener* self = l.get();
  l->thread_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->finished_.store(true);
  });
  return l;
}

void HttpListener::Drain(double seconds) {
  if (connections_ == nullptr) return;
  std::unique_lock<std::mutex> lock(connections_->mu);
  connections_->closed.wait_for(lock, std::chrono::duration<double>(seconds),
                                [this] { return connections_->open == 0; });
}

void HttpListener::Stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until the serve loop has marked itself running, so a Stop() right after
  // Start() (e.g. when a later listener fails to bind) must retry until the loop has really ended.
  while (!finished_.load()) {
    server_->stop();
    if (!finished_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  thread_.join();
}

HttpListener::~HttpListener() { Stop(); }

}  // namespace coreserve
