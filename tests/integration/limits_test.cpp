// Connection limits and backend host lists with real PostgreSQL and libpq: global, per role and per
// certificate identity (FATAL 53300 in PostgreSQL's words, released when a session ends), the
// per-address block after repeated failed handshakes, and the cap on connections still handshaking.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LimitsTest : public ProxySuite<LimitsTest> {
 protected:
  static void SetUpTestSuite() {
    set_up_suite("CREATE ROLE alice LOGIN; CREATE ROLE shared LOGIN;");
  }

  // alice, carol and bob@example.com may all connect as "shared"; alice also as herself.
  void start(const std::string& limits_yaml, unsigned workers = 2) {
    ProxyConfig c = config();
    c.workers = workers;
    c.map = "m";
    c.maps_yaml =
        "  m:\n    - { identity: \"/^(alice|carol|bob@example\\\\.com)$\", role: shared }\n"
        "    - { identity: alice, role: alice }\n";
    c.extra_yaml = "limits:\n" + limits_yaml;
    launch(c.to_yaml());
  }
  ConnectResult connect(const std::string& client, const std::string& user) {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(client), user));
  }
  // Closes `conn` and waits until pgmtls has logged the end of that session.
  void close(ConnectResult& c) {
    const std::size_t ends = count_ends();
    c.conn.reset();
    const auto deadline = std::chrono::steady_clock::now() + kLogTimeout;
    while (count_ends() == ends && std::chrono::steady_clock::now() < deadline) {
      proxy_->wait_for_log({"connection id=", "result=ok"}, 100ms, proxy_->log_mark());
    }
    ASSERT_GT(count_ends(), ends);
  }
  std::size_t count_ends() const {
    std::size_t n = 0;
    for (const auto& line : proxy_->log_lines())
      n += line.find("connection id=") != std::string::npos &&
           line.find("result=ok") != std::string::npos;
    return n;
  }
};

TEST_F(LimitsTest, PerIdentityLimitRefusesWith53300UntilASessionEnds) {
  start("  per_identity: 1\n");
  ConnectResult first = connect("alice", "alice");
  ASSERT_TRUE(first.ok()) << first.error;
  const ConnectResult second = connect("alice", "shared");  // same certificate, other role
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.error, HasSubstr("53300"));
  EXPECT_THAT(second.error,
              HasSubstr("too many connections for certificate identity \"CN=alice\""));
  EXPECT_TRUE(connect("carol", "shared").ok());  // another identity
  EXPECT_TRUE(proxy_->wait_for_log({"reason=too_many_connections"}, kLogTimeout));
  close(first);
  EXPECT_TRUE(connect("alice", "alice").ok());
}

TEST_F(LimitsTest, PerRoleLimit) {
  start("  per_role: 2\n");
  ConnectResult a = connect("alice", "shared");
  ConnectResult c = connect("carol", "shared");
  ASSERT_TRUE(a.ok() && c.ok());
  const ConnectResult third = connect("bob", "shared");
  EXPECT_THAT(third.error, HasSubstr("53300"));
  EXPECT_THAT(third.error, HasSubstr("too many connections for role \"shared\""));
  EXPECT_TRUE(connect("alice", "alice").ok());  // another role
  close(a);
  EXPECT_TRUE(connect("bob", "shared").ok());
}

TEST_F(LimitsTest, GlobalLimit) {
  start("  max_client_connections: 2\n");
  ConnectResult a = connect("alice", "alice");
  ConnectResult c = connect("carol", "shared");
  ASSERT_TRUE(a.ok() && c.ok());
  const ConnectResult third = connect("bob", "shared");
  EXPECT_THAT(third.error, HasSubstr("53300"));
  EXPECT_THAT(third.error, HasSubstr("sorry, too many clients already"));
  close(c);
  EXPECT_TRUE(connect("bob", "shared").ok());
}

