// pool_mode: session against a real PostgreSQL with libpq clients: a backend connection outlives
// its client, is reset (DISCARD ALL) and serves the next client of the same role, database and
// parameters; everything else gets its own. Reuse is seen through pg_backend_pid(). One worker,
// so that every session meets the same pool.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class PoolTest : public ::testing::Test {
 protected:
  // PostgreSQL with TLS, which pgmtls's default sslmode (prefer) uses: pooled connections carry
  // their TLS session along.
  static void SetUpTestSuite() {
    pki_ = std::make_unique<TestPki>(0);
    postgres_ = std::make_unique<PostgresServer>(tls_postgres_options(*pki_));
    postgres_->exec("CREATE ROLE alice LOGIN; CREATE ROLE carol LOGIN;");
  }
  static void TearDownTestSuite() {
    pki_.reset();
    postgres_.reset();
  }
  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
  }

  void start(const std::string& backend_yaml = "") {
    ProxyConfig c = base_proxy_config(*pki_, postgres_->port());
    c.workers = 1;
    std::string yaml = c.to_yaml();
    const std::string at = "    connect_timeout: " + c.backend_connect_timeout + "\n";
    yaml.replace(yaml.find(at), at.size(), at + "    pool_mode: session\n" + backend_yaml);
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/pool.yaml", yaml);
  }

  ConnectResult connect(const std::string& user, const std::string& extra = "") {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(user), user) + extra);
  }
  static std::string value(PGconn* conn, const std::string& sql) {
    const QueryResult r = query(conn, sql);
    return r.ok() ? r.value.value_or("<null>") : "error: " + r.error;
  }
  // Closes the client and waits until pgmtls logged the session's end, which comes after the
  // backend connection went back to the pool.
  void leave(ConnectResult& c) {
    const std::size_t mark = proxy_->log_mark();
    c.conn.reset();
    ASSERT_TRUE(proxy_->wait_for_log({"connection id=", "result=ok"}, kLogTimeout, mark));
  }
  // Waits (bounded) until PostgreSQL no longer lists backend `pid`.
  bool backend_gone(const std::string& pid) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (postgres_->exec("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0") {
        return true;
      }
    }
    return false;
  }

  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<TestPki> pki_;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

