// Frontend (client) messages of the extended query protocol that pgmtls rewrites in
// pool_mode: transaction, where a client's prepared statements must follow it from one backend
// connection to the next: reading their statement names, and writing them with other names.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "protocol/message.h"
#include "protocol/result.h"

namespace pgmtls::protocol {

namespace frontend_type {
inline constexpr char kBind = 'B';
inline constexpr char kClose = 'C';
inline constexpr char kCopyData = 'd';
inline constexpr char kCopyDone = 'c';
inline constexpr char kCopyFail = 'f';
inline constexpr char kDescribe = 'D';
inline constexpr char kExecute = 'E';
inline constexpr char kFlush = 'H';
inline constexpr char kFunctionCall = 'F';
inline constexpr char kParse = 'P';
inline constexpr char kQuery = 'Q';
inline constexpr char kSync = 'S';
inline constexpr char kTerminate = 'X';
}  // namespace frontend_type

// Parse ('P'): the statement name (empty: the unnamed statement), the query text, and the bytes
// after it (the parameter type count and OIDs).
struct ParseFields {
  std::string_view statement;
  std::string_view query;
  Bytes parameter_types;
};
std::optional<ParseFields> parse_fields(const Message& message);

// Bind ('B'): the portal and statement names, and the bytes after them (formats, values,
// result formats).
struct BindFields {
  std::string_view portal;
  std::string_view statement;
  Bytes rest;
};
std::optional<BindFields> bind_fields(const Message& message);

// Describe ('D') and Close ('C'): 'S' for a prepared statement or 'P' for a portal, and its name.
struct TargetFields {
  char kind = 0;
  std::string_view name;
};
std::optional<TargetFields> target_fields(const Message& message);

// Simple Query ('Q'): the query text (without its terminating NUL); nullopt if there is none.
std::optional<std::string_view> query_text(const Message& message);

// Writers that append one complete message to `out` (no allocation once `out` has grown).
void append_parse(std::vector<std::uint8_t>& out, std::string_view statement,
                  std::string_view query, Bytes parameter_types);
void append_bind(std::vector<std::uint8_t>& out, std::string_view portal,
                 std::string_view statement, Bytes rest);
// Bind with no parameters and no result formats.
void append_bind(std::vector<std::uint8_t>& out, std::string_view portal,
                 std::string_view statement);
// Describe or Close (`type` 'D' or 'C') of a statement ('S') or portal ('P').
void append_target(std::vector<std::uint8_t>& out, char type, char kind, std::string_view name);
void append_sync(std::vector<std::uint8_t>& out);

// Cuts a client's byte stream into what pool_mode: transaction handles: messages of the types
// `whole` selects come out whole (gathered across reads when a read splits them), the others as
// they arrive, their header first and then their body in pieces, so a large CopyData never waits
// to be complete.
class FrontendSplitter {
 public:
  struct Piece {
    enum class Kind {
      need_more,  // all of the input was taken; nothing to hand out yet
      whole,      // `bytes` is one whole message, header included
      start,      // `bytes` is the 5-byte header of a message whose body follows as `body`
      body,       // `bytes` are body bytes of the current streamed message
      error,      // a length below 4, or a whole message above the limit: the stream is lost
    };
    Kind kind = Kind::need_more;
    char type = 0;
    Bytes bytes;           // valid until the next call of next()
    std::size_t used = 0;  // bytes of the input consumed
  };

  FrontendSplitter(bool (*whole)(char type), std::size_t max_whole)
      : whole_(whole), max_whole_(max_whole) {}

  // The next piece of `input` (the rest of a read: call again with what follows `used`).
  Piece next(Bytes input);
  // Between two messages: nothing of the next one taken yet (what was gathered was handed out).
  bool at_boundary() const { return body_left_ == 0 && (buf_.empty() || handed_out_); }

 private:
  bool (*whole_)(char);
  const std::size_t max_whole_;
  std::vector<std::uint8_t> buf_;  // a header, or a whole message, gathered across reads
  bool handed_out_ = false;        // buf_ was given out whole, to be cleared at the next call
  std::uint64_t body_left_ = 0;    // of the streamed message
  char type_ = 0;
};

}  // namespace pgmtls::protocol
