// Many clients at once, and clients that speak the protocol badly on purpose: pgmtls must keep
// serving the good ones, refuse the bad ones promptly, and stay up.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <latch>
#include <memory>
#include <thread>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;

constexpr int kUsers = 50;
// How long a misbehaving connection may stay open before pgmtls must have closed it; well below
// the configured startup_timeout (10 s), so closing by timeout does not count.
constexpr auto kPromptClose = 5s;

std::string user_name(int i) {
  char name[16];
  std::snprintf(name, sizeof name, "user%02d", i);
  return name;
}

class ProxyRobustnessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      postgres_ = std::make_unique<PostgresServer>();
      std::string sql;
      for (int i = 0; i < kUsers; ++i)
        sql += "CREATE ROLE " + user_name(i) + " LOGIN;";
      postgres_->exec(sql);
      pki_ = std::make_unique<TestPki>(kUsers);
      ProxyConfig config = base_proxy_config(*pki_, postgres_->port());
      config.crl_file = pki_->all_crls_file();
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

  // One session as userNN running `queries` parameterised queries; "" on success, else what
  // went wrong.
  static std::string run_session(int user, int queries, const std::string& tag) {
    const std::string role = user_name(user);
    const ConnectResult c = pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(role), role, "postgres"),
        30s);
    if (!c.ok()) return role + ": connect: " + c.error;
    for (int q = 0; q < queries; ++q) {
      const std::string value = tag + "/q" + std::to_string(q) + "/";
      const QueryResult r = query(c.conn.get(), "SELECT $1::text || current_user", {value}, 30s);
      if (!r.ok()) return role + ": query: " + r.error;
      if (r.value != value + role) {
        return role + ": expected \"" + value + role + "\", got \"" + r.value.value_or("NULL") +
               "\"";
      }
    }
    return "";
  }

  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::unique_ptr<PgmtlsProcess> proxy_;
  static inline std::string setup_error_;
  std::size_t mark_ = 0;
};

TEST_F(ProxyRobustnessTest, FiftyConcurrentSessionsEachGetTheirOwnResults) {
  std::vector<std::string> failures(kUsers);
  std::latch start(kUsers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kUsers; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      failures[i] = run_session(i, 5, "session" + std::to_string(i));
    });
  }
  for (auto& t : threads)
    t.join();
  for (int i = 0; i < kUsers; ++i)
    EXPECT_EQ(failures[i], "") << "session " << i;
  EXPECT_TRUE(proxy_->running());
}

// Each kind of abuse; returns "" or a description of how pgmtls misbehaved.
std::string abuse(std::uint16_t port, int kind) {
  static const std::string client_hello = tls_client_hello();
  RawSocket s(port);
  switch (kind) {
    case 0: {  // HTTP instead of an SSLRequest: the "length" is absurd, refuse at once
      s.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
      const auto r = s.read_until_closed(kPromptClose);
      if (!r.closed()) return "HTTP garbage: connection not closed";
      return "";
    }
    case 1: {  // garbage where the TLS ClientHello belongs
      s.send(ssl_request());
      const auto answer = s.read_exactly(1, kPromptClose);
      if (answer.data != "S") return "SSLRequest not answered with 'S'";
      s.send(std::string("\x00\x01garbage garbage garbage garbage", 33));
      if (!s.read_until_closed(kPromptClose).closed()) return "garbage after 'S': not closed";
      return "";
    }
    case 2: {  // half a ClientHello, then gone
      s.send(ssl_request());
      if (s.read_exactly(1, kPromptClose).data != "S") return "SSLRequest not answered with 'S'";
      s.send(client_hello.substr(0, client_hello.size() / 2));
      return "";
    }
    case 3:  // connect and leave
      return "";
    case 4: {  // a whole ClientHello, read the start of the server's answer, then gone
      s.send(ssl_request());
      if (s.read_exactly(1, kPromptClose).data != "S") return "SSLRequest not answered with 'S'";
      s.send(client_hello);
      const auto hello = s.read_exactly(5, kPromptClose);
      if (hello.data.empty() || hello.data[0] != 0x16) return "no ServerHello after ClientHello";
      return "";
    }
    default: {  // half an SSLRequest, then gone
      s.send(ssl_request().substr(0, 4));
      return "";
    }
  }
}

