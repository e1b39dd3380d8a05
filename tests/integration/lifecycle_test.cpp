// Session lifecycle with real PostgreSQL and libpq: hot reload (SIGHUP and file watching) with
// certificate rotation, revocation of live sessions and broken configs; SIGTERM drain and SIGINT
// fast shutdown; idle_timeout; on_expiry.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "auth/pki.h"
#include "tests/integration/support/admin_client.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace pki = auth::pki;

class LifecycleTest : public ProxySuite<LifecycleTest> {
 protected:
  static void SetUpTestSuite() {
    set_up_suite("CREATE ROLE alice LOGIN; CREATE ROLE carol LOGIN;");
  }

  void start(const ProxyConfig& c) { launch(c.to_yaml()); }

  ConnectResult connect(const std::string& client, const std::string& user = "alice") {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(client), user));
  }

  static std::string value(PGconn* conn, const std::string& sql) {
    const QueryResult r = query(conn, sql);
    return r.ok() ? r.value.value_or("") : "error: " + r.error;
  }

  static std::uint64_t server_serial(PGconn* conn) {
    auto* ssl = static_cast<SSL*>(PQsslStruct(conn, "OpenSSL"));
    X509* cert = ssl != nullptr ? SSL_get0_peer_certificate(ssl) : nullptr;
    return cert != nullptr ? pki::serial_of(*cert) : 0;
  }
};

// ---- reload

TEST_F(LifecycleTest, ABrokenConfigIsRefusedAndTheOldOneKeepsServing) {
  const ProxyConfig c = config();
  start(c);
  ConnectResult live = connect("alice");
  ASSERT_TRUE(live.ok()) << live.error;

  const std::vector<std::pair<std::string, std::string>> broken = {
      {"listen: [unclosed\n", "invalid YAML"},
      {c.to_yaml() + "no_such_setting: 1\n", "unknown key \"no_such_setting\""},
      {[&] {
         ProxyConfig bad = c;
         bad.key_file = pki_->client("carol").key_file;  // not the certificate's key
         return bad.to_yaml();
       }(),
       "does not match"},
      {[&] {
         ProxyConfig bad = c;
         bad.map = "m";
         bad.maps_yaml = "  m:\n    - { identity: \"/(unclosed\", role: alice }\n";
         return bad.to_yaml();
       }(),
       "m"},
      {[&] {
         ProxyConfig bad = c;
         bad.crl_file = pki_->dir() + "/no-such.crl";
         return bad.to_yaml();
       }(),
       "no-such.crl"},
  };
  for (const auto& [yaml, why] : broken) {
    SCOPED_TRACE(why);
    const std::size_t mark = proxy_->log_mark();
    reload(yaml, "reload failed; the previous configuration stays in force");
    EXPECT_TRUE(proxy_->wait_for_log({"reload failed", why}, kLogTimeout, mark));
    EXPECT_EQ(value(live.conn.get(), "SELECT current_user"), "alice");
    ConnectResult fresh = connect("alice");
    ASSERT_TRUE(fresh.ok()) << fresh.error;
  }
  EXPECT_TRUE(proxy_->running());
}

TEST_F(LifecycleTest, ReloadRotatesTheServerCertificateForNewSessionsOnly) {
  pki::CertificateSpec spec;
  spec.common_name = "localhost";
  spec.server_auth = true;
  spec.san.dns = {"localhost"};
  spec.san.ip = {"127.0.0.1"};
  const ClientCertificate& next = pki_->add_client("server-next", spec);

  ProxyConfig c = config();
  start(c);
  ConnectResult before = connect("alice");
  ASSERT_TRUE(before.ok()) << before.error;
  const std::uint64_t old_serial = server_serial(before.conn.get());
  ASSERT_NE(old_serial, 0u);
  ASSERT_NE(old_serial, next.serial);

  c.cert_file = next.cert_file;
  c.key_file = next.key_file;
  reload(c.to_yaml(), "configuration reloaded");

  ConnectResult after = connect("alice");
  ASSERT_TRUE(after.ok()) << after.error;
  EXPECT_EQ(server_serial(after.conn.get()), next.serial);
  // The session opened before the reload is untouched.
  EXPECT_EQ(value(before.conn.get(), "SELECT current_user"), "alice");
  EXPECT_EQ(server_serial(before.conn.get()), old_serial);
}

