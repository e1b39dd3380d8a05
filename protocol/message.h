// Regular (typed) protocol messages: Byte1 type, Int32 length (including itself), payload.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
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

// The process id and secret key of a BackendKeyData ('K') message of protocol 3.0; nullopt if its
// payload is not exactly 8 bytes.
std::optional<std::pair<std::uint32_t, std::uint32_t>> backend_key(const Message& message);

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

// Follows message boundaries in a stream relayed as opaque chunks, without copying or buffering:
// where each message ends, and the transaction status of the last ReadyForQuery. The relay uses it
// to end a session cleanly (a FATAL ErrorResponse may only go between two messages) and to tell
// an idle session from one waiting for a result.
class MessageBoundaries {
 public:
  // Follows the bytes of `chunk`. With `stop_at_boundary`, stops at the first message boundary
  // in it (offset 0 when the stream is between messages already) and returns its offset;
  // otherwise follows the whole chunk and returns its size. A length field below 4 makes the
  // stream unfollowable: broken() turns true and no boundary is ever reported again.
  std::size_t follow(Bytes chunk, bool stop_at_boundary = false);

  // Between two messages (nothing of the next one seen yet).
  bool at_boundary() const { return !broken_ && remaining_ == 0 && header_have_ == 0; }
  bool broken() const { return broken_; }
  // The status byte of the last complete ReadyForQuery ('I' idle, 'T' in a transaction, 'E' in
  // a failed one), or `initial` given at construction until one is seen.
  char transaction_status() const { return status_; }
  // How many ReadyForQuery messages were seen (on a backend stream).
  std::uint64_t ready_count() const { return ready_count_; }
  // How many messages that each get one ReadyForQuery were seen (on a frontend stream): Query,
  // Sync and FunctionCall.
  std::uint64_t requests() const { return requests_; }
  // The type byte of the last message whose header was complete (0 before any).
  char last_type() const { return last_type_; }

  explicit MessageBoundaries(char initial = 0) : status_(initial) {}

 private:
  std::uint8_t header_[5] = {};
  std::size_t header_have_ = 0;
  std::uint64_t remaining_ = 0;  // body bytes of the current message still to come
  bool want_status_ = false;     // the next body byte is a ReadyForQuery's status
  bool broken_ = false;
  char status_ = 0;
  char last_type_ = 0;
  std::uint64_t ready_count_ = 0;
  std::uint64_t requests_ = 0;
};

}  // namespace pgmtls::protocol
