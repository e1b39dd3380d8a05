#include "protocol/builders.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/initial_packet.h"
#include "protocol/message.h"

namespace pgmtls::protocol {
namespace {

using ByteVec = std::vector<std::uint8_t>;

// Type byte, big-endian length, then `body` given as a string that may hold NULs.
ByteVec wire(char type, const std::string& body) {
  const auto length = static_cast<std::uint32_t>(body.size() + 4);
  ByteVec out;
  if (type != 0) out.push_back(static_cast<std::uint8_t>(type));
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(length >> shift));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::string s(const char* data, std::size_t n) {
  return std::string(data, n);
}

TEST(ErrorResponse, ExactWireBytes) {
  const auto bytes = error_response(
      {.severity = "FATAL", .sqlstate = "28000", .message = "certificate authentication failed"});
  const std::string body =
      s("SFATAL\0VFATAL\0C28000\0Mcertificate authentication failed\0\0", 7 + 7 + 7 + 35 + 1);
  EXPECT_EQ(bytes, wire('E', body));
  // Spelled out once by hand: type, length 4 + 57.
  ASSERT_GE(bytes.size(), 5u);
  EXPECT_EQ(bytes[0], 'E');
  EXPECT_EQ(bytes[1], 0);
  EXPECT_EQ(bytes[2], 0);
  EXPECT_EQ(bytes[3], 0);
  EXPECT_EQ(bytes[4], 61);
  EXPECT_EQ(bytes.size(), 62u);
  EXPECT_EQ(bytes.back(), 0);
}

TEST(ErrorResponse, DetailAndHintFollowTheMessage) {
  const auto bytes = error_response(
      {.severity = "ERROR", .sqlstate = "08P01", .message = "m", .detail = "d", .hint = "h"});
  const std::string body = s("SERROR\0VERROR\0C08P01\0Mm\0Dd\0Hh\0\0", 7 + 7 + 7 + 3 + 3 + 3 + 1);
  EXPECT_EQ(bytes, wire('E', body));
}

TEST(ErrorResponse, DefaultSeverityIsFatal) {
  const auto bytes = error_response({.sqlstate = "08P01", .message = "x"});
  auto parsed = parse_message(bytes, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  const auto fields = parse_error_fields(std::get<Message>(parsed).payload);
  EXPECT_EQ(fields.at('S'), "FATAL");
  EXPECT_EQ(fields.at('V'), "FATAL");
}

TEST(ErrorResponse, NulInAFieldIsDropped) {
  const std::string message = s("bad\0user", 8);
  const auto bytes = error_response({.severity = "FATAL", .sqlstate = "28000", .message = message});
  const std::string body = s("SFATAL\0VFATAL\0C28000\0Mbaduser\0\0", 7 + 7 + 7 + 9 + 1);
  EXPECT_EQ(bytes, wire('E', body));
}

TEST(ErrorResponse, RoundTripsThroughTheParser) {
  const auto bytes = error_response({.severity = "FATAL",
                                     .sqlstate = "28000",
                                     .message = "no map entry for \"alice\"",
                                     .detail = "certificate CN=alice",
                                     .hint = "check pg_ident.conf"});
  auto parsed = parse_message(bytes, 4096);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  const auto& m = std::get<Message>(parsed);
  EXPECT_EQ(m.type, backend_type::kErrorResponse);
  EXPECT_EQ(m.size, bytes.size());
  const auto fields = parse_error_fields(m.payload);
  EXPECT_EQ(fields.size(), 6u);
  EXPECT_EQ(fields.at('S'), "FATAL");
  EXPECT_EQ(fields.at('V'), "FATAL");
  EXPECT_EQ(fields.at('C'), "28000");
  EXPECT_EQ(fields.at('M'), "no map entry for \"alice\"");
  EXPECT_EQ(fields.at('D'), "certificate CN=alice");
  EXPECT_EQ(fields.at('H'), "check pg_ident.conf");
}

TEST(StartupMessage, ExactWireBytes) {
  const auto bytes = startup_message({{"user", "alice"}, {"database", "db"}});
  // No type byte; length; version 3.0; pairs; terminator.
  const std::string body =
      s("\x00\x03\x00\x00user\0alice\0database\0db\0\0", 4 + 5 + 6 + 9 + 3 + 1);
  EXPECT_EQ(bytes, wire(0, body));
}

TEST(StartupMessage, RoundTripsThroughParseInitialPacket) {
  const std::vector<std::pair<std::string, std::string>> params{
      {"user", "alice"},
      {"database", "sales"},
      {"application_name", "pgmtls tests"},
      {"client_encoding", "UTF8"}};
  const auto bytes = startup_message(params);
  auto parsed = parse_initial_packet(bytes);
  ASSERT_TRUE(std::holds_alternative<InitialPacket>(parsed));
  const auto& p = std::get<InitialPacket>(parsed);
  EXPECT_EQ(p.kind, InitialPacketKind::StartupMessage);
  EXPECT_EQ(p.length, bytes.size());
  EXPECT_EQ(p.startup.major_version, 3);
  EXPECT_EQ(p.startup.minor_version, 0);
  EXPECT_EQ(p.startup.parameters, params);
}

TEST(NegotiateProtocolVersion, ExactWireBytes) {
  const auto bytes = negotiate_protocol_version(0, {"_pq_.a", "_pq_.bb"});
  const std::string body = s("\0\0\0\0\0\0\0\x02_pq_.a\0_pq_.bb\0", 4 + 4 + 7 + 8);
  EXPECT_EQ(bytes, wire('v', body));

  const auto none = negotiate_protocol_version(2, {});
  EXPECT_EQ(none, wire('v', s("\0\0\0\x02\0\0\0\0", 8)));
}

TEST(NegotiateProtocolVersion, ParsesAsAMessage) {
  const auto bytes = negotiate_protocol_version(0, {"_pq_.x"});
  auto parsed = parse_message(bytes, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  EXPECT_EQ(std::get<Message>(parsed).type, backend_type::kNegotiateProtocolVersion);
  EXPECT_EQ(std::get<Message>(parsed).size, bytes.size());
}

TEST(Terminate, ExactWireBytes) {
  EXPECT_EQ(terminate_message(), (ByteVec{'X', 0, 0, 0, 4}));
}

TEST(Query, ExactWireBytesAndNoNulInside) {
  EXPECT_EQ(query_message("DISCARD ALL"), wire('Q', s("DISCARD ALL\0", 12)));
  EXPECT_EQ(query_message(s("SELECT 1\0; DROP", 16)), wire('Q', s("SELECT 1; DROP\0", 15)));
}

TEST(ReadyForQuery, ExactWireBytes) {
  EXPECT_EQ(ready_for_query('I'), (ByteVec{'Z', 0, 0, 0, 5, 'I'}));
}

TEST(OneByteAnswers, Values) {
  EXPECT_EQ(kSSLAccepted, 'S');
  EXPECT_EQ(kEncryptionRefused, 'N');
}

TEST(Builders, SslRequestIsTheEightByteCode) {
  EXPECT_EQ(ssl_request(), (ByteVec{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}));
}

TEST(Builders, PasswordMessage) {
  EXPECT_EQ(password_message("md5abc"), wire('p', s("md5abc\0", 7)));
}

TEST(Builders, SaslInitialResponseCarriesMechanismAndLength) {
  EXPECT_EQ(sasl_initial_response("SCRAM-SHA-256", "n,,n=,r=x"),
            wire('p', s("SCRAM-SHA-256\0\0\0\0\x09n,,n=,r=x", 27)));
}

TEST(Builders, SaslResponseIsTheRawData) {
  EXPECT_EQ(sasl_response("c=biws"), wire('p', "c=biws"));
}

TEST(Builders, SaslMechanismsParse) {
  const ByteVec msg = wire('R', s("\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0", 38));
  auto parsed = parse_message(msg, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  const auto mechanisms = sasl_mechanisms(std::get<Message>(parsed));
  ASSERT_TRUE(mechanisms);
  EXPECT_EQ(*mechanisms, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));

  // Without the final empty string the list is malformed.
  const ByteVec truncated = wire('R', s("\0\0\0\x0aSCRAM-SHA-256", 17));
  EXPECT_FALSE(sasl_mechanisms(std::get<Message>(parse_message(truncated, 1024))));
}

}  // namespace
}  // namespace pgmtls::protocol
