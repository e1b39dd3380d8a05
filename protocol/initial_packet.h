// The first packet a client sends: SSLRequest, GSSENCRequest, CancelRequest or StartupMessage.
// These carry no type byte: Int32 length (including itself), Int32 code or protocol version, body.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/result.h"

namespace pgmtls::protocol {

inline constexpr std::uint32_t kProtocolVersion30 = 3u << 16;  // 196608
inline constexpr std::uint32_t kCancelRequestCode = 80877102;
inline constexpr std::uint32_t kSSLRequestCode = 80877103;
inline constexpr std::uint32_t kGSSENCRequestCode = 80877104;
// PostgreSQL's MAX_STARTUP_PACKET_LENGTH: a longer initial packet is refused before it is buffered.
inline constexpr std::size_t kMaxStartupPacketLength = 10000;
// Length (4) + code (4); SSLRequest and GSSENCRequest are exactly this long.
inline constexpr std::size_t kMinInitialPacketLength = 8;
inline constexpr std::size_t kCancelRequestLength = 16;
// pgmtls's own: a CancelRequest one pgmtls instance forwards to the peer that owns the session,
// signed with the peers' shared secret. 1234/5699 lies in the range PostgreSQL reserves for
// special request codes (1234/5678-5680 are its own) and is never a protocol version.
inline constexpr std::uint32_t kPeerCancelRequestCode = (1234u << 16) | 5699;
// Length, code, pid, secret, sender instance, timestamp (ms, 8 bytes), nonce (16), HMAC-SHA256
// (32).
inline constexpr std::size_t kPeerCancelRequestLength = 4 + 4 + 4 + 4 + 4 + 8 + 16 + 32;

enum class InitialPacketKind {
  SSLRequest,
  GSSENCRequest,
  CancelRequest,
  StartupMessage,
  PeerCancelRequest
};

struct CancelRequest {
  std::uint32_t process_id = 0;
  std::uint32_t secret_key = 0;
};

struct PeerCancelRequest {
  CancelRequest key;
  std::uint32_t sender = 0;  // the forwarding instance's id
  std::uint64_t timestamp_ms = 0;
  std::array<std::uint8_t, 16> nonce{};
  std::array<std::uint8_t, 32> mac{};
  // The bytes the MAC covers: everything after the length field up to the MAC.
  std::vector<std::uint8_t> signed_bytes;
};

struct StartupMessage {
  std::uint16_t major_version = 3;
  std::uint16_t minor_version = 0;
  // In the order the client sent them; names are unique (a repeated name is a parse error).
  std::vector<std::pair<std::string, std::string>> parameters;

  const std::string* find(std::string_view name) const;
  // The role the client asks for ("user" is mandatory, so this is never empty after parsing).
  const std::string& user() const;
  // "database", defaulting to the user name as PostgreSQL does.
  const std::string& database() const;
  // Protocol-extension options ("_pq_.*"), which a 3.0 server must report as unrecognized.
  std::vector<std::string> protocol_options() const;
};

struct InitialPacket {
  InitialPacketKind kind = InitialPacketKind::StartupMessage;
  std::size_t length = 0;         // bytes consumed, the length field's value
  CancelRequest cancel;           // for CancelRequest
  PeerCancelRequest peer_cancel;  // for PeerCancelRequest
  StartupMessage startup;         // for StartupMessage
};

// Parses one initial packet from the start of `input`. With fewer than 4 bytes, or fewer than the
// length field says, returns NeedMore (after checking what is there: an oversized or undersized
// length is an error as soon as the 4 length bytes are in). Bytes after the packet are ignored;
// the caller decides whether they may exist.
Parsed<InitialPacket> parse_initial_packet(Bytes input);

std::string_view to_string(InitialPacketKind kind);

}  // namespace pgmtls::protocol
