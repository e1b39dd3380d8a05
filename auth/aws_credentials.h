// AWS credentials from the standard provider chain, in the order the AWS SDKs use:
//
//   1. environment    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
//   2. web-identity   AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME) ->
//                     STS AssumeRoleWithWebIdentity (unsigned POST); the token file is read on
//                     every refresh because it rotates (EKS IRSA)
//   3. shared-files   AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and AWS_CONFIG_FILE
//                     (~/.aws/config): aws_access_key_id / aws_secret_access_key /
//                     aws_session_token of the profile (settings, then AWS_PROFILE, then
//                     "default"). role_arn / source_profile, credential_process and SSO profiles
//                     are reported as not supported.
//   4. container      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2 + URI) or
//                     AWS_CONTAINER_CREDENTIALS_FULL_URI, with the Authorization header from
//                     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read every time; EKS Pod Identity)
//                     or AWS_CONTAINER_AUTHORIZATION_TOKEN (ECS, EKS Pod Identity)
//   5. imds           EC2 instance metadata, IMDSv2 only (PUT token, then GETs), disabled by
//                     AWS_EC2_METADATA_DISABLED=true
//
// Endpoints follow the SDKs' standard variables: AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL (both
// ignored when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else https://sts.REGION.amazonaws.com
// (.amazonaws.com.cn for cn-* regions; https://sts.amazonaws.com without a region);
// AWS_EC2_METADATA_SERVICE_ENDPOINT, else AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 ->
// http://[fd00:ec2::254], else http://169.254.169.254. The SDKs have no variable that moves the
// host AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is appended to, so pgmtls reads its own:
// PGMTLS_AWS_CONTAINER_CREDENTIALS_ENDPOINT (e.g. "http://127.0.0.1:8080"; for tests). A plain
// http:// FULL_URI must name a loopback address or the ECS / EKS link-local agents, as the SDKs
// require.
//
// The first provider that yields complete credentials wins. A provider that is configured (its
// variables, or the named profile, are there) but fails ends the chain, as in the AWS SDKs: a
// broken web identity setup must not silently fall through to the instance's role. When no provider
// yields credentials, the error names each provider tried and its reason on one line. Errors never
// hold a secret: no key, token, token-file content or body of a successful response appears in
// them.
//
// auth/ owns no sockets: HTTP goes through the HttpClient interface below, which proxy/ implements
// (proxy/http_client.h) and unit tests fake. Local files are small and read synchronously.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/aws_sigv4.h"

namespace pgmtls::auth::aws {

// ---- HTTP, as the providers need it.

struct HttpRequest {
  std::string method = "GET";  // GET, PUT, POST
  std::string url;             // http://host[:port]/path?query or https://...
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The whole exchange (resolve, connect, TLS handshake, request, response) must finish in this.
  std::chrono::milliseconds timeout{5000};
};

struct HttpResponse {
  int status = 0;     // 0 when no response was read
  std::string body;   // the response body (capped by the client)
  std::string error;  // non-empty: the exchange failed (connect, TLS, timeout, size); no secrets
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Never throws for transport problems: they come back in HttpResponse::error. Must finish within
  // request.timeout (plus scheduling slack).
  virtual boost::asio::awaitable<HttpResponse> send(HttpRequest request) = 0;
};

// The pieces of a URL an HTTP client needs.
struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6 literals
  std::uint16_t port = 0;
  std::string target;  // path and query, at least "/"
};

// Parses "http[s]://host[:port][/path][?query]" (IPv6 literals in brackets; no user info, no
// fragment). nullopt with `error` set otherwise.
std::optional<Url> parse_url(std::string_view url, std::string& error);

// ---- The formats the providers read. Exposed for tests and fuzzing.

// An AWS shared config / credentials file: section name -> (key -> value). Section names are
// trimmed ("[ profile  dev ]" is "profile dev"); keys are lower-cased; values trimmed. Lines
// starting with '#' or ';' are comments, and so is the rest of a line after whitespace followed
// by '#' or ';'. Indented lines after a "key =" line with no value are that key's sub-settings
// (as in "s3 =\n  max_concurrent_requests = 10") and are ignored. A later duplicate section
// merges into the earlier one; a later key wins.
struct IniFile {
  std::map<std::string, std::map<std::string, std::string>> sections;
};

