// pool_mode: transaction keeps a client's prepared statements working while its transactions run
// on whichever backend connection is free. The client's statement names never reach a backend:
// a named statement is prepared there as "pgmtls_" + a hash of its query text and parameter
// types, so clients preparing the same query share one server-side statement per connection.
// Before a Bind or Describe needs a statement the connection has not seen, its Parse is sent
// first, and the ParseComplete that answers it is kept from the client. Each connection keeps at
// most max_prepared_statements of them, closing the least recently used.
//
// Responses are matched to requests by order: every Parse and Close sent gets exactly one
// ParseComplete or CloseComplete, unless an error skips the rest of its Sync's segment. So the
// router remembers, for each Parse and Close it sent, what to do with its answer, in order, and
// which segment it belongs to; an ErrorResponse forgets the rest of its segment. A client's Parse
// of a statement the connection already has becomes a Close of a name nobody uses (its
// CloseComplete goes to the client as the ParseComplete it expects), so the client's answers keep
// their order without pgmtls ever having to insert one.
//
// A command that keeps session state (SET, LISTEN, ...: protocol/session_features.h) is refused:
// it becomes a Bind of a statement that does not exist, and the error that answers it is replaced
// with pgmtls's own; the backend skips to the Sync as it would after any error, so the client
// sees exactly PostgreSQL's behaviour for a failed command, in or out of a transaction.
//
// No I/O: the session feeds client messages in and backend bytes through, and writes what comes
// out. One router per client session; the per-connection state (BackendStatements) moves with
// the backend connection from client to client.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/message.h"
#include "protocol/result.h"

namespace pgmtls::proxy {

// What one backend connection holds: pgmtls's statements on it, and whose unnamed statement.
struct BackendStatements {
  enum class State { prepared, pending, uncertain };
  struct Entry {
    State state = State::pending;
    std::uint64_t segment = 0;  // when pending: the segment of the Parse that creates it
    std::list<std::string>::iterator lru;
  };
  std::list<std::string> lru;  // most recently used first
  std::unordered_map<std::string, Entry> names;
  // The client session and its Parse generation that prepared the unnamed statement.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> unnamed_owner;
};

class StatementRouter {
 public:
  // The statement name no Parse ever creates: Closing it yields a harmless CloseComplete, Binding
  // it a harmless error.
  static constexpr std::string_view kNoStatement = "pgmtls_unprepared";

  StatementRouter(std::uint64_t session_id, std::size_t max_prepared)
      : session_id_(session_id), max_prepared_(max_prepared) {}

  // The backend connection the next messages go to (its state lives with it); none in between.
  // Attach only between transactions: with nothing outstanding.
  void attach(BackendStatements& backend);
  void detach();
  bool attached() const { return backend_ != nullptr; }

  // Whether `type` is a client message the router must see whole (the rest pass through as they
  // come, and are given to passthrough() to count segments).
  static bool rewrites(char type);
  // Appends what goes to the backend for a whole client message of a type that rewrites().
  void client_message(const protocol::Message& message, std::vector<std::uint8_t>& out);
  // A client message of any other type starts: Sync and FunctionCall end a segment.
  void passthrough(char type);

  // Appends the bytes of `chunk` of the backend's stream that go to the client.
  void backend_bytes(protocol::Bytes chunk, std::vector<std::uint8_t>& out);
  // Every answer expected is in: the connection can serve another client.
  bool settled() const { return events_.empty() && have_ == 0 && remaining_ == 0; }
  // The backend's answers no longer match what was sent: the connection must be closed.
  bool broken() const { return broken_; }

  // The server-side name of the client's statement `name` (a hash of the query text and
  // parameter types); exposed for tests.
  static std::string server_name(std::string_view query, protocol::Bytes parameter_types);

 private:
  struct Event {
    char expect = 0;  // '1' ParseComplete, '3' CloseComplete, 'E' ErrorResponse
    enum class Action { forward, swallow, as_parse_complete, replace_error } action{};
    std::uint64_t segment = 0;
    std::string prepares;        // a Parse: the name it creates on the connection
    bool was_uncertain = false;  // ... which may already have been there
    std::string closes;          // an eviction Close: the name it removes
    bool prepares_unnamed = false;
    // Answers the client's Parse of this statement (its generation): gone if the Parse fails.
    std::string client_statement;
    std::uint64_t client_generation = 0;
    std::vector<std::uint8_t> error;  // replace_error: the ErrorResponse the client gets
  };
  struct ClientStatement {
    std::string server_name;
    std::vector<std::uint8_t> parse;  // the Parse message with the server name
    std::uint64_t generation = 0;     // which of the client's Parses of this name
    bool confirmed = false;           // its ParseComplete came
  };

  void send_close(std::vector<std::uint8_t>& out, std::string_view name, Event event);
  // Makes `name` (of the client's statement `statement`) usable by the next message.
  void ensure(const ClientStatement& statement, std::vector<std::uint8_t>& out);
  void ensure_unnamed(std::vector<std::uint8_t>& out);
  void make_room(std::vector<std::uint8_t>& out);
  void touch(BackendStatements::Entry& entry);
  void refuse(std::string_view feature, std::vector<std::uint8_t>& out);
  // The client gets `error` in place of the backend's answer to a Bind of kNoStatement.
  void fail(std::vector<std::uint8_t> error, std::vector<std::uint8_t>& out);

  // Backend side: one header, then the end of a buffered ErrorResponse.
  void on_header(char type, std::vector<std::uint8_t>& out);
  void on_error_buffered(std::vector<std::uint8_t>& out);
  void confirm(const Event& event);
  void drop(const Event& event);
  void abort_segment();

  const std::uint64_t session_id_;
  const std::size_t max_prepared_;
  BackendStatements* backend_ = nullptr;
  using ClientStatements = std::unordered_map<std::string, ClientStatement>;
  // The client's statement whose Parse `event` answers, if that Parse is still its latest.
  ClientStatements::iterator parsed_by(const Event& event);
  ClientStatements statements_;        // by the client's name
  std::vector<std::uint8_t> unnamed_;  // the client's last unnamed Parse, if it stands
  std::uint64_t unnamed_generation_ = 0;
  std::uint64_t parse_generation_ = 0;
  std::deque<Event> events_;
  std::uint64_t sent_segments_ = 0;  // Sync, Query and FunctionCall sent on this connection
  std::uint64_t done_segments_ = 0;  // ReadyForQuery received on it

  // Following the backend's stream.
  enum class Mode { forward, skip, buffer };
  std::uint8_t header_[5] = {};
  std::size_t have_ = 0;
  std::uint64_t remaining_ = 0;
  Mode mode_ = Mode::forward;
  std::vector<std::uint8_t> error_buf_;
  bool broken_ = false;
};

}  // namespace pgmtls::proxy
