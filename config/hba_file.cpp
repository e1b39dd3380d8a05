#include "config/hba_file.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace pgmtls::config {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Location at_column(const Location& where, int column) {
  return {where.file, where.line, column > 0 ? column : where.column};
}

// Parses an IP literal into 16 bytes (IPv4 in the first 4).
bool parse_ip(const std::string& text, bool& v6, std::array<std::uint8_t, 16>& out) {
  out.fill(0);
  in_addr a4{};
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    v6 = false;
    std::memcpy(out.data(), &a4, 4);
    return true;
  }
  in6_addr a6{};
  if (inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    v6 = true;
    std::memcpy(out.data(), &a6, 16);
    return true;
  }
  return false;
}

void prefix_mask(int bits, std::array<std::uint8_t, 16>& mask) {
  mask.fill(0);
  for (int i = 0; i < bits; ++i)
    mask[i / 8] |= static_cast<std::uint8_t>(0x80 >> (i % 8));
}

// A netmask is contiguous ones then zeros.
bool contiguous(const std::array<std::uint8_t, 16>& mask, int bytes) {
  bool zero_seen = false;
  for (int i = 0; i < bytes * 8; ++i) {
    const bool one = (mask[i / 8] & (0x80 >> (i % 8))) != 0;
    if (one && zero_seen) return false;
    if (!one) zero_seen = true;
  }
  return true;
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string v = lower(text);
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return std::nullopt;
}

}  // namespace

std::string_view to_string(HbaConnType type) {
  switch (type) {
    case HbaConnType::host:
      return "host";
    case HbaConnType::hostssl:
      return "hostssl";
    case HbaConnType::hostnossl:
      return "hostnossl";
    case HbaConnType::hostgssenc:
      return "hostgssenc";
    case HbaConnType::hostnogssenc:
      return "hostnogssenc";
  }
  return "?";
}

std::string_view to_string(HbaMethod method) {
  return method == HbaMethod::cert ? "cert" : "reject";
}

std::string_view to_string(IdentitySource source) {
  switch (source) {
    case IdentitySource::cn:
      return "cn";
    case IdentitySource::dn:
      return "dn";
    case IdentitySource::san_dns:
      return "san_dns";
    case IdentitySource::san_email:
      return "san_email";
    case IdentitySource::san_uri:
      return "san_uri";
    case IdentitySource::fingerprint:
      return "fingerprint";
  }
  return "?";
}

std::optional<IdentitySource> parse_identity_source(std::string_view text) {
  const std::string v = lower(text);
  for (auto s : {IdentitySource::cn, IdentitySource::dn, IdentitySource::san_dns,
                 IdentitySource::san_email, IdentitySource::san_uri, IdentitySource::fingerprint}) {
    if (v == to_string(s)) return s;
  }
  return std::nullopt;
}

std::optional<std::string> normalize_sha256_fingerprint(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (out.size() != 64) return std::nullopt;
  return out;
}

bool parse_hba_conn_type(const ConfToken& token, const Location& where, HbaConnType& out,
                         Diagnostics& errors) {
  const Location loc = at_column(where, token.column);
  for (auto t : {HbaConnType::host, HbaConnType::hostssl, HbaConnType::hostnossl,
                 HbaConnType::hostgssenc, HbaConnType::hostnogssenc}) {
    if (token.text == to_string(t)) {
      out = t;
      return true;
    }
  }
  if (token.text == "local") {
    errors.push_back({loc,
                      "\"local\" rules are for Unix-domain socket connections; pgmtls accepts "
                      "only TCP connections, so this rule could never apply (remove it)"});
  } else {
    errors.push_back({loc, "invalid connection type \"" + token.text +
                               "\" (expected host, hostssl, hostnossl, hostgssenc or "
                               "hostnogssenc)"});
  }
  return false;
}

