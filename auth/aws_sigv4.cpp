#include "auth/aws_sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace pgmtls::auth::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
constexpr std::string_view kRdsService = "rds-db";
// SigV4 presigned URLs are valid for at most seven days.
constexpr std::chrono::seconds kMaxPresignLifetime{604800};

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

// Region and service names: lower-case letters, digits and hyphens ("us-gov-west-1", "rds-db").
bool is_scope_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// A Host header value: printable ASCII with nothing that would end the authority part of a URL.
bool is_host_header(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '/' && c != '?' && c != '#' && c != '@' && c != '\\';
  });
}

std::array<std::uint8_t, 32> hmac_raw(const void* key, std::size_t key_len, std::string_view data) {
  std::array<std::uint8_t, 32> out{};
  unsigned int out_len = 0;
  // HMAC() is OpenSSL's one-shot MAC; unlike HMAC_CTX it is not deprecated in 3.0.
  if (HMAC(EVP_sha256(), key, static_cast<int>(key_len),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &out_len) == nullptr ||
      out_len != out.size()) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return out;
}

}  // namespace

bool expires_within(const Credentials& creds, std::chrono::system_clock::time_point now,
                    std::chrono::seconds margin) {
  return creds.expiration.has_value() && *creds.expiration < now + margin;
}

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

