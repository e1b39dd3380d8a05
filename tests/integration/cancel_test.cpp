// Cancel requests through pgmtls with real PostgreSQL and libpq: the key the client holds is
// pgmtls's own, a CancelRequest (plaintext, or inside TLS as libpq 17 sends it) reaches the right
// backend with the backend's key, over TLS when the session's backend connection used TLS, and a
// wrong key cancels nothing.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "proxy/cancel.h"
#include "proxy/peer_cancel.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using proxy::instance_of;
using ::testing::HasSubstr;

// A big-endian 32-bit value at any address (network bytes are not aligned).
std::uint32_t be32_at(const char* p) {
  std::uint32_t v = 0;
  std::memcpy(&v, p, sizeof v);
  return ntohl(v);
}

// A PostgreSQL client written out by hand over TLS, with a client certificate so that the test
// knows the secret of the key pgmtls sent (libpq does not tell it), or without one for a cancel.
class RawTlsClient {
 public:
  // `cert` null: no client certificate (a cancel needs none).
  RawTlsClient(std::uint16_t port, const std::string& root_ca, const ClientCertificate* cert)
      : ctx_(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free), ssl_(nullptr, &SSL_free) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("connect failed");
    const std::string request = ssl_request();
    char answer = 0;
    if (::send(fd_, request.data(), request.size(), 0) != 8 || ::recv(fd_, &answer, 1, 0) != 1 ||
        answer != 'S') {
      throw std::runtime_error("SSLRequest refused");
    }
    SSL_CTX_load_verify_locations(ctx_.get(), root_ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (cert != nullptr) {
      SSL_CTX_use_certificate_chain_file(ctx_.get(), cert->cert_file.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_.get(), cert->key_file.c_str(), SSL_FILETYPE_PEM);
    }
    ssl_.reset(SSL_new(ctx_.get()));
    SSL_set_fd(ssl_.get(), fd_);
    SSL_set_tlsext_host_name(ssl_.get(), "localhost");
    if (SSL_connect(ssl_.get()) != 1) throw std::runtime_error("TLS handshake failed");
  }
  ~RawTlsClient() {
    ssl_.reset();
    ::close(fd_);
  }

