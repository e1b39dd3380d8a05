#include "auth/policy.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace pgmtls::auth {

namespace {

using config::HbaAddress;
using config::HbaConnType;
using config::HbaName;
using config::HbaRule;
using config::IdentitySource;

struct Ip {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
};

Ip to_ip(const boost::asio::ip::address& address) {
  Ip ip;
  if (address.is_v4()) {
    const auto b = address.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  } else if (address.to_v6().is_v4_mapped()) {
    const auto b =
        boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  } else {
    ip.v6 = true;
    const auto b = address.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  }
  return ip;
}

std::string ip_text(const boost::asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .to_string();
  }
  return address.to_string();
}

bool in_network(const Ip& ip, bool v6, const std::array<std::uint8_t, 16>& net,
                const std::array<std::uint8_t, 16>& mask) {
  if (ip.v6 != v6) return false;
  for (int i = 0; i < (v6 ? 16 : 4); ++i) {
    if ((ip.bytes[i] & mask[i]) != net[i]) return false;
  }
  return true;
}

Ip from_sockaddr(const sockaddr* sa) {
  Ip ip;
  if (sa->sa_family == AF_INET) {
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  } else {
    ip.v6 = true;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
  }
  return ip;
}

// samehost: one of this host's addresses; samenet: in the subnet of one of them. PostgreSQL
// reads the interfaces at each check too, so addresses added later are seen.
bool matches_interfaces(const Ip& ip, bool same_net) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* it = list; it != nullptr && !found; it = it->ifa_next) {
    if (it->ifa_addr == nullptr) continue;
    const int family = it->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    const Ip local = from_sockaddr(it->ifa_addr);
    if (local.v6 != ip.v6) continue;
    std::array<std::uint8_t, 16> mask{};
    if (same_net && it->ifa_netmask != nullptr) {
      mask = from_sockaddr(it->ifa_netmask).bytes;
    } else {
      mask.fill(0xff);
    }
    std::array<std::uint8_t, 16> net{};
    for (int i = 0; i < 16; ++i)
      net[i] = local.bytes[i] & mask[i];
    found = in_network(ip, ip.v6, net, mask);
  }
  freeifaddrs(list);
  return found;
}

bool address_matches(const HbaAddress& a, const Ip& ip) {
  switch (a.kind) {
    case HbaAddress::Kind::all:
      return true;
    case HbaAddress::Kind::cidr:
      return in_network(ip, a.v6, a.addr, a.mask);
    case HbaAddress::Kind::samehost:
      return matches_interfaces(ip, false);
    case HbaAddress::Kind::samenet:
      return matches_interfaces(ip, true);
  }
  return false;
}

std::string names_text(const std::vector<HbaName>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ",") + (n.quoted ? "\"" + n.text + "\"" : n.text);
  return out;
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

std::string rule_label(const HbaRule& rule) {
  return rule.where.str() + ": " + rule.text;
}

std::optional<boost::regex> compile_name_regex(const HbaName& name, const HbaRule& rule,
                                               config::Diagnostics& errors) {
  if (name.quoted || !name.is_regex()) return std::nullopt;
  try {
    return compile_pg_regex(name.text.substr(1));
  } catch (const boost::regex_error& e) {
    errors.push_back(
        {rule.where, "invalid regular expression \"" + name.text.substr(1) + "\": " + e.what()});
    return std::nullopt;
  }
}

bool name_matches(const HbaName& name, const std::optional<boost::regex>& regex,
                  const std::string& value) {
  if (regex) return pg_regex_search(value, *regex);
  return name.text == value;
}

}  // namespace

std::string_view to_string(Verdict::Kind kind) {
  switch (kind) {
    case Verdict::Kind::admit:
      return "admit";
    case Verdict::Kind::no_rule:
      return "no_rule";
    case Verdict::Kind::rejected:
      return "rejected";
    case Verdict::Kind::no_certificate:
      return "no_certificate";
    case Verdict::Kind::no_identity:
      return "no_identity";
    case Verdict::Kind::issuer_mismatch:
      return "issuer_mismatch";
    case Verdict::Kind::map_denied:
      return "map_denied";
  }
  return "?";
}

std::vector<std::string> identity_values(const CertificateIdentity& cert, IdentitySource source) {
  auto one = [](const std::string& v) {
    return v.empty() ? std::vector<std::string>{} : std::vector<std::string>{v};
  };
  switch (source) {
    case IdentitySource::cn:
      return one(cert.cn);
    case IdentitySource::dn:
      return one(cert.subject_dn);
    case IdentitySource::fingerprint:
      return one(cert.sha256_fingerprint);
    case IdentitySource::san_dns:
      return cert.san_dns;
    case IdentitySource::san_email:
      return cert.san_email;
    case IdentitySource::san_uri:
      return cert.san_uri;
  }
  return {};
}

