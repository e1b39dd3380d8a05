// The backend side: pgmtls authenticating to real PostgreSQL servers that want scram-sha-256,
// md5, password or cert, over TLS it verifies like libpq (verify-full, verify-ca, require,
// prefer), and what clients see when that fails. Secrets never reach a log line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "auth/pki.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace pki = auth::pki;

constexpr const char* kAlicePassword = "alice-Secret-7f3a";  // stored as SCRAM
constexpr const char* kCarolPassword = "carol-Secret-91bd";  // stored as MD5
constexpr const char* kWrongPassword = "not-the-Password-0000";

// The backend's own PKI: a CA, the server certificate (DNS name localhost only, so connecting by
// IP fails verify-full), and the client certificate pgmtls presents to a `cert` rule.
struct BackendPki {
  std::string dir;
  std::string ca_file, other_ca_file, pgmtls_cert, pgmtls_key;
  std::string server_cert_pem, server_key_pem, ca_pem;

  explicit BackendPki(const std::string& directory) : dir(directory) {
    pki::CertificateSpec ca_spec;
    ca_spec.common_name = "Backend CA";
    ca_spec.is_ca = true;
    const auto ca = pki::self_signed(ca_spec);
    const auto other = pki::self_signed(ca_spec);  // same name, another key: unknown CA
    pki::CertificateSpec server;
    server.common_name = "localhost";
    server.server_auth = true;
    server.san.dns = {"localhost"};
    const auto server_cred = pki::issue(server, ca);
    pki::CertificateSpec client;
    client.common_name = "alice";
    client.client_auth = true;
    const auto client_cred = pki::issue(client, ca);

    ca_file = dir + "/backend-ca.crt";
    other_ca_file = dir + "/other-ca.crt";
    pgmtls_cert = dir + "/pgmtls-to-backend.crt";
    pgmtls_key = dir + "/pgmtls-to-backend.key";
    pki::write_certificates(ca_file, {ca.cert.get()});
    pki::write_certificates(other_ca_file, {other.cert.get()});
    pki::write_certificates(pgmtls_cert, {client_cred.cert.get()});
    pki::write_private_key(pgmtls_key, *client_cred.key);
    server_cert_pem = pki::to_pem(*server_cred.cert);
    server_key_pem = pki::private_key_to_pem(*server_cred.key);
    ca_pem = pki::to_pem(*ca.cert);
  }
};

// A TCP server on 127.0.0.1 that accepts one connection, reads what comes, answers an SSLRequest
// with 'N', and then either closes or holds the connection until destroyed.
class FakeBackend {
 public:
  enum class Mode { close_after_startup, stall };

  explicit FakeBackend(Mode mode) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 4) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len)) {
      throw std::runtime_error("fake backend: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeBackend() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }

  std::uint16_t port() const { return port_; }

 private:
  void serve() {
    const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    char buf[8192];
    ssize_t n = ::recv(conn, buf, sizeof buf, 0);
    if (n == 8) {  // SSLRequest: refuse TLS, then read the StartupMessage
      (void)!::send(conn, "N", 1, MSG_NOSIGNAL);
      n = ::recv(conn, buf, sizeof buf, 0);
    }
    if (mode_ == Mode::stall) {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_; });
    }
    ::close(conn);
  }

  Mode mode_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
};

class BackendAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pki_ = std::make_unique<TestPki>(0);
      backend_pki_ = std::make_unique<BackendPki>(pki_->dir());
      PostgresOptions options;
      options.settings = {"ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key",
                          "ssl_ca_file=ca.crt"};
      options.data_files = {
          {"server.crt", backend_pki_->server_cert_pem},
          {"server.key", backend_pki_->server_key_pem},
          {"ca.crt", backend_pki_->ca_pem},
          {"pg_hba.conf",
           "local all all trust\n"
           "hostssl db_scram all 127.0.0.1/32 scram-sha-256\n"
           "hostssl db_md5 all 127.0.0.1/32 md5\n"
           "hostssl db_password all 127.0.0.1/32 password\n"
           "hostssl db_cert all 127.0.0.1/32 cert\n"
           "hostnossl db_plain all 127.0.0.1/32 password\n"
           "hostnossl db_plain_scram all 127.0.0.1/32 scram-sha-256\n"},
      };
      postgres_ = std::make_unique<PostgresServer>(options);
      postgres_->exec(std::string("CREATE ROLE alice LOGIN PASSWORD '") + kAlicePassword + "'");
      postgres_->exec(std::string("SET password_encryption = 'md5'; CREATE ROLE carol LOGIN "
                                  "PASSWORD '") +
                      kCarolPassword + "'");
      for (const char* db :
           {"db_scram", "db_md5", "db_password", "db_cert", "db_plain", "db_plain_scram"})
        postgres_->exec(std::string("CREATE DATABASE ") + db);
      plain_postgres_ = std::make_unique<PostgresServer>();  // no TLS at all
      plain_postgres_->create_login_role("alice");

      write_text_file(pki_->dir() + "/alice.pw", std::string(kAlicePassword) + "\n", 0600);
      write_text_file(pki_->dir() + "/wrong.pw", std::string(kWrongPassword) + "\n", 0600);
      write_text_file(pki_->dir() + "/pgpass",
                      "# host:port:db:user:password\n"
                      "localhost:*:*:carol:" +
                          std::string(kCarolPassword) + "\n*:*:*:*:" + kWrongPassword + "\n",
                      0600);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void TearDownTestSuite() {
    plain_postgres_.reset();
    postgres_.reset();
    backend_pki_.reset();
    pki_.reset();
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
  }

  // Starts pgmtls with the given `backends:` entry body (indented by 4) and no map: the client
  // certificate's CN is the role.
  void start_proxy(const std::string& backend_yaml, std::uint16_t backend_port = 0,
                   const std::string& startup_timeout = "10s") {
    ProxyConfig config = base_proxy_config(*pki_, backend_port ? backend_port : postgres_->port());
    config.startup_timeout = startup_timeout;
    std::string yaml = config.to_yaml();
    // Replace the fixture's plain backend with the one under test.
    const auto at = yaml.find("backends:\n");
    const auto end = yaml.find("log:\n");
    yaml.replace(at, end - at,
                 "backends:\n  main:\n    port: " +
                     std::to_string(backend_port ? backend_port : postgres_->port()) + "\n" +
                     backend_yaml);
    proxy_ = std::make_unique<PgmtlsProcess>(
        pki_->dir() + "/pgmtls-" + std::to_string(++config_count_) + ".yaml", yaml);
  }

  ConnectResult connect(const std::string& user, const std::string& dbname) {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(user), user, dbname));
  }

  void expect_session(const std::string& user, const std::string& dbname,
                      const std::string& backend_auth) {
    ConnectResult c = connect(user, dbname);
    ASSERT_TRUE(c.ok()) << c.error;
    const QueryResult r = query(c.conn.get(), "SELECT current_user");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.value, user);
    c.conn.reset();  // the log line is written when the session ends
    EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "backend_auth=" + backend_auth}, kLogTimeout))
        << "no log line with backend_auth=" << backend_auth;
  }

  void expect_refused(const std::string& user, const std::string& dbname,
                      const std::string& client_error, const std::string& reason,
                      const std::string& detail = "") {
    const ConnectResult c = connect(user, dbname);
    ASSERT_FALSE(c.ok()) << "connected through a backend that should have refused";
    EXPECT_THAT(c.error, HasSubstr(client_error));
    std::vector<std::string> needles{"reason=" + reason};
    if (!detail.empty()) needles.push_back(detail);
    EXPECT_TRUE(proxy_->wait_for_log(needles, kLogTimeout)) << "no log line with " << reason;
  }

  std::string tls(const std::string& mode, const std::string& root = "") {
    return "    host: localhost\n    sslmode: " + mode + "\n" +
           (root.empty() ? "" : "    sslrootcert: " + root + "\n");
  }
  std::string verify_full() { return tls("verify-full", backend_pki_->ca_file); }
  std::string password_file(const std::string& file) {
    return "    auth:\n      password_file: " + pki_->dir() + "/" + file + "\n";
  }

  static inline std::unique_ptr<TestPki> pki_;
  static inline std::unique_ptr<BackendPki> backend_pki_;
  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<PostgresServer> plain_postgres_;
  static inline std::string setup_error_;
  static inline int config_count_ = 0;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