TEST_F(LifecycleTest, ARevokedCertificateIsRefusedAfterReloadAndLiveSessionsKeptByDefault) {
  ProxyConfig c = config();
  start(c);  // no CRL yet
  ConnectResult live = connect("revoked");
  ASSERT_TRUE(live.ok()) << live.error;

  c.crl_file = pki_->root_crl_file();  // lists `revoked`
  reload(c.to_yaml(), "configuration reloaded");
  const ConnectResult refused = connect("revoked");
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(connect("alice").ok());
  // on_revocation: keep (the default).
  EXPECT_EQ(value(live.conn.get(), "SELECT current_user"), "alice");
}

TEST_F(LifecycleTest, OnRevocationTerminateEndsTheLiveSession) {
  ProxyConfig c = config();
  c.extra_yaml = "on_revocation: terminate\n";
  start(c);
  ConnectResult revoked = connect("revoked");
  ASSERT_TRUE(revoked.ok()) << revoked.error;
  ConnectResult good = connect("alice");
  ASSERT_TRUE(good.ok()) << good.error;

  const std::size_t mark = proxy_->log_mark();
  c.crl_file = pki_->root_crl_file();
  reload(c.to_yaml(), "configuration reloaded");
  ASSERT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=revoked", "after reload"},
                                   kLogTimeout, mark));
  const QueryResult r = query(revoked.conn.get(), "SELECT 1");
  EXPECT_THAT(r.error, HasSubstr("28000"));
  EXPECT_THAT(r.error, HasSubstr("client certificate has been revoked"));
  EXPECT_EQ(value(good.conn.get(), "SELECT current_user"), "alice");
}

TEST_F(LifecycleTest, WatchIntervalReloadsWhenAFileChanges) {
  ProxyConfig c = config();
  c.extra_yaml = "watch_interval: 100ms\n";
  start(c);
  ASSERT_TRUE(connect("revoked").ok());
  const std::size_t mark = proxy_->log_mark();
  c.crl_file = pki_->root_crl_file();
  write_text_file(config_path(), c.to_yaml());  // no signal
  ASSERT_TRUE(proxy_->wait_for_log({"a watched file changed"}, kLogTimeout, mark));
  ASSERT_TRUE(proxy_->wait_for_log({"configuration reloaded"}, kLogTimeout, mark));
  EXPECT_FALSE(connect("revoked").ok());
}

// Every live session is re-verified against the new CRLs (on_revocation: terminate), and none of
// them may notice. PGMTLS_RELOAD_SESSIONS sets how many (default 100; the README's figure used
// 1000).
TEST(LifecycleScaleTest, AReloadWithManyLiveSessionsDisturbsNone) {
  const char* env = std::getenv("PGMTLS_RELOAD_SESSIONS");
  const int sessions = env != nullptr ? std::atoi(env) : 100;
  ASSERT_GT(sessions, 0);
  PostgresOptions options;
  options.settings = {"max_connections=" + std::to_string(sessions + 10)};
  PostgresServer postgres(options);
  postgres.exec("CREATE ROLE alice LOGIN;");
  TestPki pki(0);
  ProxyConfig c = base_proxy_config(pki, postgres.port());
  c.extra_yaml = "on_revocation: terminate\n";
  const std::string path = pki.dir() + "/scale.yaml";
  PgmtlsProcess proxy(path, c.to_yaml());

  std::vector<PgConn> live;
  for (int i = 0; i < sessions; ++i) {
    ConnectResult r =
        pg_connect(tls_conninfo(proxy.port(), pki.root_ca_file(), &pki.client("alice"), "alice"));
    ASSERT_TRUE(r.ok()) << "session " << i << ": " << r.error;
    live.push_back(std::move(r.conn));
  }
  // Queries in flight while the reload happens.
  for (auto& conn : live)
    ASSERT_TRUE(PQsendQuery(conn.get(), "SELECT pg_backend_pid()"));

  const std::size_t mark = proxy.log_mark();
  c.crl_file = pki.root_crl_file();
  write_text_file(path, c.to_yaml());
  proxy.signal(SIGHUP);
  const auto reloaded = proxy.wait_for_log({"configuration reloaded"}, kLogTimeout, mark);
  const auto rechecked = proxy.wait_for_log({"re-checked the certificates of"}, 60s, mark);
  ASSERT_TRUE(reloaded && rechecked);
  std::cout << "[ measured ] " << *reloaded << "\n[ measured ] " << *rechecked << "\n";

  for (auto& conn : live)
    ASSERT_TRUE(wait_for_result(conn.get()).ok());
  int ok = 0;
  for (auto& conn : live)
    ok += query(conn.get(), "SELECT 1").ok() ? 1 : 0;
  EXPECT_EQ(ok, sessions);
  EXPECT_FALSE(proxy.wait_for_log({"reason=revoked"}, 0ms, mark));
  live.clear();
}