bool parse_hba_address(const ConfToken& address, const ConfToken* mask, const Location& where,
                       HbaAddress& out, Diagnostics& errors) {
  const Location loc = at_column(where, address.column);
  out = {};
  out.text = address.text;
  if (!address.quoted) {
    if (address.text == "all") return true;
    if (address.text == "samehost" || address.text == "samenet") {
      out.kind =
          address.text == "samehost" ? HbaAddress::Kind::samehost : HbaAddress::Kind::samenet;
      return true;
    }
  }
  out.kind = HbaAddress::Kind::cidr;
  const auto slash = address.text.find('/');
  const std::string ip = address.text.substr(0, slash);
  if (!parse_ip(ip, out.v6, out.addr)) {
    errors.push_back(
        {loc, "invalid IP address \"" + ip +
                  "\" (host names and .domain suffixes are not supported: write a CIDR "
                  "address such as 10.0.0.0/8, or all, samehost, samenet)"});
    return false;
  }
  const int max_bits = out.v6 ? 128 : 32;
  if (slash != std::string::npos) {
    if (mask != nullptr) {
      errors.push_back({at_column(where, mask->column),
                        "a CIDR address with /prefix takes no separate netmask"});
      return false;
    }
    const std::string bits_text = address.text.substr(slash + 1);
    int bits = -1;
    auto [ptr, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
    if (bits_text.empty() || ec != std::errc() || ptr != bits_text.data() + bits_text.size() ||
        bits < 0 || bits > max_bits) {
      errors.push_back({loc, "invalid CIDR mask in address \"" + address.text + "\""});
      return false;
    }
    prefix_mask(bits, out.mask);
  } else if (mask != nullptr) {
    bool mask_v6 = false;
    if (!parse_ip(mask->text, mask_v6, out.mask) || mask_v6 != out.v6 ||
        !contiguous(out.mask, out.v6 ? 16 : 4)) {
      errors.push_back({at_column(where, mask->column),
                        "invalid IP mask \"" + mask->text + "\" for address \"" + ip + "\""});
      return false;
    }
    out.text += " " + mask->text;
  } else {
    errors.push_back({loc, "IP address \"" + ip + "\" needs a /prefix or a netmask column"});
    return false;
  }
  for (int i = 0; i < 16; ++i)
    out.addr[i] &= out.mask[i];
  return true;
}

bool parse_hba_method(const ConfToken& token, const Location& where, HbaMethod& out,
                      Diagnostics& errors) {
  if (token.text == "cert") {
    out = HbaMethod::cert;
    return true;
  }
  if (token.text == "reject") {
    out = HbaMethod::reject;
    return true;
  }
  errors.push_back(
      {at_column(where, token.column),
       "authentication method \"" + token.text +
           "\" is not supported: pgmtls admits clients by their certificate only, so a rule's "
           "method is cert or reject (the backend's own authentication is configured under "
           "backends:)"});
  return false;
}

bool parse_hba_option(std::string_view name, std::string_view value, const Location& where,
                      HbaRule& rule, Diagnostics& errors) {
  auto fail = [&](std::string message) {
    errors.push_back({where, std::move(message)});
    return false;
  };
  if (rule.method != HbaMethod::cert) {
    return fail("authentication option \"" + std::string(name) +
                "\" is only valid for the cert method");
  }
  if (name == "map") {
    if (value.empty()) return fail("map= needs a map name");
    rule.map = value;
    return true;
  }
  if (name == "clientname" || name == "identity") {
    auto source = parse_identity_source(value);
    if (!source) {
      return fail("invalid " + std::string(name) + " \"" + std::string(value) +
                  "\" (expected CN, DN, SAN_DNS, SAN_EMAIL, SAN_URI or FINGERPRINT)");
    }
    rule.identity = *source;
    return true;
  }
  if (name == "clientcert") {
    // The cert method always verifies the full certificate, as in PostgreSQL.
    if (value == "verify-full" || value == "1") return true;
    return fail("clientcert only accepts \"verify-full\" when using \"cert\" authentication");
  }
  if (name == "issuer") {
    if (value.empty()) return fail("issuer= needs the issuer's distinguished name (RFC 2253)");
    rule.issuer = value;
    return true;
  }
  if (name == "issuer_fingerprint") {
    auto fp = normalize_sha256_fingerprint(value);
    if (!fp) {
      return fail(
          "issuer_fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons "
          "allowed (openssl x509 -noout -fingerprint -sha256 -in ca.crt)");
    }
    rule.issuer_fingerprint = *fp;
    return true;
  }
  if (name == "role_from_certificate") {
    auto b = parse_bool(value);
    if (!b) return fail("role_from_certificate must be true or false");
    rule.role_from_certificate = *b;
    return true;
  }
  return fail("unknown authentication option \"" + std::string(name) +
              "\" (expected map, clientname, clientcert, issuer, issuer_fingerprint or "
              "role_from_certificate)");
}

bool parse_hba_names(const ConfField& field, std::string_view column, const Location& where,
                     std::vector<HbaName>& out, Diagnostics& errors) {
  const std::size_t errors_before = errors.size();
  for (const ConfToken& tok : expand_at_files(field, where, errors)) {
    const Location loc = at_column(where, tok.column);
    if (tok.text.empty()) {
      errors.push_back({loc, "empty " + std::string(column) + " name"});
      continue;
    }
    if (!tok.quoted && column == "user" && tok.text.starts_with('+')) {
      errors.push_back({loc, "group membership (\"" + tok.text +
                                 "\") is not supported: pgmtls cannot see the database's role "
                                 "memberships; list the roles, or use a regular expression"});
      continue;
    }
    if (!tok.quoted && column == "database" &&
        (tok.text == "samerole" || tok.text == "samegroup")) {
      errors.push_back({loc, "\"" + tok.text +
                                 "\" is not supported: pgmtls cannot see the database's role "
                                 "memberships; list the databases instead"});
      continue;
    }
    out.push_back({tok.text, tok.quoted});
  }
  return errors.size() == errors_before;
}

namespace {

std::vector<HbaRule> parse_hba_records(const std::vector<ConfLine>& records, Diagnostics& errors) {
  std::vector<HbaRule> rules;
  for (const ConfLine& record : records) {
    const std::size_t errors_before = errors.size();
    const auto& f = record.fields;
    HbaRule rule;
    rule.where = record.where;
    rule.text = record.text;
    auto single = [&](std::size_t i, std::string_view what) -> const ConfToken* {
      if (f[i].size() != 1) {
        errors.push_back({at_column(record.where, f[i][1].column),
                          "multiple values specified for " + std::string(what)});
        return nullptr;
      }
      return &f[i][0];
    };
    const ConfToken* type = single(0, "connection type");
    if (type == nullptr || !parse_hba_conn_type(*type, record.where, rule.type, errors)) continue;
    if (f.size() < 5) {
      errors.push_back({record.where, std::string("end-of-line before ") +
                                          (f.size() < 2   ? "database specification"
                                           : f.size() < 3 ? "role specification"
                                           : f.size() < 4 ? "IP address specification"
                                                          : "authentication method")});
      continue;
    }
    parse_hba_names(f[1], "database", record.where, rule.databases, errors);
    parse_hba_names(f[2], "user", record.where, rule.users, errors);
    const ConfToken* address = single(3, "host name");
    std::size_t next = 4;
    const ConfToken* mask = nullptr;
    bool v6 = false;
    std::array<std::uint8_t, 16> ip{};
    if (address != nullptr && address->text.find('/') == std::string::npos &&
        parse_ip(address->text, v6, ip)) {
      // An IP address without /prefix takes its netmask from the next column.
      mask = single(4, "netmask");
      next = 5;
      if (f.size() < 6) {
        errors.push_back({at_column(record.where, address->column),
                          "end-of-line before authentication method: an IP address without "
                          "/prefix takes a netmask column (write " +
                              address->text + (v6 ? "/128" : "/32") + " for one host)"});
        continue;
      }
    }
    if (address != nullptr) parse_hba_address(*address, mask, record.where, rule.address, errors);
    const ConfToken* method = single(next, "authentication type");
    if (method == nullptr || !parse_hba_method(*method, record.where, rule.method, errors)) {
      continue;
    }
    for (std::size_t i = next + 1; i < f.size(); ++i) {
      for (const ConfToken& opt : f[i]) {
        const auto eq = opt.text.find('=');
        const Location loc = at_column(record.where, opt.column);
        if (eq == std::string::npos) {
          errors.push_back({loc, "authentication option not in name=value format: " + opt.text});
          continue;
        }
        parse_hba_option(opt.text.substr(0, eq), opt.text.substr(eq + 1), loc, rule, errors);
      }
    }
    if (errors.size() == errors_before) rules.push_back(std::move(rule));
  }
  return rules;
}

}  // namespace

std::vector<HbaRule> parse_hba_text(std::string_view text, const std::string& file,
                                    Diagnostics& errors) {
  return parse_hba_records(parse_conf_text(text, file, errors), errors);
}

std::vector<HbaRule> load_hba_file(const std::string& path, const Location& referenced_from,
                                   Diagnostics& errors) {
  return parse_hba_records(read_conf_file(path, referenced_from, "hba_file", errors), errors);
}

}  // namespace pgmtls::config
