// Backend pooling against a real PostgreSQL with libpq clients. pool_mode: session: a backend
// connection outlives its client, is reset (DISCARD ALL) and serves the next client of the same
// role, database and parameters; everything else gets its own. pool_mode: transaction: clients
// share backend connections transaction by transaction, prepared statements follow them, and
// session state is refused. Reuse is seen through pg_backend_pid(). One worker, so that every
// session meets the same pool.
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

class PoolTest : public ProxySuite<PoolTest> {
 protected:
  // PostgreSQL with TLS, which pgmtls's default sslmode (prefer) uses: pooled connections carry
  // their TLS session along.
  static void SetUpTestSuite() {
    set_up_suite(
        "CREATE ROLE alice LOGIN; CREATE ROLE carol LOGIN; GRANT CREATE ON SCHEMA public TO "
        "alice;",
        true);
  }

  void start(const std::string& backend_yaml = "", const std::string& mode = "session") {
    ProxyConfig c = config();
    c.workers = 1;
    std::string yaml = c.to_yaml();
    const std::string at = "    connect_timeout: " + c.backend_connect_timeout + "\n";
    yaml.replace(yaml.find(at), at.size(), at + "    pool_mode: " + mode + "\n" + backend_yaml);
    launch(yaml);
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
  ASSERT_EQ(query(c.conn.get(), "BEGIN").error, "");
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

// ---- pool_mode: transaction ----

class TransactionPoolTest : public PoolTest {
 protected:
  void start(const std::string& backend_yaml = "") { PoolTest::start(backend_yaml, "transaction"); }
  // Waits (bounded) until PostgreSQL shows a query containing `marker` running.
  bool running(const std::string& marker) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (postgres_->exec("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                          "query LIKE '%" +
                          marker + "%' AND pid <> pg_backend_pid()") == "1") {
        return true;
      }
    }
    return false;
  }
  static bool cancel(PGconn* conn) {
    std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> c(PQgetCancel(conn), &PQfreeCancel);
    char error[256] = "";
    return c && PQcancel(c.get(), error, sizeof error);
  }
};

TEST_F(TransactionPoolTest, ClientsTakeTurnsOnOneBackendConnection) {
  start("    pool_size: 1\n");
  ConnectResult a = connect("alice");
  ConnectResult b = connect("alice");
  ASSERT_TRUE(a.ok()) << a.error;
  ASSERT_TRUE(b.ok()) << b.error;
  const std::string pid = value(a.conn.get(), "SELECT pg_backend_pid()");
  EXPECT_EQ(value(b.conn.get(), "SELECT pg_backend_pid()"), pid);
  // A transaction keeps it: b's query runs once a's transaction ends.
  ASSERT_EQ(query(a.conn.get(), "BEGIN").error, "");
  ASSERT_EQ(query(a.conn.get(), "CREATE TABLE turns (who text)").error, "");
  ASSERT_TRUE(PQsendQuery(b.conn.get(), "SELECT count(*) FROM turns"));
  ASSERT_EQ(query(a.conn.get(), "INSERT INTO turns VALUES ('a')").error, "");
  ASSERT_EQ(query(a.conn.get(), "COMMIT").error, "");
  const QueryResult counted = wait_for_result(b.conn.get());
  EXPECT_TRUE(counted.ok()) << counted.error;
  EXPECT_EQ(counted.value, "1");  // it saw the committed row: it ran after a's COMMIT
  EXPECT_EQ(value(a.conn.get(), "SELECT pg_backend_pid()"), pid);
  // Each client keeps its own key, parameters and transaction status.
  EXPECT_NE(PQbackendPID(a.conn.get()), PQbackendPID(b.conn.get()));
  EXPECT_NE(PQbackendPID(a.conn.get()), std::stoi(pid));
  EXPECT_EQ(PQtransactionStatus(b.conn.get()), PQTRANS_IDLE);
  EXPECT_EQ(query(a.conn.get(), "DROP TABLE turns").error, "");
  leave(a);
  EXPECT_TRUE(proxy_->wait_for_log({"user=alice", "backend_checkouts="}, kLogTimeout));
}

TEST_F(TransactionPoolTest, ANewClientIsAnsweredWithoutANewBackendConnection) {
  start();
  ConnectResult first = connect("alice");
  ASSERT_TRUE(first.ok()) << first.error;
  const std::string pid = value(first.conn.get(), "SELECT pg_backend_pid()");
  const auto before =
      postgres_->exec("SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice'");
  ConnectResult clients[4];
  for (auto& c : clients) {
    c = connect("alice");
    ASSERT_TRUE(c.ok()) << c.error;
    EXPECT_STREQ(PQparameterStatus(c.conn.get(), "server_version"),
                 PQparameterStatus(first.conn.get(), "server_version"));
  }
  EXPECT_EQ(postgres_->exec("SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice'"),
            before);
  for (auto& c : clients)
    EXPECT_EQ(value(c.conn.get(), "SELECT pg_backend_pid()"), pid);
}

