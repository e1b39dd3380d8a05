#include "proxy/limits.h"

#include <algorithm>

#include "proxy/outcome.h"

namespace pgmtls::proxy {

namespace {

std::string key_of(const boost::asio::ip::address& address) {
  if (address.is_v4()) {
    const auto b = address.to_v4().to_bytes();
    return std::string(b.begin(), b.end());
  }
  const auto b = address.to_v6().to_bytes();
  return std::string(b.begin(), b.end());
}

}  // namespace

SessionLimits::Ticket& SessionLimits::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    role_ = std::move(other.role_);
    identity_ = std::move(other.identity_);
  }
  return *this;
}

void SessionLimits::Ticket::release() {
  if (owner_ != nullptr) owner_->release(role_, identity_);
  owner_ = nullptr;
}

SessionLimits::Ticket SessionLimits::acquire(const config::LimitsConfig& limits,
                                             const std::string& role, const std::string& identity,
                                             std::string& refusal) {
  std::lock_guard lock(mutex_);
  if (limits.max_client_connections != 0 && total_ >= limits.max_client_connections) {
    refusal = "sorry, too many clients already";
    return {};
  }
  if (limits.per_role != 0 && roles_[role] >= limits.per_role) {
    refusal = "too many connections for role \"" + role + "\"";
    return {};
  }
  if (limits.per_identity != 0 && !identity.empty() &&
      identities_[identity] >= limits.per_identity) {
    refusal = "too many connections for certificate identity \"" + identity + "\"";
    return {};
  }
  ++total_;
  ++roles_[role];
  if (!identity.empty()) ++identities_[identity];
  Ticket ticket;
  ticket.owner_ = this;
  ticket.role_ = role;
  ticket.identity_ = identity;
  return ticket;
}

void SessionLimits::release(const std::string& role, const std::string& identity) {
  std::lock_guard lock(mutex_);
  --total_;
  auto drop = [](std::unordered_map<std::string, unsigned>& counts, const std::string& key) {
    auto it = counts.find(key);
    if (it != counts.end() && --it->second == 0) counts.erase(it);
  };
  drop(roles_, role);
  if (!identity.empty()) drop(identities_, identity);
}

std::size_t SessionLimits::total() const {
  std::lock_guard lock(mutex_);
  return total_;
}

bool HandshakeFailures::blocked(const boost::asio::ip::address& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key_of(address));
  return it != entries_.end() && now < it->second.blocked_until;
}

bool HandshakeFailures::record(const boost::asio::ip::address& address,
                               const config::LimitsConfig& limits, Clock::time_point now) {
  if (limits.failed_handshakes == 0) return false;
  std::lock_guard lock(mutex_);
  if (entries_.size() >= kMaxTracked) evict(now);
  Entry& e = entries_[key_of(address)];
  if (now - e.window_start > limits.failed_window) {
    e.window_start = now;
    e.failures = 0;
  }
  if (++e.failures < limits.failed_handshakes || now < e.blocked_until) return false;
  e.blocked_until = now + limits.failed_block;
  e.failures = 0;
  e.window_start = now;
  return true;
}

void HandshakeFailures::evict(Clock::time_point now) {
  // Keep the blocked addresses; forget the oldest windows first.
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now >= it->second.blocked_until ? entries_.erase(it) : std::next(it);
  }
  if (entries_.size() >= kMaxTracked) entries_.clear();  // a flood of blocked addresses: reset
}

std::size_t HandshakeFailures::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

bool is_handshake_failure(std::string_view why) {
  for (std::string_view r : {reason::kTlsError, reason::kHandshakeTimeout, reason::kEvicted,
                             reason::kProtocolError, reason::kSslRequired, reason::kNoCert}) {
    if (why == r) return true;
  }
  // The certificate reasons of auth::verify_reason.
  for (std::string_view r :
       {"unknown_ca", "revoked", "expired", "not_yet_valid", "bad_purpose", "crl_unavailable",
        "crl_invalid", "bad_signature", "chain_too_long", "invalid_certificate"}) {
    if (why == r) return true;
  }
  return false;
}

}  // namespace pgmtls::proxy