TEST_F(LimitsTest, AnAddressThatKeepsFailingHandshakesIsBlockedForAWhile) {
  start("  failed_handshakes: { max: 3, window: 60s, block: 2s }\n");
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(connect("unknown-ca", "alice").ok());
  ASSERT_TRUE(proxy_->wait_for_log({"blocking 127.0.0.1 for 2000 ms"}, kLogTimeout));
  const auto blocked_at = std::chrono::steady_clock::now();
  // Even a good certificate is refused now, before any TLS work.
  const ConnectResult refused = connect("alice", "alice");
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(proxy_->log_text(), Not(HasSubstr("result=ok")));
  // The block ends by itself.
  bool admitted = false;
  while (!admitted && std::chrono::steady_clock::now() - blocked_at < 10s) {
    admitted = connect("alice", "alice").ok();
  }
  EXPECT_TRUE(admitted);
  EXPECT_GE(std::chrono::steady_clock::now() - blocked_at, 1900ms);
}

TEST_F(LimitsTest, ConnectionsBeyondMaxHandshakesAreClosedAtOnce) {
  start("  max_handshakes: 2\n", 1);  // one worker: its share is the whole limit
  auto silent1 = std::make_unique<RawSocket>(proxy_->port());
  auto silent2 = std::make_unique<RawSocket>(proxy_->port());
  silent1->send(ssl_request());
  silent2->send(ssl_request());
  EXPECT_EQ(silent1->read_exactly(1, 5s).data, "S");  // both are in their TLS handshake now
  EXPECT_EQ(silent2->read_exactly(1, 5s).data, "S");
  RawSocket third(proxy_->port());
  third.send(ssl_request());
  const auto r = third.read_until_closed(5s);
  EXPECT_TRUE(r.closed());
  EXPECT_EQ(r.data, "");
  silent1.reset();
  silent2.reset();
  ASSERT_TRUE(proxy_->wait_for_log({"reason=client_disconnected"}, kLogTimeout));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool ok = false;
  while (!ok && std::chrono::steady_clock::now() < deadline)
    ok = connect("alice", "alice").ok();
  EXPECT_TRUE(ok);
}

// At the limit a new connection takes the place of one that proves nothing: first one that has
// not sent a whole first packet, oldest first. One worker, so that all three meet in one table.
// Connects until pgmtls answers: a connection accepted before the others' sessions started finds
// nothing to evict and is closed at once (as ConnectionsBeyondMaxHandshakesAreClosedAtOnce).
std::unique_ptr<RawSocket> connect_until_answered(std::uint16_t port) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto s = std::make_unique<RawSocket>(port);
    s->send(ssl_request());
    if (s->read_exactly(1, 5s).data == "S") return s;
  }
  return nullptr;
}

TEST_F(LimitsTest, AtMaxHandshakesASilentConnectionGivesWay) {
  start("  max_handshakes: 2\n", 1);
  const std::size_t mark = proxy_->log_mark();
  RawSocket silent1(proxy_->port());
  RawSocket silent2(proxy_->port());
  silent2.send(ssl_request().substr(0, 4));  // half a first packet: still silent
  const auto third = connect_until_answered(proxy_->port());
  EXPECT_NE(third, nullptr) << "the new connection was never admitted";
  EXPECT_TRUE(silent1.read_until_closed(5s).closed()) << "the oldest silent one stayed";
  EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=evicted"}, kLogTimeout, mark));
  EXPECT_EQ(silent2.read_exactly(1, 200ms).end, RawSocket::End::timeout)
      << "the younger silent one was closed too";
}

