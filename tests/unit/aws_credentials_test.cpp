// The AWS credential chain without a network: its parsers, and the providers' order, requests,
// caching and refresh driven through a fake HttpClient and an injected environment and clock.
#include "auth/aws_credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <vector>

namespace pgmtls::auth::aws {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::system_clock;
using namespace std::chrono_literals;

// ---- parse_url

TEST(AwsUrl, ParsesSchemesHostsPortsAndTargets) {
  std::string error;
  auto u = parse_url("https://sts.us-east-1.amazonaws.com", error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "sts.us-east-1.amazonaws.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/");

  u = parse_url("HTTP://169.254.170.2/v2/credentials/abc?x=1", error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/v2/credentials/abc?x=1");

  u = parse_url("http://[fd00:ec2::254]:8080", error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->host, "fd00:ec2::254");
  EXPECT_EQ(u->port, 8080);

  u = parse_url("http://127.0.0.1:1?a", error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->target, "/?a");
}

TEST(AwsUrl, RejectsWhatItCannotRequest) {
  for (const char* bad :
       {"", "sts.amazonaws.com", "ftp://host/", "http://", "http://:80/", "http://host:/",
        "http://host:0/", "http://host:65536/", "http://host:123456/", "http://user@host/",
        "http://[::1/", "http://[::1]x/", "http://ho st/", "http://host/a b", "http://host/#frag",
        "http://host/\r\nX: y", "http://[zz::1]/"}) {
    std::string error;
    EXPECT_FALSE(parse_url(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

// ---- parse_ini

TEST(AwsIni, SectionsKeysCommentsAndWhitespace) {
  const std::string text =
      "# a comment\n"
      "; another\n"
      "[default]\r\n"
      "aws_access_key_id = AKIDDEFAULT\r\n"
      "  AWS_Secret_Access_Key=secret/with+chars#not-a-comment   \n"
      "\n"
      "[ profile   dev ]  # trailing comment\n"
      "aws_access_key_id=AKIDDEV ; inline comment\n"
      "region = eu-west-1\t# another\n"
      "s3 =\n"
      "  max_concurrent_requests = 10\n"
      "  aws_access_key_id = NOT-THIS-ONE\n"
      "output = json\n"
      "[default]\n"
      "aws_session_token = token==\n";
  std::string error;
  auto ini = parse_ini(text, error);
  ASSERT_TRUE(ini) << error;
  ASSERT_EQ(ini->sections.size(), 2u);
  const auto& def = ini->sections.at("default");
  EXPECT_EQ(def.at("aws_access_key_id"), "AKIDDEFAULT");
  EXPECT_EQ(def.at("aws_secret_access_key"), "secret/with+chars#not-a-comment");
  EXPECT_EQ(def.at("aws_session_token"), "token==");  // a repeated section merges
  const auto& dev = ini->sections.at("profile dev");
  EXPECT_EQ(dev.at("aws_access_key_id"), "AKIDDEV");
  EXPECT_EQ(dev.at("region"), "eu-west-1");
  EXPECT_EQ(dev.at("s3"), "");
  EXPECT_EQ(dev.at("output"), "json");
  EXPECT_EQ(dev.count("max_concurrent_requests"), 0u);
}

TEST(AwsIni, IndentedSettingsAfterAValueAreOrdinarySettings) {
  std::string error;
  auto ini = parse_ini("[default]\n  aws_access_key_id = A\n  aws_secret_access_key = B\n", error);
  ASSERT_TRUE(ini) << error;
  EXPECT_EQ(ini->sections.at("default").at("aws_secret_access_key"), "B");
}

TEST(AwsIni, MalformedLinesNameTheirLine) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const auto& c :
       {Case{"key = value\n", "line 1: setting before the first [section]"},
        Case{"[default]\njust words\n", "line 2: expected"},
        Case{"[default\n", "line 1: section header without ']'"},
        Case{"[]\n", "line 1: empty section name"}, Case{"[a] b\n", "line 1: unexpected text"},
        Case{"[a]\n = v\n", "line 2: setting without a name"}}) {
    std::string error;
    EXPECT_FALSE(parse_ini(c.text, error)) << c.text;
    EXPECT_EQ(error.rfind(c.error, 0), 0u) << c.text << " -> " << error;
  }
  std::string error;
  EXPECT_TRUE(parse_ini("", error));
  EXPECT_TRUE(parse_ini("\n\n# only comments\n", error));
}

// ---- parse_flat_json_object

TEST(AwsJson, FlatObjects) {
  std::string error;
  auto j = parse_flat_json_object(
      " {\"Code\" : \"Success\", \"LastUpdated\":\"2024-01-01T00:00:00Z\",\n"
      "\"AccessKeyId\":\"ASIA\\u0041\\/x\", \"n\": -1.5e3, \"t\": true, \"f\": false,"
      " \"z\": null, \"e\": \"\\\"\\\\\\b\\f\\n\\r\\t\", \"u\": \"\\u00e9\\ud83d\\ude00\"} ",
      error);
  ASSERT_TRUE(j) << error;
  EXPECT_EQ(j->at("Code"), "Success");
  EXPECT_EQ(j->at("AccessKeyId"), "ASIAA/x");
  EXPECT_EQ(j->at("n"), "-1.5e3");
  EXPECT_EQ(j->at("t"), "true");
  EXPECT_EQ(j->at("z"), "null");
  EXPECT_EQ(j->at("e"), "\"\\\b\f\n\r\t");
  EXPECT_EQ(j->at("u"), "\xc3\xa9\xf0\x9f\x98\x80");
  ASSERT_TRUE(parse_flat_json_object("{}", error));
}

TEST(AwsJson, MalformedInputIsAnError) {
  for (const char* bad : {"",
                          "[]",
                          "{",
                          "{\"a\"}",
                          "{\"a\":}",
                          "{\"a\":\"b\",}",
                          "{\"a\":\"b\"} x",
                          "{\"a\":\"b\" \"c\":\"d\"}",
                          "{\"a\":{\"b\":\"c\"}}",
                          "{\"a\":[1]}",
                          "{\"a\":\"b\",\"a\":\"c\"}",
                          "{a:\"b\"}",
                          "{\"a\":'b'}",
                          "{\"a\":\"\\x\"}",
                          "{\"a\":\"\\u12\"}",
                          "{\"a\":\"\\ud800\"}",
                          "{\"a\":\"\\udc00\"}",
                          "{\"a\":\"line\nbreak\"}",
                          "{\"a\":01}",
                          "{\"a\":1.}",
                          "{\"a\":-}",
                          "{\"a\":tru}",
                          "{\"a\":\"unterminated}",
                          "\xef\xbb\xbf{}"}) {
    std::string error;
    EXPECT_FALSE(parse_flat_json_object(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
  std::string error;
  EXPECT_FALSE(parse_flat_json_object("{\"a\":\"" + std::string(70000, 'x') + "\"}", error));
}

TEST(AwsJson, GarbageNeverCrashes) {
  std::string input = "{\"AccessKeyId\":\"A\\u00e9\",\"n\":12.5e-3,\"t\":true}";
  std::uint32_t seed = 12345;
  for (int i = 0; i < 20000; ++i) {
    std::string s = input;
    seed = seed * 1103515245 + 12345;
    const std::size_t pos = (seed >> 8) % s.size();
    s[pos] = static_cast<char>(seed >> 24);
    s.resize(s.size() - (seed >> 4) % 3);
    std::string error;
    (void)parse_flat_json_object(s, error);
  }
}

// ---- parse_sts_credentials

constexpr const char* kStsResponse =
    R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:db:pgmtls</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/pgmtls/pgmtls-1</Arn>
      <AssumedRoleId>AROA:pgmtls-1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZX&amp;Iv&lt;&gt;&quot;&apos;&#65;&#x42;</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2030-01-01T01:00:00Z</Expiration>
      <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/example</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>)";

TEST(AwsStsXml, ExtractsTheFourElements) {
  std::string error;
  auto creds = parse_sts_credentials(kStsResponse, error);
  ASSERT_TRUE(creds) << error;
  EXPECT_EQ(creds->access_key_id, "ASIAWEBIDENTITY");
  EXPECT_EQ(creds->secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(creds->session_token, "FwoGZX&Iv<>\"'AB");
  EXPECT_EQ(creds->expiration, parse_iso8601("2030-01-01T01:00:00Z"));
}

TEST(AwsStsXml, ErrorResponsesGiveCodeAndMessage) {
  std::string error;
  EXPECT_FALSE(parse_sts_credentials(
      "<ErrorResponse "
      "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
      "<Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found &amp; "
      "more</Message></Error><RequestId>x</RequestId></ErrorResponse>",
      error));
  EXPECT_EQ(error, "InvalidIdentityToken: No OpenIDConnect provider found & more");
}

TEST(AwsStsXml, AnErrorResponseWithAnEmptyCodeStillGivesAnError) {
  // An empty <Code> gave an empty error (found by tests/fuzz/aws_fuzz.cpp), logged as "... returned
  // HTTP 400 ()".
  std::string error;
  EXPECT_FALSE(
      parse_sts_credentials("<ErrorResponse><Error><Code></Code></Error></ErrorResponse>", error));
  EXPECT_EQ(error, "unknown error");
  EXPECT_FALSE(parse_sts_credentials(
      "<ErrorResponse><Error><Code></Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
      error));
  EXPECT_EQ(error, "unknown error: Rate exceeded");
}

TEST(AwsStsXml, MalformedResponsesAreErrors) {
  const std::string good = kStsResponse;
  auto without = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  const std::vector<std::string> bad = {
      "",
      "not xml at all",
      without("<AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>", ""),
      without("<SecretAccessKey>", "<SecretAccessKeyX>"),
      without("</SessionToken>", ""),
      without("<Expiration>2030-01-01T01:00:00Z", "<Expiration>tomorrow"),
      without("<AccessKeyId>ASIAWEBIDENTITY", "<AccessKeyId>"),
      without("<AccessKeyId>ASIAWEBIDENTITY", "<AccessKeyId><b>x</b>"),
      without("&amp;", "&nbsp;"),
      without("&#65;", "&#0;"),
      without("&#x42;", "&#x110000;"),
      without("&amp;", "&amp"),
      without("</Credentials>", "<AccessKeyId>again</AccessKeyId></Credentials>"),
      without("</Credentials>", "</Credentials><Credentials></Credentials>"),
  };
  for (const auto& xml : bad) {
    std::string error;
    EXPECT_FALSE(parse_sts_credentials(xml, error)) << xml;
    EXPECT_FALSE(error.empty());
  }
}

// ---- parse_iso8601

TEST(AwsIso8601, FormsAwsWrites) {
  const auto base = system_clock::time_point(std::chrono::seconds(1893456000));  // 2030-01-01Z
  EXPECT_EQ(parse_iso8601("2030-01-01T00:00:00Z"), base);
  EXPECT_EQ(parse_iso8601("2030-01-01T01:00:00+01:00"), base);
  EXPECT_EQ(parse_iso8601("2029-12-31T19:30:00-04:30"), base);
  EXPECT_EQ(parse_iso8601("2030-01-01T00:00:00.250Z"), base + 250ms);
  EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00Z"), system_clock::time_point());
  EXPECT_EQ(parse_iso8601("2024-02-29T12:00:00Z"),
            system_clock::time_point(std::chrono::seconds(1709208000)));
  for (const char* bad :
       {"", "2030-01-01", "2030-01-01T00:00:00", "2030-01-01 00:00:00Z", "2030-13-01T00:00:00Z",
        "2030-02-29T00:00:00Z", "2030-01-32T00:00:00Z", "2030-01-01T24:00:00Z",
        "2030-01-01T00:60:00Z", "2030-01-01T00:00:60Z", "2030-01-01T00:00:00.Z",
        "2030-01-01T00:00:00+0100", "2030-01-01T00:00:00ZZ", "20x0-01-01T00:00:00Z",
        "2030-01-01T00:00:00.1234567890Z"}) {
    EXPECT_FALSE(parse_iso8601(bad)) << bad;
  }
}

TEST(AwsIso8601, TimesTheClockCannotHoldAreErrorsNotOverflows) {
  // The sum is in 64-bit nanoseconds (1677-09-21 to 2262-04-11): beyond, it overflowed (UBSan:
  // signed integer overflow; found by tests/fuzz/aws_fuzz.cpp). "9999-12-31" is what a server
  // might write for credentials that never expire.
  for (const char* far :
       {"9999-12-31T23:59:59Z", "2262-04-11T23:47:16Z", "2263-01-01T00:00:00Z",
        "1677-09-21T00:12:44Z", "0000-01-01T00:00:00Z", "6024-02-29T23:59:59.999999998-11:30"}) {
    EXPECT_FALSE(parse_iso8601(far)) << far;
  }
  EXPECT_EQ(parse_iso8601("2262-04-11T23:47:15.999999999Z"),
            system_clock::time_point(std::chrono::nanoseconds(9223372035999999999)));
  EXPECT_EQ(parse_iso8601("1677-09-21T00:12:45Z"),
            system_clock::time_point(std::chrono::seconds(-9223372035)));
}

// ---- The chain, with a fake HTTP client

class FakeHttp : public HttpClient {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  explicit FakeHttp(Handler handler) : handler_(std::move(handler)) {}

  asio::awaitable<HttpResponse> send(HttpRequest request) override {
    requests.push_back(request);
    if (hold) {
      // Held until release(): lets tests catch a refresh in flight.
      asio::steady_timer gate(co_await asio::this_coro::executor,
                              asio::steady_timer::time_point::max());
      held_ = &gate;
      auto [ec] = co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;
      held_ = nullptr;
    }
    co_return handler_(request);
  }

  bool holding() const { return held_ != nullptr; }
  void release() {
    hold = false;
    if (held_ != nullptr) held_->cancel();
  }

  std::vector<HttpRequest> requests;
  bool hold = false;

 private:
  Handler handler_;
  asio::steady_timer* held_ = nullptr;
};

// Nothing answers: the network of a host outside AWS.
HttpResponse unreachable(const HttpRequest&) {
  return {0, {}, "connection refused"};
}

// For chains that must stop before any request: a request would get credentials.
HttpResponse imds_never_asked(const HttpRequest&) {
  ADD_FAILURE() << "an HTTP request was made";
  return {0, {}, "unexpected"};
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/pgmtls-awscred-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const system_clock::time_point kNow = *parse_iso8601("2030-01-01T00:00:00Z");

struct Harness {
  std::map<std::string, std::string> env;
  system_clock::time_point now = kNow;
  std::shared_ptr<FakeHttp> http;
  int env_lookups = 0;

  explicit Harness(FakeHttp::Handler handler = unreachable)
      : http(std::make_shared<FakeHttp>(std::move(handler))) {}

  ChainSettings settings(std::string profile = {}, std::string region = {}) {
    ChainSettings s;
    s.profile = std::move(profile);
    s.region = std::move(region);
    s.environment = [this](std::string_view name) -> std::optional<std::string> {
      ++env_lookups;
      auto it = env.find(std::string(name));
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    s.clock = [this] { return now; };
    return s;
  }
};

CredentialChain::Result run(CredentialChain& chain, bool resolve_only = false) {
  asio::io_context io;
  auto future = asio::co_spawn(io, resolve_only ? chain.resolve() : chain.get(), asio::use_future);
  io.run();
  return future.get();
}

std::string container_json(const std::string& key, const std::string& expiration) {
  return "{\"AccessKeyId\":\"" + key +
         "\",\"SecretAccessKey\":\"containersecret\",\"Token\":\"containertoken\",\"Expiration\":"
         "\"" +
         expiration + "\",\"RoleArn\":\"arn:aws:iam::1:role/r\"}";
}

TEST(AwsCredentialChain, EnvironmentComesFirst) {
  Harness h;
  h.env = {{"AWS_ACCESS_KEY_ID", "AKIDENV"},
           {"AWS_SECRET_ACCESS_KEY", "envsecret"},
           {"AWS_SESSION_TOKEN", "envtoken"},
           {"AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent"},
           {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"},
           {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"}};
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain);
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "environment");
  EXPECT_EQ(r.credentials->access_key_id, "AKIDENV");
  EXPECT_EQ(r.credentials->secret_access_key, "envsecret");
  EXPECT_EQ(r.credentials->session_token, "envtoken");
  EXPECT_FALSE(r.credentials->expiration);
  EXPECT_TRUE(h.http->requests.empty());
}

TEST(AwsCredentialChain, NothingConfiguredGivesEveryReasonOnOneLine) {
  Harness h;
  h.env = {{"AWS_EC2_METADATA_DISABLED", "TRUE"}};
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain);
  ASSERT_FALSE(r.credentials);
  EXPECT_EQ(r.provider, "");
  EXPECT_EQ(r.error,
            "no AWS credentials: environment: AWS_ACCESS_KEY_ID is not set; web-identity: "
            "AWS_WEB_IDENTITY_TOKEN_FILE is not set; shared-files: HOME is not set and neither "
            "AWS_SHARED_CREDENTIALS_FILE nor AWS_CONFIG_FILE is; container: neither "
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set; imds: disabled by "
            "AWS_EC2_METADATA_DISABLED");
  EXPECT_TRUE(h.http->requests.empty());
}

TEST(AwsCredentialChain, AHalfConfiguredProviderEndsTheChainWithoutSecrets) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string provider;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{{"AWS_SECRET_ACCESS_KEY", "SUPERSECRETVALUE"}, {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}},
       "environment",
       "no AWS credentials: environment: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is "
       "not"},
      {{{"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"}},
       "web-identity",
       "no AWS credentials: environment: AWS_ACCESS_KEY_ID is not set; web-identity: AWS_ROLE_ARN "
       "is set but AWS_WEB_IDENTITY_TOKEN_FILE is not"},
  };
  for (const auto& c : cases) {
    Harness h(imds_never_asked);
    h.env = c.env;
    CredentialChain chain(h.settings(), h.http);
    auto r = run(chain);
    ASSERT_FALSE(r.credentials);
    EXPECT_EQ(r.provider, c.provider);
    EXPECT_EQ(r.error, c.error);
    EXPECT_EQ(r.error.find("SUPERSECRET"), std::string::npos);
    EXPECT_TRUE(h.http->requests.empty());
  }
}

TEST(AwsCredentialChain, ImdsFailureOffEc2IsOneClearReason) {
  Harness h;
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain);
  ASSERT_FALSE(r.credentials);
  EXPECT_NE(r.error.find("imds: no instance metadata service at http://169.254.169.254 "
                         "(connection refused)"),
            std::string::npos)
      << r.error;
  ASSERT_EQ(h.http->requests.size(), 1u);
  EXPECT_EQ(h.http->requests[0].timeout, 1000ms);
}

// ---- web identity

constexpr const char* kRoleArn = "arn:aws:iam::123456789012:role/pgmtls db";

HttpResponse sts_ok(const HttpRequest&) {
  return {200, kStsResponse, {}};
}

TEST(AwsCredentialChain, WebIdentityPostsToRegionalSts) {
  TempDir dir;
  Harness h(sts_ok);
  h.env = {{"AWS_WEB_IDENTITY_TOKEN_FILE", dir.write("token", "eyJ.token+/=\n")},
           {"AWS_ROLE_ARN", kRoleArn},
           {"AWS_REGION", "eu-west-1"},
           {"AWS_DEFAULT_REGION", "us-east-2"}};
  CredentialChain chain(h.settings({}, "ap-south-1"), h.http);
  auto r = run(chain);
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "web-identity");
  EXPECT_EQ(r.credentials->access_key_id, "ASIAWEBIDENTITY");
  EXPECT_EQ(r.credentials->expiration, parse_iso8601("2030-01-01T01:00:00Z"));
  ASSERT_EQ(h.http->requests.size(), 1u);
  const auto& req = h.http->requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "https://sts.eu-west-1.amazonaws.com/");
  EXPECT_EQ(req.body.rfind("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn="
                           "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fpgmtls%20db&"
                           "RoleSessionName=pgmtls-",
                           0),
            0u)
      << req.body;
  EXPECT_TRUE(req.body.ends_with("&WebIdentityToken=eyJ.token%2B%2F%3D")) << req.body;
}

TEST(AwsCredentialChain, StsEndpointChoice) {
  TempDir dir;
  const std::string token = dir.write("token", "t");
  struct Case {
    std::map<std::string, std::string> env;
    std::string region;
    std::string url;
  };
  const std::vector<Case> cases = {
      {{}, "", "https://sts.amazonaws.com/"},
      {{}, "ap-south-1", "https://sts.ap-south-1.amazonaws.com/"},
      {{{"AWS_DEFAULT_REGION", "us-east-2"}}, "ap-south-1", "https://sts.us-east-2.amazonaws.com/"},
      {{{"AWS_REGION", "cn-north-1"}}, "", "https://sts.cn-north-1.amazonaws.com.cn/"},
      {{{"AWS_ENDPOINT_URL", "http://127.0.0.1:9000"}}, "eu-west-1", "http://127.0.0.1:9000/"},
      {{{"AWS_ENDPOINT_URL", "http://127.0.0.1:9000"},
        {"AWS_ENDPOINT_URL_STS", "https://localhost:8443/"}},
       "",
       "https://localhost:8443/"},
      {{{"AWS_ENDPOINT_URL_STS", "https://localhost:8443/"},
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"},
        {"AWS_REGION", "eu-west-1"}},
       "",
       "https://sts.eu-west-1.amazonaws.com/"},
  };
  for (const auto& c : cases) {
    Harness h(sts_ok);
    h.env = c.env;
    h.env["AWS_WEB_IDENTITY_TOKEN_FILE"] = token;
    h.env["AWS_ROLE_ARN"] = kRoleArn;
    CredentialChain chain(h.settings({}, c.region), h.http);
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    ASSERT_EQ(h.http->requests.size(), 1u);
    EXPECT_EQ(h.http->requests[0].url, c.url);
  }
  Harness h(sts_ok);
  h.env = {{"AWS_WEB_IDENTITY_TOKEN_FILE", token},
           {"AWS_ROLE_ARN", kRoleArn},
           {"AWS_REGION", "evil.com/x"},
           {"AWS_EC2_METADATA_DISABLED", "true"}};
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain);
  EXPECT_FALSE(r.credentials);
  EXPECT_NE(r.error.find("web-identity: \"evil.com/x\" is not a region name"), std::string::npos)
      << r.error;
}

TEST(AwsCredentialChain, WebIdentityFailures) {
  TempDir dir;
  struct Case {
    std::string token_content;  // empty: no token file
    HttpResponse response;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"", {}, "web-identity: web identity token: cannot read"},
      {"\n", {}, "is empty"},
      {"two\nlines", {}, "holds more than one line"},
      {"t", {0, {}, "timed out after 5000 ms"}, "STS https://sts.amazonaws.com/: timed out"},
      {"t",
       {400,
        "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>bad "
        "jwt</Message></Error></ErrorResponse>",
        {}},
       "returned HTTP 400 (InvalidIdentityToken: bad jwt)"},
      {"t", {503, "<html>busy</html>", {}}, "returned HTTP 503"},
      {"t", {200, "garbage", {}}, "answered without usable credentials (no <Credentials> element)"},
  };
  for (const auto& c : cases) {
    Harness h([&](const HttpRequest&) { return c.response; });
    h.env = {
        {"AWS_WEB_IDENTITY_TOKEN_FILE",
         c.token_content.empty() ? dir.path() + "/missing" : dir.write("token", c.token_content)},
        {"AWS_ROLE_ARN", kRoleArn},
        {"AWS_ROLE_SESSION_NAME", "fixed-name"}};
    CredentialChain chain(h.settings(), h.http);
    auto r = run(chain, true);
    EXPECT_FALSE(r.credentials);
    EXPECT_NE(r.error.find(c.error), std::string::npos) << r.error;
    // A configured provider that fails ends the chain.
    EXPECT_EQ(r.provider, "web-identity");
    EXPECT_EQ(r.error.find("shared-files"), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find("two\nlines"), std::string::npos);
    for (const auto& req : h.http->requests) {
      if (req.method == "POST")
        EXPECT_NE(req.body.find("&RoleSessionName=fixed-name&"), std::string::npos);
    }
  }
}

// ---- shared files

struct SharedFiles {
  TempDir dir;
  Harness h;
  SharedFiles(const std::string& credentials, const std::string& config) {
    if (!credentials.empty()) dir.write(".aws/credentials", credentials);
    if (!config.empty()) dir.write(".aws/config", config);
    h.env = {{"HOME", dir.path()}, {"AWS_EC2_METADATA_DISABLED", "true"}};
  }
};

TEST(AwsCredentialChain, SharedFilesDefaultProfile) {
  SharedFiles f("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\n",
                "");
  CredentialChain chain(f.h.settings(), f.h.http);
  auto r = run(chain);
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "shared-files:default");
  EXPECT_EQ(r.credentials->access_key_id, "AKIDFILE");
  EXPECT_EQ(r.credentials->session_token, "");
  EXPECT_FALSE(r.credentials->expiration);
}