  void send(const std::string& bytes) {
    if (SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size())) !=
        static_cast<int>(bytes.size())) {
      throw std::runtime_error("SSL_write failed");
    }
  }
  // One message: type byte and payload; type 0 when the connection ended.
  std::pair<char, std::string> read_message() {
    char header[5];
    if (!read_exact(header, 5)) return {0, {}};
    const std::uint32_t length = be32_at(header + 1);
    std::string payload(length - 4, '\0');
    if (!read_exact(payload.data(), payload.size())) return {0, {}};
    return {header[0], payload};
  }
  // StartupMessage, then every message up to ReadyForQuery; the BackendKeyData's key.
  std::pair<std::uint32_t, std::uint32_t> start(const std::string& user) {
    send(startup_message(user, "postgres"));
    std::pair<std::uint32_t, std::uint32_t> key{0, 0};
    for (;;) {
      auto [type, payload] = read_message();
      if (type == 0 || type == 'E') throw std::runtime_error("start-up failed");
      if (type == 'K') {
        key = {be32_at(payload.data()), be32_at(payload.data() + 4)};
      }
      if (type == 'Z') return key;
    }
  }
  // The SQLSTATE of the first ErrorResponse before ReadyForQuery; empty if none.
  std::string result_sqlstate() {
    std::string sqlstate;
    for (;;) {
      auto [type, payload] = read_message();
      if (type == 0 || type == 'Z') return sqlstate;
      if (type == 'E' && sqlstate.empty()) {
        const auto at = payload.find(std::string("\0C", 2));
        if (at != std::string::npos) sqlstate = payload.substr(at + 2, 5);
      }
    }
  }

 private:
  bool read_exact(char* out, std::size_t n) {
    while (n > 0) {
      const int got = SSL_read(ssl_.get(), out, static_cast<int>(n));
      if (got <= 0) return false;
      out += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  int fd_ = -1;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_;
};

// A CancelRequest sent the way libpq 17 does: SSLRequest, TLS handshake (no client certificate),
// then the request inside TLS. Waits (bounded) until pgmtls closes the connection.
void cancel_over_tls(std::uint16_t port, const std::string& root_ca, std::uint32_t pid,
                     std::uint32_t secret) {
  RawTlsClient client(port, root_ca, nullptr);
  client.send(be32(16) + be32(80877102) + be32(pid) + be32(secret));
  EXPECT_EQ(client.read_message().first, 0) << "a cancel gets no answer";
}

// A CancelRequest in plaintext on a new connection, as libpq up to 16 sends it.
void cancel_plaintext(std::uint16_t port, std::uint32_t pid, std::uint32_t secret) {
  RawSocket s(port);
  s.send(be32(16) + be32(80877102) + be32(pid) + be32(secret));
  s.read_until_closed(10s);
}

class CancelTest : public ::testing::Test {
 protected:
  // PostgreSQL with TLS (the test PKI's server certificate) for `backend_sslmode` sessions.
  void start(const std::string& backend_sslmode) {
    pki_ = std::make_unique<TestPki>(0);
    postgres_ = std::make_unique<PostgresServer>(tls_postgres_options(*pki_));
    postgres_->exec("CREATE ROLE alice LOGIN;");
    ProxyConfig c = base_proxy_config(*pki_, postgres_->port());
    std::string yaml = c.to_yaml();
    yaml.insert(yaml.find("log:\n"), "    sslmode: " + backend_sslmode +
                                         "\n    sslrootcert: " + pki_->root_ca_file() + "\n");
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/cancel.yaml", yaml);
  }
  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
  }

  PgConn connect() {
    ConnectResult r = pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("alice"), "alice"));
    EXPECT_TRUE(r.ok()) << r.error;
    return std::move(r.conn);
  }

  // Starts a long query and waits until PostgreSQL runs it (a cancel before that is ignored).
  void start_sleep(PGconn* conn) {
    ASSERT_TRUE(PQsendQuery(conn, "SELECT pg_sleep(60) /* cancel me */"));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (running()) return;
    }
    FAIL() << "the query never showed up in pg_stat_activity";
  }
  bool running() const {
    return postgres_->exec(
               "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
               "query LIKE '%cancel me%' AND pid <> pg_backend_pid()") == "1";
  }

  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<PostgresServer> postgres_;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

TEST_F(CancelTest, TheClientHoldsPgmtlsKeyNotTheBackends) {
  start("disable");
  PgConn conn = connect();
  ASSERT_TRUE(conn);
  const std::string backend_pid = query(conn.get(), "SELECT pg_backend_pid()").value.value_or("");
  EXPECT_NE(std::to_string(PQbackendPID(conn.get())), backend_pid);
  EXPECT_GT(PQbackendPID(conn.get()), 0);
  PgConn other = connect();
  EXPECT_NE(PQbackendPID(conn.get()), PQbackendPID(other.get()));
}

TEST_F(CancelTest, LibpqCancelInPlaintextStopsTheQueryWithin57014) {
  start("disable");
  PgConn conn = connect();
  ASSERT_TRUE(conn);
  start_sleep(conn.get());
  const auto start_cancel = std::chrono::steady_clock::now();
  std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel(PQgetCancel(conn.get()), &PQfreeCancel);
  char error[256] = "";
  ASSERT_TRUE(PQcancel(cancel.get(), error, sizeof error)) << error;
  const QueryResult r = wait_for_result(conn.get(), 20s);
  const auto elapsed = std::chrono::steady_clock::now() - start_cancel;
  EXPECT_THAT(r.error, HasSubstr("57014"));
  EXPECT_LT(elapsed, 5s);
  std::cout << "[ measured ] PQcancel to 57014: "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << " us\n";
  EXPECT_TRUE(
      proxy_->wait_for_log({"result=ok", "reason=cancel_forwarded", "in plaintext"}, kLogTimeout));
  // The session goes on.
  EXPECT_EQ(query(conn.get(), "SELECT 1").value, "1");
}

std::string query_message(const std::string& sql) {
  return "Q" + be32(static_cast<std::uint32_t>(sql.size() + 5)) + sql + std::string(1, '\0');
}

