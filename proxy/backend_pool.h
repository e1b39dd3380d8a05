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
//
// pool_mode: transaction adds a limit: at most pool_size connections per worker and key, idle or
// busy, each counted by the PoolSlot it carries; a client that needs one while all are busy
// waits, and a connection coming back goes straight to the first waiter. The pool also keeps,
// per key, the start-up answer of its first connection, so a new client is answered without a
// backend connection of its own.
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
#include "proxy/statement_router.h"
#include "proxy/tls_stream.h"

namespace pgmtls::proxy {

struct Snapshot;
class BackendPool;

// One backend connection counted against pool_size (pool_mode: transaction), for as long as the
// slot lives: whoever holds the connection holds its slot.
class PoolSlot {
 public:
  PoolSlot() = default;
  PoolSlot(BackendPool* pool, std::string key) : pool_(pool), key_(std::move(key)) {}
  PoolSlot(PoolSlot&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)), key_(std::move(other.key_)) {}
  PoolSlot& operator=(PoolSlot&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = std::exchange(other.pool_, nullptr);
      key_ = std::move(other.key_);
    }
    return *this;
  }
  PoolSlot(const PoolSlot&) = delete;
  PoolSlot& operator=(const PoolSlot&) = delete;
  ~PoolSlot() { reset(); }
  void reset();

 private:
  BackendPool* pool_ = nullptr;
  std::string key_;
};

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
  // pool_mode: transaction.
  PoolSlot slot;
  BackendStatements statements;
};

// Closes a connection after a Terminate, sent without waiting (five bytes always fit), so the
// server logs a clean end.
void close_pooled(PooledBackend& conn);

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

  // ---- pool_mode: transaction ----

  // Connections open for `key`, idle or busy.
  std::size_t open(const std::string& key) const;
  // Counts one more connection for `key` (made with `snapshot`).
  PoolSlot open_slot(const std::string& key, std::shared_ptr<const Snapshot> snapshot);
  // The start-up answer of a connection for `key` (less BackendKeyData and ReadyForQuery), while
  // any is open; null otherwise.
  const std::vector<std::uint8_t>* startup_reply(const std::string& key) const;
  void remember_startup_reply(const std::string& key, const std::vector<std::uint8_t>& reply);

  // A client waiting for a connection: woken by cancelling `timer`, with `handed` set to a
  // connection, or `slot_freed` set when one closed (it may open another).
  struct Waiter {
    boost::asio::steady_timer* timer = nullptr;
    std::shared_ptr<PooledBackend> handed;
    bool slot_freed = false;
  };
  void wait(const std::string& key, Waiter* waiter);
  void unwait(const std::string& key, Waiter* waiter);  // a waiter that gave up
  // A connection a client is done with: to the first waiter, else idle.
  void release(const std::string& key, std::shared_ptr<PooledBackend> conn,
               const config::PoolConfig& pool);
  std::size_t waiting() const { return waiting_; }

 private:
  friend class PoolSlot;
  void slot_freed(const std::string& key);
  struct KeyState {
    std::size_t open = 0;
    std::vector<std::uint8_t> startup_reply;
    std::shared_ptr<const Snapshot> snapshot;  // keeps the key's snapshot address unique
    std::deque<Waiter*> waiters;
  };
  void forget_if_unused(std::unordered_map<std::string, KeyState>::iterator it);

  // Declared before idle_: idle connections, destroyed first, free their slots here.
  std::unordered_map<std::string, KeyState> keys_;
  std::size_t waiting_ = 0;

  void watch(std::string key, std::shared_ptr<PooledBackend> conn);
  void drop(const std::string& key, const std::shared_ptr<PooledBackend>& conn);

  std::unordered_map<std::string, std::deque<std::shared_ptr<PooledBackend>>> idle_;
  std::size_t idle_count_ = 0;
};

}  // namespace pgmtls::proxy
