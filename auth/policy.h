// The access decision: pg_hba-style rules (first match decides) and the ident maps, compiled once
// per config snapshot and evaluated for each connection. Pure: no I/O except reading the host's
// interface addresses when a samehost/samenet rule is reached.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/regex.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/ident_map.h"
#include "auth/identity.h"
#include "config/hba_file.h"

namespace pgmtls::auth {

// What the client asks for, from its address and StartupMessage.
struct AccessRequest {
  boost::asio::ip::address address;  // IPv4-mapped IPv6 addresses are matched as IPv4
  std::string user;
  std::string database;
  enum class Replication { none, physical, logical } replication = Replication::none;
  bool ssl = true;  // always true in pgmtls; hostnossl rules can never match
};

// Defaults for rules that do not set an option (the config's identity: section).
struct PolicyDefaults {
  config::IdentitySource identity = config::IdentitySource::cn;
  std::optional<std::string> issuer;
  std::optional<std::string> issuer_fingerprint;
  bool role_from_certificate = false;
};

struct Verdict {
  enum class Kind {
    admit,
    no_rule,          // no rule matched: "no pg_hba.conf entry for ..."
    rejected,         // a reject rule matched: "pg_hba.conf rejects connection for ..."
    no_certificate,   // a cert rule matched and the client sent no certificate
    no_identity,      // the certificate has no value for the rule's identity source
    issuer_mismatch,  // the rule pins an issuer the certificate was not issued by
    map_denied,       // no identity value maps to the requested role
  };
  Kind kind = Kind::no_rule;
  std::string role;  // admit: the role to connect as (the requested one unless substituted)
  bool role_substituted = false;  // role_from_certificate picked `role`
  const config::HbaRule* rule = nullptr;
  const config::IdentLine* ident_line = nullptr;  // the map line that admitted, if any
  std::string identity;                           // the identity value that admitted (or was tried)
  std::string client_message;                     // what the client is told, in PostgreSQL's words
  std::string detail;  // why, for the log and map-test; never sent to the client

  bool admitted() const { return kind == Kind::admit; }
};

std::string_view to_string(Verdict::Kind kind);

class Policy {
 public:
  // `rules` empty means the implicit rule of a config without hba: `hostssl all all all cert`
  // with the given map (empty: the identity must equal the role).
  static std::variant<Policy, config::Diagnostics> compile(std::vector<config::HbaRule> rules,
                                                           std::vector<config::IdentLine> ident,
                                                           PolicyDefaults defaults,
                                                           std::string implicit_map = {});

  // Decides one connection. `cert` is null when the client sent no certificate. With `trace`,
  // appends one line per rule considered, saying why it did or did not apply (for map-test).
  Verdict evaluate(const AccessRequest& request, const CertificateIdentity* cert,
                   std::vector<std::string>* trace = nullptr) const;

  const std::vector<config::HbaRule>& rules() const { return rules_; }
  const IdentMaps& maps() const { return maps_; }
  bool implicit() const { return implicit_; }

 private:
  Verdict decide_cert(const config::HbaRule& rule, const AccessRequest& request,
                      const CertificateIdentity* cert) const;

  struct CompiledRule {
    std::vector<std::optional<boost::regex>> database_regex;  // per HbaName, for /regex names
    std::vector<std::optional<boost::regex>> user_regex;
  };
  std::vector<config::HbaRule> rules_;
  std::vector<CompiledRule> compiled_;
  IdentMaps maps_;
  PolicyDefaults defaults_;
  bool implicit_ = false;
};

// The identity values of `source` in a certificate: one for cn/dn/fingerprint (none if empty),
// every name of that type for the san_* sources.
std::vector<std::string> identity_values(const CertificateIdentity& cert,
                                         config::IdentitySource source);

// Whether `address` matches a pg_hba address column (all, samehost, samenet, CIDR); an
// IPv4-mapped IPv6 address counts as its IPv4 address.
bool address_matches(const config::HbaAddress& pattern, const boost::asio::ip::address& address);

}  // namespace pgmtls::auth
