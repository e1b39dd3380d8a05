// The AWS credential chain over real HTTP: pgmtls's HTTP client (proxy/http_client.h) against
// servers on 127.0.0.1 that speak the services' wire formats: IMDSv2 (PUT token, then GETs that
// must carry it), the ECS / EKS container agent (JSON, Authorization checked) and STS over HTTPS
// with a test CA (AssumeRoleWithWebIdentity form parameters checked, XML answer). Every wait is
// bounded; nothing sleeps.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <stdexcept>
#include <thread>

#include "auth/aws_credentials.h"
#include "proxy/http_client.h"
#include "tests/integration/support/mock_http_server.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

namespace asio = boost::asio;
namespace aws = auth::aws;
using std::chrono::system_clock;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr const char* kRoleArn = "arn:aws:iam::123456789012:role/pgmtls";

// Runs `op` on a fresh io_context; throws if it has not finished within `bound` (a hang is a
// failure, not a stuck test).
template <class T>
T run_bounded(asio::awaitable<T> op, std::chrono::seconds bound = 20s) {
  asio::io_context io;
  auto future = asio::co_spawn(io, std::move(op), asio::use_future);
  io.run_for(bound);
  if (future.wait_for(0s) != std::future_status::ready)
    throw std::runtime_error("the operation did not finish in time");
  return future.get();
}

