// Clients for integration tests: libpq (the real thing, with every wait bounded) and a raw TCP
// socket for speaking broken protocol on purpose.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {

struct PgConnFree {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using PgConn = std::unique_ptr<PGconn, PgConnFree>;

struct ConnectResult {
  PgConn conn;        // set on success
  std::string error;  // libpq's message on failure; verbose, so it carries the SQLSTATE

  bool ok() const { return conn != nullptr; }
};

// Connects without blocking past `timeout` (PQconnectStart + PQconnectPoll).
ConnectResult pg_connect(const std::string& conninfo,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));

// sslmode=verify-full against `root_ca_file`; `client` null: no client certificate.
std::string tls_conninfo(std::uint16_t port, const std::string& root_ca_file,
                         const ClientCertificate* client, const std::string& user,
                         const std::string& dbname = "postgres");
std::string plaintext_conninfo(std::uint16_t port, const std::string& user,
                               const std::string& dbname = "postgres");

struct QueryResult {
  std::optional<std::string> value;  // the first column of the first row
  std::string error;                 // empty on success

  bool ok() const { return error.empty(); }
};

// Waits at most `timeout` for every result of the query in flight on `conn`.
QueryResult wait_for_result(PGconn* conn,
                            std::chrono::milliseconds timeout = std::chrono::seconds(20));
// Runs one statement (with text parameters) and waits at most `timeout` for its result.
QueryResult query(PGconn* conn, const std::string& sql, const std::vector<std::string>& params = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A plain TCP connection to 127.0.0.1:port.
class RawSocket {
 public:
  enum class End { complete, eof, reset, timeout };
  struct Read {
    std::string data;
    End end = End::complete;

    bool closed() const { return end == End::eof || end == End::reset; }
  };

  explicit RawSocket(std::uint16_t port);  // throws if it cannot connect
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
  ~RawSocket();

  bool send(std::string_view bytes);  // false if the peer is gone
  // Reads until `count` bytes arrived, the peer closed, or `timeout`.
  Read read_exactly(std::size_t count, std::chrono::milliseconds timeout);
  // Reads everything until the peer closes, or `timeout`.
  Read read_until_closed(std::chrono::milliseconds timeout);
  void close();

 private:
  Read read(std::optional<std::size_t> count, std::chrono::milliseconds timeout);

  int fd_ = -1;
};

const char* to_string(RawSocket::End end);

std::string be32(std::uint32_t value);
std::string ssl_request();     // length 8, code 80877103
std::string gssenc_request();  // length 8, code 80877104
// A protocol 3.0 StartupMessage.
std::string startup_message(const std::string& user, const std::string& dbname);
// The first flight of a real TLS client (a ClientHello record).
std::string tls_client_hello();

}  // namespace pgmtls::integration
