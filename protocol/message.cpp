#include "protocol/message.h"

#include <algorithm>

namespace pgmtls::protocol {

Parsed<Message> parse_message(Bytes input, std::size_t max_payload) {
  if (input.size() < 5) return NeedMore{5 - input.size()};
  const std::uint32_t length = read_u32(input.data() + 1);
  if (length < 4) return ParseError{"invalid message length"};
  if (length - 4 > max_payload) return ParseError{"message too large"};
  const std::size_t size = std::size_t{length} + 1;
  if (input.size() < size) return NeedMore{size - input.size()};
  return Message{static_cast<char>(input[0]), input.subspan(5, length - 4), size};
}

std::optional<std::uint32_t> authentication_code(const Message& message) {
  if (message.type != backend_type::kAuthentication || message.payload.size() < 4) {
    return std::nullopt;
  }
  return read_u32(message.payload.data());
}

Bytes authentication_data(const Message& message) {
  if (message.payload.size() < 4) return {};
  return Bytes(message.payload).subspan(4);
}

std::optional<std::vector<std::string>> sasl_mechanisms(const Message& message) {
  const Bytes data = authentication_data(message);
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    std::size_t end = pos;
    while (end < data.size() && data[end] != 0)
      ++end;
    if (end == data.size()) return std::nullopt;  // no terminator
    if (end == pos) return out;                   // the empty string ends the list
    out.emplace_back(reinterpret_cast<const char*>(data.data() + pos), end - pos);
    pos = end + 1;
  }
}

std::map<char, std::string> parse_error_fields(Bytes payload) {
  std::map<char, std::string> fields;
  std::size_t pos = 0;
  while (pos < payload.size() && payload[pos] != 0) {
    const char type = static_cast<char>(payload[pos++]);
    const auto* begin = payload.data() + pos;
    const auto* end = payload.data() + payload.size();
    const auto* stop = std::find(begin, end, std::uint8_t{0});
    if (stop == end) break;
    fields[type].assign(reinterpret_cast<const char*>(begin),
                        static_cast<std::size_t>(stop - begin));
    pos += static_cast<std::size_t>(stop - begin) + 1;
  }
  return fields;
}

std::string authentication_name(std::uint32_t code) {
  switch (code) {
    case auth_code::kOk:
      return "ok";
    case auth_code::kKerberosV5:
      return "Kerberos V5";
    case auth_code::kCleartextPassword:
      return "cleartext password";
    case auth_code::kMD5Password:
      return "MD5 password";
    case auth_code::kGSS:
    case auth_code::kGSSContinue:
      return "GSSAPI";
    case auth_code::kSSPI:
      return "SSPI";
    case auth_code::kSASL:
    case auth_code::kSASLContinue:
    case auth_code::kSASLFinal:
      return "SASL";
    default:
      return "unknown method " + std::to_string(code);
  }
}

std::optional<std::pair<std::uint32_t, std::uint32_t>> backend_key(const Message& message) {
  if (message.type != backend_type::kBackendKeyData || message.payload.size() != 8) {
    return std::nullopt;
  }
  auto u32 = [&](std::size_t at) {
    return (std::uint32_t{message.payload[at]} << 24) |
           (std::uint32_t{message.payload[at + 1]} << 16) |
           (std::uint32_t{message.payload[at + 2]} << 8) | std::uint32_t{message.payload[at + 3]};
  };
  return std::pair{u32(0), u32(4)};
}

std::size_t MessageBoundaries::follow(Bytes chunk, bool stop_at_boundary) {
  std::size_t pos = 0;
  while (pos < chunk.size() && !broken_) {
    if (stop_at_boundary && at_boundary()) return pos;
    if (remaining_ > 0) {
      const std::size_t take =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, chunk.size() - pos));
      if (want_status_) {
        status_ = static_cast<char>(chunk[pos]);
        want_status_ = false;
        ++ready_count_;
      }
      remaining_ -= take;
      pos += take;
      continue;
    }
    header_[header_have_++] = chunk[pos++];
    if (header_have_ < sizeof header_) continue;
    header_have_ = 0;
    const std::uint32_t length = (std::uint32_t{header_[1]} << 24) |
                                 (std::uint32_t{header_[2]} << 16) |
                                 (std::uint32_t{header_[3]} << 8) | std::uint32_t{header_[4]};
    if (length < 4) {
      broken_ = true;
      break;
    }
    remaining_ = length - 4;
    last_type_ = static_cast<char>(header_[0]);
    want_status_ = header_[0] == 'Z' && remaining_ > 0;
    if (header_[0] == 'Q' || header_[0] == 'S' || header_[0] == 'F') ++requests_;
  }
  return chunk.size();
}

}  // namespace pgmtls::protocol
