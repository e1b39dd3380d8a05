// A throw-away PostgreSQL server for integration tests: initdb into a temp dir, trust auth on
// 127.0.0.1, a free port, stopped (fast shutdown) and removed on destruction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tests/integration/support/process.h"

namespace pgmtls::integration {

class PostgresServer {
 public:
  // Throws std::runtime_error (with the server's log) if it cannot be started within ~30 s.
  PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  ~PostgresServer();

  std::uint16_t port() const { return port_; }
  // A libpq conninfo for the superuser over TCP.
  std::string conninfo(const std::string& dbname = "postgres") const;
  // Runs SQL as the superuser; returns the first value of the last result, if any. Throws with
  // the server's message on failure.
  std::optional<std::string> exec(const std::string& sql) const;
  void create_login_role(const std::string& name) const;
  std::string log() const;  // the server's stderr so far

 private:
  bool start_on_free_port(std::string& failure);

  std::string base_dir_;
  std::string data_dir_;
  std::uint16_t port_ = 0;
  std::optional<std::pair<uid_t, gid_t>> run_as_;
  std::unique_ptr<ChildProcess> server_;
};

// The directory holding initdb and postgres: $PGMTLS_PG_BINDIR, else the build's default.
std::string postgres_bindir();

// A TCP port on 127.0.0.1 that nothing listens on right now.
std::uint16_t free_tcp_port();

}  // namespace pgmtls::integration
