#include "protocol/builders.h"

#include "protocol/initial_packet.h"

namespace pgmtls::protocol {

namespace {

class Writer {
 public:
  explicit Writer(char type) {
    if (type != 0) out_.push_back(static_cast<std::uint8_t>(type));
    length_at_ = out_.size();
    u32(0);  // patched by finish()
  }
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u32(std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out_.push_back(static_cast<std::uint8_t>(v >> shift));
  }
  void bytes(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void cstring(std::string_view s) {
    out_.insert(out_.end(), s.begin(), s.end());
    out_.push_back(0);
  }
  std::vector<std::uint8_t> finish() && {
    const auto length = static_cast<std::uint32_t>(out_.size() - length_at_);
    for (int i = 0; i < 4; ++i)
      out_[length_at_ + i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
    return std::move(out_);
  }

 private:
  std::vector<std::uint8_t> out_;
  std::size_t length_at_ = 0;
};

// NUL bytes inside a field would end it early on the peer's side; drop them.
std::string without_nul(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '\0') out.push_back(c);
  }
  return out;
}

}  // namespace

std::vector<std::uint8_t> error_response(const ErrorFields& fields) {
  Writer w('E');
  auto field = [&](char type, std::string_view value) {
    if (value.empty()) return;
    w.u8(static_cast<std::uint8_t>(type));
    w.cstring(without_nul(value));
  };
  field('S', fields.severity);
  field('V', fields.severity);
  field('C', fields.sqlstate);
  field('M', fields.message);
  field('D', fields.detail);
  field('H', fields.hint);
  w.u8(0);
  return std::move(w).finish();
}

std::vector<std::uint8_t> startup_message(
    const std::vector<std::pair<std::string, std::string>>& parameters) {
  Writer w(0);
  w.u32(3u << 16);
  for (const auto& [name, value] : parameters) {
    w.cstring(without_nul(name));
    w.cstring(without_nul(value));
  }
  w.u8(0);
  return std::move(w).finish();
}

std::vector<std::uint8_t> negotiate_protocol_version(std::uint32_t newest_minor,
                                                     const std::vector<std::string>& unrecognized) {
  Writer w('v');
  w.u32(newest_minor);
  w.u32(static_cast<std::uint32_t>(unrecognized.size()));
  for (const auto& name : unrecognized)
    w.cstring(without_nul(name));
  return std::move(w).finish();
}

std::vector<std::uint8_t> terminate_message() {
  return std::move(Writer('X')).finish();
}

std::vector<std::uint8_t> query_message(std::string_view sql) {
  Writer w('Q');
  w.cstring(without_nul(sql));
  return std::move(w).finish();
}

std::vector<std::uint8_t> ready_for_query(char status) {
  Writer w('Z');
  w.bytes(std::string_view(&status, 1));
  return std::move(w).finish();
}

std::vector<std::uint8_t> ssl_request() {
  Writer w(0);
  w.u32(kSSLRequestCode);
  return std::move(w).finish();
}

std::vector<std::uint8_t> cancel_request(std::uint32_t process_id, std::uint32_t secret_key) {
  Writer w(0);
  w.u32(kCancelRequestCode);
  w.u32(process_id);
  w.u32(secret_key);
  return std::move(w).finish();
}

std::vector<std::uint8_t> backend_key_data(std::uint32_t process_id, std::uint32_t secret_key) {
  Writer w('K');
  w.u32(process_id);
  w.u32(secret_key);
  return std::move(w).finish();
}

std::vector<std::uint8_t> password_message(std::string_view password) {
  Writer w('p');
  w.cstring(without_nul(password));
  return std::move(w).finish();
}

std::vector<std::uint8_t> sasl_initial_response(std::string_view mechanism, std::string_view data) {
  Writer w('p');
  w.cstring(without_nul(mechanism));
  w.u32(static_cast<std::uint32_t>(data.size()));
  w.bytes(data);
  return std::move(w).finish();
}

std::vector<std::uint8_t> sasl_response(std::string_view data) {
  Writer w('p');
  w.bytes(data);
  return std::move(w).finish();
}

}  // namespace pgmtls::protocol