TEST_F(TransactionPoolTest, PreparedStatementsFollowTheClientToAnotherBackend) {
  start("    pool_size: 2\n");
  ConnectResult a = connect("alice");
  ConnectResult b = connect("alice");
  ASSERT_TRUE(a.ok()) << a.error;
  ASSERT_TRUE(b.ok()) << b.error;
  PGconn* ac = a.conn.get();
  std::unique_ptr<PGresult, decltype(&PQclear)> r(
      PQprepare(ac, "who", "SELECT pg_backend_pid()::text || ':' || $1::int * 2", 1, nullptr),
      &PQclear);
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(ac);
  const char* twenty_one[] = {"21"};
  r.reset(PQexecPrepared(ac, "who", 1, twenty_one, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(ac);
  const std::string first = PQgetvalue(r.get(), 0, 0);
  const std::string first_pid = first.substr(0, first.find(':'));
  EXPECT_EQ(first.substr(first.find(':')), ":42");
  // b holds the connection a prepared on, so a's next execution runs on the other one.
  ASSERT_EQ(query(b.conn.get(), "BEGIN").error, "");
  ASSERT_EQ(value(b.conn.get(), "SELECT pg_backend_pid()"), first_pid);
  r.reset(PQexecPrepared(ac, "who", 1, twenty_one, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(ac);
  const std::string second = PQgetvalue(r.get(), 0, 0);
  EXPECT_NE(second.substr(0, second.find(':')), first_pid);
  EXPECT_EQ(second.substr(second.find(':')), ":42");
  // Described there too, and b's own statement of the same name is b's.
  r.reset(PQdescribePrepared(ac, "who"));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(ac);
  EXPECT_EQ(PQnparams(r.get()), 1);
  EXPECT_EQ(PQnfields(r.get()), 1);
  r.reset(PQprepare(b.conn.get(), "who", "SELECT 'b'", 0, nullptr));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(b.conn.get());
  r.reset(PQexecPrepared(b.conn.get(), "who", 0, nullptr, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(b.conn.get());
  EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), "b");
  ASSERT_EQ(query(b.conn.get(), "COMMIT").error, "");
  // A name prepared twice is the client's error, as from PostgreSQL.
  r.reset(PQprepare(ac, "who", "SELECT 1", 0, nullptr));
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "42P05");
  // An unknown one too, and the session goes on.
  r.reset(PQexecPrepared(ac, "nobody", 0, nullptr, nullptr, nullptr, 0));
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "26000");
  r.reset(PQexecParams(ac, "SELECT $1::int + 1", 1, nullptr, twenty_one, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(ac);
  EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), "22");
}

TEST_F(TransactionPoolTest, SessionStateIsRefusedAndTheSessionGoesOn) {
  start();
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  PGconn* conn = c.conn.get();
  for (const char* sql : {"SET work_mem = '7MB'", "LISTEN news", "PREPARE p AS SELECT 1",
                          "CREATE TEMP TABLE scratch (x int)", "select 1; reset all"}) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn, sql), &PQclear);
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR) << sql;
    EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "0A000") << sql;
    EXPECT_THAT(PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY),
                HasSubstr("is not supported with pool_mode: transaction"))
        << sql;
    EXPECT_EQ(PQtransactionStatus(conn), PQTRANS_IDLE) << sql;
  }
  EXPECT_EQ(value(conn, "SHOW work_mem"), "4MB");
  EXPECT_EQ(value(conn, "SELECT count(*) FROM pg_listening_channels()"), "0");
  // Through the extended protocol as well.
  std::unique_ptr<PGresult, decltype(&PQclear)> r(
      PQexecParams(conn, "SET work_mem = '8MB'", 0, nullptr, nullptr, nullptr, nullptr, 0),
      &PQclear);
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "0A000");
  // Inside a transaction the refusal aborts it, as an error would.
  ASSERT_EQ(query(conn, "BEGIN").error, "");
  EXPECT_THAT(query(conn, "SET search_path = nowhere").error, HasSubstr("0A000"));
  EXPECT_EQ(PQtransactionStatus(conn), PQTRANS_INERROR);
  ASSERT_EQ(query(conn, "ROLLBACK").error, "");
  // What stays in the transaction is allowed.
  ASSERT_EQ(query(conn, "BEGIN").error, "");
  ASSERT_EQ(query(conn, "SET LOCAL work_mem = '9MB'").error, "");
  EXPECT_EQ(value(conn, "SHOW work_mem"), "9MB");
  ASSERT_EQ(query(conn, "CREATE TEMP TABLE t (x int) ON COMMIT DROP").error, "");
  ASSERT_EQ(query(conn, "COMMIT").error, "");
  EXPECT_EQ(value(conn, "SELECT 'still here'"), "still here");
}