TEST_F(CancelTest, AWrongSecretCancelsNothingAndACancelInsideTlsDoes) {
  start("disable");
  RawTlsClient client(proxy_->port(), pki_->root_ca_file(), &pki_->client("alice"));
  const auto [pid, secret] = client.start("alice");
  ASSERT_NE(pid, 0u);
  client.send(query_message("SELECT pg_sleep(60) /* cancel me */"));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!running() && std::chrono::steady_clock::now() < deadline) {
  }
  ASSERT_TRUE(running());

  // Wrong secret (plaintext), wrong pid (TLS): ignored, the query runs on.
  std::size_t mark = proxy_->log_mark();
  cancel_plaintext(proxy_->port(), pid, secret ^ 1);
  ASSERT_TRUE(proxy_->wait_for_log({"reason=cancel_unknown"}, kLogTimeout, mark));
  mark = proxy_->log_mark();
  cancel_over_tls(proxy_->port(), pki_->root_ca_file(), pid ^ 1, secret);
  ASSERT_TRUE(proxy_->wait_for_log({"reason=cancel_unknown"}, kLogTimeout, mark));
  EXPECT_TRUE(running());

  mark = proxy_->log_mark();
  cancel_over_tls(proxy_->port(), pki_->root_ca_file(), pid, secret);
  EXPECT_EQ(client.result_sqlstate(), "57014");
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_forwarded"}, kLogTimeout, mark));
}

TEST_F(CancelTest, AnEndedSessionsKeyCancelsNothing) {
  start("disable");
  auto client =
      std::make_unique<RawTlsClient>(proxy_->port(), pki_->root_ca_file(), &pki_->client("alice"));
  const auto [pid, secret] = client->start("alice");
  client.reset();
  ASSERT_TRUE(proxy_->wait_for_log({"connection id=", "user=alice", "result=ok"}, kLogTimeout));
  const std::size_t mark = proxy_->log_mark();
  cancel_plaintext(proxy_->port(), pid, secret);
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_unknown"}, kLogTimeout, mark));
}

TEST_F(CancelTest, ASessionWithATlsBackendIsCancelledOverTls) {
  start("verify-full");
  PgConn conn = connect();
  ASSERT_TRUE(conn);
  ASSERT_EQ(
      query(conn.get(), "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").value,
      "true");
  start_sleep(conn.get());
  std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel(PQgetCancel(conn.get()), &PQfreeCancel);
  char error[256] = "";
  ASSERT_TRUE(PQcancel(cancel.get(), error, sizeof error)) << error;
  EXPECT_THAT(wait_for_result(conn.get(), 20s).error, HasSubstr("57014"));
  // The session's backend connection used TLS, so the cancel went over TLS too.
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_forwarded", "over TLSv1.3"}, kLogTimeout));
}

// ---- between instances

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

constexpr const char* kPeerSecret = "0123456789abcdef0123456789abcdef-peers";

// Two pgmtls instances (ids 1 and 2) in front of one PostgreSQL, each the other's peer.
class PeerCancelTest : public CancelTest {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(0);
    postgres_ = std::make_unique<PostgresServer>();
    postgres_->exec("CREATE ROLE alice LOGIN;");
    write_text_file(pki_->dir() + "/peer.secret", std::string(kPeerSecret) + "\n", 0600);
    const std::uint16_t port_a = free_port(), port_b = free_port();
    // Instance 2 names its peer by host name (resolved for each cancel), instance 1 by address.
    auto config = [&](unsigned id, std::uint16_t own, unsigned peer, std::uint16_t peer_port,
                      const std::string& peer_host) {
      ProxyConfig c = base_proxy_config(*pki_, postgres_->port());
      c.listen = "127.0.0.1:" + std::to_string(own);
      c.extra_yaml = "cancel:\n  instance_id: " + std::to_string(id) +
                     "\n  peer_secret_file: " + pki_->dir() +
                     "/peer.secret\n  peers:\n    - { id: " + std::to_string(peer) +
                     ", address: \"" + peer_host + ":" + std::to_string(peer_port) + "\" }\n";
      return c.to_yaml();
    };
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/a.yaml",
                                             config(1, port_a, 2, port_b, "127.0.0.1"));
    b_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/b.yaml",
                                         config(2, port_b, 1, port_a, "localhost"));
  }
  void TearDown() override {
    if (HasFailure() && b_) std::cerr << "instance 2 log:\n" << b_->log_text();
    b_.reset();
    CancelTest::TearDown();
  }

  // A session through instance 1 running a long query; its key.
  std::pair<std::uint32_t, std::uint32_t> busy_session(std::unique_ptr<RawTlsClient>& client) {
    client = std::make_unique<RawTlsClient>(proxy_->port(), pki_->root_ca_file(),
                                            &pki_->client("alice"));
    const auto key = client->start("alice");
    client->send(query_message("SELECT pg_sleep(60) /* cancel me */"));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!running() && std::chrono::steady_clock::now() < deadline) {
    }
    EXPECT_TRUE(running());
    return key;
  }
  void send_to_a(const std::vector<std::uint8_t>& packet) {
    RawSocket s(proxy_->port());
    s.send(std::string(packet.begin(), packet.end()));
    s.read_until_closed(10s);
  }

  std::unique_ptr<PgmtlsProcess> b_;
};

