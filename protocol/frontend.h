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

}  // namespace pgmtls::protocol
