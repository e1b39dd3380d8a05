// Builders for the messages pgmtls itself sends. Each returns the complete wire bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmtls::protocol {

// ErrorResponse ('E'): severity (S and V), SQLSTATE (C), message (M), optional detail and hint.
struct ErrorFields {
  std::string_view severity = "FATAL";
  std::string_view sqlstate;
  std::string_view message;
  std::string_view detail;
  std::string_view hint;
};
std::vector<std::uint8_t> error_response(const ErrorFields& fields);

// StartupMessage for protocol 3.0 with the given parameters, in order.
std::vector<std::uint8_t> startup_message(
    const std::vector<std::pair<std::string, std::string>>& parameters);

// NegotiateProtocolVersion ('v'): the newest minor version supported and the options not
// recognized.
std::vector<std::uint8_t> negotiate_protocol_version(std::uint32_t newest_minor,
                                                     const std::vector<std::string>& unrecognized);

// Terminate ('X'), sent to a backend before closing a connection pgmtls opened.
std::vector<std::uint8_t> terminate_message();

// Query ('Q'): a simple-protocol query, such as the reset query of a pooled connection.
std::vector<std::uint8_t> query_message(std::string_view sql);

// ReadyForQuery ('Z') with a transaction status ('I', 'T' or 'E').
std::vector<std::uint8_t> ready_for_query(char status);

// SSLRequest, which pgmtls sends to a backend before its TLS handshake.
std::vector<std::uint8_t> ssl_request();

// CancelRequest (no type byte): asks the server that issued (process_id, secret_key) to cancel
// that session's query.
std::vector<std::uint8_t> cancel_request(std::uint32_t process_id, std::uint32_t secret_key);

// BackendKeyData ('K'): the key a client cancels its session with.
std::vector<std::uint8_t> backend_key_data(std::uint32_t process_id, std::uint32_t secret_key);

// PasswordMessage ('p') carrying a cleartext or MD5-hashed password.
std::vector<std::uint8_t> password_message(std::string_view password);

// SASLInitialResponse ('p'): the chosen mechanism and the client's first message.
std::vector<std::uint8_t> sasl_initial_response(std::string_view mechanism, std::string_view data);

// SASLResponse ('p'): a later client message of the SASL exchange.
std::vector<std::uint8_t> sasl_response(std::string_view data);

// The one-byte answers to SSLRequest and GSSENCRequest.
inline constexpr std::uint8_t kSSLAccepted = 'S';
inline constexpr std::uint8_t kEncryptionRefused = 'N';

}  // namespace pgmtls::protocol