std::variant<Policy, config::Diagnostics> Policy::compile(std::vector<HbaRule> rules,
                                                          std::vector<config::IdentLine> ident,
                                                          PolicyDefaults defaults,
                                                          std::string implicit_map) {
  Policy policy;
  config::Diagnostics errors;
  auto maps = IdentMaps::compile(std::move(ident));
  if (auto* errs = std::get_if<config::Diagnostics>(&maps)) {
    errors = std::move(*errs);
  } else {
    policy.maps_ = std::move(std::get<IdentMaps>(maps));
  }
  if (rules.empty()) {
    HbaRule rule;
    rule.type = HbaConnType::hostssl;
    rule.databases = {{"all", false}};
    rule.users = {{"all", false}};
    rule.method = config::HbaMethod::cert;
    rule.map = std::move(implicit_map);
    rule.text = "hostssl all all all cert" + (rule.map.empty() ? "" : " map=" + rule.map) +
                " (implicit: the config has no hba rules)";
    rules.push_back(std::move(rule));
    policy.implicit_ = true;
  }
  for (const auto& rule : rules) {
    CompiledRule compiled;
    for (const auto& name : rule.databases)
      compiled.database_regex.push_back(compile_name_regex(name, rule, errors));
    for (const auto& name : rule.users)
      compiled.user_regex.push_back(compile_name_regex(name, rule, errors));
    policy.compiled_.push_back(std::move(compiled));
  }
  if (!errors.empty()) return errors;
  policy.rules_ = std::move(rules);
  policy.defaults_ = std::move(defaults);
  return policy;
}

Verdict Policy::evaluate(const AccessRequest& request, const CertificateIdentity* cert,
                         std::vector<std::string>* trace) const {
  using Replication = AccessRequest::Replication;
  const bool physical = request.replication == Replication::physical;
  const Ip ip = to_ip(request.address);
  // PostgreSQL's words for the connection, as in its hba messages; built only for refusals.
  auto who = [&] {
    const std::string host =
        "host " + quoted(ip_text(request.address)) + ", user " + quoted(request.user);
    return (physical ? host : host + ", database " + quoted(request.database)) + ", " +
           (request.ssl ? "SSL encryption" : "no encryption");
  };
  auto skip = [&](const HbaRule& rule, const std::string& why) {
    if (trace) trace->push_back(rule_label(rule) + "\n    skipped: " + why);
  };

  Verdict v;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const HbaRule& rule = rules_[i];
    const CompiledRule& compiled = compiled_[i];

    switch (rule.type) {
      case HbaConnType::hostssl:
        if (!request.ssl) {
          skip(rule, "hostssl rules match only SSL connections");
          continue;
        }
        break;
      case HbaConnType::hostnossl:
        if (request.ssl) {
          skip(rule, "hostnossl rules never match an SSL connection, and pgmtls accepts only SSL");
          continue;
        }
        break;
      case HbaConnType::hostgssenc:
        skip(rule, "hostgssenc rules never match: pgmtls refuses GSSAPI encryption");
        continue;
      case HbaConnType::host:
      case HbaConnType::hostnogssenc:
        break;
    }

    if (!address_matches(rule.address, ip)) {
      skip(rule,
           "client address " + ip_text(request.address) + " does not match " + rule.address.text);
      continue;
    }

    bool database_ok = false;
    for (std::size_t d = 0; d < rule.databases.size() && !database_ok; ++d) {
      const HbaName& name = rule.databases[d];
      if (physical) {
        // A physical replication connection matches only the replication keyword.
        database_ok = name.is_keyword("replication");
      } else if (name.is_keyword("all")) {
        database_ok = true;
      } else if (name.is_keyword("sameuser")) {
        database_ok = request.database == request.user;
      } else if (name.is_keyword("replication")) {
        database_ok = false;
      } else {
        database_ok = name_matches(name, compiled.database_regex[d], request.database);
      }
    }
    if (!database_ok) {
      skip(rule, physical ? "a physical replication connection matches only the database "
                            "keyword replication"
                          : "database " + quoted(request.database) + " is not in " +
                                names_text(rule.databases));
      continue;
    }

    bool user_ok = false;
    for (std::size_t u = 0; u < rule.users.size() && !user_ok; ++u) {
      const HbaName& name = rule.users[u];
      user_ok = name.is_keyword("all") || name_matches(name, compiled.user_regex[u], request.user);
    }
    if (!user_ok) {
      skip(rule, "user " + quoted(request.user) + " is not in " + names_text(rule.users));
      continue;
    }

    // This rule decides.
    v.rule = &rule;
    if (trace) trace->push_back(rule_label(rule) + "\n    matches: this rule decides");
    if (rule.method == config::HbaMethod::reject) {
      v.kind = Verdict::Kind::rejected;
      v.client_message = std::string("pg_hba.conf rejects ") +
                         (physical ? "replication connection" : "connection") + " for " + who();
      v.detail = "rejected by " + rule.where.str();
      return v;
    }
    return decide_cert(rule, request, cert);
  }
  v.kind = Verdict::Kind::no_rule;
  v.client_message = std::string("no pg_hba.conf entry for ") +
                     (physical ? "replication connection from " : "") + who();
  v.detail = "no rule matches";
  if (trace) trace->push_back("no rule matches: the connection is refused");
  return v;
}

