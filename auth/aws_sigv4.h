// AWS Signature Version 4 (SigV4) and the RDS IAM authentication token built on it. Pure: no I/O,
// no clock, no environment; the caller supplies credentials and the current time. Secrets never
// appear in return values other than as HMAC output, nor in exception messages.
//
// References: "Create a signed AWS API request" (IAM User Guide) for the signing steps,
// "Authenticating Requests: Using Query Parameters" (S3 API Reference) for presigned URLs, and "IAM
// database authentication" (RDS User Guide) for the token, which is a presigned GET for service
// "rds-db".
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmtls::auth::aws {

// AWS credentials as the standard chain yields them (environment, profile, web identity, IMDS...).
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;                                        // empty for long-term keys
  std::optional<std::chrono::system_clock::time_point> expiration;  // nullopt: does not expire
};

// True if `creds` have an expiration and it falls before `now + margin` (callers refresh them
// ahead of time so that a token is never signed with keys about to die).
bool expires_within(const Credentials& creds, std::chrono::system_clock::time_point now,
                    std::chrono::seconds margin);

// The longest validity RDS accepts for an IAM auth token (15 minutes).
inline constexpr std::chrono::seconds kRdsMaxTokenLifetime{900};

// ---- The pieces of Signature Version 4, exposed so tests can check them against AWS's examples.

// SigV4's URI encoding: RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~) are kept, every other
// byte becomes %XX with upper-case hex (UTF-8 text is encoded byte by byte; space is %20, never
// '+'). With `encode_slash` false, '/' is kept too (for paths in a canonical URI).
std::string uri_encode(std::string_view s, bool encode_slash = true);

// A canonical query string from unencoded (name, value) pairs: both are uri_encode()d, the pairs
// sorted by encoded name, then by encoded value, and joined as "n1=v1&n2=v2".
std::string canonical_query_string(std::vector<std::pair<std::string, std::string>> params);

// "YYYYMMDDTHHMMSSZ" (ISO 8601 basic, UTC) for `t`, truncated to whole seconds.
std::string amz_date(std::chrono::system_clock::time_point t);

// "DATE/REGION/SERVICE/aws4_request", DATE being "YYYYMMDD".
std::string credential_scope(std::string_view date, std::string_view region,
                             std::string_view service);

// Lower-case hex of `bytes`.
std::string hex(std::span<const std::uint8_t> bytes);

// Lower-case hex SHA-256 of `data` (the "hashed payload" of an empty body is sha256_hex("")).
std::string sha256_hex(std::string_view data);

// HMAC-SHA256 of `data` under `key`.
std::array<std::uint8_t, 32> hmac_sha256(std::span<const std::uint8_t> key, std::string_view data);

// The canonical request: the six parts joined by '\n'. `canonical_query` is already encoded and
// sorted (see canonical_query_string). `canonical_headers` is one "name:value\n" line per signed
// header, lower-case names, sorted, trimmed values, so it ends with '\n' and the result holds an
// empty line before `signed_headers` ("host;x-amz-date"). `hashed_payload` is the hex SHA-256 of
// the body, or "UNSIGNED-PAYLOAD" where the service allows it (S3).
std::string canonical_request(std::string_view method, std::string_view canonical_uri,
                              std::string_view canonical_query, std::string_view canonical_headers,
                              std::string_view signed_headers, std::string_view hashed_payload);

// "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request).
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);

// The derived signing key: HMAC chain over "AWS4" + secret, date ("YYYYMMDD"), region, service and
// "aws4_request". Intermediate keys are wiped; the caller owns (and should wipe) the result.
std::array<std::uint8_t, 32> signing_key(std::string_view secret_access_key, std::string_view date,
                                         std::string_view region, std::string_view service);

// The hex signature: HMAC-SHA256 of `string_to_sign` under `signing_key`.
std::string signature(const std::array<std::uint8_t, 32>& signing_key,
                      std::string_view string_to_sign);

// ---- Presigned requests (query-string authentication).

struct PresignRequest {
  std::string_view method = "GET";
  std::string_view host;                 // the Host header, signed ("h" or "h:port" if not 443)
  std::string_view canonical_uri = "/";  // already encoded, e.g. "/test.txt"
  std::vector<std::pair<std::string, std::string>> query;  // request parameters, unencoded
  std::string_view region;
  std::string_view service;
  std::chrono::seconds expires_in{900};
  std::string_view hashed_payload;  // empty: sha256_hex("")
};

// The query string of a presigned URL: `request.query` plus X-Amz-Algorithm, X-Amz-Credential,
// X-Amz-Date, X-Amz-Expires, X-Amz-Security-Token (only if `creds` have a session token) and
// X-Amz-SignedHeaders=host, all encoded and sorted as they were signed, then
// "&X-Amz-Signature=HEX". Throws std::invalid_argument on inputs that cannot be signed (empty key
// id or secret, empty or malformed region/service/host, expires_in outside 1..604800 s); the
// message never contains the inputs' secret parts.
std::string presign_query(const PresignRequest& request, const Credentials& creds,
                          std::chrono::system_clock::time_point now);

// ---- RDS IAM database authentication.

// The RDS IAM auth token, exactly as `aws rds generate-db-auth-token` produces it:
//   "HOST:PORT/?Action=connect&DBUser=USER&X-Amz-Algorithm=AWS4-HMAC-SHA256
//    &X-Amz-Credential=AKID%2FYYYYMMDD%2FREGION%2Frds-db%2Faws4_request&X-Amz-Date=...
//    &X-Amz-Expires=900[&X-Amz-Security-Token=...]&X-Amz-SignedHeaders=host&X-Amz-Signature=..."
// i.e. a presigned GET of "https://HOST:PORT/?Action=connect&DBUser=USER" for service "rds-db",
// Host header "HOST:PORT", payload hash of the empty string, without the "https://" scheme. The
// host is lower-cased (DNS names are case-insensitive and the SDKs sign the lower-case name); an
// IPv6 literal is bracketed. The token is the password of the PostgreSQL connection to
// HOST:PORT as DBUser; it is a bearer credential: never log it.
// Throws std::invalid_argument if an input cannot be signed (see presign_query; also an empty
// user, port 0, expires_in outside 1..900 s, or credentials already expired at `now`).
std::string rds_auth_token(std::string_view host, std::uint16_t port, std::string_view region,
                           std::string_view db_user, const Credentials& creds,
                           std::chrono::system_clock::time_point now,
                           std::chrono::seconds expires_in = kRdsMaxTokenLifetime);

// The region in an RDS / Aurora endpoint name, case-insensitively, a trailing dot allowed:
//   "mydb.abc123.us-east-1.rds.amazonaws.com"              -> "us-east-1"   (instance)
//   "c.cluster-abc123.eu-west-1.rds.amazonaws.com"         -> "eu-west-1"   (cluster, -ro, -custom)
//   "p.proxy-abc123.ap-south-1.rds.amazonaws.com"          -> "ap-south-1"  (RDS Proxy)
//   "mydb.abc123.cn-north-1.rds.amazonaws.com.cn"          -> "cn-north-1"  (China partition)
// nullopt when `host` is not such a name (an IP address, "localhost", a custom DNS alias, a name
// that merely contains "rds.amazonaws.com"): then the configuration must give the region.
std::optional<std::string> region_from_rds_host(std::string_view host);

}  // namespace pgmtls::auth::aws