TEST_F(BackendAuthTest, ScramPlusOverVerifiedTls) {
  start_proxy(verify_full() + password_file("alice.pw"));
  expect_session("alice", "db_scram", "scram-sha-256-plus");
  EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "backend_tls=TLSv1.3"}, kLogTimeout));
}

TEST_F(BackendAuthTest, ScramWithoutTlsUsesPlainScram) {
  start_proxy("    host: localhost\n    sslmode: disable\n" + password_file("alice.pw"));
  expect_session("alice", "db_plain_scram", "scram-sha-256");
}

TEST_F(BackendAuthTest, ScramWithAWrongPasswordIsRefused) {
  start_proxy(verify_full() + password_file("wrong.pw"));
  expect_refused("alice", "db_scram", "pgmtls cannot authenticate to the database server",
                 "backend_auth_failed", "password authentication failed for user");
}

TEST_F(BackendAuthTest, Md5FromAPassfile) {
  start_proxy(verify_full() + "    auth:\n      passfile: " + pki_->dir() + "/pgpass\n");
  expect_session("carol", "db_md5", "md5");
}

TEST_F(BackendAuthTest, Md5WithAWrongPasswordIsRefused) {
  start_proxy(verify_full() + password_file("wrong.pw"));
  expect_refused("carol", "db_md5", "pgmtls cannot authenticate to the database server",
                 "backend_auth_failed");
}

TEST_F(BackendAuthTest, CleartextPasswordOverTls) {
  start_proxy(verify_full() + password_file("alice.pw"));
  expect_session("alice", "db_password", "password");
}

TEST_F(BackendAuthTest, CleartextPasswordWithAWrongPasswordIsRefused) {
  start_proxy(verify_full() + password_file("wrong.pw"));
  expect_refused("alice", "db_password", "pgmtls cannot authenticate", "backend_auth_failed");
}

TEST_F(BackendAuthTest, CleartextPasswordIsNotSentWithoutTls) {
  start_proxy("    host: localhost\n    sslmode: disable\n" + password_file("alice.pw"));
  expect_refused("alice", "db_plain", "pgmtls cannot authenticate", "backend_auth_failed",
                 "without TLS");
}

TEST_F(BackendAuthTest, CleartextPasswordWithoutTlsWhenExplicitlyAllowed) {
  start_proxy(
      "    host: localhost\n    sslmode: disable\n    "
      "allow_cleartext_password_without_tls: true\n" +
      password_file("alice.pw"));
  expect_session("alice", "db_plain", "password");
}

TEST_F(BackendAuthTest, PerRoleCredentialsOverrideTheDefault) {
  ::setenv("PGMTLS_TEST_ALICE_PW", kAlicePassword, 1);
  start_proxy(verify_full() + password_file("wrong.pw") +
              "    roles:\n      alice:\n        auth: { password_env: PGMTLS_TEST_ALICE_PW }\n");
  expect_session("alice", "db_scram", "scram-sha-256-plus");
  expect_refused("carol", "db_md5", "pgmtls cannot authenticate", "backend_auth_failed");
}

TEST_F(BackendAuthTest, NoCredentialForARoleIsAClearError) {
  start_proxy(verify_full());
  expect_refused("alice", "db_scram", "pgmtls cannot authenticate", "backend_auth_failed",
                 "no credential is configured");
}

TEST_F(BackendAuthTest, PgmtlsOwnCertificateForACertRule) {
  start_proxy(verify_full() + "    sslcert: " + backend_pki_->pgmtls_cert +
              "\n    sslkey: " + backend_pki_->pgmtls_key + "\n");
  expect_session("alice", "db_cert", "trust");
}

