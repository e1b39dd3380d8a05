// The PROXY protocol header (versions 1 and 2, as HAProxy specifies them) that a load balancer
// sends before the client's own bytes, carrying the client's real address.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/result.h"

namespace pgmtls::protocol {

// Version 1 lines are at most 107 bytes, CRLF included.
inline constexpr std::size_t kMaxProxyV1Length = 107;
// Version 2: the 16-byte header plus at most this much address and TLV data. The specification
// allows 65535; load balancers send tens of bytes (AWS's VPC endpoint TLV is the longest
// common one), so a larger announcement is refused before anything is buffered.
inline constexpr std::size_t kMaxProxyV2Payload = 2048;
// The first read takes this many bytes: the shortest header (v1 "PROXY UNKNOWN\r\n") is longer,
// so no byte after the header is consumed with it.
inline constexpr std::size_t kProxyHeaderProbe = 8;

struct ProxyHeader {
  int version = 1;
  // No address to use: v1 UNKNOWN, v2 LOCAL (the balancer's own health check), or v2 with an
  // unspecified or Unix family. The connection's own addresses stand.
  bool local = false;
  bool v6 = false;
  std::array<std::uint8_t, 16> source{};  // network order; the first 4 bytes for IPv4
  std::array<std::uint8_t, 16> destination{};
  std::uint16_t source_port = 0;
  std::uint16_t destination_port = 0;
  std::size_t length = 0;  // bytes the header took

  std::string source_text() const;  // "203.0.113.7" or "2001:db8::7"
};

// Parses a header at the start of `input`. NeedMore says exactly how many more bytes to read
// (never more than the header has left), so a caller can read without consuming what follows.
Parsed<ProxyHeader> parse_proxy_header(Bytes input);

// Whether `input` (at least one byte) could be the start of a PROXY header, to say so when one
// arrives from an address that may not send it.
bool looks_like_proxy_header(Bytes input);

}  // namespace pgmtls::protocol
