// PROXY protocol v1 and v2 headers: the specification's examples, byte-at-a-time feeding, and
// every way a header can be wrong.
#include "protocol/proxy_header.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgmtls::protocol {
namespace {

using ::testing::HasSubstr;

std::vector<std::uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

const std::string kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

std::vector<std::uint8_t> v2(std::uint8_t version_command, std::uint8_t family,
                             const std::vector<std::uint8_t>& payload) {
  auto out = bytes(kV2Signature);
  out.push_back(version_command);
  out.push_back(family);
  out.push_back(static_cast<std::uint8_t>(payload.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(payload.size() & 0xff));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// Feeds `input` the way a reader does: the probe, then exactly what each NeedMore asks for.
// Returns the result and checks that no read ever went past the header.
Parsed<ProxyHeader> feed(const std::vector<std::uint8_t>& input) {
  std::size_t have = std::min(input.size(), kProxyHeaderProbe);
  for (;;) {
    auto parsed = parse_proxy_header(Bytes(input.data(), have));
    const auto* need = std::get_if<NeedMore>(&parsed);
    if (need == nullptr) return parsed;
    EXPECT_GT(need->bytes, 0u);
    if (have + need->bytes > input.size()) return parsed;
    have += need->bytes;
  }
}

ProxyHeader header_of(const std::vector<std::uint8_t>& input) {
  auto parsed = feed(input);
  if (auto* err = std::get_if<ParseError>(&parsed)) ADD_FAILURE() << err->message;
  if (std::holds_alternative<NeedMore>(parsed)) ADD_FAILURE() << "incomplete";
  return std::holds_alternative<ProxyHeader>(parsed) ? std::get<ProxyHeader>(parsed)
                                                     : ProxyHeader{};
}

std::string error_of(const std::vector<std::uint8_t>& input) {
  auto parsed = feed(input);
  if (auto* err = std::get_if<ParseError>(&parsed)) return err->message;
  return std::holds_alternative<NeedMore>(parsed) ? "need more" : "parsed";
}

TEST(ProxyHeaderTest, Version1Tcp4And6AndUnknown) {
  // The header is followed by the client's SSLRequest, which must not be consumed.
  auto input = bytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  const std::size_t header_length = input.size();
  input.insert(input.end(), {0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f});
  auto h = header_of(input);
  EXPECT_EQ(h.version, 1);
  EXPECT_FALSE(h.local);
  EXPECT_FALSE(h.v6);
  EXPECT_EQ(h.length, header_length);
  EXPECT_EQ(h.source_text(), "192.168.0.1");
  EXPECT_EQ(h.source_port, 56324);
  EXPECT_EQ(h.destination_port, 443);

  h = header_of(bytes("PROXY TCP6 2001:db8::7 ::1 65535 0\r\n"));
  EXPECT_TRUE(h.v6);
  EXPECT_EQ(h.source_text(), "2001:db8::7");
  EXPECT_EQ(h.source_port, 65535);

  h = header_of(bytes("PROXY UNKNOWN\r\n"));
  EXPECT_TRUE(h.local);
  EXPECT_EQ(h.length, 15u);
  h = header_of(bytes("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"));
  EXPECT_TRUE(h.local);
}

TEST(ProxyHeaderTest, Version1Errors) {
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n")), HasSubstr("CRLF"));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r")), HasSubstr("CRLF"));
  EXPECT_THAT(error_of(bytes("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")),
              HasSubstr("unknown version 1 protocol \"UDP4\""));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 ::1 1 2\r\n")), HasSubstr("IPv4 address"));
  EXPECT_THAT(error_of(bytes("PROXY TCP6 1.2.3.4 ::1 1 2\r\n")), HasSubstr("IPv6 address"));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")), HasSubstr("port"));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n")), HasSubstr("port"));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n")), HasSubstr("port"));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n")), HasSubstr("address"));
  EXPECT_THAT(error_of(bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")), HasSubstr("port"));
  EXPECT_THAT(error_of(bytes("PROXY " + std::string(120, 'x'))),
              HasSubstr("longer than 107 bytes"));
  EXPECT_EQ(error_of(bytes("PROXY TCP4 1.2.3.4")), "need more");
  EXPECT_THAT(error_of(bytes("PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n")),
              HasSubstr("does not start with a PROXY protocol header"));
}

TEST(ProxyHeaderTest, Version2ProxyAndLocal) {
  // AF_INET, STREAM: 203.0.113.7:51234 -> 10.0.0.5:6432, then an AWS VPC endpoint TLV.
  auto input = v2(0x21, 0x11, {203,  0,    113,  7,    10,   0,    0,   5,   0xc8, 0x22,
                               0x19, 0x20, 0xea, 0x00, 0x05, 0x01, 'v', 'p', 'c',  'e'});
  const std::size_t header_length = input.size();
  input.insert(input.end(), {0x16, 0x03, 0x01});  // a ClientHello follows: direct TLS
  auto h = header_of(input);
  EXPECT_EQ(h.version, 2);
  EXPECT_FALSE(h.local);
  EXPECT_EQ(h.length, header_length);
  EXPECT_EQ(h.source_text(), "203.0.113.7");
  EXPECT_EQ(h.source_port, 51234);
  EXPECT_EQ(h.destination_port, 6432);

  std::vector<std::uint8_t> six(36, 0);
  six[0] = 0x20, six[1] = 0x01, six[2] = 0x0d, six[3] = 0xb8, six[15] = 7;
  six[32] = 0x01, six[33] = 0x02;
  h = header_of(v2(0x21, 0x21, six));
  EXPECT_TRUE(h.v6);
  EXPECT_EQ(h.source_text(), "2001:db8::7");
  EXPECT_EQ(h.source_port, 0x0102);

  EXPECT_TRUE(header_of(v2(0x20, 0x00, {})).local);  // LOCAL: a health check
  EXPECT_TRUE(header_of(v2(0x20, 0x11, std::vector<std::uint8_t>(12))).local);
  EXPECT_TRUE(header_of(v2(0x21, 0x00, {})).local);                              // PROXY, UNSPEC
  EXPECT_TRUE(header_of(v2(0x21, 0x31, std::vector<std::uint8_t>(216))).local);  // UNIX
}

TEST(ProxyHeaderTest, Version2Errors) {
  EXPECT_THAT(error_of(v2(0x11, 0x11, std::vector<std::uint8_t>(12))), HasSubstr("version 2"));
  EXPECT_THAT(error_of(v2(0x22, 0x11, std::vector<std::uint8_t>(12))),
              HasSubstr("neither LOCAL nor PROXY"));
  EXPECT_THAT(error_of(v2(0x21, 0x12, std::vector<std::uint8_t>(12))), HasSubstr("not a stream"));
  EXPECT_THAT(error_of(v2(0x21, 0x41, std::vector<std::uint8_t>(12))),
              HasSubstr("family is unknown"));
  EXPECT_THAT(error_of(v2(0x21, 0x11, std::vector<std::uint8_t>(11))), HasSubstr("truncated"));
  EXPECT_THAT(error_of(v2(0x21, 0x21, std::vector<std::uint8_t>(35))), HasSubstr("truncated"));
  // A huge announced length is refused from the 16 header bytes alone.
  auto huge = bytes(kV2Signature);
  huge.insert(huge.end(), {0x21, 0x11, 0xff, 0xff});
  EXPECT_THAT(error_of(huge), HasSubstr("announces 65535 bytes"));
  auto truncated = v2(0x21, 0x11, std::vector<std::uint8_t>(12));
  truncated.pop_back();
  EXPECT_EQ(error_of(truncated), "need more");
}

TEST(ProxyHeaderTest, OtherFirstBytesAreNotHeaders) {
  EXPECT_TRUE(looks_like_proxy_header(Bytes(bytes("PRO"))));
  EXPECT_TRUE(looks_like_proxy_header(Bytes(bytes(kV2Signature.substr(0, 5)))));
  const std::vector<std::uint8_t> ssl_request = {0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f};
  EXPECT_FALSE(looks_like_proxy_header(Bytes(ssl_request)));
  const std::vector<std::uint8_t> client_hello = {0x16, 0x03, 0x01, 0x02, 0x00};
  EXPECT_FALSE(looks_like_proxy_header(Bytes(client_hello)));
  EXPECT_THAT(error_of(ssl_request), HasSubstr("does not start with a PROXY protocol header"));
}

}  // namespace
}  // namespace pgmtls::protocol
