// pool_mode: session. A client's backend connection outlives the client: reset with
// server_reset_query, it waits here for the next client of the same key (backend, role, database
// and every start-up parameter), which gets it without a new backend process, TLS handshake or
// authentication. One pool per worker, touched only on that worker's thread, so a connection is
// reused only by sessions of the worker that opened it (no locks; each worker keeps up to
// pool_size idle connections per key).
//
// While idle, each connection is watched: the server closing it or sending anything at all (a
// FATAL before shutdown, a ParameterStatus after a promotion) drops it, and so does
// server_idle_timeout. take() also refuses one past server_lifetime.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/tls_stream.h"

namespace pgmtls::proxy {

struct Snapshot;

struct PooledBackend {
  explicit PooledBackend(boost::asio::ip::tcp::socket s)
      : socket(std::move(s)), idle_timer(socket.get_executor()) {}

  boost::asio::ip::tcp::socket socket;
  std::optional<TlsStream> tls;  // bound to `socket`
  // The snapshot the connection was made with: its key is part of the pool key, and it keeps the
  // credentials and TLS settings of the connection alive.
  std::shared_ptr<const Snapshot> snapshot;
  // What the backend answered the start-up with, less BackendKeyData and ReadyForQuery: every
  // client of this connection gets it, with a key of pgmtls's own and ReadyForQuery 'I'.
  std::vector<std::uint8_t> startup_reply;
  std::pair<std::uint32_t, std::uint32_t> backend_key{0, 0};
  boost::asio::ip::tcp::endpoint endpoint;
  config::BackendHost host;
  std::string auth;  // how pgmtls authenticated, for the log
  std::chrono::steady_clock::time_point created;
  std::uint64_t uses = 1;  // clients served, this one included
  boost::asio::steady_timer idle_timer;
  bool taken = false;
};

class BackendPool {
 public:
  // The most recently idle healthy connection for `key` (LIFO: the fewest stay warm), or null.
  std::shared_ptr<PooledBackend> take(const std::string& key, const config::PoolConfig& pool);
  // Keeps `conn` for `key`; beyond pool_size the oldest idle one for the key is closed.
  void put(const std::string& key, std::shared_ptr<PooledBackend> conn,
           const config::PoolConfig& pool);
  std::size_t idle() const { return idle_count_; }
  // Closes every idle connection (with a Terminate, so the server logs a clean end); at shutdown,
  // once the worker's loop has stopped.
  void clear();

 private:
  void watch(std::string key, std::shared_ptr<PooledBackend> conn);
  void drop(const std::string& key, const std::shared_ptr<PooledBackend>& conn);

  std::unordered_map<std::string, std::deque<std::shared_ptr<PooledBackend>>> idle_;
  std::size_t idle_count_ = 0;
};

}  // namespace pgmtls::proxy