TEST_F(ProxyRobustnessTest, MisbehavingClientsDoNotDisturbGoodOnes) {
  constexpr int kGoodThreads = 10;
  constexpr int kBadThreads = 4;
  constexpr int kRounds = 12;  // each bad thread runs every kind of abuse this many times
  std::vector<std::string> good_failures(kGoodThreads);
  std::vector<std::vector<std::string>> bad_failures(kBadThreads);
  std::latch start(kGoodThreads + kBadThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kGoodThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int round = 0; round < 3 && good_failures[t].empty(); ++round) {
        good_failures[t] = run_session(t, 3, "good" + std::to_string(round));
      }
    });
  }
  for (int t = 0; t < kBadThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        for (int kind = 0; kind < 6; ++kind) {
          try {
            const std::string problem = abuse(proxy_->port(), kind);
            if (!problem.empty()) bad_failures[t].push_back(problem);
          } catch (const std::exception& e) {
            bad_failures[t].push_back(std::string("abuse kind ") + std::to_string(kind) + ": " +
                                      e.what());
          }
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
  for (int t = 0; t < kGoodThreads; ++t)
    EXPECT_EQ(good_failures[t], "") << "good client " << t;
  for (int t = 0; t < kBadThreads; ++t) {
    EXPECT_THAT(bad_failures[t], ::testing::IsEmpty()) << "bad client " << t;
  }
  ASSERT_TRUE(proxy_->running()) << "pgmtls died";
  EXPECT_EQ(run_session(kGoodThreads, 1, "after"), "");
}

TEST_F(ProxyRobustnessTest, LargeValuesCrossTheRelayIntact) {
  const ConnectResult c = pg_connect(
      tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("user00"), "user00"));
  ASSERT_TRUE(c.ok()) << c.error;
  std::string big(4 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>('a' + i % 26);
  const QueryResult echo = query(c.conn.get(), "SELECT $1::text", {big});
  ASSERT_TRUE(echo.ok()) << echo.error;
  EXPECT_TRUE(echo.value == big) << "a 4 MiB value came back changed";
  const QueryResult generated = query(c.conn.get(), "SELECT repeat('xyz', 3000000)");
  ASSERT_TRUE(generated.ok()) << generated.error;
  EXPECT_EQ(generated.value.value_or("").size(), 9000000u);
}

TEST_F(ProxyRobustnessTest, BackendTerminatingTheSessionReachesTheClient) {
  const ConnectResult c = pg_connect(
      tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("user01"), "user01"));
  ASSERT_TRUE(c.ok()) << c.error;
  const QueryResult pid = query(c.conn.get(), "SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok() && pid.value) << pid.error;
  postgres_->exec("SELECT pg_terminate_backend(" + *pid.value + ")");
  const QueryResult after = query(c.conn.get(), "SELECT 1");
  EXPECT_FALSE(after.ok());
  EXPECT_THAT(after.error, HasSubstr("57P01"));
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "user=user01"}, kLogTimeout, mark_));
}

// libpq (15) sends its CancelRequest in plaintext on a new connection, with the key pgmtls gave it.
TEST_F(ProxyRobustnessTest, CancelRequestStopsRunningQuery) {
  const ConnectResult c = pg_connect(
      tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("user02"), "user02"));
  ASSERT_TRUE(c.ok()) << c.error;
  ASSERT_TRUE(PQsendQuery(c.conn.get(), "SELECT pg_sleep(60) /* cancel me */"));
  // A cancel that arrives before the query runs is ignored by PostgreSQL: wait until it runs.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool running = false;
  while (!running && std::chrono::steady_clock::now() < deadline) {
    running = postgres_->exec(
                  "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                  "query LIKE '%cancel me%' AND pid <> pg_backend_pid()") == "1";
  }
  ASSERT_TRUE(running) << "the query never showed up in pg_stat_activity";
  std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel(PQgetCancel(c.conn.get()),
                                                            &PQfreeCancel);
  char error[256] = "";
  ASSERT_TRUE(PQcancel(cancel.get(), error, sizeof error)) << error;
  const QueryResult r = wait_for_result(c.conn.get(), 20s);
  EXPECT_THAT(r.error, HasSubstr("57014"));
}

TEST_F(ProxyRobustnessTest, OversizedStartupPacketIsRefused) {
  RawSocket s(proxy_->port());
  s.send(be32(10001) + be32(196608));
  const auto r = s.read_until_closed(kPromptClose);
  EXPECT_TRUE(r.closed()) << "connection still open: " << to_string(r.end);
  if (!r.data.empty()) {
    EXPECT_EQ(r.data[0], 'E');
  }
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=protocol_error"}, kLogTimeout, mark_));
}

TEST_F(ProxyRobustnessTest, StartupLengthBelowEightIsRefused) {
  RawSocket s(proxy_->port());
  s.send(be32(4) + be32(80877103));
  const auto r = s.read_until_closed(kPromptClose);
  EXPECT_TRUE(r.closed()) << "connection still open: " << to_string(r.end);
  if (!r.data.empty()) {
    EXPECT_EQ(r.data[0], 'E');
  }
}

TEST_F(ProxyRobustnessTest, GssEncRequestIsDeclinedThenSslRequestAccepted) {
  RawSocket s(proxy_->port());
  ASSERT_TRUE(s.send(gssenc_request()));
  const auto declined = s.read_exactly(1, kPromptClose);
  ASSERT_EQ(declined.data, "N") << to_string(declined.end);
  ASSERT_TRUE(s.send(ssl_request()));
  const auto accepted = s.read_exactly(1, kPromptClose);
  ASSERT_EQ(accepted.data, "S") << to_string(accepted.end);
  // And the TLS handshake really starts.
  ASSERT_TRUE(s.send(tls_client_hello()));
  const auto hello = s.read_exactly(5, kPromptClose);
  ASSERT_EQ(hello.data.size(), 5u) << to_string(hello.end);
  EXPECT_EQ(hello.data[0], 0x16) << "expected a TLS handshake record";
}

// CVE-2021-23214: bytes that arrive in the same packet as the SSLRequest were sent before TLS
// and must never be treated as if they came through it.
TEST_F(ProxyRobustnessTest, PlaintextAfterSslRequestInSameWriteIsRefused) {
  RawSocket s(proxy_->port());
  s.send(ssl_request() + startup_message("alice", "postgres"));
  const auto r = s.read_until_closed(kPromptClose);
  EXPECT_TRUE(r.closed()) << "connection still open: " << to_string(r.end);
  // Whatever came back, it was not an authentication request in plaintext.
  if (r.data.size() > 1 && r.data[0] == 'S') {
    EXPECT_NE(r.data[1], 'R');
  }
  EXPECT_TRUE(proxy_->wait_for_log({"result=", "reason=protocol_error"}, kLogTimeout, mark_));
}

}  // namespace
}  // namespace pgmtls::integration
