// The listener's ways in: direct TLS (PostgreSQL 17's sslnegotiation=direct, ALPN "postgresql")
// checked with `openssl s_client`, ALPN on the SSLRequest path, and the PROXY protocol (v1, v2)
// from a test load balancer on 127.0.0.2 (trusted) or 127.0.0.3 (not) in front of a real libpq
// client, with access rules that only the client address from the header satisfies.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "auth/pki.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/process.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A TCP load balancer on 127.0.0.1: each connection it accepts is forwarded to `target_port`
// from `source_ip`, after `header` (a PROXY header, or nothing), and relayed both ways until
// either side closes. One connection at a time; stops when destroyed.
class TestBalancer {
 public:
  TestBalancer(std::uint16_t target_port, std::string source_ip, std::string header)
      : target_port_(target_port), source_ip_(std::move(source_ip)), header_(std::move(header)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("test balancer: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TestBalancer() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
  }
  TestBalancer(const TestBalancer&) = delete;
  TestBalancer& operator=(const TestBalancer&) = delete;

  std::uint16_t port() const { return port_; }
  // The port the balancer's last connection to pgmtls came from.
  std::uint16_t last_source_port() const { return last_source_port_; }

 private:
  void serve() {
    while (!stopping_) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      const int upstream = connect_upstream();
      if (upstream >= 0 && send_all(upstream, header_)) relay(client, upstream);
      if (upstream >= 0) ::close(upstream);
      ::close(client);
    }
  }

  int connect_upstream() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    ::inet_pton(AF_INET, source_ip_.c_str(), &source.sin_addr);
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(target_port_);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
      ::close(fd);
      return -1;
    }
    socklen_t len = sizeof source;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&source), &len);
    last_source_port_ = ntohs(source.sin_port);
    return fd;
  }

  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void relay(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    while (!stopping_) {
      if (::poll(fds, 2, 200) < 0) return;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents == 0) continue;
        const ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
        if (n <= 0 || !send_all(fds[1 - i].fd, std::string_view(buf, n))) return;
      }
    }
  }

  std::uint16_t target_port_;
  std::string source_ip_;
  std::string header_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<std::uint16_t> last_source_port_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

std::string proxy_v1(const std::string& source, std::uint16_t source_port,
                     std::uint16_t target_port) {
  const bool v6 = source.find(':') != std::string::npos;
  return std::string("PROXY ") + (v6 ? "TCP6 " : "TCP4 ") + source + " " +
         (v6 ? "::1" : "127.0.0.1") + " " + std::to_string(source_port) + " " +
         std::to_string(target_port) + "\r\n";
}

std::string proxy_v2(std::uint8_t command, const std::vector<std::uint8_t>& source_v4,
                     std::uint16_t source_port, std::uint16_t target_port) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(0x20 | command);
  if (command == 0) return h + std::string("\x00\x00\x00", 3);  // LOCAL, AF_UNSPEC
  h += '\x11';                                                  // AF_INET, STREAM
  h += std::string("\x00\x0c", 2);
  for (const auto b : source_v4)
    h += static_cast<char>(b);
  h += std::string("\x7f\x00\x00\x01", 4);
  h += static_cast<char>(source_port >> 8);
  h += static_cast<char>(source_port & 0xff);
  h += static_cast<char>(target_port >> 8);
  h += static_cast<char>(target_port & 0xff);
  return h;
}

// A simple-query message ('Q', length, SQL, NUL) and Terminate ('X').
std::string query_message(const std::string& sql) {
  return "Q" + be32(static_cast<std::uint32_t>(4 + sql.size() + 1)) + sql + std::string(1, '\0');
}
const std::string kTerminate = std::string("X") + be32(4);

class ListenerTest : public ProxySuite<ListenerTest> {
 protected:
  static void SetUpTestSuite() { set_up_suite("CREATE ROLE alice LOGIN;"); }

  // `openssl s_client` against pgmtls, fed `input` on stdin; -ign_eof keeps it reading until
  // pgmtls closes. `extra` are more s_client options (-alpn, -starttls).
  CommandResult s_client(const std::vector<std::string>& extra, const std::string& input,
                         std::uint16_t port = 0) {
    const std::string in_file = pki_->dir() + "/s_client.in";
    write_text_file(in_file, input);
    std::string command = "exec /usr/bin/openssl s_client -connect 127.0.0.1:" +
                          std::to_string(port != 0 ? port : proxy_->port()) +
                          " -servername localhost -CAfile " + pki_->root_ca_file() + " -cert " +
                          pki_->client("alice").cert_file + " -key " +
                          pki_->client("alice").key_file + " -verify_return_error -ign_eof";
    for (const auto& e : extra)
      command += " " + e;
    return run_command({"/bin/sh", "-c", command + " < " + in_file});
  }

