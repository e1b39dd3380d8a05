// Runs the pgmtls binary under test: `pgmtls run --config FILE`, with its log captured line by
// line on a reader thread, and `pgmtls check --config FILE`.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support/process.h"

namespace pgmtls::integration {

// The path of the pgmtls binary ($PGMTLS_BINARY overrides the one CMake built).
std::string pgmtls_binary();

// The parts of a pgmtls YAML config the tests vary.
struct ProxyConfig {
  std::string listen = "127.0.0.1:0";
  unsigned workers = 2;
  std::string startup_timeout = "10s";
  // Short, so that stopping pgmtls at the end of a test (SIGTERM: a drain) never waits long on a
  // session that is still open.
  std::string shutdown_timeout = "3s";
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  std::string crl_file;    // empty: none
  std::string crl_dir;     // empty: none
  std::string tls_yaml;    // more tls: keys, verbatim (indented by two spaces), or empty
  std::string map;         // empty: no map (CN must equal the role)
  std::string maps_yaml;   // verbatim YAML for `maps:` entries (already indented), or empty
  std::string ident_file;  // empty: none
  std::string backend_host = "127.0.0.1";
  std::uint16_t backend_port = 5432;
  std::string backend_connect_timeout = "5s";
  std::string more_backends_yaml;  // more entries under backends: (indented by two), or empty
  std::string log_level = "info";
  std::string log_format;  // empty: the default (text)
  std::string extra_yaml;  // appended verbatim at the top level

  std::string to_yaml() const;
};

class PgmtlsProcess {
 public:
  // Writes `yaml` to `config_path`, starts pgmtls and waits (bounded) for its
  // "listening on 127.0.0.1:PORT" line. Throws with the captured log if it does not appear.
  PgmtlsProcess(const std::string& config_path, const std::string& yaml,
                std::chrono::milliseconds startup_timeout = std::chrono::seconds(20));
  PgmtlsProcess(const PgmtlsProcess&) = delete;
  PgmtlsProcess& operator=(const PgmtlsProcess&) = delete;
  // SIGTERM, then waits up to 10 s; SIGKILL and a test failure if it does not exit, or if it
  // exits other than cleanly.
  ~PgmtlsProcess();

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return child_->pid(); }
  bool running();
  void signal(int sig) const { child_->signal(sig); }
  // For tests that stop pgmtls themselves: waits up to `timeout` for it to exit; its exit code,
  // or nullopt if it is still running (or died by a signal: -signal).
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);

  // The number of log lines so far: a mark to search from.
  std::size_t log_mark() const;
  std::vector<std::string> log_lines(std::size_t since = 0) const;
  std::string log_text(std::size_t since = 0) const;
  // Waits for a log line (at index >= since) that contains every one of `needles`.
  std::optional<std::string> wait_for_log(const std::vector<std::string>& needles,
                                          std::chrono::milliseconds timeout,
                                          std::size_t since = 0) const;

 private:
  void read_log(int fd);

  std::unique_ptr<ChildProcess> child_;
  std::thread reader_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::uint16_t port_ = 0;
  bool stopped_by_test_ = false;
};

// `pgmtls check --config FILE`.
CommandResult run_pgmtls_check(const std::string& config_path);

}  // namespace pgmtls::integration
