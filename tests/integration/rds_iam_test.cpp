// The RDS hybrid pattern end to end: clients authenticate to pgmtls with certificates, pgmtls
// authenticates to "RDS" with an IAM token over TLS verify-full. RDS cannot run here, so the
// backend is a small PostgreSQL-protocol server that does what RDS does with the password: it
// checks the token's SigV4 signature with the secret key (its own, independent implementation of
// the documented algorithm), the host, the user, the date and the lifetime. A wrongly signed token
// fails it.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "auth/pki.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/mock_http_server.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace pki = auth::pki;

constexpr const char* kAccessKey = "AKIDPGMTLSTEST";
constexpr const char* kSecretKey = "pgmtls/Test+Secret/Key0000000000000000000";
constexpr const char* kRegion = "us-east-1";

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

std::string hmac(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

// What RDS checks: returns "" for a valid token, else why not. `session_token` is the
// X-Amz-Security-Token the token must carry, URI-encoded (empty: it must carry none).
std::string verify_token(const std::string& token, const std::string& expected_host,
                         const std::string& user, const std::string& secret,
                         const std::string& session_token = {}) {
  const std::string prefix = expected_host + "/?";
  if (token.rfind(prefix, 0) != 0) return "token is not for " + expected_host;
  std::map<std::string, std::string> params;  // encoded name -> encoded value
  std::string query = token.substr(prefix.size());
  for (std::size_t start = 0; start <= query.size();) {
    std::size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string part = query.substr(start, end - start);
    const auto eq = part.find('=');
    if (eq == std::string::npos) return "malformed parameter";
    params[part.substr(0, eq)] = part.substr(eq + 1);
    start = end + 1;
  }
  const std::string date_time = params["X-Amz-Date"];
  if (params["Action"] != "connect") return "Action is not connect";
  if (params["DBUser"] != user) return "DBUser is not " + user;
  if (params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256") return "bad algorithm";
  if (params["X-Amz-SignedHeaders"] != "host") return "bad signed headers";
  if (params.contains("X-Amz-Security-Token") != !session_token.empty() ||
      (!session_token.empty() && params["X-Amz-Security-Token"] != session_token)) {
    return "wrong or missing session token";
  }
  if (date_time.size() != 16) return "bad date";
  const int expires = std::atoi(params["X-Amz-Expires"].c_str());
  if (expires <= 0 || expires > 900) return "bad lifetime";
  std::tm tm{};
  strptime(date_time.c_str(), "%Y%m%dT%H%M%SZ", &tm);
  const std::time_t signed_at = timegm(&tm);
  const std::time_t now = std::time(nullptr);
  if (signed_at > now + 300 || now > signed_at + expires) return "token expired or from the future";
  const std::string date = date_time.substr(0, 8);
  const std::string scope = date + "/" + kRegion + "/rds-db/aws4_request";
  if (params["X-Amz-Credential"] !=
      std::string(kAccessKey) + "%2F" + date + "%2F" + kRegion + "%2Frds-db%2Faws4_request") {
    return "bad credential scope";
  }
  const std::string signature = params["X-Amz-Signature"];
  params.erase("X-Amz-Signature");
  std::string canonical_query;  // std::map iterates sorted by (encoded) name
  for (const auto& [name, value] : params)
    canonical_query += (canonical_query.empty() ? "" : "&") + name + "=" + value;
  const std::string canonical_request =
      "GET\n/\n" + canonical_query + "\nhost:" + expected_host + "\n\nhost\n" + sha256_hex("");
  const std::string to_sign =
      "AWS4-HMAC-SHA256\n" + date_time + "\n" + scope + "\n" + sha256_hex(canonical_request);
  std::string key = hmac("AWS4" + secret, date);
  key = hmac(key, kRegion);
  key = hmac(key, "rds-db");
  key = hmac(key, "aws4_request");
  const std::string expected = hmac(key, to_sign);
  if (hex(reinterpret_cast<const unsigned char*>(expected.data()), expected.size()) != signature) {
    return "signature does not match";
  }
  return {};
}

// One PostgreSQL-protocol exchange at a time, as RDS with IAM authentication would have it: TLS
// required, then AuthenticationCleartextPassword, then the token is checked.
class FakeRds {
 public:
  FakeRds(const std::string& cert_pem_file, const std::string& key_file, std::string secret,
          std::string session_token = {})
      : secret_(std::move(secret)), session_token_(std::move(session_token)) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx_, cert_pem_file.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len)) {
      throw std::runtime_error("fake RDS: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~FakeRds() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }

  std::uint16_t port() const { return port_; }
  int accepted_tokens() const { return accepted_; }
  std::string last_refusal() const {
    std::lock_guard lock(mutex_);
    return last_refusal_;
  }

 private:
  static bool read_exact(SSL* ssl, void* buf, int n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
      const int got = SSL_read(ssl, p, n);
      if (got <= 0) return false;
      p += got;
      n -= got;
    }
    return true;
  }

  static std::string message(char type, const std::string& body) {
    const std::uint32_t len = htonl(static_cast<std::uint32_t>(body.size() + 4));
    std::string out(1, type);
    out.append(reinterpret_cast<const char*>(&len), 4);
    return out + body;
  }

  void serve() {
    while (!stopping_) {
      const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) return;
      timeval tv{5, 0};
      ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      handle(conn);
      ::close(conn);
    }
  }

  void handle(int conn) {
    char request[8];
    if (::recv(conn, request, 8, MSG_WAITALL) != 8) return;
    if (::send(conn, "S", 1, MSG_NOSIGNAL) != 1) return;
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, conn);
    if (SSL_accept(ssl) == 1) converse(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
  }

  void converse(SSL* ssl) {
    std::uint32_t len = 0;
    if (!read_exact(ssl, &len, 4)) return;
    std::string startup(ntohl(len) - 4, '\0');
    if (!read_exact(ssl, startup.data(), static_cast<int>(startup.size()))) return;
    std::string user;  // parameters start after the 4-byte protocol version
    for (std::size_t pos = 4; pos < startup.size() && startup[pos] != '\0';) {
      const std::string name = startup.c_str() + pos;
      pos += name.size() + 1;
      const std::string value = startup.c_str() + pos;
      pos += value.size() + 1;
      if (name == "user") user = value;
    }
    const std::string ask = message('R', std::string("\0\0\0\3", 4));
    SSL_write(ssl, ask.data(), static_cast<int>(ask.size()));
    char type = 0;
    if (!read_exact(ssl, &type, 1) || type != 'p' || !read_exact(ssl, &len, 4)) return;
    std::string password(ntohl(len) - 4, '\0');
    if (!read_exact(ssl, password.data(), static_cast<int>(password.size()))) return;
    if (!password.empty() && password.back() == '\0') password.pop_back();

    const std::string why =
        verify_token(password, "localhost:" + std::to_string(port_), user, secret_, session_token_);
    std::string reply;
    if (why.empty()) {
      ++accepted_;
      reply = message('R', std::string("\0\0\0\0", 4)) +
              message('S', std::string("server_version\0"
                                       "15.4\0",
                                       20)) +
              message('K', std::string("\0\0\0\1\0\0\0\2", 8)) + message('Z', "I");
    } else {
      {
        std::lock_guard lock(mutex_);
        last_refusal_ = why;
      }
      // RDS's own words for a bad token.
      using namespace std::string_literals;
      reply = message('E',
                      "SFATAL\0C28P01\0MPAM authentication failed for user \""s + user + "\"\0\0"s);
    }
    SSL_write(ssl, reply.data(), static_cast<int>(reply.size()));
    if (why.empty()) {
      // Hold the session until the client terminates it.
      char buf[256];
      while (SSL_read(ssl, buf, sizeof buf) > 0) {
      }
    }
  }

  std::string secret_;
  std::string session_token_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  mutable std::mutex mutex_;
  std::string last_refusal_;
};

class RdsIamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = std::make_unique<TestPki>(0);
    // RDS's CA and its server certificate for "localhost".
    pki::CertificateSpec ca_spec;
    ca_spec.common_name = "Fake RDS Root CA";
    ca_spec.is_ca = true;
    const auto ca = pki::self_signed(ca_spec);
    pki::CertificateSpec server;
    server.common_name = "localhost";
    server.server_auth = true;
    server.san.dns = {"localhost"};
    const auto cred = pki::issue(server, ca);
    rds_ca_ = pki_->dir() + "/rds-global-bundle.pem";
    rds_cert_ = pki_->dir() + "/rds.crt";
    rds_key_ = pki_->dir() + "/rds.key";
    pki::write_certificates(rds_ca_, {ca.cert.get()});
    pki::write_certificates(rds_cert_, {cred.cert.get()});
    pki::write_private_key(rds_key_, *cred.key);
  }

  static void TearDownTestSuite() { pki_.reset(); }

  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
    for (const char* name : kAwsVariables)
      ::unsetenv(name);
  }

  // The variables these tests set; pgmtls inherits them.
  static constexpr const char* kAwsVariables[] = {"AWS_ACCESS_KEY_ID",
                                                  "AWS_SECRET_ACCESS_KEY",
                                                  "AWS_SESSION_TOKEN",
                                                  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                                  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                                  "AWS_SHARED_CREDENTIALS_FILE"};

  // pgmtls (with `secret` as the AWS secret key in its environment) in front of `rds`.
  void start_proxy(const FakeRds& rds, const std::string& secret) {
    ::setenv("AWS_ACCESS_KEY_ID", kAccessKey, 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", secret.c_str(), 1);
    start_proxy(rds);
  }

  // pgmtls in front of `rds`, with whatever AWS variables the test has set.
  void start_proxy(const FakeRds& rds) {
    ProxyConfig config = base_proxy_config(*pki_, rds.port());
    std::string yaml = config.to_yaml();
    yaml.replace(yaml.find("backends:\n"), yaml.find("log:\n") - yaml.find("backends:\n"),
                 "backends:\n  rds:\n    host: localhost\n    port: " + std::to_string(rds.port()) +
                     "\n    sslmode: verify-full\n    sslrootcert: " + rds_ca_ +
                     "\n    auth:\n      aws_iam: { region: " + kRegion + " }\n");
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/pgmtls-rds.yaml", yaml);
  }

  ConnectResult connect(const std::string& user) {
    return pg_connect(
        tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client(user), user, "postgres"));
  }

  static inline std::unique_ptr<TestPki> pki_;
  static inline std::string rds_ca_, rds_cert_, rds_key_;
  std::unique_ptr<PgmtlsProcess> proxy_;
};

