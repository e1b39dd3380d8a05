// Cancel requests forwarded between pgmtls instances. An instance that receives a CancelRequest
// whose key carries another instance's id sends that peer a PeerCancelRequest (a pgmtls initial
// packet, see protocol/initial_packet.h) inside TLS on the peer's client listener, signed with
// HMAC-SHA256 under the peers' shared secret over the key, the sender's id, a timestamp and a
// random nonce. The receiver accepts it only with a valid MAC, a timestamp within 30 s of its own
// clock and a nonce it has not seen; it forwards the key to its own backend and never to another
// peer, so nothing loops and one client packet causes at most one peer packet.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/initial_packet.h"

namespace pgmtls::proxy {

inline constexpr auto kPeerCancelWindow = std::chrono::seconds(30);

// The whole packet, length field included.
std::vector<std::uint8_t> make_peer_cancel(std::string_view secret,
                                           const protocol::CancelRequest& key, std::uint32_t sender,
                                           std::chrono::system_clock::time_point now);

// Remembers the nonces of accepted packets for the acceptance window; thread-safe, bounded.
class PeerReplayGuard {
 public:
  // False if `nonce` was seen within the window (or the table is full of live entries).
  bool remember(const std::array<std::uint8_t, 16>& nonce,
                std::chrono::system_clock::time_point now);

 private:
  static constexpr std::size_t kMaxEntries = 100000;
  std::mutex mutex_;
  std::map<std::array<std::uint8_t, 16>, std::chrono::system_clock::time_point> seen_;
};

// Empty when `packet` is authentic, fresh and not a replay; otherwise why not, for the log.
std::string verify_peer_cancel(const protocol::PeerCancelRequest& packet, std::string_view secret,
                               PeerReplayGuard& replays, std::chrono::system_clock::time_point now);

}  // namespace pgmtls::proxy