TEST(AwsCredentialChain, SharedFilesProfileChoiceAndPrecedence) {
  const std::string credentials =
      "[default]\naws_access_key_id=AKIDDEFAULT\naws_secret_access_key=s0\n"
      "[dev]\naws_access_key_id=AKIDDEVCREDS\n"
      "[ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=s2\naws_session_token=tok\n";
  const std::string config =
      "[default]\nregion=us-east-1\n"
      "[profile dev]\naws_access_key_id=AKIDDEVCONFIG\naws_secret_access_key=s1\n"
      "[ops]\naws_access_key_id=NOT-A-PROFILE\n"
      "[profile cfgonly]\naws_access_key_id=AKIDCFG\naws_secret_access_key=s3\n";
  {
    SharedFiles f(credentials, config);
    f.h.env["AWS_PROFILE"] = "ops";
    CredentialChain chain(f.h.settings("dev"), f.h.http);  // settings beat AWS_PROFILE
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.provider, "shared-files:dev");
    EXPECT_EQ(r.credentials->access_key_id, "AKIDDEVCREDS");  // credentials file wins
    EXPECT_EQ(r.credentials->secret_access_key, "s1");        // the config file fills in
  }
  {
    SharedFiles f(credentials, config);
    f.h.env["AWS_PROFILE"] = "ops";
    CredentialChain chain(f.h.settings(), f.h.http);
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.provider, "shared-files:ops");
    EXPECT_EQ(r.credentials->session_token, "tok");
  }
  {
    SharedFiles f(credentials, config);
    CredentialChain chain(f.h.settings("cfgonly"), f.h.http);
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.credentials->access_key_id, "AKIDCFG");
  }
  {
    // Explicit paths, "~/" expanded with HOME.
    SharedFiles f("", "");
    f.dir.write("elsewhere/creds", "[default]\naws_access_key_id=AKIDX\naws_secret_access_key=x\n");
    f.h.env["AWS_SHARED_CREDENTIALS_FILE"] = "~/elsewhere/creds";
    CredentialChain chain(f.h.settings(), f.h.http);
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.credentials->access_key_id, "AKIDX");
  }
}

