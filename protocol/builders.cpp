#include "protocol/builders.h"

#include "protocol/initial_packet.h"
#include "protocol/writer.h"

namespace pgmtls::protocol {

namespace {

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
