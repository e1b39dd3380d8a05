// pgmtls configured in different ways, each test with its own pgmtls in front of a shared
// PostgreSQL: CA bundles, CRL locations, ident files, an unreachable backend, start-up timeouts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <memory>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;

class ProxyConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      postgres_ = std::make_unique<PostgresServer>();
      for (const char* role : {"alice", "bob", "carol"})
        postgres_->create_login_role(role);
      pki_ = std::make_unique<TestPki>(0);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void TearDownTestSuite() {
    pki_.reset();
    postgres_.reset();
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log of this test:\n" << proxy_->log_text();
    proxy_.reset();
  }

  ProxyConfig config() const { return base_proxy_config(*pki_, postgres_->port()); }

  void start(const ProxyConfig& config) {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/" + name + ".yaml", config.to_yaml());
  }

  ConnectResult connect_as(const std::string& client, const std::string& user) const {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(client), user));
  }

  void expect_session_as(const std::string& client, const std::string& role) const {
    const ConnectResult c = connect_as(client, role);
    ASSERT_TRUE(c.ok()) << c.error;
    const QueryResult r = query(c.conn.get(), "SELECT current_user");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.value, role);
  }

  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::string setup_error_;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

TEST_F(ProxyConfigTest, IntermediateInCaFileAndClientSendsLeafOnly) {
  ProxyConfig c = config();
  c.ca_file = pki_->ca_chain_file();
  ASSERT_NO_THROW(start(c));
  expect_session_as("carol-leaf-only", "carol");
}

TEST_F(ProxyConfigTest, WithoutMapCommonNameMustEqualRole) {
  ASSERT_NO_THROW(start(config()));
  expect_session_as("alice", "alice");
  const ConnectResult c = connect_as("alice", "bob");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error, HasSubstr("28000"));
  EXPECT_THAT(c.error, HasSubstr(R"(certificate authentication failed for user "bob")"));
}

TEST_F(ProxyConfigTest, IdentFileInPostgresSyntax) {
  const std::string ident = pki_->dir() + "/pg_ident.conf";
  write_text_file(ident,
                  "# MAPNAME  SYSTEM-USERNAME  PG-USERNAME\n"
                  "certmap    alice            alice\n"
                  "certmap    /^(.*)@example\\.com$  \\1\n");
  ProxyConfig c = config();
  c.map = "certmap";
  c.ident_file = ident;
  ASSERT_NO_THROW(start(c));
  expect_session_as("bob", "bob");
  expect_session_as("alice", "alice");
  const ConnectResult denied = connect_as("alice", "bob");
  ASSERT_FALSE(denied.ok());
  EXPECT_THAT(denied.error, HasSubstr("28000"));
}

TEST_F(ProxyConfigTest, CrlDirectoryRevokesAndKeepsOthersWorking) {
  ProxyConfig c = config();
  c.crl_dir = pki_->crl_dir();
  ASSERT_NO_THROW(start(c));
  expect_session_as("alice", "alice");
  expect_session_as("carol", "carol");
  const ConnectResult revoked = connect_as("revoked", "alice");
  ASSERT_FALSE(revoked.ok());
  EXPECT_THAT(revoked.error, HasSubstr("certificate revoked"));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=revoked"}, kLogTimeout));
}

TEST_F(ProxyConfigTest, StaleCrlFailsClosed) {
  ProxyConfig c = config();
  c.crl_file = pki_->stale_crl_file();
  ASSERT_NO_THROW(start(c));
  const ConnectResult stale = connect_as("alice", "alice");
  ASSERT_FALSE(stale.ok()) << "a CRL past its nextUpdate was accepted";
  EXPECT_THAT(stale.error, HasSubstr("SSL"));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=crl"}, kLogTimeout));
}

TEST_F(ProxyConfigTest, UnreachableBackendGivesConnectionFailure) {
  ProxyConfig c = config();
  c.backend_port = free_tcp_port();  // nothing listens there
  c.backend_connect_timeout = "2s";
  ASSERT_NO_THROW(start(c));
  const ConnectResult r = connect_as("alice", "alice");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error, HasSubstr("FATAL"));
  EXPECT_THAT(r.error, HasSubstr("08006"));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=backend_unavailable"}, kLogTimeout));
}

TEST_F(ProxyConfigTest, SilentClientIsDisconnectedAfterStartupTimeout) {
  ProxyConfig c = config();
  c.startup_timeout = "1s";
  ASSERT_NO_THROW(start(c));
  const auto began = std::chrono::steady_clock::now();
  RawSocket s(proxy_->port());
  const auto r = s.read_until_closed(10s);
  EXPECT_TRUE(r.closed()) << "still open after 10 s: " << to_string(r.end);
  EXPECT_GE(std::chrono::steady_clock::now() - began, 900ms) << "closed before startup_timeout";
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=handshake_timeout"}, kLogTimeout));
}

TEST_F(ProxyConfigTest, ClientStallingInTlsHandshakeIsDisconnected) {
  ProxyConfig c = config();
  c.startup_timeout = "1s";
  ASSERT_NO_THROW(start(c));
  RawSocket s(proxy_->port());
  ASSERT_TRUE(s.send(ssl_request()));
  ASSERT_EQ(s.read_exactly(1, 5s).data, "S");
  const auto r = s.read_until_closed(10s);
  EXPECT_TRUE(r.closed()) << "still open after 10 s: " << to_string(r.end);
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=handshake_timeout"}, kLogTimeout));
}

TEST_F(ProxyConfigTest, SigtermWithOpenSessionShutsDownPromptly) {
  ASSERT_NO_THROW(start(config()));
  const ConnectResult c = connect_as("alice", "alice");
  ASSERT_TRUE(c.ok()) << c.error;
  ASSERT_TRUE(query(c.conn.get(), "SELECT 1").ok());
  proxy_.reset();  // SIGTERM; fails the test unless pgmtls exits cleanly within 10 s
  EXPECT_FALSE(query(c.conn.get(), "SELECT 1", {}, 10s).ok()) << "the session outlived pgmtls";
}

}  // namespace
}  // namespace pgmtls::integration
