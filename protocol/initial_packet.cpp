#include "protocol/initial_packet.h"

#include <algorithm>

namespace pgmtls::protocol {

namespace {

ParseError error(std::string message) {
  return ParseError{std::move(message)};
}

Parsed<StartupMessage> parse_startup_body(std::uint32_t version, Bytes body) {
  StartupMessage msg;
  msg.major_version = static_cast<std::uint16_t>(version >> 16);
  msg.minor_version = static_cast<std::uint16_t>(version & 0xffff);
  if (msg.major_version != 3) {
    return error("unsupported frontend protocol " + std::to_string(msg.major_version) + "." +
                 std::to_string(msg.minor_version) + ": server supports 3.0 to 3.0");
  }
  // Name/value pairs of NUL-terminated strings, then one terminating NUL.
  if (body.empty() || body.back() != 0) {
    return error("invalid startup packet layout: expected terminator as last byte");
  }
  std::size_t pos = 0;
  const std::size_t end = body.size() - 1;
  auto read_cstring = [&](std::string& out) -> bool {
    const auto* begin = body.data() + pos;
    const auto* stop = std::find(begin, body.data() + end, std::uint8_t{0});
    if (stop == body.data() + end) return false;
    out.assign(reinterpret_cast<const char*>(begin), static_cast<std::size_t>(stop - begin));
    pos += out.size() + 1;
    return true;
  };
  while (pos < end) {
    std::string name;
    std::string value;
    if (!read_cstring(name) || !read_cstring(value)) {
      return error("invalid startup packet layout: expected terminator as last byte");
    }
    if (name.empty()) return error("invalid startup packet layout: empty parameter name");
    if (msg.find(name) != nullptr) {
      return error("invalid startup packet: parameter \"" + name + "\" given more than once");
    }
    msg.parameters.emplace_back(std::move(name), std::move(value));
  }
  const std::string* user = msg.find("user");
  if (user == nullptr || user->empty()) {
    return error("no PostgreSQL user name specified in startup packet");
  }
  return msg;
}

}  // namespace

const std::string* StartupMessage::find(std::string_view name) const {
  for (const auto& [key, value] : parameters) {
    if (key == name) return &value;
  }
  return nullptr;
}

const std::string& StartupMessage::user() const {
  static const std::string empty;
  const std::string* u = find("user");
  return u != nullptr ? *u : empty;
}

const std::string& StartupMessage::database() const {
  const std::string* db = find("database");
  return db != nullptr && !db->empty() ? *db : user();
}

std::vector<std::string> StartupMessage::protocol_options() const {
  std::vector<std::string> out;
  for (const auto& [key, value] : parameters) {
    if (key.starts_with("_pq_.")) out.push_back(key);
  }
  return out;
}

Parsed<InitialPacket> parse_initial_packet(Bytes input) {
  if (input.size() < 4) return NeedMore{4 - input.size()};
  const std::uint32_t length = read_u32(input.data());
  if (length < kMinInitialPacketLength || length > kMaxStartupPacketLength) {
    return error("invalid length of startup packet");
  }
  if (input.size() < length) return NeedMore{length - input.size()};

  InitialPacket packet;
  packet.length = length;
  const std::uint32_t code = read_u32(input.data() + 4);
  switch (code) {
    case kSSLRequestCode:
    case kGSSENCRequestCode:
      if (length != kMinInitialPacketLength) return error("invalid length of startup packet");
      packet.kind = code == kSSLRequestCode ? InitialPacketKind::SSLRequest
                                            : InitialPacketKind::GSSENCRequest;
      return packet;
    case kCancelRequestCode:
      if (length != kCancelRequestLength) return error("invalid length of cancel request packet");
      packet.kind = InitialPacketKind::CancelRequest;
      packet.cancel.process_id = read_u32(input.data() + 8);
      packet.cancel.secret_key = read_u32(input.data() + 12);
      return packet;
    case kPeerCancelRequestCode: {
      if (length != kPeerCancelRequestLength) return error("invalid length of peer cancel packet");
      packet.kind = InitialPacketKind::PeerCancelRequest;
      auto& p = packet.peer_cancel;
      const std::uint8_t* d = input.data();
      p.key.process_id = read_u32(d + 8);
      p.key.secret_key = read_u32(d + 12);
      p.sender = read_u32(d + 16);
      p.timestamp_ms = (std::uint64_t{read_u32(d + 20)} << 32) | read_u32(d + 24);
      std::copy(d + 28, d + 44, p.nonce.begin());
      std::copy(d + 44, d + 76, p.mac.begin());
      p.signed_bytes.assign(d + 4, d + 44);
      return packet;
    }
    default:
      break;
  }
  auto body = parse_startup_body(code, input.subspan(8, length - 8));
  if (auto* err = std::get_if<ParseError>(&body)) return *err;
  packet.kind = InitialPacketKind::StartupMessage;
  packet.startup = std::move(std::get<StartupMessage>(body));
  return packet;
}

std::string_view to_string(InitialPacketKind kind) {
  switch (kind) {
    case InitialPacketKind::SSLRequest:
      return "SSLRequest";
    case InitialPacketKind::GSSENCRequest:
      return "GSSENCRequest";
    case InitialPacketKind::CancelRequest:
      return "CancelRequest";
    case InitialPacketKind::StartupMessage:
      return "StartupMessage";
    case InitialPacketKind::PeerCancelRequest:
      return "PeerCancelRequest";
  }
  return "unknown";
}

}  // namespace pgmtls::protocol