TEST(AwsCredentialChain, SharedFilesFailures) {
  struct Case {
    std::string credentials, config, profile, error;
    bool stops;  // the profile is configured but unusable: the chain ends here
  };
  const std::vector<Case> cases = {
      {"", "", "", "shared-files: no credentials file (", false},
      {"[default]\naws_access_key_id=A\n", "", "",
       "profile default has aws_access_key_id but no aws_secret_access_key", true},
      {"[other]\naws_access_key_id=A\n", "", "", "profile default not found in ", false},
      {"[other]\naws_access_key_id=A\n", "", "named", "profile named not found in ", true},
      {"", "[profile x]\nrole_arn=arn:aws:iam::1:role/r\nsource_profile=default\n", "x",
       "profile x uses role_arn, which pgmtls does not support", true},
      {"", "[default]\ncredential_process=/bin/creds\n", "",
       "profile default uses credential_process, which pgmtls does not support", true},
      {"", "[profile s]\nsso_session=corp\n", "s", "profile s uses sso_session", true},
      {"[default]\nregion=x\n", "", "", "profile default has no aws_access_key_id", false},
      {"[default]\nnonsense\n", "", "", "/.aws/credentials: line 2: expected", true},
  };
  for (const auto& c : cases) {
    SharedFiles f(c.credentials, c.config);
    CredentialChain chain(f.h.settings(c.profile), f.h.http);
    auto r = run(chain);
    EXPECT_FALSE(r.credentials);
    EXPECT_NE(r.error.find(c.error), std::string::npos) << r.error;
    EXPECT_EQ(r.provider, c.stops ? "shared-files" : "") << r.error;
    EXPECT_EQ(r.error.find("imds:") == std::string::npos, c.stops) << r.error;
  }
}