Verdict Policy::decide_cert(const HbaRule& rule, const AccessRequest& request,
                            const CertificateIdentity* cert) const {
  Verdict v;
  v.rule = &rule;
  const std::string auth_failed =
      "certificate authentication failed for user " + quoted(request.user);
  if (cert == nullptr) {
    v.kind = Verdict::Kind::no_certificate;
    v.client_message = "connection requires a valid client certificate";
    v.detail = "the client sent no certificate (rule " + rule.where.str() + ")";
    return v;
  }

  const auto issuer = rule.issuer ? rule.issuer : defaults_.issuer;
  const auto issuer_fp =
      rule.issuer_fingerprint ? rule.issuer_fingerprint : defaults_.issuer_fingerprint;
  if (issuer && cert->issuer_dn != *issuer) {
    v.kind = Verdict::Kind::issuer_mismatch;
    v.client_message = auth_failed;
    v.detail = "the certificate was issued by " + quoted(cert->issuer_dn) + ", but " +
               rule.where.str() + " requires issuer " + quoted(*issuer);
    return v;
  }
  if (issuer_fp && std::find(cert->ca_fingerprints.begin(), cert->ca_fingerprints.end(),
                             *issuer_fp) == cert->ca_fingerprints.end()) {
    v.kind = Verdict::Kind::issuer_mismatch;
    v.client_message = auth_failed;
    v.detail = "no CA in the certificate's chain has the SHA-256 fingerprint " + *issuer_fp +
               " that " + rule.where.str() + " requires";
    return v;
  }

  const IdentitySource source = rule.identity.value_or(defaults_.identity);
  const std::vector<std::string> values = identity_values(*cert, source);
  if (values.empty()) {
    v.kind = Verdict::Kind::no_identity;
    v.client_message = auth_failed;
    v.detail = "the certificate has no " + std::string(config::to_string(source)) +
               " to identify it (rule " + rule.where.str() + ")";
    return v;
  }

  for (const auto& value : values) {
    if (rule.map.empty()) {
      if (value == request.user) {
        v.kind = Verdict::Kind::admit;
        v.identity = value;
        v.role = request.user;
        return v;
      }
    } else if (auto d = maps_.check(rule.map, value, request.user); d.allowed) {
      v.kind = Verdict::Kind::admit;
      v.identity = value;
      v.ident_line = d.line;
      v.role = request.user;
      return v;
    }
  }

  // Not admitted as the requested role. Which concrete roles could this certificate use?
  std::set<std::string> concrete;
  const config::IdentLine* concrete_line = nullptr;
  std::string concrete_identity;
  std::string offered;  // for the explanation
  for (const auto& value : values) {
    if (rule.map.empty()) {
      concrete.insert(value);
      concrete_identity = value;
      continue;
    }
    for (const auto& c : maps_.candidates(rule.map, value)) {
      offered += "\n    " + c.line->where.str() + " maps " + quoted(value) + " to " +
                 (c.concrete ? "role " + quoted(c.role) : "roles matching " + c.role);
      if (c.concrete && !c.role.empty()) {  // a \1 that captured nothing names no role
        concrete.insert(c.role);
        concrete_line = c.line;
        concrete_identity = value;
      }
    }
  }
  if (rule.role_from_certificate.value_or(defaults_.role_from_certificate) &&
      concrete.size() == 1) {
    v.kind = Verdict::Kind::admit;
    v.role = *concrete.begin();
    v.role_substituted = true;
    v.identity = concrete_identity;
    v.ident_line = concrete_line;
    v.detail = "role_from_certificate: requested " + quoted(request.user) + ", connected as " +
               quoted(v.role);
    return v;
  }

  v.kind = Verdict::Kind::map_denied;
  v.client_message = auth_failed;
  v.identity = values.front();
  std::string ids;
  for (const auto& value : values)
    ids += (ids.empty() ? "" : ", ") + quoted(value);
  if (rule.map.empty()) {
    v.detail = "provided user name (" + request.user + ") and authenticated user name (" + ids +
               ") do not match (" + std::string(config::to_string(source)) + ", no map= on " +
               rule.where.str() + ")";
  } else {
    v.detail = "no line of map " + quoted(rule.map) + " admits " +
               std::string(config::to_string(source)) + " " + ids + " as role " +
               quoted(request.user) +
               (offered.empty() ? " (no line of the map matches this identity)"
                                : "; lines matching this identity:" + offered);
  }
  return v;
}

bool address_matches(const config::HbaAddress& pattern, const boost::asio::ip::address& address) {
  return address_matches(pattern, to_ip(address));
}

}  // namespace pgmtls::auth