// nullopt with `error` = "line N: reason" for a line that is neither a section, a setting, a
// comment nor blank, and for settings before the first section.
std::optional<IniFile> parse_ini(std::string_view text, std::string& error);

// A JSON object whose values are strings, numbers, true, false or null (the latter four kept as
// their literal text). Strict: nested values, duplicate keys, trailing data, bad escapes, control
// characters in strings and more than 64 KiB of input are errors.
std::optional<std::map<std::string, std::string>> parse_flat_json_object(std::string_view text,
                                                                         std::string& error);

// The credentials in an STS AssumeRole* XML response (<Credentials> holding AccessKeyId,
// SecretAccessKey, SessionToken, Expiration, each exactly once). For an STS <ErrorResponse>,
// `error` is "CODE: MESSAGE" from it. The predefined XML entities and character references are
// decoded.
std::optional<Credentials> parse_sts_credentials(std::string_view xml, std::string& error);

// ISO 8601 / RFC 3339 date-time as AWS writes it: "2024-05-01T12:34:56Z", optional fractional
// seconds, "Z" or "+HH:MM"/"-HH:MM". nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);

// ---- The chain.

using Environment = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (getenv); empty values count as unset.
std::optional<std::string> process_environment(std::string_view name);

struct ChainSettings {
  std::string profile;  // empty: AWS_PROFILE, else "default"
  std::string region;   // for STS when neither AWS_REGION nor AWS_DEFAULT_REGION is set
  Environment environment = process_environment;
  // Cached credentials are refreshed once they expire within this margin.
  std::chrono::seconds refresh_margin{300};
  std::chrono::milliseconds http_timeout{5000};  // STS and container requests
  std::chrono::milliseconds imds_timeout{1000};  // each IMDS request: fail fast off EC2
  // The clock expirations are compared with; empty: system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
};

class CredentialChain {
 public:
  struct Result {
    std::optional<Credentials> credentials;
    // Which provider supplied them: "environment", "web-identity", "shared-files:PROFILE",
    // "container", "imds". Without credentials: the configured provider that failed and ended the
    // chain, or empty when no provider was configured.
    std::string provider;
    // Without credentials: why, one line naming each provider's reason. With credentials: empty,
    // or why an early refresh failed (the cached credentials returned are still valid).
    std::string error;
  };

  CredentialChain(ChainSettings settings, std::shared_ptr<HttpClient> http);
  CredentialChain(const CredentialChain&) = delete;
  CredentialChain& operator=(const CredentialChain&) = delete;
  ~CredentialChain();

  // Cached credentials, or the chain's answer. Callers on different threads (each running its own
  // executor) share one refresh in flight: they wait for it and are woken on their own executor.
  // The chain must outlive every get() in progress.
  boost::asio::awaitable<Result> get();

  // One pass over the providers, ignoring the cache. Exposed for tests and `pgmtls iam-token`.
  boost::asio::awaitable<Result> resolve();

 private:
  struct Waiter {
    explicit Waiter(const boost::asio::any_io_executor& ex)
        : timer(ex, boost::asio::steady_timer::time_point::max()) {}
    boost::asio::steady_timer timer;
    Result result;
  };
  class RefreshGuard;
  struct Attempt;  // one provider's answer, and whether it was configured at all

  std::chrono::system_clock::time_point now() const;
  std::optional<std::string> env(std::string_view name) const;
  Result finish_refresh(Result result);  // caches, wakes the waiters, returns their answer

  boost::asio::awaitable<Attempt> from_environment();
  boost::asio::awaitable<Attempt> from_web_identity();
  boost::asio::awaitable<Attempt> from_shared_files();
  boost::asio::awaitable<Attempt> from_container();
  boost::asio::awaitable<Attempt> from_imds();

  ChainSettings settings_;
  std::shared_ptr<HttpClient> http_;
  std::string session_name_;  // for AssumeRoleWithWebIdentity when AWS_ROLE_SESSION_NAME is unset

  std::mutex mutex_;
  std::optional<Result> cached_;  // only ever holds credentials
  bool in_flight_ = false;
  // Weak: a waiter whose coroutine was destroyed (its io_context went away) is skipped rather
  // than woken on a dead executor.
  std::vector<std::weak_ptr<Waiter>> waiters_;
};

}  // namespace pgmtls::auth::aws