// ---- shutdown

TEST_F(LifecycleTest, SigtermLetsATransactionFinishThenExits) {
  ProxyConfig c = config();
  c.shutdown_timeout = "20s";
  start(c);
  ConnectResult s = connect("alice");
  ASSERT_TRUE(s.ok()) << s.error;
  ASSERT_TRUE(query(s.conn.get(), "BEGIN").ok());
  ASSERT_TRUE(query(s.conn.get(), "CREATE TEMP TABLE t (x int)").ok());

  const std::size_t mark = proxy_->log_mark();
  proxy_->signal(SIGTERM);
  ASSERT_TRUE(proxy_->wait_for_log({"draining"}, kLogTimeout, mark));
  // New connections are refused; the session in its transaction goes on.
  EXPECT_FALSE(connect("alice").ok());
  EXPECT_TRUE(query(s.conn.get(), "INSERT INTO t VALUES (1)").ok());
  EXPECT_TRUE(query(s.conn.get(), "COMMIT").ok());
  EXPECT_TRUE(proxy_->running());
  const auto start_close = std::chrono::steady_clock::now();
  s.conn.reset();
  // The last session gone, pgmtls exits at once, well before shutdown_timeout.
  EXPECT_EQ(proxy_->wait_for_exit(10s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start_close, 5s);
  // The session ended as the client chose (client_closed, or backend_closed when PostgreSQL
  // noticed the Terminate first), not by the shutdown.
  EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "user=alice"}, kLogTimeout, mark));
  EXPECT_THAT(proxy_->log_text(mark), Not(HasSubstr("server_shutdown")));
}

TEST_F(LifecycleTest, ASessionOutlivingTheDrainGets57P01) {
  ProxyConfig c = config();
  c.shutdown_timeout = "1s";
  start(c);
  ConnectResult s = connect("alice");
  ASSERT_TRUE(s.ok()) << s.error;
  const std::size_t mark = proxy_->log_mark();
  proxy_->signal(SIGTERM);
  ASSERT_TRUE(proxy_->wait_for_log({"reason=server_shutdown"}, kLogTimeout, mark));
  const QueryResult r = query(s.conn.get(), "SELECT 1");
  EXPECT_THAT(r.error, HasSubstr("57P01"));
  EXPECT_THAT(r.error, HasSubstr("terminating connection due to administrator command"));
  EXPECT_EQ(proxy_->wait_for_exit(10s), 0);
}