TEST_F(TransactionPoolTest, AClientWaitsAtMostQueryWaitTimeout) {
  start("    pool_size: 1\n    query_wait_timeout: 300ms\n");
  ConnectResult holder = connect("alice");
  ConnectResult waiter = connect("alice");
  ASSERT_TRUE(holder.ok()) << holder.error;
  ASSERT_TRUE(waiter.ok()) << waiter.error;
  ASSERT_EQ(query(holder.conn.get(), "BEGIN").error, "");
  const QueryResult r = query(waiter.conn.get(), "SELECT 1");
  EXPECT_THAT(r.error, HasSubstr("53300"));
  EXPECT_THAT(r.error, HasSubstr("query_wait_timeout"));
  EXPECT_TRUE(proxy_->wait_for_log({"reason=query_wait_timeout"}, kLogTimeout));
  ASSERT_EQ(query(holder.conn.get(), "COMMIT").error, "");
  ConnectResult next = connect("alice");
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_EQ(value(next.conn.get(), "SELECT 1"), "1");
}

TEST_F(TransactionPoolTest, CancelReachesTheBackendOfTheRunningQueryOnly) {
  start("    pool_size: 1\n");
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  // Between transactions the client holds no backend connection: a cancel finds nothing to do.
  const std::size_t mark = proxy_->log_mark();
  ASSERT_TRUE(cancel(c.conn.get()));
  EXPECT_TRUE(
      proxy_->wait_for_log({"reason=cancel_unknown", "between transactions"}, kLogTimeout, mark));
  EXPECT_EQ(value(c.conn.get(), "SELECT 1"), "1");
  ASSERT_TRUE(PQsendQuery(c.conn.get(), "SELECT pg_sleep(60) /* tx-pooled */"));
  ASSERT_TRUE(running("tx-pooled"));
  ASSERT_TRUE(cancel(c.conn.get()));
  EXPECT_THAT(wait_for_result(c.conn.get(), 20s).error, HasSubstr("57014"));
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_forwarded"}, kLogTimeout, mark));
  // The connection went back to the pool and serves the next statement.
  ConnectResult other = connect("alice");
  ASSERT_TRUE(other.ok()) << other.error;
  EXPECT_EQ(value(other.conn.get(), "SELECT 1"), "1");
  EXPECT_EQ(value(c.conn.get(), "SELECT 2"), "2");
}

TEST_F(TransactionPoolTest, AClientThatLeavesInsideATransactionTakesItsBackendAlong) {
  start();
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  ASSERT_EQ(query(c.conn.get(), "BEGIN").error, "");
  const std::string pid = value(c.conn.get(), "SELECT pg_backend_pid()");
  leave(c);
  EXPECT_TRUE(backend_gone(pid));
  ConnectResult next = connect("alice");
  ASSERT_TRUE(next.ok()) << next.error;
  EXPECT_NE(value(next.conn.get(), "SELECT pg_backend_pid()"), pid);
  EXPECT_EQ(PQtransactionStatus(next.conn.get()), PQTRANS_IDLE);
}

TEST_F(TransactionPoolTest, CopyInAndOutPassThrough) {
  start();
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error;
  PGconn* conn = c.conn.get();
  ASSERT_EQ(query(conn, "CREATE TABLE copied (n int)").error, "");
  std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn, "COPY copied FROM STDIN"), &PQclear);
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COPY_IN) << PQerrorMessage(conn);
  std::string rows;
  for (int i = 1; i <= 20000; ++i)
    rows += std::to_string(i) + "\n";
  ASSERT_EQ(PQputCopyData(conn, rows.data(), static_cast<int>(rows.size())), 1);
  ASSERT_EQ(PQputCopyEnd(conn, nullptr), 1);
  EXPECT_TRUE(wait_for_result(conn).ok());
  EXPECT_EQ(value(conn, "SELECT sum(n) FROM copied"), "200010000");
  r.reset(PQexec(conn, "COPY copied TO STDOUT"));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COPY_OUT) << PQerrorMessage(conn);
  std::size_t got = 0;
  for (;;) {
    char* line = nullptr;
    const int n = PQgetCopyData(conn, &line, 0);
    if (n < 0) break;
    got += static_cast<std::size_t>(n);
    PQfreemem(line);
  }
  EXPECT_EQ(got, rows.size());
  EXPECT_TRUE(wait_for_result(conn).ok());
  EXPECT_EQ(query(conn, "DROP TABLE copied").error, "");
}

}  // namespace
}  // namespace pgmtls::integration