// A connection whose TLS handshake has run for over a second gives way too; a younger one does
// not (ConnectionsBeyondMaxHandshakesAreClosedAtOnce).
TEST_F(LimitsTest, AtMaxHandshakesASlowHandshakeGivesWay) {
  start("  max_handshakes: 2\n", 1);
  const std::size_t mark = proxy_->log_mark();
  RawSocket slow1(proxy_->port());
  RawSocket slow2(proxy_->port());
  slow1.send(ssl_request());
  slow2.send(ssl_request());
  ASSERT_EQ(slow1.read_exactly(1, 5s).data, "S");
  ASSERT_EQ(slow2.read_exactly(1, 5s).data, "S");
  // No event marks a handshake as slow: a second has to pass.
  std::this_thread::sleep_for(1100ms);
  const auto third = connect_until_answered(proxy_->port());
  EXPECT_NE(third, nullptr) << "the new connection was never admitted";
  EXPECT_TRUE(slow1.read_until_closed(5s).closed()) << "the oldest slow handshake stayed";
  EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=evicted"}, kLogTimeout, mark));
}

// ---- TCP keepalives

// The kernel's view of a TCP socket: its keepalive timer is armed ("tr" 2 in /proc/net/tcp).
// `local` / `remote`: the socket's own and its peer's port on 127.0.0.1 (0: any).
std::vector<int> timers_of(std::uint16_t local, std::uint16_t remote) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  std::vector<int> timers;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string sl, local_addr, remote_addr, state, queues, timer;
    row >> sl >> local_addr >> remote_addr >> state >> queues >> timer;
    if (state != "01") continue;  // ESTABLISHED
    auto port_of = [](const std::string& a) {
      return static_cast<std::uint16_t>(std::stoul(a.substr(a.find(':') + 1), nullptr, 16));
    };
    if ((local == 0 || port_of(local_addr) == local) &&
        (remote == 0 || port_of(remote_addr) == remote)) {
      timers.push_back(std::stoi(timer.substr(0, timer.find(':')), nullptr, 16));
    }
  }
  return timers;
}

// The timers once no data is in flight (timer 1, retransmission, passes within milliseconds on
// loopback); bounded.
std::vector<int> settled_timers(std::uint16_t local, std::uint16_t remote) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    auto timers = timers_of(local, remote);
    if (std::find(timers.begin(), timers.end(), 1) == timers.end() ||
        std::chrono::steady_clock::now() > deadline) {
      return timers;
    }
  }
}

TEST_F(LimitsTest, KeepalivesAreArmedOnClientAndBackendSockets) {
  start("  per_role: 100\n");  // defaults: tcp_keepalives idle 60s
  ConnectResult c = connect("alice", "alice");
  ASSERT_TRUE(c.ok()) << c.error;
  // pgmtls's side of the client connection, and its connection to PostgreSQL.
  EXPECT_EQ(settled_timers(proxy_->port(), 0), std::vector<int>{2});
  const auto backend = settled_timers(0, postgres_->port());
  ASSERT_FALSE(backend.empty());
  for (int t : backend)
    EXPECT_EQ(t, 2);
}

TEST_F(LimitsTest, KeepalivesCanBeTurnedOff) {
  ProxyConfig c = config();
  c.map = "m";
  c.maps_yaml = "  m:\n    - { identity: alice, role: alice }\n";
  c.extra_yaml = "tcp_keepalives:\n  idle: 0\n";
  proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/nokeepalive.yaml", c.to_yaml());
  ConnectResult conn = connect("alice", "alice");
  ASSERT_TRUE(conn.ok()) << conn.error;
  EXPECT_EQ(settled_timers(proxy_->port(), 0), std::vector<int>{0});
}

// ---- backend host lists and target_session_attrs

class HostListTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = std::make_unique<TestPki>(0);
    writable_ = std::make_unique<PostgresServer>();
    PostgresOptions read_only;
    read_only.settings = {"default_transaction_read_only=on"};
    read_only_ = std::make_unique<PostgresServer>(read_only);
    PostgresOptions rejecting;
    rejecting.data_files = {
        {"pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 reject\n"}};
    rejecting_ = std::make_unique<PostgresServer>(rejecting);
    for (auto* pg : {writable_.get(), read_only_.get()})
      pg->exec("BEGIN READ WRITE; CREATE ROLE alice LOGIN; COMMIT;");
    // Real standbys of the writable server (roles come with the base backup): a hot standby,
    // and one with hot_standby=off, which refuses every connection with 57P03.
    PostgresOptions hot;
    hot.standby_of = writable_.get();
    standby_ = std::make_unique<PostgresServer>(hot);
    PostgresOptions cold = hot;
    cold.settings = {"hot_standby=off"};
    cold_standby_ = std::make_unique<PostgresServer>(cold);
  }
  static void TearDownTestSuite() {
    cold_standby_.reset();
    standby_.reset();
    rejecting_.reset();
    read_only_.reset();
    writable_.reset();
    pki_.reset();
  }
  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
  }

  // pgmtls with `backends.default.host/port` = the given list and target_session_attrs.
  void start(const std::vector<std::uint16_t>& ports, const std::string& attrs,
             const std::string& connect_timeout = "5s") {
    ProxyConfig c = base_proxy_config(*pki_, 0);
    c.backend_connect_timeout = connect_timeout;
    std::string yaml = c.to_yaml();
    std::string hosts, port_list;
    for (auto p : ports) {
      hosts += std::string(hosts.empty() ? "" : ",") + "127.0.0.1";
      port_list += (port_list.empty() ? "" : ",") + std::to_string(p);
    }
    const auto at = yaml.find("    host: ");
    yaml.replace(at, yaml.find("    connect_timeout:") - at,
                 "    host: \"" + hosts + "\"\n    port: \"" + port_list +
                     "\"\n    target_session_attrs: " + attrs + "\n");
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/hosts.yaml", yaml);
  }
  // The backend port the session landed on, from PostgreSQL itself; or the error.
  std::string landed() {
    ConnectResult r = pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("alice"), "alice"));
    if (!r.ok()) return "error: " + r.error;
    return query(r.conn.get(), "SELECT current_setting('port')").value.value_or("");
  }
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::unique_ptr<PostgresServer> writable_, read_only_, rejecting_, standby_,
      cold_standby_;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

TEST_F(HostListTest, AHostThatIsDownIsSkipped) {
  start({1, writable_->port()}, "any");  // nothing listens on port 1
  EXPECT_EQ(landed(), std::to_string(writable_->port()));
  EXPECT_TRUE(proxy_->wait_for_log(
      {"result=ok", "backend=127.0.0.1:" + std::to_string(writable_->port())}, kLogTimeout));
}

TEST_F(HostListTest, TargetSessionAttrsChoosesTheServer) {
  const auto ro = read_only_->port(), rw = writable_->port();
  start({ro, rw}, "any");
  EXPECT_EQ(landed(), std::to_string(ro));
  proxy_.reset();
  start({ro, rw}, "read-write");
  EXPECT_EQ(landed(), std::to_string(rw));
  proxy_.reset();
  start({rw, ro}, "read-only");
  EXPECT_EQ(landed(), std::to_string(ro));
  proxy_.reset();
  start({ro, rw}, "primary");  // neither is a standby
  EXPECT_EQ(landed(), std::to_string(ro));
}

TEST_F(HostListTest, NoMatchingServerIsAClearFatalErrorNamingEveryHost) {
  const auto ro = read_only_->port();
  start({1, ro}, "read-write");
  const std::string r = landed();
  EXPECT_THAT(r, HasSubstr("error: "));
  EXPECT_THAT(r, HasSubstr("could not connect to the database server"));
  EXPECT_TRUE(proxy_->wait_for_log({"reason=backend_unavailable", "no usable backend host",
                                    "127.0.0.1:1: connect to 127.0.0.1:1",
                                    "target_session_attrs=read-write and its transactions are "
                                    "read-only"},
                                   kLogTimeout));
  // A standby is wanted and there is none.
  proxy_.reset();
  start({writable_->port()}, "standby");
  EXPECT_THAT(landed(), HasSubstr("could not connect"));
}

