#include "proxy/backend_pool.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pgmtls::proxy {

namespace {

namespace asio = boost::asio;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Whether the server said or closed anything since the connection went idle.
bool quiet(asio::ip::tcp::socket& socket) {
  pollfd p{socket.native_handle(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

void close_pooled(PooledBackend& conn) {
  static constexpr std::uint8_t kTerminate[] = {'X', 0, 0, 0, 4};
  if (conn.socket.is_open()) {
    if (conn.tls) {
      SSL_write(conn.tls->native_handle(), kTerminate, sizeof kTerminate);
    } else {
      [[maybe_unused]] auto sent = ::send(conn.socket.native_handle(), kTerminate,
                                          sizeof kTerminate, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  }
  boost::system::error_code ignored;
  conn.idle_timer.cancel();
  conn.socket.close(ignored);
}

std::shared_ptr<PooledBackend> BackendPool::take(const std::string& key,
                                                 const config::PoolConfig& pool) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& queue = it->second;
  std::shared_ptr<PooledBackend> found;
  const auto now = std::chrono::steady_clock::now();
  while (!queue.empty() && !found) {
    auto conn = std::move(queue.back());
    queue.pop_back();
    --idle_count_;
    conn->taken = true;  // its watcher, woken by the cancels below, leaves it alone
    conn->idle_timer.cancel();
    boost::system::error_code ignored;
    conn->socket.cancel(ignored);
    if (now - conn->created < pool.server_lifetime && quiet(conn->socket)) {
      found = std::move(conn);
    } else {
      close_pooled(*conn);
    }
  }
  if (queue.empty()) idle_.erase(it);
  return found;
}

void BackendPool::put(const std::string& key, std::shared_ptr<PooledBackend> conn,
                      const config::PoolConfig& pool) {
  auto& queue = idle_[key];
  while (queue.size() >= pool.pool_size) {
    auto oldest = std::move(queue.front());
    queue.pop_front();
    --idle_count_;
    oldest->taken = true;
    close_pooled(*oldest);
  }
  conn->taken = false;
  conn->idle_timer.expires_after(pool.server_idle_timeout);
  queue.push_back(conn);
  ++idle_count_;
  watch(key, std::move(conn));
}

void BackendPool::watch(std::string key, std::shared_ptr<PooledBackend> conn) {
  using namespace asio::experimental::awaitable_operators;
  auto executor = conn->socket.get_executor();
  asio::co_spawn(
      executor,
      [this, key = std::move(key), conn = std::move(conn)]() -> asio::awaitable<void> {
        co_await (conn->socket.async_wait(asio::ip::tcp::socket::wait_read, use_tuple) ||
                  conn->idle_timer.async_wait(use_tuple));
        // Taken by a session meanwhile (or closed): not ours any more.
        if (conn->taken) co_return;
        drop(key, conn);
      },
      asio::detached);
}

void BackendPool::drop(const std::string& key, const std::shared_ptr<PooledBackend>& conn) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return;
  auto& queue = it->second;
  const auto pos = std::find(queue.begin(), queue.end(), conn);
  if (pos == queue.end()) return;
  queue.erase(pos);
  --idle_count_;
  conn->taken = true;
  close_pooled(*conn);
  if (queue.empty()) idle_.erase(it);
}

void PoolSlot::reset() {
  if (pool_ != nullptr) std::exchange(pool_, nullptr)->slot_freed(key_);
}

std::size_t BackendPool::open(const std::string& key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? 0 : it->second.open;
}

PoolSlot BackendPool::open_slot(const std::string& key, std::shared_ptr<const Snapshot> snapshot) {
  auto& state = keys_[key];
  ++state.open;
  state.snapshot = std::move(snapshot);
  return PoolSlot(this, key);
}

const std::vector<std::uint8_t>* BackendPool::startup_reply(const std::string& key) const {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.startup_reply.empty()) return nullptr;
  return &it->second.startup_reply;
}

void BackendPool::remember_startup_reply(const std::string& key,
                                         const std::vector<std::uint8_t>& reply) {
  auto it = keys_.find(key);
  if (it != keys_.end() && it->second.startup_reply.empty()) it->second.startup_reply = reply;
}

void BackendPool::wait(const std::string& key, Waiter* waiter) {
  keys_[key].waiters.push_back(waiter);
  ++waiting_;
}

void BackendPool::unwait(const std::string& key, Waiter* waiter) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  auto& waiters = it->second.waiters;
  auto pos = std::find(waiters.begin(), waiters.end(), waiter);
  if (pos == waiters.end()) return;
  waiters.erase(pos);
  --waiting_;
  forget_if_unused(it);
}

void BackendPool::release(const std::string& key, std::shared_ptr<PooledBackend> conn,
                          const config::PoolConfig& pool) {
  auto it = keys_.find(key);
  if (it != keys_.end() && !it->second.waiters.empty()) {
    Waiter* first = it->second.waiters.front();
    it->second.waiters.pop_front();
    --waiting_;
    first->handed = std::move(conn);
    first->timer->cancel();
    return;
  }
  put(key, std::move(conn), pool);
}

void BackendPool::slot_freed(const std::string& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  --it->second.open;
  if (!it->second.waiters.empty()) {
    Waiter* first = it->second.waiters.front();
    it->second.waiters.pop_front();
    --waiting_;
    first->slot_freed = true;
    first->timer->cancel();
  }
  forget_if_unused(it);
}

void BackendPool::forget_if_unused(std::unordered_map<std::string, KeyState>::iterator it) {
  if (it->second.open == 0 && it->second.waiters.empty()) keys_.erase(it);
}

void BackendPool::clear() {
  for (auto& [key, queue] : idle_) {
    for (auto& conn : queue) {
      conn->taken = true;
      close_pooled(*conn);
    }
  }
  idle_.clear();
  idle_count_ = 0;
}

}  // namespace pgmtls::proxy
