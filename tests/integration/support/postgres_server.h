// A throw-away PostgreSQL server for integration tests: initdb into a temp dir, trust auth on
// 127.0.0.1, a free port, stopped (fast shutdown) and removed on destruction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/support/process.h"

namespace pgmtls::integration {

struct PostgresOptions {
  // Extra server settings as "name=value", each passed as `-c name=value` after the defaults
  // (so they win), e.g. "ssl=on", "ssl_ca_file=root.crt".
  std::vector<std::string> settings;
  // Files written into the data directory before the server starts, owned by the server's user
  // with mode 0600: plain file name (no '/') -> content. "pg_hba.conf" and "pg_ident.conf" replace
  // the defaults (trust on 127.0.0.1 and for local connections). Relative paths in settings such
  // as ssl_cert_file, and @file references in pg_hba.conf, resolve against the data directory.
  std::map<std::string, std::string> data_files;
  // A streaming-replication standby of this server instead of a new cluster: its data directory
  // is a pg_basebackup -R of the primary (pg_hba.conf included), so it follows the primary's
  // roles and data. With "hot_standby=off" in settings it refuses every connection with 57P03;
  // the constructor then waits until it says so rather than until it accepts.
  const class PostgresServer* standby_of = nullptr;
};

class PostgresServer {
 public:
  // Throws std::runtime_error (with the server's log) if it cannot be started within ~30 s.
  PostgresServer();
  explicit PostgresServer(const PostgresOptions& options);
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  ~PostgresServer();

  std::uint16_t port() const { return port_; }
  // A libpq conninfo for the superuser over TCP.
  std::string conninfo(const std::string& dbname = "postgres") const;
  // A libpq conninfo for the superuser over the Unix-domain socket (a `local` pg_hba.conf line).
  std::string socket_conninfo(const std::string& dbname = "postgres") const;
  // Runs SQL as the superuser over the Unix-domain socket, so it works whatever pg_hba.conf says
  // about TCP as long as it trusts `local` connections of the superuser (the default one does).
  // Returns the first value of the last result, if any. Throws with the server's message on
  // failure.
  std::optional<std::string> exec(const std::string& sql) const;
  void create_login_role(const std::string& name) const;
  std::string log() const;  // the server's stderr so far
  const std::string& data_dir() const { return data_dir_; }

 private:
  bool start_on_free_port(std::string& failure);
  void create_cluster();
  void clone_primary();
  bool refuses_connections() const;

  PostgresOptions options_;
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