  // A libpq session through `balancer` as alice; "" or why it failed. Checks current_user.
  std::string session_through(const TestBalancer& balancer) {
    auto c = pg_connect(
        tls_conninfo(balancer.port(), pki_->root_ca_file(), &pki_->client("alice"), "alice"));
    if (!c.ok()) return c.error;
    const auto r = query(c.conn.get(), "SELECT current_user");
    return r.ok() && r.value == "alice" ? "" : "query failed: " + r.error;
  }

  // pgmtls admitting alice only from 203.0.113.0/24 and 2001:db8::/32 (addresses only a PROXY
  // header can claim here), with PROXY headers trusted from 127.0.0.2.
  void launch_behind_balancer() {
    ProxyConfig c = config();
    c.extra_yaml =
        "proxy_protocol:\n  trusted_sources: [127.0.0.2/32]\n"
        "hba:\n"
        "  - { type: hostssl, database: all, user: alice, address: 203.0.113.0/24 }\n"
        "  - { type: hostssl, database: all, user: alice, address: \"2001:db8::/32\" }\n"
        "  - { type: hostssl, database: all, user: all, address: all, method: reject }\n";
    launch(c.to_yaml());
  }
};

TEST_F(ListenerTest, DirectTlsWithAlpnSpeaksTheProtocol) {
  launch(config().to_yaml());
  const std::size_t mark = proxy_->log_mark();
  const auto r = s_client({"-alpn", "postgresql"},
                          startup_message("alice", "postgres") +
                              query_message("SELECT 'direct' || '-tls-ok'") + kTerminate);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ALPN protocol: postgresql"));
  EXPECT_THAT(r.output, HasSubstr("direct-tls-ok"));  // the DataRow
  EXPECT_TRUE(proxy_->wait_for_log({"session_start", "subject=\"CN=alice\"", "user=alice"},
                                   kLogTimeout, mark));
  // Terminate reaches PostgreSQL, which closes; pgmtls ends the TLS session with close_notify
  // (s_client exits 0 only after an orderly end).
  EXPECT_TRUE(proxy_->wait_for_log({"connection", "result=ok", "user=alice"}, kLogTimeout, mark));
}

TEST_F(ListenerTest, DirectTlsWithoutAlpnPostgresqlIsRefused) {
  launch(config().to_yaml());
  std::size_t mark = proxy_->log_mark();
  auto r = s_client({}, startup_message("alice", "postgres") + kTerminate);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("no application protocol"));  // the TLS alert
  EXPECT_THAT(r.output, Not(HasSubstr("ReadyForQuery")));
  EXPECT_TRUE(proxy_->wait_for_log(
      {"result=rejected", "reason=tls_error", "direct TLS refused: the client offered no ALPN"},
      kLogTimeout, mark));

  mark = proxy_->log_mark();
  r = s_client({"-alpn", "h2,http/1.1"}, startup_message("alice", "postgres") + kTerminate);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("no application protocol"));
  EXPECT_TRUE(proxy_->wait_for_log(
      {"result=rejected", "reason=tls_error", "offered ALPN protocols, but not"}, kLogTimeout,
      mark));
}

TEST_F(ListenerTest, SslRequestPathNegotiatesAlpnWhenOffered) {
  launch(config().to_yaml());
  // s_client's -starttls postgres sends the SSLRequest and waits for 'S'.
  auto r = s_client({"-starttls", "postgres", "-alpn", "postgresql"},
                    startup_message("alice", "postgres") + query_message("SELECT 1") + kTerminate);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ALPN protocol: postgresql"));
  // Without ALPN (libpq before 17) the SSLRequest path goes on as always.
  r = s_client({"-starttls", "postgres"},
               startup_message("alice", "postgres") + query_message("SELECT 1") + kTerminate);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("No ALPN negotiated"));
}

