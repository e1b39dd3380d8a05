#include "protocol/frontend.h"

#include <algorithm>
#include <cstring>

#include "protocol/writer.h"

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
  Writer w(out, frontend_type::kParse);
  w.cstring(statement);
  w.cstring(query);
  w.bytes(parameter_types);
  w.end();
}

void append_bind(std::vector<std::uint8_t>& out, std::string_view portal,
                 std::string_view statement, Bytes rest) {
  Writer w(out, frontend_type::kBind);
  w.cstring(portal);
  w.cstring(statement);
  w.bytes(rest);
  w.end();
}

void append_bind(std::vector<std::uint8_t>& out, std::string_view portal,
                 std::string_view statement) {
  static constexpr std::uint8_t kNothing[] = {0, 0, 0, 0, 0, 0};  // no formats, values, results
  append_bind(out, portal, statement, Bytes(kNothing, sizeof kNothing));
}

void append_target(std::vector<std::uint8_t>& out, char type, char kind, std::string_view name) {
  Writer w(out, type);
  w.u8(static_cast<std::uint8_t>(kind));
  w.cstring(name);
  w.end();
}

void append_sync(std::vector<std::uint8_t>& out) {
  Writer(out, frontend_type::kSync).end();
}

FrontendSplitter::Piece FrontendSplitter::next(Bytes input) {
  using Kind = Piece::Kind;
  if (handed_out_) {
    buf_.clear();
    handed_out_ = false;
  }
  if (body_left_ > 0) {
    if (input.empty()) return {};
    const std::size_t take =
        static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, input.size()));
    body_left_ -= take;
    return {Kind::body, type_, input.first(take), take};
  }
  // The header: from the input when it is all there and nothing is gathered, else gathered.
  std::size_t used = 0;
  if (buf_.size() < 5) {
    if (buf_.empty() && input.size() >= 5) {
      const std::uint32_t length = read_u32(input.data() + 1);
      const char type = static_cast<char>(input[0]);
      if (length < 4 || (whole_(type) && length > max_whole_ - 1)) {
        return {Kind::error, type, {}, 0};
      }
      if (!whole_(type)) {
        body_left_ = length - 4;
        type_ = type;
        return {Kind::start, type, input.first(5), 5};
      }
      if (input.size() >= 1 + std::size_t{length}) {
        return {Kind::whole, type, input.first(1 + length), 1 + std::size_t{length}};
      }
    }
    used = std::min<std::size_t>(5 - buf_.size(), input.size());
    buf_.insert(buf_.end(), input.begin(), input.begin() + static_cast<std::ptrdiff_t>(used));
    if (buf_.size() < 5) return {Kind::need_more, 0, {}, used};
    const std::uint32_t length = read_u32(buf_.data() + 1);
    const char type = static_cast<char>(buf_[0]);
    if (length < 4 || (whole_(type) && length > max_whole_ - 1)) {
      return {Kind::error, type, {}, used};
    }
    if (!whole_(type)) {
      body_left_ = length - 4;
      type_ = type;
      handed_out_ = true;
      return {Kind::start, type, Bytes(buf_), used};
    }
  }
  // A whole message, gathered.
  const std::size_t total = 1 + std::size_t{read_u32(buf_.data() + 1)};
  const std::size_t take = std::min(total - buf_.size(), input.size() - used);
  buf_.insert(buf_.end(), input.begin() + static_cast<std::ptrdiff_t>(used),
              input.begin() + static_cast<std::ptrdiff_t>(used + take));
  used += take;
  if (buf_.size() < total) return {Kind::need_more, 0, {}, used};
  handed_out_ = true;
  return {Kind::whole, static_cast<char>(buf_[0]), Bytes(buf_), used};
}

}  // namespace pgmtls::protocol