TEST_F(RdsIamTest, CertificateClientReachesRdsWithAValidIamToken) {
  FakeRds rds(rds_cert_, rds_key_, kSecretKey);
  start_proxy(rds, kSecretKey);
  ConnectResult c = connect("alice");
  ASSERT_TRUE(c.ok()) << c.error << "\nfake RDS refused: " << rds.last_refusal();
  EXPECT_EQ(rds.accepted_tokens(), 1);
  c.conn.reset();
  EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "backend_auth=aws_iam", "backend_tls=TLSv1.3"},
                                   kLogTimeout));
  // The token is a bearer credential: never logged.
  EXPECT_THAT(proxy_->log_text(), Not(HasSubstr("X-Amz-Signature")));
  EXPECT_THAT(proxy_->log_text(), Not(HasSubstr(kSecretKey)));
}

TEST_F(RdsIamTest, TokenSignedWithTheWrongSecretIsRefusedByRds) {
  FakeRds rds(rds_cert_, rds_key_, kSecretKey);
  start_proxy(rds, "wrong/secret/key000000000000000000000000");
  const ConnectResult c = connect("alice");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error, HasSubstr("pgmtls cannot authenticate to the database server"));
  EXPECT_EQ(rds.last_refusal(), "signature does not match");
  EXPECT_TRUE(proxy_->wait_for_log({"reason=backend_auth_failed", "PAM authentication failed"},
                                   kLogTimeout));
}

TEST_F(RdsIamTest, TokenNamesTheMappedRole) {
  FakeRds rds(rds_cert_, rds_key_, kSecretKey);
  start_proxy(rds, kSecretKey);
  for (const char* user : {"alice", "carol"}) {
    ConnectResult c = connect(user);
    ASSERT_TRUE(c.ok()) << user << ": " << c.error << "\nfake RDS refused: " << rds.last_refusal();
  }
  EXPECT_EQ(rds.accepted_tokens(), 2);
}