TEST_F(PeerCancelTest, ACancelLandingOnTheOtherInstanceIsForwardedToTheOwner) {
  std::unique_ptr<RawTlsClient> client;
  const auto [pid, secret] = busy_session(client);
  EXPECT_EQ(instance_of(pid), 1u);
  const auto start_cancel = std::chrono::steady_clock::now();
  cancel_plaintext(b_->port(), pid, secret);
  EXPECT_EQ(client->result_sqlstate(), "57014");
  std::cout << "[ measured ] cancel via the peer to 57014: "
            << std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::steady_clock::now() - start_cancel)
                   .count()
            << " us\n";
  EXPECT_TRUE(
      b_->wait_for_log({"reason=cancel_forwarded", "to peer 1 at localhost:"}, kLogTimeout));
  EXPECT_TRUE(
      proxy_->wait_for_log({"reason=cancel_forwarded", "in plaintext (from peer 2)"}, kLogTimeout));
}

TEST_F(PeerCancelTest, ForgedStaleReplayedOrLoopingPeerPacketsCancelNothing) {
  std::unique_ptr<RawTlsClient> client;
  const auto [pid, secret] = busy_session(client);
  const auto now = std::chrono::system_clock::now();
  const protocol::CancelRequest key{pid, secret};

  std::size_t mark = proxy_->log_mark();
  send_to_a(proxy::make_peer_cancel("not-the-secret-not-the-secret-!!", key, 2, now));
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_rejected", "signature does not match"},
                                   kLogTimeout, mark));
  mark = proxy_->log_mark();
  send_to_a(proxy::make_peer_cancel(kPeerSecret, key, 2, now - std::chrono::minutes(5)));
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_rejected", "off this instance's clock"},
                                   kLogTimeout, mark));
  // A valid packet for another instance's key is not passed on (no loops).
  mark = proxy_->log_mark();
  send_to_a(proxy::make_peer_cancel(kPeerSecret, {pid ^ (3u << 23), secret}, 2, now));
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_unknown", "not this one"}, kLogTimeout, mark));
  EXPECT_FALSE(b_->wait_for_log({"cancel_"}, 0ms));
  // The same valid packet twice: the second is a replay.
  const auto wrong_key = proxy::make_peer_cancel(kPeerSecret, {pid, secret ^ 1}, 2, now);
  mark = proxy_->log_mark();
  send_to_a(wrong_key);
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_unknown"}, kLogTimeout, mark));
  mark = proxy_->log_mark();
  send_to_a(wrong_key);
  EXPECT_TRUE(proxy_->wait_for_log({"reason=cancel_rejected", "replayed"}, kLogTimeout, mark));
  EXPECT_TRUE(running());

  // And a correct one cancels.
  send_to_a(proxy::make_peer_cancel(kPeerSecret, key, 2, std::chrono::system_clock::now()));
  EXPECT_EQ(client->result_sqlstate(), "57014");
}

}  // namespace
}  // namespace pgmtls::integration