std::string iso(system_clock::time_point t) {
  const std::time_t tt = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string credentials_json(const std::string& key, system_clock::time_point expiration) {
  return "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"" + key +
         "\",\"SecretAccessKey\":\"secret-" + key + "\",\"Token\":\"token-" + key +
         "\",\"Expiration\":\"" + iso(expiration) + "\"}";
}

struct Env {
  std::map<std::string, std::string> values;
  aws::Environment lookup() const {
    return [values = values](std::string_view name) -> std::optional<std::string> {
      auto it = values.find(std::string(name));
      if (it == values.end()) return std::nullopt;
      return it->second;
    };
  }
};

aws::ChainSettings settings_for(const Env& env) {
  aws::ChainSettings s;
  s.environment = env.lookup();
  s.http_timeout = 5000ms;
  s.imds_timeout = 2000ms;
  return s;
}

std::shared_ptr<proxy::BeastHttpClient> http_client(const std::string& ca_file = {}) {
  return std::make_shared<proxy::BeastHttpClient>(proxy::BeastHttpClient::Options{ca_file});
}

// ---- IMDSv2

// IMDSv2's rules: a token from PUT /latest/api/token (TTL header required), then GETs that carry
// it; a GET without it is refused with 401, as on an instance that requires IMDSv2.
MockHttpServer::Handler imds(const std::string& role, std::function<std::string()> credentials) {
  return [role, credentials](const MockHttpRequest& r) -> MockHttpResponse {
    if (r.target == "/latest/api/token") {
      if (r.method != "PUT" || !r.header("x-aws-ec2-metadata-token-ttl-seconds"))
        return {400, {}, "text/plain"};
      return {200, "AQAEAImdsToken==", "text/plain"};
    }
    if (r.method != "GET" || r.header("x-aws-ec2-metadata-token") != "AQAEAImdsToken==")
      return {401, {}, "text/plain"};
    if (r.target == "/latest/meta-data/iam/security-credentials/") return {200, role, "text/plain"};
    if (r.target == "/latest/meta-data/iam/security-credentials/" + role)
      return {200, credentials(), "text/plain"};
    return {404, {}, "text/plain"};
  };
}

TEST(AwsCredentialsImds, TokenThenRoleThenCredentials) {
  MockHttpServer server(
      imds("pgmtls-node", [] { return credentials_json("ASIAIMDS", system_clock::now() + 6h); }));
  Env env;
  env.values["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.url() + "/";
  aws::CredentialChain chain(settings_for(env), http_client());
  auto r = run_bounded(chain.get());
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "imds");
  EXPECT_EQ(r.credentials->access_key_id, "ASIAIMDS");
  EXPECT_EQ(r.credentials->secret_access_key, "secret-ASIAIMDS");
  EXPECT_EQ(r.credentials->session_token, "token-ASIAIMDS");
  ASSERT_TRUE(r.credentials->expiration);

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].header("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
  EXPECT_EQ(requests[1].target, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(requests[2].target, "/latest/meta-data/iam/security-credentials/pgmtls-node");
  EXPECT_EQ(requests[2].header("x-aws-ec2-metadata-token"), "AQAEAImdsToken==");

  // The mock really is IMDSv2-only: a GET without the token is refused.
  aws::HttpRequest v1;
  v1.url = server.url() + "/latest/meta-data/iam/security-credentials/";
  auto response = run_bounded(http_client()->send(v1));
  EXPECT_EQ(response.status, 401);
}

std::uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();  // closed again when `acceptor` goes
}

TEST(AwsCredentialsImds, NoMetadataServiceFailsFastWithOneReasonPerProvider) {
  Env env;
  env.values["AWS_EC2_METADATA_SERVICE_ENDPOINT"] =
      "http://127.0.0.1:" + std::to_string(closed_port());
  aws::CredentialChain chain(settings_for(env), http_client());
  auto r = run_bounded(chain.get());
  ASSERT_FALSE(r.credentials);
  EXPECT_THAT(r.error, HasSubstr("environment: AWS_ACCESS_KEY_ID is not set; web-identity: "));
  EXPECT_THAT(r.error, HasSubstr("; imds: no instance metadata service at http://127.0.0.1:"));
  EXPECT_THAT(r.error, HasSubstr("Connection refused"));
}

TEST(AwsCredentialsImds, StalledMetadataServiceTimesOut) {
  MockHttpServer server([](const MockHttpRequest&) { return MockHttpResponse::held(); });
  Env env;
  env.values["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.url();
  auto settings = settings_for(env);
  settings.imds_timeout = 300ms;
  aws::CredentialChain chain(settings, http_client());
  const auto start = std::chrono::steady_clock::now();
  auto r = run_bounded(chain.get());
  ASSERT_FALSE(r.credentials);
  EXPECT_THAT(r.error, HasSubstr("imds: no instance metadata service at " + server.url() +
                                 " (timed out after 300 ms (reading the response))"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

// ---- container (ECS, EKS Pod Identity)

MockHttpServer::Handler container(const std::string& path, std::function<std::string()> token,
                                  std::function<std::string()> body) {
  return [=](const MockHttpRequest& r) -> MockHttpResponse {
    if (r.method != "GET" || r.target != path) return {404, "{\"message\":\"not found\"}"};
    if (r.header("authorization") != token())
      return {401, "{\"code\":\"AccessDeniedException\",\"message\":\"bad authorization\"}"};
    return {200, body()};
  };
}

TEST(AwsCredentialsContainer, RelativeUriWithAuthorizationToken) {
  MockHttpServer server(container(
      "/v2/credentials/5f3c", [] { return "Bearer ecs"; },
      [] { return credentials_json("ASIAECS", system_clock::now() + 6h); }));
  Env env;
  env.values = {{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/5f3c"},
                {"PGMTLS_AWS_CONTAINER_CREDENTIALS_ENDPOINT", server.url()},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer ecs"}};
  aws::CredentialChain chain(settings_for(env), http_client());
  auto r = run_bounded(chain.get());
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "container");
  EXPECT_EQ(r.credentials->access_key_id, "ASIAECS");
  EXPECT_EQ(server.request_count(), 1u);

  env.values["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "Bearer wrong";
  env.values["AWS_EC2_METADATA_DISABLED"] = "true";
  aws::CredentialChain refused(settings_for(env), http_client());
  r = run_bounded(refused.get());
  ASSERT_FALSE(r.credentials);
  EXPECT_THAT(r.error, HasSubstr("container: " + server.url() +
                                 "/v2/credentials/5f3c returned HTTP 401 "
                                 "(AccessDeniedException: bad authorization)"));
  EXPECT_THAT(r.error, Not(HasSubstr("Bearer")));
}

TEST(AwsCredentialsContainer, FullUriWithTokenFileReadEachTime) {
  const std::string dir = make_temp_dir("pgmtls-awscred");
  const std::string token_file = dir + "/eks-pod-identity-token";
  std::ofstream(token_file) << "pod-token-1\n";
  std::string expected_token = "pod-token-1";
  std::mutex mutex;
  MockHttpServer server(container(
      "/v1/credentials",
      [&] {
        std::lock_guard lock(mutex);
        return expected_token;
      },
      [] { return credentials_json("ASIAPOD", system_clock::now() + 6h); }));
  Env env;
  env.values = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/v1/credentials"},
                {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file}};
  aws::CredentialChain chain(settings_for(env), http_client());
  auto r = run_bounded(chain.resolve());
  ASSERT_TRUE(r.credentials) << r.error;
  std::ofstream(token_file) << "pod-token-2";  // the kubelet rotated it
  {
    std::lock_guard lock(mutex);
    expected_token = "pod-token-2";
  }
  r = run_bounded(chain.resolve());
  ASSERT_TRUE(r.credentials) << r.error;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].header("authorization"), "pod-token-1");
  EXPECT_EQ(requests[1].header("authorization"), "pod-token-2");
  std::filesystem::remove_all(dir);
}

// ---- web identity: STS over HTTPS

std::string sts_xml(const std::string& key, system_clock::time_point expiration) {
  return "<AssumeRoleWithWebIdentityResponse "
         "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
         "  <AssumeRoleWithWebIdentityResult>\n"
         "    <SubjectFromWebIdentityToken>system:serviceaccount:db:pgmtls"
         "</SubjectFromWebIdentityToken>\n"
         "    <Credentials>\n"
         "      <SessionToken>session-" +
         key +
         "</SessionToken>\n"
         "      <SecretAccessKey>secret-" +
         key +
         "</SecretAccessKey>\n"
         "      <Expiration>" +
         iso(expiration) +
         "</Expiration>\n"
         "      <AccessKeyId>" +
         key +
         "</AccessKeyId>\n"
         "    </Credentials>\n"
         "  </AssumeRoleWithWebIdentityResult>\n"
         "</AssumeRoleWithWebIdentityResponse>\n";
}

MockHttpResponse sts_error(const std::string& code, const std::string& message) {
  return {400,
          "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
          "<Type>Sender</Type><Code>" +
              code + "</Code><Message>" + message +
              "</Message></Error><RequestId>1</RequestId></ErrorResponse>",
          "text/xml"};
}

// AssumeRoleWithWebIdentity as STS checks it: form parameters, the role, the token.
MockHttpServer::Handler sts(std::function<std::string()> expected_token,
                            std::function<system_clock::time_point()> expiration) {
  return [=](const MockHttpRequest& r) -> MockHttpResponse {
    if (r.method != "POST" || r.form_value("Action") != "AssumeRoleWithWebIdentity" ||
        r.form_value("Version") != "2011-06-15")
      return sts_error("InvalidAction", "Could not find operation");
    if (r.form_value("RoleArn") != kRoleArn) return sts_error("AccessDenied", "wrong role");
    if (r.form_value("WebIdentityToken") != expected_token())
      return sts_error("InvalidIdentityToken", "The web identity token is not valid");
    const auto session = r.form_value("RoleSessionName").value_or("");
    if (session.size() < 2 || session.size() > 64)
      return sts_error("ValidationError", "bad RoleSessionName");
    return {200, sts_xml("ASIASTS", expiration()), "text/xml"};
  };
}

class AwsCredentialsWebIdentity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(0); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    dir_ = make_temp_dir("pgmtls-awscred");
    token_file_ = dir_ + "/token";
    write_token("eyJhbGciOiJSUzI1NiJ9.first.sig");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write_token(const std::string& token) {
    {
      std::lock_guard lock(mutex_);
      token_ = token;
    }
    std::ofstream(token_file_) << token << "\n";
  }
  std::string token() {
    std::lock_guard lock(mutex_);
    return token_;
  }

  Env env_for(const std::string& endpoint) {
    Env env;
    env.values = {{"AWS_WEB_IDENTITY_TOKEN_FILE", token_file_},
                  {"AWS_ROLE_ARN", kRoleArn},
                  {"AWS_REGION", "eu-west-1"},
                  {"AWS_ENDPOINT_URL_STS", endpoint},
                  {"AWS_EC2_METADATA_DISABLED", "true"}};
    return env;
  }

  static TestPki* pki_;
  std::string dir_;
  std::string token_file_;
  std::mutex mutex_;
  std::string token_;
};

TestPki* AwsCredentialsWebIdentity::pki_ = nullptr;

TEST_F(AwsCredentialsWebIdentity, AssumeRoleOverHttpsWithTheTestCa) {
  MockHttpServer server(sts([this] { return token(); }, [] { return system_clock::now() + 1h; }),
                        pki_->server_cert_file(), pki_->server_key_file());
  // By name: resolved, SNI, and the certificate's DNS name checked.
  const Env env = env_for("https://localhost:" + std::to_string(server.port()));
  aws::CredentialChain chain(settings_for(env), http_client(pki_->root_ca_file()));
  auto r = run_bounded(chain.get());
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "web-identity");
  EXPECT_EQ(r.credentials->access_key_id, "ASIASTS");
  EXPECT_EQ(r.credentials->secret_access_key, "secret-ASIASTS");
  EXPECT_EQ(r.credentials->session_token, "session-ASIASTS");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/");
  EXPECT_EQ(requests[0].header("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_EQ(requests[0].form_value("WebIdentityToken"), "eyJhbGciOiJSUzI1NiJ9.first.sig");
  EXPECT_THAT(requests[0].form_value("RoleSessionName").value_or(""),
              ::testing::StartsWith("pgmtls-"));

  // By IP address: the certificate's IP SAN is checked.
  const Env by_ip = env_for(server.url());
  aws::CredentialChain chain_ip(settings_for(by_ip), http_client(pki_->root_ca_file()));
  r = run_bounded(chain_ip.get());
  ASSERT_TRUE(r.credentials) << r.error;
}

TEST_F(AwsCredentialsWebIdentity, NearExpiryRefreshesWithTheRotatedToken) {
  MockHttpServer server(sts([this] { return token(); }, [] { return system_clock::now() + 2min; }),
                        pki_->server_cert_file(), pki_->server_key_file());
  const Env env = env_for(server.url());
  aws::CredentialChain chain(settings_for(env), http_client(pki_->root_ca_file()));
  auto r = run_bounded(chain.get());
  ASSERT_TRUE(r.credentials) << r.error;
  write_token("eyJhbGciOiJSUzI1NiJ9.second.sig");
  r = run_bounded(chain.get());  // within 5 minutes of expiry: refreshed
  ASSERT_TRUE(r.credentials) << r.error;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].form_value("WebIdentityToken"), "eyJhbGciOiJSUzI1NiJ9.second.sig");
}

TEST_F(AwsCredentialsWebIdentity, StsErrorsAndUntrustedServers) {
  MockHttpServer server(
      sts([] { return std::string("another-token"); }, [] { return system_clock::now() + 1h; }),
      pki_->server_cert_file(), pki_->server_key_file());
  const Env env = env_for(server.url());
  aws::CredentialChain chain(settings_for(env), http_client(pki_->root_ca_file()));
  auto r = run_bounded(chain.get());
  ASSERT_FALSE(r.credentials);
  EXPECT_THAT(r.error, HasSubstr("web-identity: STS " + server.url() +
                                 "/ returned HTTP 400 (InvalidIdentityToken: The web identity "
                                 "token is not valid)"));
  EXPECT_THAT(r.error, Not(HasSubstr("first.sig")));

  // The system trust store does not know the test CA.
  aws::CredentialChain untrusted(settings_for(env), http_client());
  r = run_bounded(untrusted.get());
  ASSERT_FALSE(r.credentials);
  EXPECT_THAT(r.error, HasSubstr("web-identity: STS " + server.url() + "/: TLS handshake with " +
                                 "127.0.0.1:" + std::to_string(server.port())));
  EXPECT_THAT(r.error, HasSubstr("(unable to get local issuer certificate)"));

  // A server that completes the handshake and then never answers.
  MockHttpServer stalled([](const MockHttpRequest&) { return MockHttpResponse::held(); },
                         pki_->server_cert_file(), pki_->server_key_file());
  auto settings = settings_for(env_for(stalled.url()));
  settings.http_timeout = 300ms;
  aws::CredentialChain stalls(settings, http_client(pki_->root_ca_file()));
  r = run_bounded(stalls.get());
  ASSERT_FALSE(r.credentials);
  EXPECT_THAT(r.error, HasSubstr("web-identity: STS " + stalled.url() +
                                 "/: timed out after 300 ms (reading the response)"));

  // A CA bundle that cannot be read.
  aws::CredentialChain no_bundle(settings_for(env), http_client(dir_ + "/missing.pem"));
  r = run_bounded(no_bundle.get());
  EXPECT_THAT(r.error, HasSubstr("cannot load the CA bundle " + dir_ + "/missing.pem"));
}

// ---- caching and refresh against a container agent

TEST(AwsCredentialsRefresh, NearExpiryRefreshesFarExpiryIsCached) {
  for (const auto& [lifetime, expected_requests] :
       {std::pair{2min, std::size_t{2}}, std::pair{std::chrono::minutes(60), std::size_t{1}}}) {
    MockHttpServer server(container(
        "/creds", [] { return std::string("Bearer t"); },
        [lifetime = lifetime] {
          return credentials_json("ASIAREFRESH", system_clock::now() + lifetime);
        }));
    Env env;
    env.values = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer t"}};
    aws::CredentialChain chain(settings_for(env), http_client());
    for (int i = 0; i < 2; ++i) {
      auto r = run_bounded(chain.get());
      ASSERT_TRUE(r.credentials) << r.error;
      EXPECT_EQ(r.provider, "container");
    }
    EXPECT_EQ(server.request_count(), expected_requests) << lifetime.count() << " min";
  }
}

TEST(AwsCredentialsRefresh, ThreadsShareOneRefreshInFlight) {
  MockHttpServer server([](const MockHttpRequest&) {
    return MockHttpResponse::held({200, credentials_json("ASIASHARED", system_clock::now() + 1h)});
  });
  Env env;
  env.values = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"}};
  aws::CredentialChain chain(settings_for(env), http_client());

  // Caller A on its own thread and io_context: starts the refresh, which the server holds.
  std::promise<aws::CredentialChain::Result> a_result;
  std::thread a([&] {
    try {
      a_result.set_value(run_bounded(chain.get()));
    } catch (...) {
      a_result.set_exception(std::current_exception());
    }
  });
  const bool a_started = server.wait_for_requests(1, 10s);
  // Caller B on this thread: runs until it waits for A's refresh.
  asio::io_context io_b;
  auto b_future = asio::co_spawn(io_b, chain.get(), asio::use_future);
  io_b.poll();
  server.release();
  io_b.run_for(10s);
  a.join();
  ASSERT_TRUE(a_started);
  ASSERT_EQ(b_future.wait_for(0s), std::future_status::ready);
  auto ra = a_result.get_future().get();
  auto rb = b_future.get();
  ASSERT_TRUE(ra.credentials) << ra.error;
  ASSERT_TRUE(rb.credentials) << rb.error;
  EXPECT_EQ(rb.credentials->access_key_id, "ASIASHARED");
  EXPECT_EQ(rb.credentials->session_token, ra.credentials->session_token);
  EXPECT_EQ(server.request_count(), 1u);
}

// ---- provider failures are clear and bounded

TEST(AwsCredentialsFailures, ContainerAgentMisbehaving) {
  struct Case {
    const char* name;
    MockHttpResponse response;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"500", {500, "{\"message\":\"internal\"}"}, "returned HTTP 500 (internal)"},
      {"garbage body", {200, "<html>not json</html>", "text/html"}, "answered with malformed JSON"},
      {"partial",
       {200, "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"leak\"}"},
       "answered without Token"},
      {"not http", MockHttpResponse::raw_bytes("SSH-2.0-OpenSSH_9.2\r\n\r\n"),
       "reading the response: "},
      {"oversized", {200, std::string(2 * 1024 * 1024, 'x')}, "larger than 1048576 bytes"},
      {"stall", MockHttpResponse::held(), "timed out after 300 ms (reading the response)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    MockHttpServer server([&](const MockHttpRequest&) { return c.response; });
    Env env;
    env.values = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"}};
    auto settings = settings_for(env);
    settings.http_timeout = 300ms;
    aws::CredentialChain chain(settings, http_client());
    const auto start = std::chrono::steady_clock::now();
    auto r = run_bounded(chain.get());
    ASSERT_FALSE(r.credentials);
    EXPECT_THAT(r.error, HasSubstr("container: " + server.url() + "/creds"));
    EXPECT_THAT(r.error, HasSubstr(c.error));
    EXPECT_THAT(r.error, Not(HasSubstr("leak")));
    // A configured provider that fails ends the chain: IMDS is never asked.
    EXPECT_EQ(r.provider, "container");
    EXPECT_THAT(r.error, Not(HasSubstr("imds")));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  }
}

TEST(AwsCredentialsFailures, ConnectTimeoutIsBounded) {
  // A listener whose backlog is full stops completing handshakes: connects hang until the deadline.
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io);
  acceptor.open(asio::ip::tcp::v4());
  acceptor.bind({asio::ip::make_address("127.0.0.1"), 0});
  acceptor.listen(0);
  const std::string url =
      "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/";
  // Non-blocking connects that fill the queue (asio's blocking connect would wait for them).
  std::vector<int> fillers;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(acceptor.local_endpoint().port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 8; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    (void)::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  aws::HttpRequest request;
  request.url = url;
  request.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto response = run_bounded(http_client()->send(request));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(response.status, 0);
  EXPECT_FALSE(response.error.empty());
  EXPECT_THAT(response.error, ::testing::AnyOf(HasSubstr("timed out after 300 ms"),
                                               HasSubstr("connecting to 127.0.0.1")));
  for (int fd : fillers)
    ::close(fd);
}

}  // namespace
}  // namespace pgmtls::integration
