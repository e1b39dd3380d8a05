#include "protocol/proxy_header.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

namespace pgmtls::protocol {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV2HeaderLength = 16;
constexpr std::size_t kMinProxyV1Length = 15;

ParseError error(std::string message) {
  return ParseError{"invalid PROXY protocol header: " + std::move(message)};
}

// Splits off the next field up to a single space; the v1 grammar has exactly one between fields.
std::string_view next_field(std::string_view& line) {
  const std::size_t space = line.find(' ');
  std::string_view field = line.substr(0, space);
  line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  return field;
}

bool parse_port(std::string_view text, std::uint16_t& out) {
  // Decimal, 0 to 65535, no leading zero (the specification's wording).
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text.front() == '0')) return false;
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > 65535) return false;
  out = static_cast<std::uint16_t>(value);
  return true;
}

bool parse_address(std::string_view text, bool v6, std::array<std::uint8_t, 16>& out) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  return ::inet_pton(v6 ? AF_INET6 : AF_INET, buf, out.data()) == 1;
}

Parsed<ProxyHeader> parse_v1(Bytes input) {
  const std::size_t have = std::min(input.size(), kMaxProxyV1Length);
  const auto* text = reinterpret_cast<const char*>(input.data());
  const std::string_view seen(text, have);
  const std::size_t cr = seen.find('\r');
  const std::size_t lf = seen.find('\n');
  if (lf != std::string_view::npos && (cr == std::string_view::npos || lf != cr + 1)) {
    return error("version 1 line does not end with CRLF");
  }
  if (cr == std::string_view::npos || cr + 1 >= have) {
    if (input.size() >= kMaxProxyV1Length) return error("version 1 line longer than 107 bytes");
    // The shortest line, "PROXY UNKNOWN\r\n", is 15 bytes; past that, one byte at a time.
    return NeedMore{input.size() < kMinProxyV1Length ? kMinProxyV1Length - input.size() : 1};
  }
  ProxyHeader header;
  header.version = 1;
  header.length = cr + 2;
  std::string_view line = seen.substr(kV1Prefix.size(), cr - kV1Prefix.size());
  const std::string_view family = next_field(line);
  if (family == "UNKNOWN") {
    header.local = true;  // whatever follows is to be ignored
    return header;
  }
  if (family != "TCP4" && family != "TCP6") {
    return error("unknown version 1 protocol \"" + std::string(family.substr(0, 16)) + "\"");
  }
  header.v6 = family == "TCP6";
  const std::string_view source = next_field(line);
  const std::string_view destination = next_field(line);
  const std::string_view source_port = next_field(line);
  const std::string_view destination_port = line;
  if (!parse_address(source, header.v6, header.source) ||
      !parse_address(destination, header.v6, header.destination)) {
    return error(std::string("version 1 ") + (header.v6 ? "TCP6" : "TCP4") +
                 " address is not a valid " + (header.v6 ? "IPv6" : "IPv4") + " address");
  }
  if (!parse_port(source_port, header.source_port) ||
      !parse_port(destination_port, header.destination_port)) {
    return error("version 1 port is not a number from 0 to 65535");
  }
  return header;
}

Parsed<ProxyHeader> parse_v2(Bytes input) {
  if (input.size() < kV2HeaderLength) return NeedMore{kV2HeaderLength - input.size()};
  const std::uint8_t version_command = input[12];
  const std::uint8_t family = input[13];
  const std::size_t payload = read_u16(input.data() + 14);
  if ((version_command >> 4) != 2) return error("version 2 header with a version other than 2");
  const unsigned command = version_command & 0x0f;
  if (command > 1) return error("version 2 command is neither LOCAL nor PROXY");
  if (payload > kMaxProxyV2Payload) {
    return error("version 2 header announces " + std::to_string(payload) +
                 " bytes of addresses and TLVs, more than " + std::to_string(kMaxProxyV2Payload));
  }
  const std::size_t total = kV2HeaderLength + payload;
  if (input.size() < total) return NeedMore{total - input.size()};

  ProxyHeader header;
  header.version = 2;
  header.length = total;
  const unsigned address_family = family >> 4;
  const unsigned transport = family & 0x0f;
  // LOCAL: the balancer speaking for itself. UNSPEC and UNIX: nothing a TCP peer address can
  // say; the specification has the receiver use the connection's own addresses for both.
  if (command == 0 || address_family == 0 || address_family == 3) {
    header.local = true;
    return header;
  }
  if (address_family > 3) return error("version 2 address family is unknown");
  if (transport != 1) return error("version 2 transport is not a stream (TCP)");
  const std::uint8_t* p = input.data() + kV2HeaderLength;
  if (address_family == 1) {
    if (payload < 12) return error("version 2 IPv4 addresses are truncated");
    std::copy(p, p + 4, header.source.begin());
    std::copy(p + 4, p + 8, header.destination.begin());
    header.source_port = read_u16(p + 8);
    header.destination_port = read_u16(p + 10);
  } else {
    if (payload < 36) return error("version 2 IPv6 addresses are truncated");
    header.v6 = true;
    std::copy(p, p + 16, header.source.begin());
    std::copy(p + 16, p + 32, header.destination.begin());
    header.source_port = read_u16(p + 32);
    header.destination_port = read_u16(p + 34);
  }
  // TLVs (AWS's VPC endpoint id, ALPN, ...) follow; pgmtls uses none of them.
  return header;
}

}  // namespace

std::string ProxyHeader::source_text() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(v6 ? AF_INET6 : AF_INET, source.data(), buf, sizeof buf) == nullptr) return {};
  return buf;
}

bool looks_like_proxy_header(Bytes input) {
  const std::size_t n = input.size();
  if (n == 0) return false;
  if (input[0] == kV1Prefix[0]) {
    return std::memcmp(input.data(), kV1Prefix.data(), std::min(n, kV1Prefix.size())) == 0;
  }
  return std::memcmp(input.data(), kV2Signature.data(), std::min(n, kV2Signature.size())) == 0;
}

Parsed<ProxyHeader> parse_proxy_header(Bytes input) {
  if (input.empty()) return NeedMore{kProxyHeaderProbe};
  if (!looks_like_proxy_header(input)) {
    return error("the connection does not start with a PROXY protocol header");
  }
  if (input[0] == kV1Prefix[0]) {
    if (input.size() < kV1Prefix.size()) return NeedMore{kV1Prefix.size() - input.size()};
    return parse_v1(input);
  }
  if (input.size() < kV2Signature.size()) return NeedMore{kV2Signature.size() - input.size()};
  return parse_v2(input);
}

}  // namespace pgmtls::protocol
