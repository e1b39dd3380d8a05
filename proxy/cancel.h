// Cancel keys. pgmtls gives each session its own BackendKeyData (a process id and a random
// secret) and keeps, here, what that key stands for: the backend connection and the backend's
// own key. The client never learns the backend's key, and a CancelRequest with a key pgmtls did
// not hand out reaches no backend.
//
// The process id carries the instance id (cancel.instance_id) in bits 23-30 so that a
// CancelRequest that lands on another pgmtls instance can be routed to the one that owns the
// session; the other 23 bits and the whole secret are random.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace pgmtls::proxy {

struct Snapshot;

// What forwarding a cancel needs: where the session's backend connection went and how.
struct CancelTarget {
  boost::asio::ip::tcp::endpoint backend;
  std::string host;  // the host name it was reached by (verify-full checks it)
  std::uint32_t backend_pid = 0;
  std::uint32_t backend_secret = 0;
  bool tls = false;                          // the session's backend connection used TLS
  std::shared_ptr<const Snapshot> snapshot;  // its backend settings (sslmode, TLS context, host)
  std::uint64_t session_id = 0;              // for the log
};

struct CancelKey {
  std::uint32_t pid = 0;
  std::uint32_t secret = 0;
};

// Instance ids are 0-255.
inline constexpr unsigned kInstanceIdBits = 8;
inline constexpr unsigned kInstanceIdShift = 23;
inline unsigned instance_of(std::uint32_t pid) {
  return (pid >> kInstanceIdShift) & ((1u << kInstanceIdBits) - 1);
}

// Thread-safe: any worker adds, finds and removes.
class CancelTable {
 public:
  explicit CancelTable(unsigned instance_id = 0) : instance_id_(instance_id) {}

  // A fresh key, unique among live entries, for `target`.
  CancelKey add(CancelTarget target);
  void remove(const CancelKey& key);
  // Points a live key at another backend connection (pool_mode: transaction, where a session's
  // connection changes between transactions, and between them is none: backend_pid 0).
  void retarget(const CancelKey& key, CancelTarget target);
  // The target of a key handed out by this instance; nullopt for any other key (the secret is
  // compared in constant time).
  std::optional<CancelTarget> find(const CancelKey& key) const;
  std::size_t size() const;
  unsigned instance_id() const { return instance_id_; }

 private:
  struct Entry {
    std::uint32_t secret;
    CancelTarget target;
  };
  const unsigned instance_id_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint32_t, Entry> entries_;  // by pid
};

}  // namespace pgmtls::proxy