// ---- container

TEST(AwsCredentialChain, ContainerRelativeUriWithToken) {
  TempDir dir;
  Harness h([](const HttpRequest&) {
    return HttpResponse{200, container_json("ASIACONTAINER", "2030-01-01T06:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/uuid"},
           {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/ignored"},
           {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer abc"}};
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain);
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "container");
  EXPECT_EQ(r.credentials->access_key_id, "ASIACONTAINER");
  EXPECT_EQ(r.credentials->session_token, "containertoken");
  EXPECT_EQ(r.credentials->expiration, parse_iso8601("2030-01-01T06:00:00Z"));
  ASSERT_EQ(h.http->requests.size(), 1u);
  const auto& req = h.http->requests[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.url, "http://169.254.170.2/v2/credentials/uuid");
  bool authorized = false;
  for (const auto& [name, value] : req.headers)
    authorized |= name == "Authorization" && value == "Bearer abc";
  EXPECT_TRUE(authorized);
}

TEST(AwsCredentialChain, ContainerFullUriAndTokenFile) {
  TempDir dir;
  Harness h([](const HttpRequest&) {
    return HttpResponse{200, container_json("ASIAPOD", "2030-01-01T06:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials"},
           {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir.write("token", "pod-token-1\n")},
           {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored"}};
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain, true);
  ASSERT_TRUE(r.credentials) << r.error;
  dir.write("token", "pod-token-2");  // rotated: read again for the next request
  r = run(chain, true);
  ASSERT_TRUE(r.credentials) << r.error;
  ASSERT_EQ(h.http->requests.size(), 2u);
  EXPECT_EQ(h.http->requests[0].url, "http://169.254.170.23/v1/credentials");
  std::vector<std::string> tokens;
  for (const auto& req : h.http->requests)
    for (const auto& [name, value] : req.headers)
      if (name == "Authorization") tokens.push_back(value);
  EXPECT_EQ(tokens, (std::vector<std::string>{"pod-token-1", "pod-token-2"}));
}

TEST(AwsCredentialChain, ContainerFailures) {
  TempDir dir;
  struct Case {
    std::map<std::string, std::string> env;
    HttpResponse response;
    std::string error;
  };
  const std::string uri = "http://127.0.0.1:8080/creds";
  const std::vector<Case> cases = {
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds"}},
       {},
       "plain http is allowed only to a loopback address or the ECS / EKS agent, not 10.0.0.1"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1.evil.com/creds"}},
       {},
       "not 127.0.0.1.evil.com"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "ftp://x/"}}, {}, "scheme is not http or https"},
      {{{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/x"}}, {}, "does not start with '/'"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri},
        {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "a\r\nX-Injected: 1"}},
       {},
       "holds a line break"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri},
        {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir.path() + "/missing"}},
       {},
       "authorization token: cannot read"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {0, {}, "timed out after 5000 ms (reading the response)"},
       "container: http://127.0.0.1:8080/creds: timed out"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {403, "{\"code\":\"AccessDenied\",\"message\":\"bad token\"}", {}},
       "returned HTTP 403 (AccessDenied: bad token)"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {500, "Internal error", {}},
       "returned HTTP 500"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {200, "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"partsecret\"}", {}},
       "answered without Token"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {200, "{\"AccessKeyId\":\"ASIA\",\"SecretAccessKey\":\"partsecret\"", {}},
       "answered with malformed JSON"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {200, container_json("ASIA", "soon"), {}},
       "malformed Expiration"},
      {{{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}},
       {200, container_json("ASIA", "2029-12-31T23:00:00Z"), {}},
       "container: the credentials expired at 2029-12-31T23:00:00Z"},
  };
  for (const auto& c : cases) {
    Harness h([&](const HttpRequest&) { return c.response; });
    h.env = c.env;
    CredentialChain chain(h.settings(), h.http);
    auto r = run(chain, true);
    EXPECT_FALSE(r.credentials);
    EXPECT_NE(r.error.find(c.error), std::string::npos) << r.error;
    EXPECT_EQ(r.provider, "container");
    EXPECT_EQ(r.error.find("imds"), std::string::npos) << r.error;
    EXPECT_EQ(r.error.find("secret"), std::string::npos) << r.error;
  }
}

// ---- IMDS

HttpResponse imds(const HttpRequest& req) {
  auto header = [&](const std::string& name) -> std::string {
    for (const auto& [n, v] : req.headers)
      if (n == name) return v;
    return {};
  };
  if (req.url == "http://169.254.169.254/latest/api/token") {
    if (req.method != "PUT" || header("X-aws-ec2-metadata-token-ttl-seconds").empty())
      return {400, {}, {}};
    return {200, "imds-token", {}};
  }
  if (header("X-aws-ec2-metadata-token") != "imds-token" || req.method != "GET")
    return {401, {}, {}};
  if (req.url == "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    return {200, "pgmtls-role\n", {}};
  if (req.url == "http://169.254.169.254/latest/meta-data/iam/security-credentials/pgmtls-role")
    return {
        200,
        "{\"Code\":\"Success\",\"LastUpdated\":\"2029-12-31T23:50:00Z\",\"Type\":\"AWS-HMAC\","
        "\"AccessKeyId\":\"ASIAIMDS\",\"SecretAccessKey\":\"imdssecret\",\"Token\":\"imdstoken\","
        "\"Expiration\":\"2030-01-01T06:00:00Z\"}",
        {}};
  return {404, {}, {}};
}

TEST(AwsCredentialChain, ImdsV2) {
  Harness h(imds);
  CredentialChain chain(h.settings(), h.http);
  auto r = run(chain);
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(r.provider, "imds");
  EXPECT_EQ(r.credentials->access_key_id, "ASIAIMDS");
  EXPECT_EQ(r.credentials->session_token, "imdstoken");
  ASSERT_EQ(h.http->requests.size(), 3u);
  for (const auto& req : h.http->requests)
    EXPECT_EQ(req.timeout, 1000ms);
}

TEST(AwsCredentialChain, ImdsEndpointsAndFailures) {
  {
    Harness h;
    h.env = {{"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"}};
    CredentialChain chain(h.settings(), h.http);
    run(chain);
    ASSERT_EQ(h.http->requests.size(), 1u);
    EXPECT_EQ(h.http->requests[0].url, "http://[fd00:ec2::254]/latest/api/token");
  }
  {
    Harness h;
    h.env = {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1234/"},
             {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6"}};
    CredentialChain chain(h.settings(), h.http);
    run(chain);
    ASSERT_EQ(h.http->requests.size(), 1u);
    EXPECT_EQ(h.http->requests[0].url, "http://127.0.0.1:1234/latest/api/token");
  }
  struct Case {
    std::function<HttpResponse(const HttpRequest&)> handler;
    std::string error;
  };
  auto override_role = [](HttpResponse role_list, HttpResponse creds) {
    return [=](const HttpRequest& req) {
      if (req.url.ends_with("/security-credentials/")) return role_list;
      if (req.url.ends_with("/pgmtls-role") || req.url.ends_with("/other")) return creds;
      return imds(req);
    };
  };
  const std::vector<Case> cases = {
      {[](const HttpRequest& req) {
         return req.method == "PUT" ? HttpResponse{403, {}, {}} : imds(req);
       },
       "imds: IMDSv2 token request returned HTTP 403"},
      {override_role({404, {}, {}}, {}), "imds: no IAM role is attached to this instance"},
      {override_role({200, "\n", {}}, {}), "imds: no IAM role is attached to this instance"},
      {override_role({200, "../../x", {}}, {}), "answered with a malformed role name"},
      {override_role({200, "other", {}}, {500, {}, {}}), "/other returned HTTP 500"},
      {override_role({200, "other", {}}, {200, "{\"Code\":\"AssumeRoleUnauthorizedAccess\"}", {}}),
       "answered Code AssumeRoleUnauthorizedAccess"},
      {override_role(
           {200, "other", {}},
           {200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"B\",\"Token\":\"C\"}", {}}),
       "answered without Expiration"},
  };
  for (const auto& c : cases) {
    Harness h(c.handler);
    CredentialChain chain(h.settings(), h.http);
    auto r = run(chain);
    EXPECT_FALSE(r.credentials);
    EXPECT_NE(r.error.find(c.error), std::string::npos) << r.error;
  }
}

TEST(AwsCredentialChain, OrderSharedFilesBeforeContainerBeforeImds) {
  SharedFiles f("[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=s\n", "");
  f.h = Harness(imds);
  f.h.env = {{"HOME", f.dir.path()},
             {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"}};
  {
    CredentialChain chain(f.h.settings(), f.h.http);
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.provider, "shared-files:default");
    EXPECT_TRUE(f.h.http->requests.empty());
  }
  f.h.env["HOME"] = f.dir.path() + "/nowhere";
  {
    // The container URL answers 401 (the fake IMDS wants its token): a configured provider that
    // fails ends the chain; the instance's role is not used instead.
    CredentialChain chain(f.h.settings(), f.h.http);
    auto r = run(chain);
    ASSERT_FALSE(r.credentials);
    EXPECT_EQ(r.provider, "container");
    EXPECT_NE(r.error.find("container: http://127.0.0.1/creds returned HTTP 401"),
              std::string::npos)
        << r.error;
    ASSERT_EQ(f.h.http->requests.size(), 1u);
  }
  f.h.env.erase("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  {
    CredentialChain chain(f.h.settings(), f.h.http);
    auto r = run(chain);
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.provider, "imds");
    EXPECT_EQ(f.h.http->requests.size(), 4u);
  }
}

// ---- caching and refresh

TEST(AwsCredentialChain, StaticCredentialsAreCachedForever) {
  SharedFiles f("[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=s\n", "");
  CredentialChain chain(f.h.settings(), f.h.http);
  ASSERT_TRUE(run(chain).credentials);
  const int lookups = f.h.env_lookups;
  f.h.now += std::chrono::days(3650);
  auto r = run(chain);
  ASSERT_TRUE(r.credentials);
  EXPECT_EQ(r.provider, "shared-files:default");
  EXPECT_EQ(f.h.env_lookups, lookups);  // not resolved again
}

TEST(AwsCredentialChain, RefreshesWithinFiveMinutesOfExpiration) {
  int n = 0;
  Harness h([&](const HttpRequest&) {
    ++n;
    return HttpResponse{
        200, container_json("ASIA" + std::to_string(n), "2030-01-01T01:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"}};
  CredentialChain chain(h.settings(), h.http);
  EXPECT_EQ(run(chain).credentials->access_key_id, "ASIA1");
  h.now = kNow + 54min;  // six minutes left: cached
  EXPECT_EQ(run(chain).credentials->access_key_id, "ASIA1");
  EXPECT_EQ(h.http->requests.size(), 1u);
  h.now = kNow + 55min + 1s;  // inside the margin: refreshed
  EXPECT_EQ(run(chain).credentials->access_key_id, "ASIA2");
  EXPECT_EQ(h.http->requests.size(), 2u);
}

TEST(AwsCredentialChain, FailedEarlyRefreshKeepsValidCredentialsThenFails) {
  bool fail = false;
  Harness h([&](const HttpRequest&) {
    if (fail) return HttpResponse{500, {}, {}};
    return HttpResponse{200, container_json("ASIAOLD", "2030-01-01T01:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"},
           {"AWS_EC2_METADATA_DISABLED", "true"}};
  CredentialChain chain(h.settings(), h.http);
  ASSERT_TRUE(run(chain).credentials);
  fail = true;
  h.now = kNow + 58min;
  auto r = run(chain);
  ASSERT_TRUE(r.credentials);
  EXPECT_EQ(r.credentials->access_key_id, "ASIAOLD");
  EXPECT_EQ(r.provider, "container");
  EXPECT_NE(r.error.find("refresh failed, using the cached credentials until they expire: no AWS "
                         "credentials: "),
            std::string::npos)
      << r.error;
  h.now = kNow + 1h;
  r = run(chain);
  EXPECT_FALSE(r.credentials);
  EXPECT_NE(r.error.find("returned HTTP 500"), std::string::npos) << r.error;
}

TEST(AwsCredentialChain, ConcurrentCallersShareOneRefresh) {
  Harness h([](const HttpRequest&) {
    return HttpResponse{200, container_json("ASIASHARED", "2030-01-01T06:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"}};
  h.http->hold = true;
  CredentialChain chain(h.settings(), h.http);
  asio::io_context io;
  auto first = asio::co_spawn(io, chain.get(), asio::use_future);
  io.poll();
  ASSERT_TRUE(h.http->holding());
  auto second = asio::co_spawn(io, chain.get(), asio::use_future);
  auto third = asio::co_spawn(io, chain.get(), asio::use_future);
  io.poll();
  EXPECT_EQ(h.http->requests.size(), 1u);
  h.http->release();
  io.run();
  for (auto* f : {&first, &second, &third}) {
    auto r = f->get();
    ASSERT_TRUE(r.credentials) << r.error;
    EXPECT_EQ(r.credentials->access_key_id, "ASIASHARED");
    EXPECT_EQ(r.provider, "container");
  }
  EXPECT_EQ(h.http->requests.size(), 1u);
}

TEST(AwsCredentialChain, AnAbandonedRefreshWakesItsWaiters) {
  Harness h([](const HttpRequest&) {
    return HttpResponse{200, container_json("ASIAX", "2030-01-01T06:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"}};
  h.http->hold = true;
  CredentialChain chain(h.settings(), h.http);
  asio::io_context waiter_io;
  std::future<CredentialChain::Result> waiting;
  {
    asio::io_context refresher_io;
    asio::co_spawn(refresher_io, chain.get(), asio::detached);
    refresher_io.poll();
    ASSERT_TRUE(h.http->holding());
    waiting = asio::co_spawn(waiter_io, chain.get(), asio::use_future);
    waiter_io.poll();
  }  // the refresher's io_context dies with its refresh in flight
  waiter_io.run();
  auto r = waiting.get();
  EXPECT_FALSE(r.credentials);
  EXPECT_EQ(r.error, "the credential refresh was abandoned");
  // The chain is usable afterwards.
  h.http->hold = false;
  auto again = run(chain);
  ASSERT_TRUE(again.credentials) << again.error;
}

TEST(AwsCredentialChain, AWaiterWhoseExecutorIsGoneIsSkipped) {
  Harness h([](const HttpRequest&) {
    return HttpResponse{200, container_json("ASIAX", "2030-01-01T06:00:00Z"), {}};
  });
  h.env = {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/creds"}};
  h.http->hold = true;
  CredentialChain chain(h.settings(), h.http);
  asio::io_context refresher_io;
  auto refreshed = asio::co_spawn(refresher_io, chain.get(), asio::use_future);
  refresher_io.poll();
  ASSERT_TRUE(h.http->holding());
  {
    asio::io_context waiter_io;
    asio::co_spawn(waiter_io, chain.get(), asio::detached);
    waiter_io.poll();
  }  // the waiter's io_context dies while it waits
  h.http->release();
  refresher_io.run();
  auto r = refreshed.get();
  ASSERT_TRUE(r.credentials) << r.error;
  EXPECT_EQ(h.http->requests.size(), 1u);
}

}  // namespace
}  // namespace pgmtls::auth::aws