TEST_F(PoolTest, TheNextClientGetsTheSameBackendWithItsStateReset) {
  start();
  ConnectResult first = connect("alice");
  ASSERT_TRUE(first.ok()) << first.error;
  const std::string pid = value(first.conn.get(), "SELECT pg_backend_pid()");
  for (const char* sql : {"SET work_mem = '7MB'", "CREATE TEMP TABLE scratch (x int)",
                          "PREPARE answer AS SELECT 42", "LISTEN news"}) {
    ASSERT_TRUE(query(first.conn.get(), sql).ok()) << sql;
  }
  leave(first);

  ConnectResult second = connect("alice");
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(value(second.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(value(second.conn.get(), "SHOW work_mem"), "4MB");
  EXPECT_EQ(value(second.conn.get(), "SELECT to_regclass('pg_temp.scratch')::text"), "<null>");
  EXPECT_EQ(value(second.conn.get(), "SELECT count(*) FROM pg_prepared_statements"), "0");
  EXPECT_EQ(value(second.conn.get(), "SELECT count(*) FROM pg_listening_channels()"), "0");
  EXPECT_EQ(value(second.conn.get(), "SELECT current_user"), "alice");
  // The client sees a start-up like any other: its own key, parameters, an idle transaction.
  EXPECT_NE(PQbackendPID(second.conn.get()), 0);
  EXPECT_STREQ(PQparameterStatus(second.conn.get(), "client_encoding"), "UTF8");
  EXPECT_EQ(PQtransactionStatus(second.conn.get()), PQTRANS_IDLE);
  EXPECT_EQ(
      value(second.conn.get(), "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
      "true");
  leave(second);
  EXPECT_TRUE(
      proxy_->wait_for_log({"user=alice", "backend_tls=TLSv1.3", "backend_uses=2"}, kLogTimeout));
}

TEST_F(PoolTest, APlainBackendConnectionIsPooledToo) {
  start("    sslmode: disable\n");
  ConnectResult first = connect("alice");
  ASSERT_TRUE(first.ok()) << first.error;
  const std::string pid = value(first.conn.get(), "SELECT pg_backend_pid()");
  leave(first);
  ConnectResult second = connect("alice");
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(value(second.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(
      value(second.conn.get(), "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
      "false");
}

TEST_F(PoolTest, AnotherRoleOrOtherParametersGetTheirOwnBackend) {
  start();
  ConnectResult alice = connect("alice");
  ASSERT_TRUE(alice.ok()) << alice.error;
  const std::string pid = value(alice.conn.get(), "SELECT pg_backend_pid()");
  leave(alice);
  ConnectResult carol = connect("carol");
  ASSERT_TRUE(carol.ok()) << carol.error;
  EXPECT_NE(value(carol.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(value(carol.conn.get(), "SELECT current_user"), "carol");
  ConnectResult other_app = connect("alice", " application_name=reports");
  ASSERT_TRUE(other_app.ok()) << other_app.error;
  EXPECT_NE(value(other_app.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(value(other_app.conn.get(), "SELECT current_setting('application_name')"), "reports");
  // The pooled one is still there for a client like the first.
  ConnectResult again = connect("alice");
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(value(again.conn.get(), "SELECT pg_backend_pid()"), pid);
}

TEST_F(PoolTest, AClientThatLeavesInsideATransactionTakesItsBackendAlong) {
  start();
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  const std::string pid = value(c.conn.get(), "SELECT pg_backend_pid()");
  ASSERT_TRUE(query(c.conn.get(), "BEGIN").ok());
  leave(c);
  EXPECT_TRUE(backend_gone(pid));
  ConnectResult next = connect("alice");
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_NE(value(next.conn.get(), "SELECT pg_backend_pid()"), pid);
}

TEST_F(PoolTest, AnIdleBackendTheServerEndsIsNeverHandedOut) {
  start();
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  const std::string pid = value(c.conn.get(), "SELECT pg_backend_pid()");
  leave(c);
  postgres_->exec("SELECT pg_terminate_backend(" + pid + ")");
  ASSERT_TRUE(backend_gone(pid));
  ConnectResult next = connect("alice");
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_NE(value(next.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(value(next.conn.get(), "SELECT 1"), "1");
}

TEST_F(PoolTest, IdleBackendsAreClosedAfterServerIdleTimeout) {
  start("    server_idle_timeout: 300ms\n");
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  const std::string pid = value(c.conn.get(), "SELECT pg_backend_pid()");
  leave(c);
  EXPECT_TRUE(backend_gone(pid));  // no new client needed to notice
}

TEST_F(PoolTest, CancelReachesAReusedBackend) {
  start();
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  const std::string pid = value(c.conn.get(), "SELECT pg_backend_pid()");
  const int first_key = PQbackendPID(c.conn.get());
  leave(c);
  ConnectResult reused = connect("alice");
  ASSERT_TRUE(reused.ok()) << reused.error;
  ASSERT_EQ(value(reused.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_NE(PQbackendPID(reused.conn.get()), first_key);  // a new key for the new client
  ASSERT_TRUE(PQsendQuery(reused.conn.get(), "SELECT pg_sleep(60) /* pooled */"));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline &&
         postgres_->exec("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                         "query LIKE '%pooled%' AND pid <> pg_backend_pid()") != "1") {
  }
  std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel(PQgetCancel(reused.conn.get()),
                                                            &PQfreeCancel);
  char error[256] = "";
  ASSERT_TRUE(PQcancel(cancel.get(), error, sizeof error)) << error;
  EXPECT_THAT(wait_for_result(reused.conn.get(), 20s).error, HasSubstr("57014"));
  // After a cancelled query the connection is idle again, and pooled again.
  EXPECT_EQ(value(reused.conn.get(), "SELECT 1"), "1");
}

}  // namespace
}  // namespace pgmtls::integration
