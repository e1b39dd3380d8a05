// Parse results shared by the codec: a parser either needs more bytes, produced a value, or found
// the input invalid. Parsers never throw on peer input and never trust a length field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

namespace pgmtls::protocol {

using Bytes = std::span<const std::uint8_t>;

// The input is a valid prefix; at least `bytes` more are needed before parsing can go on.
struct NeedMore {
  std::size_t bytes = 0;
};

// The input can never become valid. `message` is safe to show to the peer.
struct ParseError {
  std::string message;
};

template <typename T>
using Parsed = std::variant<NeedMore, T, ParseError>;

// Big-endian integer reads; callers check the bounds first.
inline std::uint32_t read_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline std::uint16_t read_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

}  // namespace pgmtls::protocol