std::string canonical_query_string(std::vector<std::pair<std::string, std::string>> params) {
  for (auto& [name, value] : params) {
    name = uri_encode(name);
    value = uri_encode(value);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss hms{secs - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string credential_scope(std::string_view date, std::string_view region,
                             std::string_view service) {
  std::string out;
  out.reserve(date.size() + region.size() + service.size() + kTerminator.size() + 3);
  out.append(date).append("/").append(region).append("/").append(service).append("/");
  out.append(kTerminator);
  return out;
}

std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0f]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::array<std::uint8_t, 32> digest{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != digest.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return hex(digest);
}

std::array<std::uint8_t, 32> hmac_sha256(std::span<const std::uint8_t> key, std::string_view data) {
  return hmac_raw(key.data(), key.size(), data);
}

std::string canonical_request(std::string_view method, std::string_view canonical_uri,
                              std::string_view canonical_query, std::string_view canonical_headers,
                              std::string_view signed_headers, std::string_view hashed_payload) {
  std::string out;
  out.reserve(method.size() + canonical_uri.size() + canonical_query.size() +
              canonical_headers.size() + signed_headers.size() + hashed_payload.size() + 5);
  out.append(method).append("\n");
  out.append(canonical_uri).append("\n");
  out.append(canonical_query).append("\n");
  out.append(canonical_headers).append("\n");
  out.append(signed_headers).append("\n");
  out.append(hashed_payload);
  return out;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request) {
  std::string out;
  out.append(kAlgorithm).append("\n");
  out.append(amz_date).append("\n");
  out.append(scope).append("\n");
  out.append(sha256_hex(canonical_request));
  return out;
}

std::array<std::uint8_t, 32> signing_key(std::string_view secret_access_key, std::string_view date,
                                         std::string_view region, std::string_view service) {
  std::string k_secret;
  k_secret.reserve(4 + secret_access_key.size());
  k_secret.append("AWS4").append(secret_access_key);
  auto k_date = hmac_raw(k_secret.data(), k_secret.size(), date);
  OPENSSL_cleanse(k_secret.data(), k_secret.size());
  auto k_region = hmac_sha256(k_date, region);
  OPENSSL_cleanse(k_date.data(), k_date.size());
  auto k_service = hmac_sha256(k_region, service);
  OPENSSL_cleanse(k_region.data(), k_region.size());
  auto k_signing = hmac_sha256(k_service, kTerminator);
  OPENSSL_cleanse(k_service.data(), k_service.size());
  return k_signing;
}

std::string signature(const std::array<std::uint8_t, 32>& signing_key,
                      std::string_view string_to_sign) {
  return hex(hmac_sha256(signing_key, string_to_sign));
}

std::string presign_query(const PresignRequest& request, const Credentials& creds,
                          std::chrono::system_clock::time_point now) {
  // Messages name the faulty input, never its value: some of these are secrets.
  if (creds.access_key_id.empty()) throw std::invalid_argument("AWS access key id is empty");
  if (creds.access_key_id.find('/') != std::string::npos) {
    throw std::invalid_argument("AWS access key id contains '/'");
  }
  if (creds.secret_access_key.empty())
    throw std::invalid_argument("AWS secret access key is empty");
  if (!is_scope_token(request.region)) {
    throw std::invalid_argument("AWS region must be lower-case letters, digits and '-'");
  }
  if (!is_scope_token(request.service)) {
    throw std::invalid_argument("AWS service must be lower-case letters, digits and '-'");
  }
  if (!is_host_header(request.host)) throw std::invalid_argument("host is empty or malformed");
  if (request.method.empty()) throw std::invalid_argument("HTTP method is empty");
  if (request.expires_in < std::chrono::seconds(1) || request.expires_in > kMaxPresignLifetime) {
    throw std::invalid_argument("presigned URL lifetime must be 1 to 604800 seconds");
  }
  for (const auto& [name, value] : request.query) {
    for (std::string_view reserved :
         {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
          "X-Amz-Security-Token", "X-Amz-SignedHeaders", "X-Amz-Signature"}) {
      if (iequals(name, reserved)) {
        throw std::invalid_argument("query parameter " + std::string(reserved) +
                                    " is set by the signer");
      }
    }
  }

  const std::string date_time = amz_date(now);
  const std::string date = date_time.substr(0, 8);
  const std::string scope = credential_scope(date, request.region, request.service);

  std::vector<std::pair<std::string, std::string>> params = request.query;
  params.emplace_back("X-Amz-Algorithm", kAlgorithm);
  params.emplace_back("X-Amz-Credential", creds.access_key_id + "/" + scope);
  params.emplace_back("X-Amz-Date", date_time);
  params.emplace_back("X-Amz-Expires", std::to_string(request.expires_in.count()));
  // With temporary credentials the token is part of what is signed (unlike S3's header form).
  if (!creds.session_token.empty())
    params.emplace_back("X-Amz-Security-Token", creds.session_token);
  params.emplace_back("X-Amz-SignedHeaders", "host");
  std::string query = canonical_query_string(std::move(params));

  std::string headers = "host:";
  headers.append(request.host).append("\n");
  const std::string payload =
      request.hashed_payload.empty() ? sha256_hex("") : std::string(request.hashed_payload);
  const std::string creq =
      canonical_request(request.method, request.canonical_uri, query, headers, "host", payload);

  auto key = signing_key(creds.secret_access_key, date, request.region, request.service);
  const std::string sig = signature(key, string_to_sign(date_time, scope, creq));
  OPENSSL_cleanse(key.data(), key.size());

  query.append("&X-Amz-Signature=").append(sig);
  return query;
}

std::string rds_auth_token(std::string_view host, std::uint16_t port, std::string_view region,
                           std::string_view db_user, const Credentials& creds,
                           std::chrono::system_clock::time_point now,
                           std::chrono::seconds expires_in) {
  if (host.empty()) throw std::invalid_argument("host is empty or malformed");
  if (db_user.empty()) throw std::invalid_argument("database user is empty");
  if (port == 0) throw std::invalid_argument("database port is 0");
  if (expires_in < std::chrono::seconds(1) || expires_in > kRdsMaxTokenLifetime) {
    throw std::invalid_argument("RDS auth token lifetime must be 1 to 900 seconds");
  }
  if (creds.expiration && *creds.expiration <= now) {
    throw std::invalid_argument("AWS credentials have expired");
  }

  std::string authority;
  const bool ipv6 = host.find(':') != std::string_view::npos && host.front() != '[';
  if (ipv6) authority.push_back('[');
  for (char c : host)
    authority.push_back(ascii_lower(c));
  if (ipv6) authority.push_back(']');
  authority.push_back(':');
  authority.append(std::to_string(port));

  PresignRequest request;
  request.method = "GET";
  request.host = authority;
  request.canonical_uri = "/";
  request.query = {{"Action", "connect"}, {"DBUser", std::string(db_user)}};
  request.region = region;
  request.service = kRdsService;
  request.expires_in = expires_in;
  // presign_query validates the host's characters, the region and the credentials.
  return authority + "/?" + presign_query(request, creds, now);
}

std::optional<std::string> region_from_rds_host(std::string_view host) {
  std::string name;
  name.reserve(host.size());
  for (char c : host)
    name.push_back(ascii_lower(c));
  if (!name.empty() && name.back() == '.') name.pop_back();

  std::string_view rest = name;
  bool matched = false;
  for (std::string_view suffix : {".rds.amazonaws.com", ".rds.amazonaws.com.cn"}) {
    if (rest.size() > suffix.size() && rest.ends_with(suffix)) {
      rest.remove_suffix(suffix.size());
      matched = true;
      break;
    }
  }
  if (!matched) return std::nullopt;

  // What is left: "<id>.<hash or cluster-/proxy-hash>.<region>"; every label a DNS label.
  std::vector<std::string_view> labels;
  while (true) {
    const auto dot = rest.find('.');
    labels.push_back(rest.substr(0, dot));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (labels.size() < 3) return std::nullopt;
  for (std::string_view label : labels) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return std::nullopt;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return std::nullopt;
    }
  }
  // A region: letters first, a number last, at least two hyphens ("us-east-1", "us-gov-west-1").
  const std::string_view region = labels.back();
  if (!(region.front() >= 'a' && region.front() <= 'z')) return std::nullopt;
  if (!(region.back() >= '0' && region.back() <= '9')) return std::nullopt;
  if (std::count(region.begin(), region.end(), '-') < 2) return std::nullopt;
  return std::string(region);
}

}  // namespace pgmtls::auth::aws