TEST_F(BackendAuthTest, CertRuleWithoutPgmtlsCertificateIsRefusedByTheBackend) {
  start_proxy(verify_full());
  expect_refused("alice", "db_cert", "connection requires a valid client certificate",
                 "backend_error");
}

TEST_F(BackendAuthTest, VerifyFullRefusesAWrongHostName) {
  // The certificate names localhost; 127.0.0.1 is not in it.
  start_proxy("    host: 127.0.0.1\n    sslmode: verify-full\n    sslrootcert: " +
              backend_pki_->ca_file + "\n" + password_file("alice.pw"));
  expect_refused("alice", "db_scram", "could not connect to the database server",
                 "backend_tls_failed", "certificate rejected");
}

TEST_F(BackendAuthTest, VerifyCaAcceptsTheChainWhateverTheName) {
  start_proxy("    host: 127.0.0.1\n    sslmode: verify-ca\n    sslrootcert: " +
              backend_pki_->ca_file + "\n" + password_file("alice.pw"));
  expect_session("alice", "db_scram", "scram-sha-256-plus");
}

TEST_F(BackendAuthTest, VerifyFullRefusesAnUnknownCa) {
  start_proxy(tls("verify-full", backend_pki_->other_ca_file) + password_file("alice.pw"));
  expect_refused("alice", "db_scram", "could not connect to the database server",
                 "backend_tls_failed", "certificate rejected");
}

TEST_F(BackendAuthTest, RequireRefusesAPlaintextOnlyServer) {
  start_proxy("    host: localhost\n    sslmode: require\n", plain_postgres_->port());
  expect_refused("alice", "postgres", "could not connect to the database server",
                 "backend_tls_failed", "does not accept TLS");
}

TEST_F(BackendAuthTest, PreferFallsBackToPlaintext) {
  start_proxy("    host: localhost\n    sslmode: prefer\n", plain_postgres_->port());
  expect_session("alice", "postgres", "trust");
  EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "backend_tls=-"}, kLogTimeout));
}

TEST_F(BackendAuthTest, BackendThatClosesDuringStartupGives08006) {
  FakeBackend fake(FakeBackend::Mode::close_after_startup);
  start_proxy("    host: 127.0.0.1\n    sslmode: prefer\n", fake.port());
  expect_refused("alice", "postgres", "could not connect to the database server",
                 "backend_unavailable", "backend closed during start-up");
}

TEST_F(BackendAuthTest, BackendThatStallsHitsTheStartupTimeout) {
  FakeBackend fake(FakeBackend::Mode::stall);
  start_proxy("    host: 127.0.0.1\n    sslmode: prefer\n", fake.port(), "1s");
  const ConnectResult c = connect("alice", "postgres");
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(proxy_->wait_for_log({"reason=handshake_timeout", "backend start-up"}, kLogTimeout));
}

TEST_F(BackendAuthTest, CommandOutputIsThePasswordAndIsCachedForItsTtl) {
  const std::string dir = pki_->dir();
  write_text_file(dir + "/token.sh",
                  "#!/bin/sh\n"
                  "echo \"$PGMTLS_ROLE $PGMTLS_BACKEND_HOST\" >> " +
                      dir +
                      "/token.runs\n"
                      "case \"$PGMTLS_ROLE\" in alice) echo '" +
                      kAlicePassword + "' ;; *) exit 1 ;; esac\n",
                  0755);
  start_proxy(verify_full() + "    auth:\n      command: [\"" + dir +
              "/token.sh\"]\n      ttl: 1h\n");
  for (int i = 0; i < 3; ++i)
    expect_session("alice", "db_scram", "scram-sha-256-plus");
  // Three sessions, one run of the command, which saw the role and the backend host.
  std::ifstream runs(dir + "/token.runs");
  std::stringstream text;
  text << runs.rdbuf();
  EXPECT_EQ(text.str(), "alice localhost\n");
}