TEST_F(ListenerTest, ProxyV1FromATrustedBalancerCarriesTheClientAddress) {
  launch_behind_balancer();
  // Without the balancer, 127.0.0.1 matches only the reject rule: the header is what admits.
  auto direct = pg_connect(
      tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("alice"), "alice"));
  EXPECT_FALSE(direct.ok());

  for (const auto& [source, text] : std::vector<std::pair<std::string, std::string>>{
           {"203.0.113.7", "peer=203.0.113.7:40001"},
           {"2001:db8::7", "peer=[2001:db8::7]:40001"}}) {
    const std::size_t mark = proxy_->log_mark();
    TestBalancer balancer(proxy_->port(), "127.0.0.2", proxy_v1(source, 40001, proxy_->port()));
    EXPECT_EQ(session_through(balancer), "") << source;
    const std::string via = "via=127.0.0.2:" + std::to_string(balancer.last_source_port());
    EXPECT_TRUE(proxy_->wait_for_log({"session_start", text, via, "user=alice"}, kLogTimeout, mark))
        << source;
  }
}

TEST_F(ListenerTest, ProxyV2FromATrustedBalancerCarriesTheClientAddress) {
  launch_behind_balancer();
  std::size_t mark = proxy_->log_mark();
  {
    TestBalancer balancer(proxy_->port(), "127.0.0.2",
                          proxy_v2(1, {203, 0, 113, 9}, 50000, proxy_->port()));
    EXPECT_EQ(session_through(balancer), "");
    EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "peer=203.0.113.9:50000", "via=127.0.0.2:"},
                                     kLogTimeout, mark));
  }
  // LOCAL (a balancer's own health check): its own address stands, which the rules refuse.
  mark = proxy_->log_mark();
  TestBalancer local(proxy_->port(), "127.0.0.2", proxy_v2(0, {}, 0, 0));
  EXPECT_THAT(session_through(local),
              HasSubstr("pg_hba.conf rejects connection for host \"127.0.0.2\""));
  const auto line =
      proxy_->wait_for_log({"reason=hba_reject", "peer=127.0.0.2:"}, kLogTimeout, mark);
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, Not(HasSubstr("via=")));
}

TEST_F(ListenerTest, ProxyHeadersOnlyFromTrustedSourcesAndAlwaysFromThem) {
  launch_behind_balancer();
  std::size_t mark = proxy_->log_mark();
  {
    // 127.0.0.3 may not claim another address: refused before TLS.
    TestBalancer untrusted(proxy_->port(), "127.0.0.3",
                           proxy_v1("203.0.113.7", 40001, proxy_->port()));
    EXPECT_NE(session_through(untrusted), "");
    EXPECT_TRUE(proxy_->wait_for_log(
        {"result=rejected", "reason=proxy_protocol_error", "peer=127.0.0.3:",
         "PROXY protocol header from 127.0.0.3:", "not in proxy_protocol.trusted_sources"},
        kLogTimeout, mark));
  }
  mark = proxy_->log_mark();
  {
    // A trusted source must send one: without it the client's SSLRequest is not a header.
    TestBalancer headless(proxy_->port(), "127.0.0.2", "");
    EXPECT_NE(session_through(headless), "");
    EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=proxy_protocol_error",
                                      "does not start with a PROXY protocol header"},
                                     kLogTimeout, mark));
  }
  mark = proxy_->log_mark();
  {
    TestBalancer broken(proxy_->port(), "127.0.0.2", "PROXY TCP4 203.0.113.7 127.0.0.1 1\r\n");
    EXPECT_NE(session_through(broken), "");
    EXPECT_TRUE(proxy_->wait_for_log(
        {"reason=proxy_protocol_error", "invalid PROXY protocol header", "port"}, kLogTimeout,
        mark));
  }
  EXPECT_TRUE(proxy_->running());
}

