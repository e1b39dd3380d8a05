#include "protocol/frontend.h"

#include <cstring>

namespace pgmtls::protocol {

namespace {

// Reads a NUL-terminated string at `at`, moving `at` past the NUL.
std::optional<std::string_view> cstring(Bytes payload, std::size_t& at) {
  if (at > payload.size()) return std::nullopt;
  const auto* begin = payload.data() + at;
  const auto* nul = static_cast<const std::uint8_t*>(std::memchr(begin, 0, payload.size() - at));
  if (nul == nullptr) return std::nullopt;
  const std::string_view s(reinterpret_cast<const char*>(begin),
                           static_cast<std::size_t>(nul - begin));
  at += s.size() + 1;
  return s;
}

void append_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void append_cstring(std::vector<std::uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
}

// Writes the type and a length placeholder; returns where the length goes.
std::size_t begin_message(std::vector<std::uint8_t>& out, char type) {
  out.push_back(static_cast<std::uint8_t>(type));
  const std::size_t at = out.size();
  append_u32(out, 0);
  return at;
}

void end_message(std::vector<std::uint8_t>& out, std::size_t length_at) {
  const auto length = static_cast<std::uint32_t>(out.size() - length_at);
  for (int i = 0; i < 4; ++i)
    out[length_at + i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
}

}  // namespace

std::optional<ParseFields> parse_fields(const Message& message) {
  if (message.type != frontend_type::kParse) return std::nullopt;
  std::size_t at = 0;
  auto statement = cstring(message.payload, at);
  if (!statement) return std::nullopt;
  auto query = cstring(message.payload, at);
  if (!query) return std::nullopt;
  const Bytes types = message.payload.subspan(at);
  // Int16 count, then that many Int32 OIDs.
  if (types.size() < 2 || types.size() != 2 + 4 * std::size_t{read_u16(types.data())}) {
    return std::nullopt;
  }
  return ParseFields{*statement, *query, types};
}

std::optional<BindFields> bind_fields(const Message& message) {
  if (message.type != frontend_type::kBind) return std::nullopt;
  std::size_t at = 0;
  auto portal = cstring(message.payload, at);
  if (!portal) return std::nullopt;
  auto statement = cstring(message.payload, at);
  if (!statement) return std::nullopt;
  return BindFields{*portal, *statement, message.payload.subspan(at)};
}

std::optional<TargetFields> target_fields(const Message& message) {
  if (message.type != frontend_type::kDescribe && message.type != frontend_type::kClose) {
    return std::nullopt;
  }
  if (message.payload.empty()) return std::nullopt;
  const char kind = static_cast<char>(message.payload[0]);
  if (kind != 'S' && kind != 'P') return std::nullopt;
  std::size_t at = 1;
  auto name = cstring(message.payload, at);
  if (!name || at != message.payload.size()) return std::nullopt;
  return TargetFields{kind, *name};
}

std::optional<std::string_view> query_text(const Message& message) {
  if (message.type != frontend_type::kQuery) return std::nullopt;
  std::size_t at = 0;
  return cstring(message.payload, at);
}

void append_parse(std::vector<std::uint8_t>& out, std::string_view statement,
                  std::string_view query, Bytes parameter_types) {
  const auto at = begin_message(out, frontend_type::kParse);
  append_cstring(out, statement);
  append_cstring(out, query);
  out.insert(out.end(), parameter_types.begin(), parameter_types.end());
  end_message(out, at);
}

void append_bind(std::vector<std::uint8_t>& out, std::string_view portal,
                 std::string_view statement, Bytes rest) {
  const auto at = begin_message(out, frontend_type::kBind);
  append_cstring(out, portal);
  append_cstring(out, statement);
  out.insert(out.end(), rest.begin(), rest.end());
  end_message(out, at);
}

void append_bind(std::vector<std::uint8_t>& out, std::string_view portal,
                 std::string_view statement) {
  static constexpr std::uint8_t kNothing[] = {0, 0, 0, 0, 0, 0};  // no formats, values, results
  append_bind(out, portal, statement, Bytes(kNothing, sizeof kNothing));
}

void append_target(std::vector<std::uint8_t>& out, char type, char kind, std::string_view name) {
  const auto at = begin_message(out, type);
  out.push_back(static_cast<std::uint8_t>(kind));
  append_cstring(out, name);
  end_message(out, at);
}

void append_sync(std::vector<std::uint8_t>& out) {
  begin_message(out, frontend_type::kSync);
  out.back() = 4;
}

}  // namespace pgmtls::protocol
