#include "server/http_listener.h"

#include <httplib.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace coreserve {

struct HttpListener::Connections {
  std::mutex mu;
  std::condition_variable changed;  // a connection closed, or the accept loop found nothing to accept
  int open = 0;
  std::uint64_t idle_polls = 0;  // times the accept loop waited kIdleMicros and found no connection
};

namespace {

// The listener's connection threads: httplib gives each connection a thread from accept to close (all its
// keep-alive requests), and an inference request holds it until the model answers. A fixed pool starves the
// connections beyond its size (perf_analyzer at concurrency 64 has 65: its workers' and its own), so this one
// grows by a thread whenever a connection arrives and none is idle, up to the listener's thread limit; threads
// stay for reuse and are joined at shutdown. It also counts the open connections, for Drain().
class ConnectionThreads : public httplib::TaskQueue {
 public:
  ConnectionThreads(int max_threads, std::shared_ptr<HttpListener::Connections> connections)
      : max_threads_(static_cast<std::size_t>(max_threads)), connections_(std::move(connections)) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(connections_->mu);
      ++connections_->open;
    }
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
    // Every waiting connection needs an idle thread of its own: one thread woken for two connections would
    // serve the first for as long as it stays open while the second waits.
    if (queue_.size() > idle_ && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { Work(); });
    } else {
      wake_.notify_one();
    }
  }

  // Serves every connection already accepted, then joins the threads.
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // Called by the accept loop after kIdleMicros without a connection to accept.
  void on_idle() override {
    std::lock_guard<std::mutex> lock(connections_->mu);
    ++connections_->idle_polls;
    connections_->changed.notify_all();
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;  // stopping, and every accepted connection served
      std::function<void()> fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      {
        std::lock_guard<std::mutex> count(connections_->mu);
        if (--connections_->open == 0) connections_->changed.notify_all();
      }
      lock.lock();
    }
  }

  const std::size_t max_threads_;
  std::shared_ptr<HttpListener::Connections> connections_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;  // only enqueue (the listener's thread) adds to it, before shutdown
  std::size_t idle_ = 0;
  bool stopping_ = false;
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
  // The callback also records the socket, for the backlog below.
  auto listen_fd = std::make_shared<socket_t>(INVALID_SOCKET);
  s.set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *listen_fd = sock;
  });
  // The accept loop waits this long for a connection before it reports itself idle, which Drain() needs.
  s.set_idle_interval(0, kIdleMicros);
  s.set_tcp_nodelay(true);  // small JSON replies must not wait for Nagle's algorithm
  // httplib closes a keep-alive connection after 5 requests by default, marking the last answer "Connection:
  // close"; a client whose next request is already on its way races that close and sees the connection reset
  // (perf_analyzer at concurrency 16 with a limit of 5, at concurrency 64 and 10k requests/s with 1000). A
  // million requests take a connection hours; before that it ends when its client closes it or it idles past the
  // keep-alive timeout. (The count is announced in each answer's Keep-Alive header: keep it a plain number.)
  s.set_keep_alive_max_count(std::size_t{1} << 20);
  s.set_keep_alive_timeout(kKeepAliveSeconds);
  l->connections_ = std::make_shared<Connections>();
  s.new_task_queue = [threads, c = l->connections_] { return new ConnectionThreads(threads, c); };
  const int port = listener.port == 0 ? s.bind_to_any_port(listener.address)
                                      : (s.bind_to_port(listener.address, listener.port) ? listener.port : -1);
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat(name, ": cannot listen on ", JoinHostPort(listener.address, listener.port)));
  }
  // Debian's httplib listens with a backlog of 5: a burst of new connections (perf_analyzer opens 65 at once at
  // concurrency 64) overflows the accept queue before the accept loop drains it, and the overflowing clients see
  // their connection fail (TcpExtListenOverflows counts them). listen() again on the bound socket only raises
  // the backlog (Linux), here to the system's limit.
  if (*listen_fd == INVALID_SOCKET) {
    return absl::InternalError(absl::StrCat(name, ": the listening socket of ", JoinHostPort(listener.address, port),
                                            " was never seen"));
  }
  if (::listen(*listen_fd, SOMAXCONN) != 0) {
    return absl::UnavailableError(absl::StrCat(name, ": cannot set the listen backlog on ",
                                               JoinHostPort(listener.address, port), ": ", std::strerror(errno)));
  }
  l->port_ = port;
  l->listen_fd_ = *listen_fd;
  HttpListener* self = l.get();
  l->thread_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->finished_.store(true);
  });
  return l;
}

void HttpListener::Drain(double seconds) {
  if (connections_ == nullptr || !thread_.joinable()) return;
  // Closing the listening socket resets the connections queued on it but not yet accepted, and httplib's
  // stop() makes each accepted connection close without reading its next request: either way a client's request
  // goes unanswered. So the listener first refuses new connections while the socket stays open, with a filter
  // that drops the packets opening a connection (SYN without ACK; the filter sees the TCP header at offset 0).
  // Their clients retry after a second and find the socket closed. Handshakes under way complete, and
  // established connections wait in the queue to be accepted.
  sock_filter drop_syn[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),            // the TCP flags
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x02, 0, 2),  // SYN set? else keep
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x10, 1, 0),  // ACK set too? keep
      BPF_STMT(BPF_RET | BPF_K, 0),                      // drop
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),             // keep the whole packet
  };
  sock_fprog program{static_cast<unsigned short>(std::size(drop_syn)), drop_syn};
  if (setsockopt(listen_fd_, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0) {
    LOG_WARNING("http: cannot stop new connections before closing the listener: ", std::strerror(errno));
  }
  // Then it waits until the accept loop has found its queue empty twice: the second time is a whole poll begun
  // after the filter, so every connection queued before it has been accepted and counted open. And until every
  // open connection has closed: after a response marked "Connection: close", or idle for the keep-alive timeout.
  std::unique_lock<std::mutex> lock(connections_->mu);
  const std::uint64_t polls = connections_->idle_polls;
  connections_->changed.wait_for(lock, std::chrono::duration<double>(seconds), [this, polls] {
    return connections_->idle_polls >= polls + 2 && connections_->open == 0;
  });
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