// SNI routing: one pgmtls in front of two PostgreSQL servers, each reached by its own host name
// with its own server certificate; a client without a listed name gets the default.
TEST_F(ListenerTest, ServerNamesRouteToTheirOwnBackendsAndCertificates) {
  PostgresServer billing;
  billing.exec("CREATE ROLE alice LOGIN;");
  auth::pki::CertificateSpec spec;
  spec.common_name = "billing.db.test";
  spec.server_auth = true;
  spec.san.dns = {"billing.db.test"};
  const ClientCertificate& billing_cert = pki_->add_client("billing-server", spec);

  ProxyConfig c = config();
  c.more_backends_yaml =
      "  billing:\n    host: 127.0.0.1\n    port: " + std::to_string(billing.port()) + "\n";
  c.extra_yaml = "sni:\n  - { server_name: \"*.db.test\", cert_file: " + billing_cert.cert_file +
                 ", key_file: " + billing_cert.key_file + ", backend: billing }\n";
  launch(c.to_yaml());

  // libpq sends the host name as SNI and checks the certificate against it (verify-full).
  auto port_through = [&](const std::string& host) -> std::string {
    const ClientCertificate& alice = pki_->client("alice");
    auto conn =
        pg_connect("host=" + host + " hostaddr=127.0.0.1 port=" + std::to_string(proxy_->port()) +
                   " sslmode=verify-full sslrootcert=" + pki_->root_ca_file() +
                   " sslcert=" + alice.cert_file + " sslkey=" + alice.key_file +
                   " user=alice dbname=postgres gssencmode=disable connect_timeout=10");
    if (!conn.ok()) return "error: " + conn.error;
    return query(conn.conn.get(), "SHOW port").value.value_or("no value");
  };
  std::size_t mark = proxy_->log_mark();
  EXPECT_EQ(port_through("billing.db.test"), std::to_string(billing.port()));
  EXPECT_TRUE(proxy_->wait_for_log({"session_start", "server_name=*.db.test",
                                    "backend=127.0.0.1:" + std::to_string(billing.port())},
                                   kLogTimeout, mark));
  // localhost is no route's name: the default certificate (CN=localhost) and backend.
  EXPECT_EQ(port_through("localhost"), std::to_string(postgres_->port()));
  // A name the default certificate does not carry fails verify-full at the client, as it should.
  EXPECT_THAT(port_through("other.example.org"), HasSubstr("error:"));

  // s_client shows which certificate each name gets.
  auto r = s_client({"-starttls", "postgres", "-servername", "orders.db.test"}, kTerminate);
  EXPECT_THAT(r.output, HasSubstr("subject=CN = billing.db.test"));
  r = s_client({"-starttls", "postgres"}, kTerminate);
  EXPECT_THAT(r.output, HasSubstr("subject=CN = localhost"));
}

TEST_F(ListenerTest, SniConfigurationMistakesAreNamed) {
  ProxyConfig c = config();
  const std::string path = pki_->dir() + "/sni.yaml";
  auto check = [&](const std::string& more_backends, const std::string& sni) {
    c.more_backends_yaml = more_backends;
    c.extra_yaml = sni;
    write_text_file(path, c.to_yaml());
    return run_pgmtls_check(path).output;
  };
  const std::string cert =
      ", cert_file: " + pki_->server_cert_file() + ", key_file: " + pki_->server_key_file();
  EXPECT_THAT(check("  other:\n    host: 127.0.0.1\n", ""),
              HasSubstr("backends.other is not the backend of any sni: route"));
  EXPECT_THAT(check("", "sni:\n  - { server_name: a.test" + cert + ", backend: nope }\n"),
              HasSubstr("sni[].backend \"nope\" is not a name under backends"));
  EXPECT_THAT(check("", "sni:\n  - { server_name: \"a.*.test\"" + cert + ", backend: default }\n"),
              HasSubstr("must be a host name with a dot, or *.domain"));
  EXPECT_THAT(check("", "sni:\n  - { server_name: a.test" + cert +
                            ", backend: default }\n  - { server_name: A.test" + cert +
                            ", backend: default }\n"),
              HasSubstr("is listed twice"));
  EXPECT_THAT(check("", "sni:\n  - { server_name: a.test, backend: default }\n"),
              HasSubstr("cert_file"));
}

// Session tickets under tls.session_ticket_key_file: a session from one instance resumes on
// another with the same key file, keys rotate without losing sessions, and a different trust
// configuration (a CRL) still ends every ticket made before it.
class TicketKeyTest : public ListenerTest {
 protected:
  static constexpr const char* kOldKey =
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627"
      "28292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f";
  static constexpr const char* kNewKey =
      "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0dfdedddcdbdad9d8"
      "d7d6d5d4d3d2d1d0cfcecdcccbcac9c8c7c6c5c4c3c2c1c0bfbebdbcbbbab9b8b7b6b5b4b3b2b1b0";

  static ProxyConfig ticket_config(const std::string& key_file) {
    ProxyConfig c = config();
    c.tls_yaml = "  session_ticket_lifetime: 1h\n";
    if (!key_file.empty()) c.tls_yaml += "  session_ticket_key_file: " + key_file + "\n";
    return c;
  }
  static std::string key_file(const std::string& name, const std::vector<std::string>& keys) {
    std::string text = "# ticket keys, the first one current\n";
    for (const auto& k : keys)
      text += k + "\n";
    const std::string path = pki_->dir() + "/" + name;
    write_text_file(path, text, 0600);
    return path;
  }
  // A whole session over an SSLRequest, saving the session (and its ticket) to `session_file`
  // or resuming from it. Returns s_client's output.
  std::string session(std::uint16_t port, const std::string& session_file, bool resume) {
    const auto r = s_client(
        {"-starttls", "postgres", resume ? "-sess_in" : "-sess_out", session_file},
        startup_message("alice", "postgres") + query_message("SELECT 1") + kTerminate, port);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }
};

