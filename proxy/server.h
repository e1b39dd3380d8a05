// The process: N workers, each one thread with its own io_context and SO_REUSEPORT listener.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/admin.h"
#include "proxy/runtime.h"
#include "proxy/snapshot.h"

namespace pgmtls::proxy {

class Server {
 public:
  // Builds a new snapshot from the configuration as it is now (for reloads); null with `errors`
  // set (one line each) when it cannot.
  using Loader = std::function<std::shared_ptr<const Snapshot>(std::string& errors)>;

  Server(std::shared_ptr<const Snapshot> snapshot, Loader loader);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds one listener per worker on the configured address. With port 0 the first listener's
  // port is used for all. Returns false and sets `error` if the address cannot be bound.
  bool bind(std::string& error);

  // The bound address, "host:port".
  std::string local_address() const;
  unsigned worker_count() const { return static_cast<unsigned>(workers_.size()); }

  // Serves until SIGTERM (drain: sessions get shutdown_timeout to finish, then 57P01) or SIGINT
  // (fast: 57P01 at once); SIGHUP reloads. Returns the process exit code.
  int run();

  // Builds a new snapshot with the loader and swaps it in; on failure the current one stays and
  // the reason is logged (and put in `*error`). Returns whether the new snapshot is in force.
  // Any thread.
  bool reload(std::string* error = nullptr);

  // The admin endpoint's bound address, "host:port"; empty without admin.listen.
  std::string admin_address() const;

  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(); }

 private:
  struct Worker {
    unsigned index = 0;
    boost::asio::io_context io{1};
    boost::asio::ip::tcp::acceptor acceptor{io};
    std::thread thread;
    std::uint64_t next_session = 0;
  };

  void start_accepting(Worker& worker);
  // Each worker's share of limits.max_handshakes (rounded up, at least 1): SO_REUSEPORT spreads
  // connections evenly, and a worker can only make room among its own.
  unsigned handshake_share(const Snapshot& snapshot) const;
  // At limits.max_handshakes: ends one of `worker`'s connections that has not finished its TLS
  // handshake (LiveSession::eviction_tier: the oldest that has not sent a whole first packet,
  // else the oldest whose handshake has run for over kSlowHandshake), so that connections that
  // never finish one (a slow-loris flood, thousands that never send) cannot lock out clients
  // that do. False if there is none. On the worker's thread.
  bool evict_for_new_connection(unsigned worker);
  // Runs `fn(session)` on every live session, each on its own worker's thread; then, once every
  // worker is through, `done(sessions visited)` on the last one's thread.
  void for_each_session(std::function<void(LiveSession&)> fn,
                        std::function<void(std::size_t)> done = {});
  void terminate_all(std::string_view why);
  void collect_sessions(std::function<void(std::vector<SessionInfo>)> done);

  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  Loader loader_;
  std::mutex reload_mutex_;  // one reload at a time
  Runtime runtime_;          // before workers_: outlives the sessions they run
  std::vector<std::unique_ptr<Worker>> workers_;
  boost::asio::ip::tcp::endpoint bound_;
  // The main thread's loop: signals, file watching, the admin endpoint.
  boost::asio::io_context main_io_{1};
  std::unique_ptr<AdminServer> admin_;
  std::atomic<bool> ready_{false};  // accepting connections (the readiness probe)
};

}  // namespace pgmtls::proxy
