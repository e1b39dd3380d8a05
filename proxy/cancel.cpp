#include "proxy/cancel.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace pgmtls::proxy {

namespace {

std::uint32_t random_u32() {
  std::uint32_t value = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&value), sizeof value) != 1) {
    throw std::runtime_error("RAND_bytes failed: no cancel key can be made");
  }
  return value;
}

}  // namespace

CancelKey CancelTable::add(CancelTarget target) {
  const std::uint32_t instance = (instance_id_ & ((1u << kInstanceIdBits) - 1)) << kInstanceIdShift;
  const std::uint32_t secret = random_u32();
  std::lock_guard lock(mutex_);
  for (;;) {
    // Bit 31 stays clear: clients keep the pid in a signed 32-bit integer. Pid 0 is never used.
    const std::uint32_t pid = instance | (random_u32() & ((1u << kInstanceIdShift) - 1));
    if (pid == 0 || entries_.contains(pid)) continue;
    entries_.emplace(pid, Entry{secret, std::move(target)});
    return {pid, secret};
  }
}

void CancelTable::remove(const CancelKey& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key.pid);
  if (it != entries_.end() && it->second.secret == key.secret) entries_.erase(it);
}

void CancelTable::retarget(const CancelKey& key, CancelTarget target) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key.pid);
  if (it != entries_.end() && it->second.secret == key.secret)
    it->second.target = std::move(target);
}

std::optional<CancelTarget> CancelTable::find(const CancelKey& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key.pid);
  if (it == entries_.end()) return std::nullopt;
  if (CRYPTO_memcmp(&it->second.secret, &key.secret, sizeof key.secret) != 0) return std::nullopt;
  return it->second.target;
}

std::size_t CancelTable::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace pgmtls::proxy