TEST_F(LifecycleTest, SigintEndsSessionsAtOnceEvenMidResult) {
  ProxyConfig c = config();
  c.shutdown_timeout = "60s";
  start(c);
  ConnectResult idle = connect("alice");
  ConnectResult busy = connect("carol", "carol");
  ASSERT_TRUE(idle.ok() && busy.ok());
  // A long result, not read by the client yet, so pgmtls is likely stuck mid-message writing it
  // when the signal comes: the FATAL must still go between two messages once the client reads
  // on (until it does, nothing can reach it at all).
  ASSERT_TRUE(
      PQsendQuery(busy.conn.get(), "SELECT repeat('x', 1000) FROM generate_series(1, 200000)"));
  pollfd readable{PQsocket(busy.conn.get()), POLLIN, 0};
  ASSERT_EQ(::poll(&readable, 1, 10000), 1) << "no result started";
  const std::size_t mark = proxy_->log_mark();
  const auto start_signal = std::chrono::steady_clock::now();
  proxy_->signal(SIGINT);
  const QueryResult r = wait_for_result(busy.conn.get(), 20s);
  EXPECT_EQ(proxy_->wait_for_exit(15s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start_signal, 10s);
  EXPECT_THAT(query(idle.conn.get(), "SELECT 1").error, HasSubstr("57P01"));
  EXPECT_THAT(r.error, HasSubstr("57P01"));
  EXPECT_THAT(r.error, Not(HasSubstr("lost synchronization")));
  EXPECT_THAT(r.error, Not(HasSubstr("invalid message")));
  EXPECT_TRUE(proxy_->wait_for_log({"fast shutdown"}, kLogTimeout, mark));
  EXPECT_TRUE(proxy_->wait_for_log({"user=carol", "reason=server_shutdown"}, kLogTimeout, mark));
}

// ---- the admin endpoint

class AdminTest : public LifecycleTest {
 protected:
  void start_with_admin(ProxyConfig c) {
    c.extra_yaml += "admin:\n  listen: 127.0.0.1:0\n";
    start(c);
    admin_ = admin_address(*proxy_);
    ASSERT_FALSE(admin_.empty());
  }
  auth::aws::HttpResponse get(const std::string& path) {
    return admin_request(admin_, "GET", path);
  }
  auth::aws::HttpResponse post(const std::string& path) {
    return admin_request(admin_, "POST", path);
  }
  std::string admin_;
};

TEST_F(AdminTest, ProbesSessionsAndReload) {
  ProxyConfig c = config();
  start_with_admin(c);
  EXPECT_EQ(get("/healthz").status, 200);
  const auto ready = get("/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");

  ConnectResult s = connect("alice");
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(value(s.conn.get(), "SELECT 'marker'"), "marker");
  const auto sessions = get("/sessions");
  EXPECT_EQ(sessions.status, 200);
  EXPECT_THAT(sessions.body, HasSubstr("\"identity\":\"CN=alice\""));
  EXPECT_THAT(sessions.body, HasSubstr("\"user\":\"alice\",\"role\":\"alice\""));
  EXPECT_THAT(sessions.body, HasSubstr("\"database\":\"postgres\""));
  EXPECT_THAT(sessions.body, HasSubstr("\"state\":\"active\""));
  EXPECT_THAT(sessions.body,
              HasSubstr("\"backend\":\"127.0.0.1:" + std::to_string(postgres_->port()) + "\""));
  s.conn.reset();
  ASSERT_TRUE(proxy_->wait_for_log({"result=ok", "user=alice"}, kLogTimeout));
  EXPECT_EQ(get("/sessions").body, "[]\n");

  EXPECT_EQ(post("/reload").status, 200);
  write_text_file(config_path(), "listen: [broken\n");
  const auto refused = post("/reload");
  EXPECT_EQ(refused.status, 500);
  EXPECT_THAT(refused.body, HasSubstr("reload failed: "));
  EXPECT_THAT(refused.body, HasSubstr("invalid YAML"));
  EXPECT_TRUE(connect("alice").ok());

  EXPECT_EQ(get("/reload").status, 405);
  EXPECT_EQ(post("/healthz").status, 405);
  EXPECT_EQ(get("/nothing-here").status, 404);
  // Garbage instead of HTTP: 400, and the endpoint goes on.
  const auto colon = admin_.rfind(':');
  RawSocket raw(static_cast<std::uint16_t>(std::stoi(admin_.substr(colon + 1))));
  raw.send(std::string("\x16\x03\x01\x00\x05hello\r\n\r\n", 12));
  const auto answer = raw.read_until_closed(5s);
  EXPECT_THAT(answer.data, HasSubstr("400 Bad Request"));
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(AdminTest, ReadinessTurnsOffWhileDraining) {
  ProxyConfig c = config();
  c.shutdown_timeout = "20s";
  start_with_admin(c);
  ConnectResult s = connect("alice");
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(get("/readyz").status, 200);
  const std::size_t mark = proxy_->log_mark();
  proxy_->signal(SIGTERM);
  ASSERT_TRUE(proxy_->wait_for_log({"draining"}, kLogTimeout, mark));
  const auto draining = get("/readyz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "draining\n");
  EXPECT_EQ(get("/healthz").status, 200);  // alive, just not taking connections
  EXPECT_EQ(value(s.conn.get(), "SELECT current_user"), "alice");
  s.conn.reset();
  EXPECT_EQ(proxy_->wait_for_exit(10s), 0);
}

TEST_F(AdminTest, HttpsWithAndWithoutClientCertificates) {
  ProxyConfig c = config();
  c.extra_yaml = "admin:\n  listen: 127.0.0.1:0\n  tls:\n    cert_file: " + c.cert_file +
                 "\n    key_file: " + c.key_file + "\n";
  start(c);
  ASSERT_TRUE(proxy_->wait_for_log({"admin endpoint on https://"}, kLogTimeout));
  admin_ = admin_address(*proxy_);
  const auto ok = admin_request(admin_, "GET", "/healthz", pki_->root_ca_file());
  EXPECT_EQ(ok.status, 200) << ok.error;
  // Plain HTTP to the HTTPS endpoint gets no HTTP answer.
  EXPECT_EQ(get("/healthz").status, 0);
  EXPECT_EQ(admin_request(admin_, "GET", "/healthz", pki_->root_ca_file()).status, 200);
  proxy_.reset();

  // With ca_file, a client without a certificate is refused in the handshake.
  c.extra_yaml += "    ca_file: " + pki_->root_ca_file() + "\n";
  start(c);
  admin_ = admin_address(*proxy_);
  const auto refused = admin_request(admin_, "GET", "/healthz", pki_->root_ca_file());
  EXPECT_EQ(refused.status, 0);
  EXPECT_FALSE(refused.error.empty());
}

// ---- idle_timeout and on_expiry

TEST_F(LifecycleTest, IdleTimeoutEndsIdleSessionsOnly) {
  ProxyConfig c = config();
  c.extra_yaml = "idle_timeout: 1s\n";
  start(c);
  ConnectResult idle = connect("alice");
  ConnectResult in_transaction = connect("alice");
  ConnectResult busy = connect("carol", "carol");
  ASSERT_TRUE(idle.ok() && in_transaction.ok() && busy.ok());
  ASSERT_TRUE(query(in_transaction.conn.get(), "BEGIN").ok());
  ASSERT_TRUE(PQsendQuery(busy.conn.get(), "SELECT pg_sleep(2.5)"));

  const std::size_t mark = proxy_->log_mark();
  ASSERT_TRUE(proxy_->wait_for_log({"reason=idle_timeout", "user=alice"}, kLogTimeout, mark));
  const QueryResult r = query(idle.conn.get(), "SELECT 1");
  EXPECT_THAT(r.error, HasSubstr("57P05"));
  EXPECT_THAT(r.error, HasSubstr("terminating connection due to idle-session timeout"));
  // A query running longer than idle_timeout is not idleness.
  EXPECT_TRUE(wait_for_result(busy.conn.get(), 10s).ok());
  // Idle in a transaction as long as the one that was ended: kept.
  EXPECT_TRUE(query(in_transaction.conn.get(), "COMMIT").ok());
}

TEST_F(LifecycleTest, OnExpiryTerminateEndsTheSessionWhenTheCertificateExpires) {
  pki::CertificateSpec spec;
  spec.common_name = "alice";
  spec.client_auth = true;
  spec.not_after = std::chrono::seconds(3);
  pki_->add_client("alice-short", spec);
  ProxyConfig c = config();
  c.extra_yaml = "on_expiry: terminate\n";
  start(c);
  ConnectResult s = connect("alice-short");
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(value(s.conn.get(), "SELECT current_user"), "alice");
  ASSERT_TRUE(
      proxy_->wait_for_log({"result=rejected", "reason=expired", "user=alice"}, kLogTimeout));
  EXPECT_THAT(query(s.conn.get(), "SELECT 1").error, HasSubstr("has expired"));
}

}  // namespace
}  // namespace pgmtls::integration
