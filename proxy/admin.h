// The admin HTTP endpoint (admin.listen): health and readiness probes, live sessions, reload.
// HTTP/1.1 (or HTTPS with admin.tls, optionally requiring client certificates) with Boost.Beast on
// the main thread's io_context, away from the workers' data path.
//
//   GET  /metrics   Prometheus text exposition (proxy/metrics.h)
//   GET  /healthz   200 "ok" while the process runs
//   GET  /readyz    200 "ready" while accepting connections; 503 "draining" during shutdown
//   GET  /sessions  200, a JSON array of the live sessions
//   POST /reload    200 "reloaded", or 500 with the reason the new configuration was refused
//
// Each connection may send a few requests (keep-alive), each within a deadline; requests with a
// body over 64 KiB or headers over 8 KiB are refused. Other paths get 404, other methods 405.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/runtime.h"

namespace pgmtls::proxy {

// The sessions as one JSON array, in id order.
std::string sessions_json(std::vector<SessionInfo> sessions);

class AdminServer {
 public:
  struct Hooks {
    std::function<bool()> ready;
    // Reloads; false with the reason in `error` if the new configuration was refused.
    std::function<bool(std::string& error)> reload;
    // Collects the live sessions and calls `done` with them (on any thread, once).
    std::function<void(std::function<void(std::vector<SessionInfo>)> done)> sessions;
    // The Prometheus text exposition.
    std::function<std::string()> metrics;
  };

  AdminServer(boost::asio::io_context& io, Hooks hooks);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // HTTPS with admin.tls (before start); false with the reason if the files do not load.
  bool use_tls(const config::AdminConfig& admin, std::string& error);
  bool bind(const config::ListenAddress& address, std::string& error);
  std::string local_address() const;
  void start();
  void stop();  // closes the listener; connections in progress finish their request

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace pgmtls::proxy
