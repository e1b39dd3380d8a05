#include "protocol/initial_packet.h"

#include <gtest/gtest.h>

#include <random>

#include "protocol/builders.h"

namespace pgmtls::protocol {
namespace {

std::vector<std::uint8_t> be32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
          static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

std::vector<std::uint8_t> packet(std::uint32_t code, std::vector<std::uint8_t> body = {}) {
  auto out = be32(static_cast<std::uint32_t>(8 + body.size()));
  auto c = be32(code);
  out.insert(out.end(), c.begin(), c.end());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

TEST(InitialPacket, SSLRequest) {
  auto parsed = parse_initial_packet(packet(kSSLRequestCode));
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  EXPECT_EQ(std::get<InitialPacket>(parsed).kind, InitialPacketKind::SSLRequest);
  EXPECT_EQ(std::get<InitialPacket>(parsed).length, 8u);
}

TEST(InitialPacket, GSSENCRequest) {
  auto parsed = parse_initial_packet(packet(kGSSENCRequestCode));
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  EXPECT_EQ(std::get<InitialPacket>(parsed).kind, InitialPacketKind::GSSENCRequest);
}

TEST(InitialPacket, CancelRequest) {
  auto body = be32(4242);
  auto key = be32(0xdeadbeef);
  body.insert(body.end(), key.begin(), key.end());
  auto parsed = parse_initial_packet(packet(kCancelRequestCode, body));
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  const auto& p = std::get<InitialPacket>(parsed);
  EXPECT_EQ(p.kind, InitialPacketKind::CancelRequest);
  EXPECT_EQ(p.cancel.process_id, 4242u);
  EXPECT_EQ(p.cancel.secret_key, 0xdeadbeefu);
}

TEST(InitialPacket, CancelRequestWithWrongLengthIsRejected) {
  auto parsed = parse_initial_packet(packet(kCancelRequestCode, be32(1)));
  EXPECT_TRUE(std::holds_alternative<ParseError>(parsed));
}

TEST(InitialPacket, SSLRequestWithBodyIsRejected) {
  EXPECT_TRUE(
      std::holds_alternative<ParseError>(parse_initial_packet(packet(kSSLRequestCode, {0}))));
}

TEST(InitialPacket, StartupMessageParameters) {
  const auto bytes = startup_message(
      {{"user", "alice"}, {"database", "sales"}, {"application_name", "psql"}, {"options", ""}});
  auto parsed = parse_initial_packet(bytes);
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  const auto& s = std::get<InitialPacket>(parsed).startup;
  EXPECT_EQ(s.major_version, 3);
  EXPECT_EQ(s.minor_version, 0);
  EXPECT_EQ(s.user(), "alice");
  EXPECT_EQ(s.database(), "sales");
  ASSERT_NE(s.find("application_name"), nullptr);
  EXPECT_EQ(*s.find("application_name"), "psql");
  ASSERT_NE(s.find("options"), nullptr);
  EXPECT_EQ(*s.find("options"), "");
  EXPECT_EQ(s.parameters.size(), 4u);
}

TEST(InitialPacket, DatabaseDefaultsToUser) {
  auto parsed = parse_initial_packet(startup_message({{"user", "bob"}}));
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  EXPECT_EQ(std::get<InitialPacket>(parsed).startup.database(), "bob");
}

TEST(InitialPacket, ProtocolOptionsAreListed) {
  auto parsed =
      parse_initial_packet(startup_message({{"user", "bob"}, {"_pq_.compression", "on"}}));
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  EXPECT_EQ(std::get<InitialPacket>(parsed).startup.protocol_options(),
            std::vector<std::string>{"_pq_.compression"});
}

TEST(InitialPacket, MissingUserIsRejected) {
  auto parsed = parse_initial_packet(startup_message({{"database", "x"}}));
  ASSERT_TRUE(std::holds_alternative<ParseError>(parsed));
  EXPECT_EQ(std::get<ParseError>(parsed).message,
            "no PostgreSQL user name specified in startup packet");
}

TEST(InitialPacket, DuplicateParameterIsRejected) {
  auto parsed = parse_initial_packet(startup_message({{"user", "a"}, {"user", "b"}}));
  EXPECT_TRUE(std::holds_alternative<ParseError>(parsed));
}

TEST(InitialPacket, MissingTerminatorIsRejected) {
  auto bytes = startup_message({{"user", "alice"}});
  bytes.pop_back();  // the final NUL
  bytes[3] = static_cast<std::uint8_t>(bytes.size());
  auto parsed = parse_initial_packet(bytes);
  ASSERT_TRUE(std::holds_alternative<ParseError>(parsed));
  EXPECT_NE(std::get<ParseError>(parsed).message.find("terminator"), std::string::npos);
}

TEST(InitialPacket, ValueWithoutTerminatorIsRejected) {
  // "user\0a\0" and no final NUL after the last pair: the value's NUL is taken as the packet's
  // terminator, leaving the value unterminated.
  auto parsed = parse_initial_packet(packet(kProtocolVersion30, {'u', 's', 'e', 'r', 0, 'a', 0}));
  EXPECT_TRUE(std::holds_alternative<ParseError>(parsed));
}

TEST(InitialPacket, UnsupportedProtocolVersion) {
  auto parsed = parse_initial_packet(packet(2u << 16, {'u', 's', 'e', 'r', 0, 'a', 0, 0}));
  ASSERT_TRUE(std::holds_alternative<ParseError>(parsed));
  EXPECT_EQ(std::get<ParseError>(parsed).message,
            "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
  parsed = parse_initial_packet(packet(4u << 16, {'u', 's', 'e', 'r', 0, 'a', 0, 0}));
  EXPECT_TRUE(std::holds_alternative<ParseError>(parsed));
}

TEST(InitialPacket, NewerMinorVersionIsAccepted) {
  auto parsed = parse_initial_packet(packet((3u << 16) | 2, {'u', 's', 'e', 'r', 0, 'a', 0, 0}));
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  EXPECT_EQ(std::get<InitialPacket>(parsed).startup.minor_version, 2);
}

TEST(InitialPacket, LengthLimitsAreCheckedFromTheHeaderAlone) {
  for (std::uint32_t length : {0u, 3u, 4u, 7u, 10001u, 0x7fffffffu, 0xffffffffu}) {
    auto head = be32(length);
    auto parsed = parse_initial_packet(head);
    ASSERT_TRUE(std::holds_alternative<ParseError>(parsed)) << length;
    EXPECT_EQ(std::get<ParseError>(parsed).message, "invalid length of startup packet");
  }
  auto parsed = parse_initial_packet(be32(10000));
  ASSERT_TRUE(std::holds_alternative<NeedMore>(parsed));
  EXPECT_EQ(std::get<NeedMore>(parsed).bytes, 9996u);
}

TEST(InitialPacket, LargestAllowedStartupPacketParses) {
  // length + version + "user\0" + value + NUL + final NUL
  std::string big(10000 - 8 - 5 - 1 - 1, 'x');
  auto bytes = startup_message({{"user", big}});
  ASSERT_EQ(bytes.size(), 10000u);
  EXPECT_TRUE(std::holds_alternative<InitialPacket>(parse_initial_packet(bytes)));
}

TEST(InitialPacket, FedOneByteAtATime) {
  const auto bytes = startup_message({{"user", "alice"}, {"database", "db"}});
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto parsed = parse_initial_packet(std::span(bytes.data(), n));
    ASSERT_TRUE(std::holds_alternative<NeedMore>(parsed)) << n;
    EXPECT_GE(std::get<NeedMore>(parsed).bytes, 1u);
    EXPECT_LE(std::get<NeedMore>(parsed).bytes, bytes.size() - n);
  }
  EXPECT_TRUE(std::holds_alternative<InitialPacket>(parse_initial_packet(bytes)));
}

TEST(InitialPacket, TrailingBytesAreNotConsumed) {
  auto bytes = packet(kSSLRequestCode);
  bytes.push_back(0x16);
  auto parsed = parse_initial_packet(bytes);
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  EXPECT_EQ(std::get<InitialPacket>(parsed).length, 8u);
}

TEST(InitialPacket, RandomGarbageNeverCrashes) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::uint8_t> bytes(rng() % 64);
    for (auto& b : bytes)
      b = static_cast<std::uint8_t>(rng());
    if (bytes.size() >= 4 && (i % 2) == 0) {
      // Make the length plausible so the body parser is exercised too.
      auto len = be32(static_cast<std::uint32_t>(bytes.size()));
      std::copy(len.begin(), len.end(), bytes.begin());
      if (bytes.size() >= 8 && (i % 4) == 0) {
        auto v = be32(kProtocolVersion30);
        std::copy(v.begin(), v.end(), bytes.begin() + 4);
      }
    }
    auto parsed = parse_initial_packet(bytes);
    if (auto* p = std::get_if<InitialPacket>(&parsed)) {
      EXPECT_LE(p->length, bytes.size());
    }
  }
}

}  // namespace
}  // namespace pgmtls::protocol
