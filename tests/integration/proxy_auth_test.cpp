// Who gets in and who does not: certificate verification, identity mapping, and the errors a
// refused client sees, through one pgmtls in front of one PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <memory>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;

class ProxyAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      postgres_ = std::make_unique<PostgresServer>();
      for (const char* role : {"alice", "bob", "carol"})
        postgres_->create_login_role(role);
      pki_ = std::make_unique<TestPki>(0);
      ProxyConfig config = base_proxy_config(*pki_, postgres_->port());
      config.crl_file = pki_->all_crls_file();  // carol's chain needs the intermediate's CRL too
      config.map = "certmap";
      config.maps_yaml = kCertMapYaml;
      proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/pgmtls.yaml", config.to_yaml());
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void TearDownTestSuite() {
    proxy_.reset();
    pki_.reset();
    postgres_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_TRUE(proxy_->running()) << "pgmtls died in an earlier test";
    mark_ = proxy_->log_mark();
  }

  void TearDown() override {
    if (!proxy_) return;
    EXPECT_TRUE(proxy_->running()) << "pgmtls died during this test";
    if (HasFailure()) std::cerr << "pgmtls log of this test:\n" << proxy_->log_text(mark_);
  }

  static ConnectResult connect_as(const std::string& client, const std::string& user,
                                  const std::string& dbname = "postgres") {
    const ClientCertificate* cert = client.empty() ? nullptr : &pki_->client(client);
    return pg_connect(tls_conninfo(proxy_->port(), pki_->root_ca_file(), cert, user, dbname));
  }

  void expect_session_as(const std::string& client, const std::string& role) {
    const ConnectResult c = connect_as(client, role);
    ASSERT_TRUE(c.ok()) << c.error;
    const QueryResult r = query(c.conn.get(), "SELECT current_user");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.value, role);
  }

  // A certificate pgmtls must refuse during the TLS handshake.
  void expect_handshake_refused(const std::string& client, const std::string& alert,
                                const std::string& reason) {
    const ConnectResult c = connect_as(client, "alice");
    ASSERT_FALSE(c.ok()) << "a session was opened with the " << client << " certificate";
    EXPECT_THAT(c.error, HasSubstr("SSL"));
    EXPECT_THAT(c.error, HasSubstr(alert));
    EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=" + reason}, kLogTimeout, mark_))
        << "no log line with reason=" << reason;
  }

  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::unique_ptr<PgmtlsProcess> proxy_;
  static inline std::string setup_error_;
  std::size_t mark_ = 0;
};

TEST_F(ProxyAuthTest, ValidCertificateOpensSessionAsMappedRole) {
  expect_session_as("alice", "alice");
  const auto line = proxy_->wait_for_log({"user=alice", "result="}, kLogTimeout, mark_);
  ASSERT_TRUE(line) << "no log line for the finished session";
  EXPECT_THAT(*line, HasSubstr("reason="));
}

TEST_F(ProxyAuthTest, RegexMapTurnsEmailIdentityIntoRole) {
  expect_session_as("bob", "bob");
}

TEST_F(ProxyAuthTest, LeafFromIntermediateWithChainSentByClient) {
  expect_session_as("carol", "carol");
}

TEST_F(ProxyAuthTest, RoleNotAllowedForCertificateIsRefused) {
  const ConnectResult c = connect_as("alice", "bob");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error, HasSubstr("FATAL"));
  EXPECT_THAT(c.error, HasSubstr("28000"));
  EXPECT_THAT(c.error, HasSubstr(R"(certificate authentication failed for user "bob")"));
}

TEST_F(ProxyAuthTest, MissingClientCertificateIsRefused) {
  const ConnectResult c = connect_as("", "alice");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error, HasSubstr("FATAL"));
  EXPECT_THAT(c.error, HasSubstr("28000"));
  EXPECT_THAT(c.error, HasSubstr("connection requires a valid client certificate"));
}

TEST_F(ProxyAuthTest, RevokedCertificateFailsHandshake) {
  expect_handshake_refused("revoked", "certificate revoked", "revoked");
}

TEST_F(ProxyAuthTest, ExpiredCertificateFailsHandshake) {
  expect_handshake_refused("expired", "certificate expired", "expired");
}

TEST_F(ProxyAuthTest, NotYetValidCertificateFailsHandshake) {
  expect_handshake_refused("not-yet-valid", "alert", "not_yet_valid");
}

TEST_F(ProxyAuthTest, CertificateFromUnknownCaFailsHandshake) {
  expect_handshake_refused("unknown-ca", "unknown ca", "unknown_ca");
}

TEST_F(ProxyAuthTest, ServerAuthOnlyCertificateFailsHandshake) {
  expect_handshake_refused("server-auth-only", "unsupported certificate", "bad_purpose");
}

TEST_F(ProxyAuthTest, Tls12ClientsAreVerifiedTheSameWay) {
  // With TLS 1.2 the client certificate is judged inside the handshake, not after it.
  auto connect12 = [&](const std::string& client) {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(client), "alice") +
        " ssl_max_protocol_version=TLSv1.2");
  };
  const ConnectResult good = connect12("alice");
  ASSERT_TRUE(good.ok()) << good.error;
  EXPECT_STREQ(PQsslAttribute(good.conn.get(), "protocol"), "TLSv1.2");
  EXPECT_STREQ(PQparameterStatus(good.conn.get(), "session_authorization"), "alice");
  const ConnectResult revoked = connect12("revoked");
  ASSERT_FALSE(revoked.ok());
  EXPECT_THAT(revoked.error, HasSubstr("certificate revoked"));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=revoked"}, kLogTimeout, mark_));
}

TEST_F(ProxyAuthTest, PlaintextConnectionIsRefused) {
  const ConnectResult c = pg_connect(plaintext_conninfo(proxy_->port(), "alice"));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error, HasSubstr("FATAL"));
  EXPECT_THAT(c.error, HasSubstr("28000"));
  EXPECT_THAT(c.error, HasSubstr("SSL"));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=ssl_required"}, kLogTimeout, mark_));
}

TEST_F(ProxyAuthTest, BackendErrorIsForwardedVerbatim) {
  const ConnectResult c = connect_as("alice", "alice", "nope");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error, HasSubstr("3D000"));
  EXPECT_THAT(c.error, HasSubstr(R"(database "nope" does not exist)"));
}

TEST_F(ProxyAuthTest, EveryFinishedConnectionIsLoggedWithResultAndReason) {
  expect_session_as("alice", "alice");
  EXPECT_FALSE(connect_as("alice", "bob").ok());
  EXPECT_FALSE(connect_as("", "alice").ok());
  EXPECT_FALSE(connect_as("revoked", "alice").ok());
  // Four connections, four records: wait for the last kind to show up, then count.
  for (const char* user : {"user=alice", "user=bob"}) {
    EXPECT_TRUE(proxy_->wait_for_log({"result=", user}, kLogTimeout, mark_)) << user;
  }
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=no_cert"}, kLogTimeout, mark_));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=revoked"}, kLogTimeout, mark_));
  int records = 0;
  for (const auto& line : proxy_->log_lines(mark_)) {
    if (line.find("result=") == std::string::npos) continue;
    ++records;
    EXPECT_THAT(line, HasSubstr("reason="));
  }
  EXPECT_GE(records, 4);
}

}  // namespace
}  // namespace pgmtls::integration
