// Connection limits (limits: in the config), shared by all workers; thread-safe.
//
// SessionLimits counts admitted sessions, process-wide, per mapped role and per certificate
// subject, and refuses one more with PostgreSQL's words (53300). HandshakeFailures counts failed
// handshakes per source address and blocks an address that fails too often, so that certificate
// guessing and handshake floods cost pgmtls almost nothing: a blocked address is closed at accept,
// before any TLS work.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/config.h"

namespace pgmtls::proxy {

class SessionLimits {
 public:
  // A slot taken; given back when destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept { *this = std::move(other); }
    Ticket& operator=(Ticket&& other) noexcept;
    ~Ticket() { release(); }
    explicit operator bool() const { return owner_ != nullptr; }

   private:
    friend class SessionLimits;
    void release();
    SessionLimits* owner_ = nullptr;
    std::string role_;
    std::string identity_;
  };

  // A slot for a session of `role` whose certificate subject is `identity` (empty: none), under
  // `limits`; or, when a limit is reached, the message for the client (empty ticket).
  Ticket acquire(const config::LimitsConfig& limits, const std::string& role,
                 const std::string& identity, std::string& refusal);
  std::size_t total() const;

 private:
  void release(const std::string& role, const std::string& identity);

  mutable std::mutex mutex_;
  std::size_t total_ = 0;
  std::unordered_map<std::string, unsigned> roles_;
  std::unordered_map<std::string, unsigned> identities_;
};

class HandshakeFailures {
 public:
  using Clock = std::chrono::steady_clock;

  // Whether new connections from `address` are refused now.
  bool blocked(const boost::asio::ip::address& address, Clock::time_point now);
  // Counts a failed handshake; true when it starts a block (for the one log line about it).
  bool record(const boost::asio::ip::address& address, const config::LimitsConfig& limits,
              Clock::time_point now);
  std::size_t tracked() const;

  static constexpr std::size_t kMaxTracked = 100000;

 private:
  struct Entry {
    Clock::time_point window_start;
    unsigned failures = 0;
    Clock::time_point blocked_until;
  };
  void evict(Clock::time_point now);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;  // by address bytes
};

// Whether an outcome reason is a failed handshake (certificate, TLS, protocol, timeout): what
// HandshakeFailures counts.
bool is_handshake_failure(std::string_view reason);

}  // namespace pgmtls::proxy