TEST_F(BackendAuthTest, ConcurrentSessionsShareOneRunOfTheCommand) {
  const std::string dir = pki_->dir();
  // Slow enough that every session asks while the first run is still going.
  write_text_file(dir + "/slow-token.sh",
                  "#!/bin/sh\necho run >> " + dir + "/slow-token.runs\nsleep 0.5\necho '" +
                      kAlicePassword + "'\n",
                  0755);
  start_proxy(verify_full() + "    auth:\n      command: [\"" + dir + "/slow-token.sh\"]\n");
  constexpr int kSessions = 8;
  std::vector<std::thread> clients;
  std::vector<std::string> results(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    clients.emplace_back([&, i] {
      ConnectResult c = connect("alice", "db_scram");
      if (!c.ok()) {
        results[i] = c.error;
        return;
      }
      const QueryResult r = query(c.conn.get(), "SELECT current_user");
      results[i] = r.ok() ? r.value.value_or("<null>") : r.error;
    });
  }
  for (auto& t : clients)
    t.join();
  for (const auto& r : results)
    EXPECT_EQ(r, "alice");
  std::ifstream runs(dir + "/slow-token.runs");
  std::stringstream text;
  text << runs.rdbuf();
  EXPECT_EQ(text.str(), "run\n");
}

TEST_F(BackendAuthTest, FailingCommandIsAClearErrorWithItsStderr) {
  const std::string dir = pki_->dir();
  write_text_file(dir + "/sealed.sh", "#!/bin/sh\necho 'vault is sealed' >&2\nexit 3\n", 0755);
  start_proxy(verify_full() + "    auth:\n      command: [\"" + dir + "/sealed.sh\"]\n");
  expect_refused("alice", "db_scram", "pgmtls cannot authenticate", "backend_auth_failed",
                 "exited with status 3 (stderr: vault is sealed)");
}

TEST_F(BackendAuthTest, HungCommandIsKilledAfterItsTimeout) {
  const std::string dir = pki_->dir();
  write_text_file(dir + "/hang.sh", "#!/bin/sh\nexec sleep 30\n", 0755);
  start_proxy(verify_full() + "    auth:\n      command: [\"" + dir +
              "/hang.sh\"]\n      timeout: 300ms\n");
  expect_refused("alice", "db_scram", "pgmtls cannot authenticate", "backend_auth_failed",
                 "did not finish within 300 ms");
}

TEST_F(BackendAuthTest, NoSecretInAnyLogLine) {
  // Sessions that succeed and fail with every method, then the whole log is searched.
  start_proxy(verify_full() + "    auth:\n      passfile: " + pki_->dir() + "/pgpass\n");
  expect_session("carol", "db_md5", "md5");
  expect_refused("alice", "db_scram", "pgmtls cannot authenticate", "backend_auth_failed");
  expect_refused("alice", "db_password", "pgmtls cannot authenticate", "backend_auth_failed");
  const std::string logs = proxy_->log_text();
  for (const char* secret : {kAlicePassword, kCarolPassword, kWrongPassword}) {
    EXPECT_THAT(logs, Not(HasSubstr(secret)));
  }
  // Nor in the diagnostics of a broken passfile.
  write_text_file(pki_->dir() + "/bad-pgpass", std::string("broken line ") + kAlicePassword + "\n",
                  0600);
  ProxyConfig config = base_proxy_config(*pki_, postgres_->port());
  config.extra_yaml = "";
  std::string yaml = config.to_yaml();
  yaml.replace(yaml.find("backends:\n"), yaml.find("log:\n") - yaml.find("backends:\n"),
               "backends:\n  main:\n    host: localhost\n    auth:\n      passfile: " +
                   pki_->dir() + "/bad-pgpass\n");
  write_text_file(pki_->dir() + "/bad.yaml", yaml);
  const CommandResult check = run_pgmtls_check(pki_->dir() + "/bad.yaml");
  EXPECT_NE(check.exit_code, 0);
  EXPECT_THAT(check.output, HasSubstr("needs 5 fields"));
  EXPECT_THAT(check.output, Not(HasSubstr(kAlicePassword)));
}

}  // namespace
}  // namespace pgmtls::integration