TEST_F(TicketKeyTest, ASessionFromOneInstanceResumesOnAnotherWithTheSameKeys) {
  const std::string keys = key_file("tickets.keys", {kOldKey});
  launch(ticket_config(keys).to_yaml());
  PgmtlsProcess other(pki_->dir() + "/other.yaml", ticket_config(keys).to_yaml());
  const std::string sess = pki_->dir() + "/alice.sess";

  EXPECT_THAT(session(proxy_->port(), sess, false), HasSubstr("New, TLSv1.3"));
  const std::size_t mark = other.log_mark();
  EXPECT_THAT(session(other.port(), sess, true), HasSubstr("Reused, TLSv1.3"));
  EXPECT_TRUE(other.wait_for_log({"session_start", "subject=\"CN=alice\"", "tls_resumed=true"},
                                 kLogTimeout, mark));

  // An instance with its own keys cannot read the ticket: a full handshake, no failure.
  PgmtlsProcess own_keys(pki_->dir() + "/own.yaml", ticket_config("").to_yaml());
  EXPECT_THAT(session(own_keys.port(), sess, true), HasSubstr("New, TLSv1.3"));
}

TEST_F(TicketKeyTest, KeysRotateWithoutLosingSessions) {
  const std::string keys = key_file("tickets.keys", {kOldKey});
  launch(ticket_config(keys).to_yaml());
  const std::string sess = pki_->dir() + "/alice.sess";
  EXPECT_THAT(session(proxy_->port(), sess, false), HasSubstr("New, TLSv1.3"));

  // A new key in front: new tickets use it, tickets under the old one still resume.
  key_file("tickets.keys", {kNewKey, kOldKey});
  reload(ticket_config(keys).to_yaml(), "configuration reloaded");
  EXPECT_THAT(session(proxy_->port(), sess, true), HasSubstr("Reused, TLSv1.3"));
  const std::string renewed = pki_->dir() + "/renewed.sess";
  EXPECT_THAT(session(proxy_->port(), renewed, false), HasSubstr("New, TLSv1.3"));

  // The old key retired: its tickets get a full handshake, the new key's still resume.
  key_file("tickets.keys", {kNewKey});
  reload(ticket_config(keys).to_yaml(), "configuration reloaded");
  EXPECT_THAT(session(proxy_->port(), sess, true), HasSubstr("New, TLSv1.3"));
  EXPECT_THAT(session(proxy_->port(), renewed, true), HasSubstr("Reused, TLSv1.3"));
}

TEST_F(TicketKeyTest, ANewCrlEndsTicketsEvenWithSharedKeys) {
  const std::string keys = key_file("tickets.keys", {kOldKey});
  launch(ticket_config(keys).to_yaml());
  const std::string sess = pki_->dir() + "/alice.sess";
  EXPECT_THAT(session(proxy_->port(), sess, false), HasSubstr("New, TLSv1.3"));
  ProxyConfig with_crl = ticket_config(keys);
  with_crl.crl_file = pki_->root_crl_file();
  reload(with_crl.to_yaml(), "configuration reloaded");
  EXPECT_THAT(session(proxy_->port(), sess, true), HasSubstr("New, TLSv1.3"));
}

TEST_F(TicketKeyTest, BrokenKeyFilesAreRefused) {
  const std::string short_key = key_file("short.keys", {"abcd"});
  const std::string twice = key_file("twice.keys", {kOldKey, kOldKey});
  const std::string empty = key_file("empty.keys", {});
  for (const auto& [file, message] : std::vector<std::pair<std::string, std::string>>{
           {short_key, "short.keys:2: a key is 160 hex digits"},
           {twice, "twice.keys:3: two keys share a name"},
           {empty, "holds no key"}}) {
    const std::string path = pki_->dir() + "/broken.yaml";
    write_text_file(path, ticket_config(file).to_yaml());
    const auto r = run_pgmtls_check(path);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_THAT(r.output, HasSubstr(message));
  }
  ProxyConfig no_lifetime = config();
  no_lifetime.tls_yaml = "  session_ticket_key_file: " + short_key + "\n";
  const std::string path = pki_->dir() + "/no_lifetime.yaml";
  write_text_file(path, no_lifetime.to_yaml());
  EXPECT_THAT(run_pgmtls_check(path).output, HasSubstr("needs tls.session_ticket_lifetime"));
}

}  // namespace
}  // namespace pgmtls::integration
