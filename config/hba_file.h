// Access rules in pg_hba.conf form: the subset that means something in front of a TLS proxy
// (host/hostssl/hostnossl/hostgssenc/hostnogssenc lines; methods cert and reject), plus pgmtls's
// own options. Parsed from a file (`hba_file:`) or from YAML (`hba:`) into the same HbaRule.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/conf_file.h"
#include "config/diagnostics.h"

namespace pgmtls::config {

enum class HbaConnType { host, hostssl, hostnossl, hostgssenc, hostnogssenc };
enum class HbaMethod { cert, reject };

// Which certificate field is the identity looked up in the ident map. cn and dn are PostgreSQL's
// clientname=CN|DN; the rest go further: any subjectAltName of the type may match, and fingerprint
// is the SHA-256 of the whole certificate in lower-case hex without separators.
enum class IdentitySource { cn, dn, san_dns, san_email, san_uri, fingerprint };

std::string_view to_string(HbaConnType type);
std::string_view to_string(HbaMethod method);
std::string_view to_string(IdentitySource source);
// "cn", "CN", "dn", "san_dns", ... (case-insensitive); nullopt if unknown.
std::optional<IdentitySource> parse_identity_source(std::string_view text);

// A database or user name from the rule, after @file expansion. Unquoted keywords (all,
// sameuser, replication) keep their meaning; quoted they are plain names.
struct HbaName {
  std::string text;
  bool quoted = false;

  bool is_keyword(std::string_view word) const { return !quoted && text == word; }
  bool is_regex() const { return !text.empty() && text.front() == '/'; }  // PostgreSQL 16
};

struct HbaAddress {
  enum class Kind { all, samehost, samenet, cidr };
  Kind kind = Kind::all;
  bool v6 = false;
  std::array<std::uint8_t, 16> addr{};  // network order; the first 4 bytes for IPv4
  std::array<std::uint8_t, 16> mask{};
  std::string text;  // as written, for messages
};

struct HbaRule {
  HbaConnType type = HbaConnType::hostssl;
  std::vector<HbaName> databases;
  std::vector<HbaName> users;
  HbaAddress address;
  HbaMethod method = HbaMethod::cert;
  // Options (cert lines only). Unset optionals fall back to the identity: section's defaults.
  std::string map;                                // map=NAME; empty: identity must equal the role
  std::optional<IdentitySource> identity;         // clientname=CN|DN|SAN_DNS|...
  std::optional<std::string> issuer;              // issuer="RFC 2253 DN" of the leaf's issuer
  std::optional<std::string> issuer_fingerprint;  // a CA in the verified chain, SHA-256 hex
  std::optional<bool> role_from_certificate;
  Location where;
  std::string text;  // the rule as written, for explanations
};

// Parses pg_hba.conf text (includes followed); rules in error are reported and skipped.
std::vector<HbaRule> parse_hba_text(std::string_view text, const std::string& file,
                                    Diagnostics& errors);
std::vector<HbaRule> load_hba_file(const std::string& path, const Location& referenced_from,
                                   Diagnostics& errors);

// The per-column parsers, shared by the file and YAML forms. Each returns false after reporting.
bool parse_hba_conn_type(const ConfToken& token, const Location& where, HbaConnType& out,
                         Diagnostics& errors);
bool parse_hba_address(const ConfToken& address, const ConfToken* mask, const Location& where,
                       HbaAddress& out, Diagnostics& errors);
bool parse_hba_method(const ConfToken& token, const Location& where, HbaMethod& out,
                      Diagnostics& errors);
// name=value, as in pg_hba.conf's option columns.
bool parse_hba_option(std::string_view name, std::string_view value, const Location& where,
                      HbaRule& rule, Diagnostics& errors);
// Database or user column; `column` is "database" or "user" for messages.
bool parse_hba_names(const ConfField& field, std::string_view column, const Location& where,
                     std::vector<HbaName>& out, Diagnostics& errors);

// Normalises a SHA-256 fingerprint as written by people ("AB:CD:..", "abcd..") to lower-case hex;
// nullopt unless it is 32 bytes.
std::optional<std::string> normalize_sha256_fingerprint(std::string_view text);

}  // namespace pgmtls::config
