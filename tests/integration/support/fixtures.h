// Pieces shared by the integration test suites.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {

using namespace std::chrono_literals;

// How long a test waits for pgmtls to log what it did with a connection.
inline constexpr auto kLogTimeout = 10s;

// The ident map most suites use: exact names, an email regex, and numbered users.
inline constexpr const char* kCertMapYaml = R"(  certmap:
    - { identity: alice, role: alice }
    - { identity: "/^(.*)@example\\.com$", role: "\\1" }
    - { identity: carol, role: carol }
    - { identity: "/^(user[0-9]+)$", role: "\\1" }
)";

// PostgreSQL with TLS on, serving the test PKI's server certificate (for pgmtls's backend TLS).
inline PostgresOptions tls_postgres_options(const TestPki& pki) {
  auto contents = [](const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  };
  PostgresOptions options;
  options.settings = {"ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key"};
  options.data_files = {{"server.crt", contents(pki.server_cert_file())},
                        {"server.key", contents(pki.server_key_file())}};
  return options;
}

// A config for pgmtls in front of a backend on 127.0.0.1:backend_port: the test PKI's server
// certificate, the root as the only trusted CA, no CRL, no map.
inline ProxyConfig base_proxy_config(const TestPki& pki, std::uint16_t backend_port) {
  ProxyConfig config;
  config.cert_file = pki.server_cert_file();
  config.key_file = pki.server_key_file();
  config.ca_file = pki.root_ca_file();
  config.backend_port = backend_port;
  return config;
}

// 1-based number of the first line of `text` that starts with `prefix`; 0 if none.
inline int line_of(const std::string& text, const std::string& prefix) {
  int line = 1;
  for (std::size_t start = 0; start < text.size(); ++line) {
    if (text.compare(start, prefix.size(), prefix) == 0) return line;
    const std::size_t end = text.find('\n', start);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return 0;
}

// A suite with one PostgreSQL and one test PKI for all its tests and a pgmtls per test, whose log
// is printed when the test failed. `Suite` (the deriving class) gives each suite its own servers.
template <class Suite>
class ProxySuite : public ::testing::Test {
 protected:
  // Call from the suite's SetUpTestSuite: the PKI, then PostgreSQL (with TLS on, serving the PKI's
  // server certificate, if asked), then `setup_sql` on it.
  static void set_up_suite(const std::string& setup_sql, bool tls_postgres = false) {
    pki_ = std::make_unique<TestPki>(0);
    postgres_ = tls_postgres ? std::make_unique<PostgresServer>(tls_postgres_options(*pki_))
                             : std::make_unique<PostgresServer>();
    postgres_->exec(setup_sql);
  }
  static void TearDownTestSuite() {
    pki_.reset();
    postgres_.reset();
  }
  void TearDown() override {
    if (this->HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
  }

  static ProxyConfig config() { return base_proxy_config(*pki_, postgres_->port()); }
  static std::string config_path() { return pki_->dir() + "/pgmtls.yaml"; }
  // Starts pgmtls with `yaml` written to config_path().
  void launch(const std::string& yaml) {
    proxy_ = std::make_unique<PgmtlsProcess>(config_path(), yaml);
  }
  // Rewrites the config file and asks pgmtls to reload it; waits for the outcome's log line.
  void reload(const std::string& yaml, const std::string& expected_line) {
    const std::size_t mark = proxy_->log_mark();
    write_text_file(config_path(), yaml);
    proxy_->signal(SIGHUP);
    ASSERT_TRUE(proxy_->wait_for_log({expected_line}, kLogTimeout, mark));
  }

  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<TestPki> pki_;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

}  // namespace pgmtls::integration
