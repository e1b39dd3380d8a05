// Regular (typed) protocol messages: Byte1 type, Int32 length (including itself), payload.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "protocol/result.h"

namespace pgmtls::protocol {

// Backend message types pgmtls looks at during the startup phase.
namespace backend_type {
inline constexpr char kAuthentication = 'R';
inline constexpr char kBackendKeyData = 'K';
inline constexpr char kErrorResponse = 'E';
inline constexpr char kNegotiateProtocolVersion = 'v';
inline constexpr char kNoticeResponse = 'N';
inline constexpr char kParameterStatus = 'S';
inline constexpr char kReadyForQuery = 'Z';
}  // namespace backend_type

// Authentication request codes (the Int32 after the 'R' header).
namespace auth_code {
inline constexpr std::uint32_t kOk = 0;
inline constexpr std::uint32_t kKerberosV5 = 2;
inline constexpr std::uint32_t kCleartextPassword = 3;
inline constexpr std::uint32_t kMD5Password = 5;
inline constexpr std::uint32_t kGSS = 7;
inline constexpr std::uint32_t kGSSContinue = 8;
inline constexpr std::uint32_t kSSPI = 9;
inline constexpr std::uint32_t kSASL = 10;
inline constexpr std::uint32_t kSASLContinue = 11;
inline constexpr std::uint32_t kSASLFinal = 12;
}  // namespace auth_code

struct Message {
  char type = 0;
  Bytes payload;         // the bytes after the length field
  std::size_t size = 0;  // 1 + length: bytes the message occupies in the stream
};

// Parses one message from the start of `input`. A length below 4 or a payload above
// `max_payload` is an error as soon as the 5 header bytes are in, before anything is buffered.
Parsed<Message> parse_message(Bytes input, std::size_t max_payload);

// The code of an Authentication ('R') message, or nullopt if the payload is too short.
std::optional<std::uint32_t> authentication_code(const Message& message);

// The bytes of an Authentication message after its code (MD5 salt, SASL data).
Bytes authentication_data(const Message& message);

// The mechanism names of an AuthenticationSASL message (a list of strings ended by an empty one);
// nullopt if malformed.
std::optional<std::vector<std::string>> sasl_mechanisms(const Message& message);

// The fields of an ErrorResponse or NoticeResponse, keyed by field type ('S', 'C', 'M', ...).
// Malformed input yields the fields read so far.
std::map<char, std::string> parse_error_fields(Bytes payload);

// A human-readable description of an authentication request code, for errors and logs.
std::string authentication_name(std::uint32_t code);

}  // namespace pgmtls::protocol
