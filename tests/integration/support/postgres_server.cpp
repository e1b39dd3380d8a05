#include "tests/integration/support/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#ifndef PGMTLS_PG_BINDIR_DEFAULT
#define PGMTLS_PG_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"
#endif

namespace pgmtls::integration {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int open_log(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  return fd;
}

std::string quote_identifier(const std::string& name) {
  std::string quoted = "\"";
  for (const char c : name)
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

std::string postgres_bindir() {
  const char* dir = std::getenv("PGMTLS_PG_BINDIR");
  return dir && *dir ? dir : PGMTLS_PG_BINDIR_DEFAULT;
}

std::uint16_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const std::string message = std::string("bind 127.0.0.1:0: ") + std::strerror(errno);
    ::close(fd);
    throw std::runtime_error(message);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

PostgresServer::PostgresServer() : PostgresServer(PostgresOptions{}) {}

PostgresServer::PostgresServer(const PostgresOptions& options) : options_(options) {
  base_dir_ = make_temp_dir("pgmtls-pg");
  data_dir_ = base_dir_ + "/data";
  try {
    // initdb and postgres refuse to run as root.
    if (::geteuid() == 0) {
      run_as_ = lookup_user("postgres");
      if (!run_as_) throw std::runtime_error("running as root and there is no \"postgres\" user");
      if (::chown(base_dir_.c_str(), run_as_->first, run_as_->second) != 0) {
        throw std::runtime_error("chown " + base_dir_ + ": " + std::strerror(errno));
      }
    }
    if (options_.standby_of) {
      clone_primary();
    } else {
      create_cluster();
    }
    // pgmtls reaches the server over plain TCP and trusts it to accept the mapped role; a
    // standby replicates over TCP too. A standby keeps the pg_hba.conf it copied.
    std::map<std::string, std::string> files;
    if (!options_.standby_of) {
      files["pg_hba.conf"] =
          "local all all trust\n"
          "host all all 127.0.0.1/32 trust\n"
          "host replication all 127.0.0.1/32 trust\n";
    }
    for (const auto& [name, content] : options_.data_files) {
      if (name.empty() || name.find('/') != std::string::npos) {
        throw std::invalid_argument("data file name \"" + name + "\" is not a plain file name");
      }
      files[name] = content;
    }
    for (const auto& [name, content] : files) {
      const std::string path = data_dir_ + "/" + name;
      write_text_file(path, content, 0600);
      if (run_as_ && ::chown(path.c_str(), run_as_->first, run_as_->second) != 0) {
        throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
      }
    }
    std::string failure;
    // A free port can be taken between probing and binding; try a few.
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (start_on_free_port(failure)) return;
    }
    throw std::runtime_error(failure);
  } catch (...) {
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(base_dir_, ignored);
    throw;
  }
}

namespace {

// Runs a server tool as the server's user, its output into `log_path`; throws with that output
// if it fails or takes over a minute.
void run_tool(const std::vector<std::string>& argv, std::optional<std::pair<uid_t, gid_t>> run_as,
              const std::string& log_path) {
  const int log_fd = open_log(log_path);
  ChildProcess tool(SpawnOptions{argv, run_as, log_fd, log_fd});
  ::close(log_fd);
  if (!tool.wait_for_exit(std::chrono::seconds(60))) {
    throw std::runtime_error(argv[0] + " did not finish within 60 s:\n" + read_file(log_path));
  }
  if (!WIFEXITED(*tool.wait_status()) || WEXITSTATUS(*tool.wait_status()) != 0) {
    throw std::runtime_error(argv[0] + " " + tool.describe_status() + ":\n" + read_file(log_path));
  }
}

}  // namespace

void PostgresServer::create_cluster() {
  run_tool({postgres_bindir() + "/initdb", "-D", data_dir_, "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8", "--locale=C"},
           run_as_, base_dir_ + "/initdb.log");
}

void PostgresServer::clone_primary() {
  // -R writes standby.signal and primary_conninfo; -X stream copies the WAL the backup needs.
  run_tool({postgres_bindir() + "/pg_basebackup", "-D", data_dir_, "-h", "127.0.0.1", "-p",
            std::to_string(options_.standby_of->port()), "-U", "postgres", "-R", "-X", "stream",
            "--no-sync", "-c", "fast"},
           run_as_, base_dir_ + "/pg_basebackup.log");
}

bool PostgresServer::refuses_connections() const {
  for (const auto& setting : options_.settings) {
    if (setting == "hot_standby=off") return true;
  }
  return false;
}

bool PostgresServer::start_on_free_port(std::string& failure) {
  port_ = free_tcp_port();
  const int log_fd = open_log(base_dir_ + "/postgres.log");
  std::vector<std::string> argv{postgres_bindir() + "/postgres",
                                "-D",
                                data_dir_,
                                "-p",
                                std::to_string(port_),
                                "-k",
                                base_dir_,
                                "-c",
                                "listen_addresses=127.0.0.1",
                                "-c",
                                "fsync=off",
                                "-c",
                                "synchronous_commit=off",
                                "-c",
                                "full_page_writes=off",
                                "-c",
                                "max_connections=200",
                                "-c",
                                "shared_buffers=32MB"};
  for (const auto& setting : options_.settings) {
    argv.push_back("-c");
    argv.push_back(setting);
  }
  try {
    server_ = std::make_unique<ChildProcess>(SpawnOptions{argv, run_as_, log_fd, log_fd});
  } catch (...) {
    ::close(log_fd);
    throw;
  }
  ::close(log_fd);
  const std::string ping = conninfo() + " connect_timeout=2";
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const PGPing answer = PQping(ping.c_str());
    if (answer == PQPING_OK) return true;
    // The server listens, and refuses connections (57P03) as it was meant to.
    if (answer == PQPING_REJECT && refuses_connections()) return true;
    // Paces the next ping and notices at once if the server gave up (a taken port, say).
    if (server_->wait_for_exit(std::chrono::milliseconds(50))) {
      failure = "postgres " + server_->describe_status() + " on port " + std::to_string(port_) +
                ":\n" + log();
      server_.reset();
      return false;
    }
  }
  throw std::runtime_error("postgres did not accept connections within 30 s:\n" + log());
}

PostgresServer::~PostgresServer() {
  if (server_) {
    server_->signal(SIGINT);  // fast shutdown
    server_->wait_for_exit(kStopTimeout);
    server_.reset();  // SIGKILL if it is still there
  }
  std::error_code ignored;
  std::filesystem::remove_all(base_dir_, ignored);
}

std::string PostgresServer::conninfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname +
         " sslmode=disable";
}

std::string PostgresServer::socket_conninfo(const std::string& dbname) const {
  return "host=" + base_dir_ + " port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

std::optional<std::string> PostgresServer::exec(const std::string& sql) const {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(
      PQconnectdb((socket_conninfo() + " connect_timeout=10").c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to postgres: " +
                             std::string(PQerrorMessage(conn.get())));
  }
  std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn.get(), sql.c_str()), &PQclear);
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error(sql + ": " + PQresultErrorMessage(result.get()));
  }
  if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0 && PQnfields(result.get()) > 0 &&
      !PQgetisnull(result.get(), 0, 0)) {
    return std::string(PQgetvalue(result.get(), 0, 0));
  }
  return std::nullopt;
}

void PostgresServer::create_login_role(const std::string& name) const {
  exec("CREATE ROLE " + quote_identifier(name) + " LOGIN");
}

std::string PostgresServer::log() const {
  return read_file(base_dir_ + "/postgres.log");
}

}  // namespace pgmtls::integration
