#include "proxy/peer_cancel.h"

#include <gtest/gtest.h>

#include <variant>

#include "protocol/initial_packet.h"

namespace pgmtls::proxy {
namespace {

using namespace std::chrono_literals;
constexpr const char* kSecret = "a-shared-secret-of-at-least-32-bytes";

protocol::PeerCancelRequest parse(const std::vector<std::uint8_t>& bytes) {
  auto parsed = protocol::parse_initial_packet(bytes);
  EXPECT_TRUE(std::holds_alternative<protocol::InitialPacket>(parsed));
  const auto& packet = std::get<protocol::InitialPacket>(parsed);
  EXPECT_EQ(packet.kind, protocol::InitialPacketKind::PeerCancelRequest);
  return packet.peer_cancel;
}

TEST(PeerCancel, SignedPacketsParseAndVerifyOnce) {
  const auto now = std::chrono::system_clock::now();
  const auto bytes = make_peer_cancel(kSecret, {0x00812345, 0xcafef00d}, 7, now);
  ASSERT_EQ(bytes.size(), protocol::kPeerCancelRequestLength);
  const auto packet = parse(bytes);
  EXPECT_EQ(packet.key.process_id, 0x00812345u);
  EXPECT_EQ(packet.key.secret_key, 0xcafef00du);
  EXPECT_EQ(packet.sender, 7u);
  PeerReplayGuard replays;
  EXPECT_EQ(verify_peer_cancel(packet, kSecret, replays, now), "");
  EXPECT_EQ(verify_peer_cancel(packet, kSecret, replays, now + 1s), "a replayed packet");
  // Two packets for the same key differ (nonce), so both verify.
  EXPECT_EQ(verify_peer_cancel(parse(make_peer_cancel(kSecret, {0x00812345, 0xcafef00d}, 7, now)),
                               kSecret, replays, now),
            "");
}

TEST(PeerCancel, EveryTamperedByteAWrongSecretOrAnOldTimestampIsRefused) {
  const auto now = std::chrono::system_clock::now();
  const auto bytes = make_peer_cancel(kSecret, {42, 43}, 1, now);
  for (std::size_t i = 8; i < bytes.size(); ++i) {  // after length and code
    auto tampered = bytes;
    tampered[i] ^= 0x01;
    PeerReplayGuard replays;
    EXPECT_NE(verify_peer_cancel(parse(tampered), kSecret, replays, now), "") << "byte " << i;
  }
  PeerReplayGuard replays;
  EXPECT_EQ(verify_peer_cancel(parse(bytes), "another-secret-of-at-least-32-bytes!", replays, now),
            "the signature does not match cancel.peer_secret_file");
  EXPECT_EQ(verify_peer_cancel(parse(bytes), "", replays, now),
            "no cancel.peer_secret_file is configured");
  const auto old = make_peer_cancel(kSecret, {42, 43}, 1, now - 31s);
  EXPECT_NE(verify_peer_cancel(parse(old), kSecret, replays, now).find("off this instance's clock"),
            std::string::npos);
  const auto future = make_peer_cancel(kSecret, {42, 43}, 1, now + 31s);
  EXPECT_NE(verify_peer_cancel(parse(future), kSecret, replays, now), "");
}

}  // namespace
}  // namespace pgmtls::proxy