TEST_F(HostListTest, ARealHotStandbyIsToldFromItsPrimary) {
  const auto primary = writable_->port(), standby = standby_->port();
  ASSERT_EQ(standby_->exec("SELECT pg_is_in_recovery()"), "t");
  start({standby, primary}, "primary");
  EXPECT_EQ(landed(), std::to_string(primary));
  proxy_.reset();
  start({standby, primary}, "read-write");
  EXPECT_EQ(landed(), std::to_string(primary));
  proxy_.reset();
  start({primary, standby}, "standby");
  EXPECT_EQ(landed(), std::to_string(standby));
  proxy_.reset();
  start({primary, standby}, "read-only");
  EXPECT_EQ(landed(), std::to_string(standby));
  proxy_.reset();
  start({primary, standby}, "prefer-standby");
  EXPECT_EQ(landed(), std::to_string(standby));
  proxy_.reset();
  start({primary}, "prefer-standby");  // no standby at all: any server will do
  EXPECT_EQ(landed(), std::to_string(primary));
}

TEST_F(HostListTest, CannotConnectNowMovesOnToTheNextHost) {
  // hot_standby=off: "the database system is not accepting connections" (57P03), which libpq
  // answers by trying the next host.
  start({cold_standby_->port(), writable_->port()}, "any");
  EXPECT_EQ(landed(), std::to_string(writable_->port()));
  EXPECT_TRUE(proxy_->wait_for_log({"result=ok"}, kLogTimeout));
  // As the last host, its error reaches the client verbatim.
  proxy_.reset();
  start({1, cold_standby_->port()}, "any");
  const std::string r = landed();
  EXPECT_THAT(r, HasSubstr("the database system is not accepting connections"));
  EXPECT_TRUE(proxy_->wait_for_log(
      {"reason=backend_error", "127.0.0.1:1: connect to", "backend refused: 57P03"}, kLogTimeout));
}

TEST_F(HostListTest, AServerThatRefusesTheRoleEndsTheSearchAsInLibpq) {
  // The first server answers, and refuses (pg_hba.conf reject): libpq would not try the next
  // host after an authentication failure, and neither does pgmtls.
  start({rejecting_->port(), writable_->port()}, "any");
  const std::string r = landed();
  EXPECT_THAT(r, HasSubstr("error: "));
  EXPECT_THAT(r, HasSubstr("pg_hba.conf rejects connection"));
  EXPECT_TRUE(
      proxy_->wait_for_log({"reason=backend_error", "not trying the other hosts"}, kLogTimeout));
}

// A socket that listens and never answers: the kernel completes the TCP handshake, nothing reads.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      throw std::runtime_error(std::string("silent listener: ") + std::strerror(errno));
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

TEST_F(HostListTest, AHostThatAcceptsAndNeverAnswersCostsOneConnectTimeout) {
  // As libpq's, connect_timeout bounds the whole attempt on a host (TCP, TLS, authentication),
  // not only the TCP connect; then the next host is tried, well within startup_timeout (10 s).
  SilentListener silent;
  start({silent.port(), writable_->port()}, "any", "300ms");
  EXPECT_EQ(landed(), std::to_string(writable_->port()));
  EXPECT_TRUE(proxy_->wait_for_log({"result=ok"}, kLogTimeout));
  // Silent as the last host: the client learns it could not connect.
  proxy_.reset();
  start({1, silent.port()}, "any", "300ms");
  EXPECT_THAT(landed(), HasSubstr("could not connect to the database server"));
  EXPECT_TRUE(proxy_->wait_for_log(
      {"reason=backend_unavailable",
       "connect_timeout (300 ms) expired on 127.0.0.1:" + std::to_string(silent.port())},
      kLogTimeout));
}

}  // namespace
}  // namespace pgmtls::integration