TEST_F(RdsIamTest, IamTokenCommandPrintsATokenRdsAccepts) {
  ::setenv("AWS_ACCESS_KEY_ID", kAccessKey, 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", kSecretKey, 1);
  const CommandResult r = run_command({pgmtls_binary(), "iam-token", "--host", "localhost",
                                       "--port", "5432", "--region", kRegion, "--user", "alice"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string token = r.output;
  ASSERT_TRUE(token.ends_with("\n"));
  token.pop_back();
  EXPECT_EQ(verify_token(token, "localhost:5432", "alice", kSecretKey), "");
  EXPECT_NE(verify_token(token, "localhost:5432", "bob", kSecretKey), "");

  // Without credentials: a clear error, no token.
  ::unsetenv("AWS_ACCESS_KEY_ID");
  const CommandResult none = run_command({pgmtls_binary(), "iam-token", "--host", "localhost",
                                          "--region", kRegion, "--user", "alice"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.output, HasSubstr("no AWS credentials"));
  EXPECT_THAT(none.output, Not(HasSubstr("X-Amz")));
}

TEST_F(RdsIamTest, IamTokenCommandUsesTheNamedProfileOfTheSharedFiles) {
  const std::string file = pki_->dir() + "/aws-credentials";
  {
    std::ofstream out(file);
    out << "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n"
        << "[ops]\naws_access_key_id = " << kAccessKey << "\naws_secret_access_key = " << kSecretKey
        << "\n";
  }
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", file.c_str(), 1);
  const CommandResult r = run_command({pgmtls_binary(), "iam-token", "--host", "localhost",
                                       "--region", kRegion, "--user", "alice", "--profile", "ops"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(
      verify_token(r.output.substr(0, r.output.size() - 1), "localhost:5432", "alice", kSecretKey),
      "");

  // A profile someone names must exist: no falling through to other providers.
  const CommandResult missing =
      run_command({pgmtls_binary(), "iam-token", "--host", "localhost", "--region", kRegion,
                   "--user", "alice", "--profile", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("shared-files: profile nope not found in " + file));
}

// An ECS / EKS container credentials agent on 127.0.0.1: temporary credentials for the pod token.
class FakeContainerAgent {
 public:
  static constexpr const char* kPodToken = "Bearer pod-identity-token";
  static constexpr const char* kSessionToken = "IQoJb3JpZ2luX2Vj/session+token=";
  static constexpr const char* kSessionTokenEncoded = "IQoJb3JpZ2luX2Vj%2Fsession%2Btoken%3D";

  explicit FakeContainerAgent(MockHttpResponse failure = {})
      : server_([failure](const MockHttpRequest& request) {
          if (failure.status != 200 || failure.hold) return failure;
          if (request.header("authorization") != kPodToken)
            return MockHttpResponse(401, R"({"code":"AccessDenied","message":"bad token"})");
          return MockHttpResponse(200, credentials_json());
        }) {
    ::setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url().c_str(), 1);
    ::setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", kPodToken, 1);
  }

  std::string url() const { return server_.url() + "/v1/credentials"; }
  std::size_t requests() const { return server_.request_count(); }

 private:
  static std::string credentials_json() {
    const std::time_t in_an_hour = std::time(nullptr) + 3600;
    char expiration[32];
    std::strftime(expiration, sizeof expiration, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&in_an_hour));
    return std::string(R"({"AccessKeyId":")") + kAccessKey + R"(","SecretAccessKey":")" +
           kSecretKey + R"(","Token":")" + kSessionToken + R"(","Expiration":")" + expiration +
           R"(","RoleArn":"arn:aws:iam::123456789012:role/pgmtls"})";
  }

  MockHttpServer server_;
};

TEST_F(RdsIamTest, TemporaryCredentialsFromTheContainerAgentAreFetchedOnceAndSignTheToken) {
  FakeRds rds(rds_cert_, rds_key_, kSecretKey, FakeContainerAgent::kSessionTokenEncoded);
  FakeContainerAgent agent;
  start_proxy(rds);
  for (const char* user : {"alice", "carol"}) {
    ConnectResult c = connect(user);
    ASSERT_TRUE(c.ok()) << user << ": " << c.error << "\nfake RDS refused: " << rds.last_refusal();
  }
  EXPECT_EQ(rds.accepted_tokens(), 2);
  // One fetch serves every role and connection until the credentials near their expiry.
  EXPECT_EQ(agent.requests(), 1u);
  EXPECT_TRUE(
      proxy_->wait_for_log({"aws_iam: signed a token for role carol", "container"}, kLogTimeout));
  const std::string log = proxy_->log_text();
  for (const char* secret :
       {kSecretKey, FakeContainerAgent::kSessionToken, FakeContainerAgent::kSessionTokenEncoded,
        "pod-identity-token", "X-Amz-Signature"}) {
    EXPECT_THAT(log, Not(HasSubstr(secret)));
  }
}

TEST_F(RdsIamTest, AFailingCredentialProviderIsAClearFatalErrorAndALogLine) {
  FakeRds rds(rds_cert_, rds_key_, kSecretKey);
  FakeContainerAgent agent(MockHttpResponse(500, R"({"message":"agent unavailable"})"));
  start_proxy(rds);
  const auto start = std::chrono::steady_clock::now();
  const ConnectResult c = connect("alice");
  ASSERT_FALSE(c.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_THAT(c.error, HasSubstr("FATAL"));
  EXPECT_THAT(c.error, HasSubstr("pgmtls cannot authenticate to the database server"));
  EXPECT_EQ(rds.accepted_tokens(), 0);
  EXPECT_TRUE(
      proxy_->wait_for_log({"reason=backend_auth_failed", "no AWS credentials",
                            "container: " + agent.url() + " returned HTTP 500 (agent unavailable)"},
                           kLogTimeout));
  EXPECT_THAT(proxy_->log_text(), Not(HasSubstr("pod-identity-token")));
}

}  // namespace
}  // namespace pgmtls::integration
