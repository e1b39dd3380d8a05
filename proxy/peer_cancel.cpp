#include "proxy/peer_cancel.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace pgmtls::proxy {

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, const std::uint8_t* data,
                                         std::size_t size) {
  std::array<std::uint8_t, 32> mac{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, size, mac.data(), &len) ==
          nullptr ||
      len != mac.size()) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return mac;
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::vector<std::uint8_t> make_peer_cancel(std::string_view secret,
                                           const protocol::CancelRequest& key, std::uint32_t sender,
                                           std::chrono::system_clock::time_point now) {
  std::vector<std::uint8_t> out;
  out.reserve(protocol::kPeerCancelRequestLength);
  put_u32(out, static_cast<std::uint32_t>(protocol::kPeerCancelRequestLength));
  put_u32(out, protocol::kPeerCancelRequestCode);
  put_u32(out, key.process_id);
  put_u32(out, key.secret_key);
  put_u32(out, sender);
  const auto ms = static_cast<std::uint64_t>(unix_ms(now));
  put_u32(out, static_cast<std::uint32_t>(ms >> 32));
  put_u32(out, static_cast<std::uint32_t>(ms));
  std::array<std::uint8_t, 16> nonce{};
  if (RAND_bytes(nonce.data(), nonce.size()) != 1) throw std::runtime_error("RAND_bytes failed");
  out.insert(out.end(), nonce.begin(), nonce.end());
  const auto mac = hmac_sha256(secret, out.data() + 4, out.size() - 4);
  out.insert(out.end(), mac.begin(), mac.end());
  return out;
}

bool PeerReplayGuard::remember(const std::array<std::uint8_t, 16>& nonce,
                               std::chrono::system_clock::time_point now) {
  std::lock_guard lock(mutex_);
  // Forget what is older than twice the window (a packet that old is refused by its timestamp).
  for (auto it = seen_.begin(); it != seen_.end();) {
    it = now - it->second > 2 * kPeerCancelWindow ? seen_.erase(it) : std::next(it);
  }
  if (seen_.size() >= kMaxEntries) return false;
  return seen_.emplace(nonce, now).second;
}

std::string verify_peer_cancel(const protocol::PeerCancelRequest& packet, std::string_view secret,
                               PeerReplayGuard& replays,
                               std::chrono::system_clock::time_point now) {
  if (secret.empty()) return "no cancel.peer_secret_file is configured";
  const auto mac = hmac_sha256(secret, packet.signed_bytes.data(), packet.signed_bytes.size());
  if (CRYPTO_memcmp(mac.data(), packet.mac.data(), mac.size()) != 0) {
    return "the signature does not match cancel.peer_secret_file";
  }
  const std::int64_t skew = unix_ms(now) - static_cast<std::int64_t>(packet.timestamp_ms);
  const std::int64_t window = std::chrono::milliseconds(kPeerCancelWindow).count();
  if (skew > window || skew < -window) {
    return "the timestamp is " + std::to_string(skew / 1000) + " s off this instance's clock";
  }
  if (!replays.remember(packet.nonce, now)) return "a replayed packet";
  return {};
}

}  // namespace pgmtls::proxy
