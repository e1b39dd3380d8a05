#include "proxy/pki_command.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "auth/ca_database.h"
#include "auth/identity.h"
#include "auth/pki.h"

namespace pgmtls::proxy {
namespace {

namespace pki = auth::pki;
using std::chrono::days;

constexpr const char* kPkiUsage =
    "usage: pgmtls pki COMMAND [options]\n"
    "  init-ca      --ca DIR [--cn NAME] [--org O] [--key ec|rsa|rsa2048|rsa3072|rsa4096]\n"
    "               [--days 3650] [--crl-days 30]\n"
    "               a new CA in DIR: ca.crt, ca.key (0600), ca.db, crl.pem\n"
    "  issue-server --ca DIR --cn NAME [--dns NAME]... [--ip ADDR]... [--org O] [--days 397]\n"
    "               [--key K] --out PREFIX     PREFIX.crt and PREFIX.key; the CN is also a SAN\n"
    "  issue-client --ca DIR --cn NAME [--email E]... [--dns D]... [--uri U]... [--org O]\n"
    "               [--days 365] [--key K] --out PREFIX [--pkcs12-password-file FILE]\n"
    "               PREFIX.crt, PREFIX.key (PEM), PREFIX.pk8 (DER, for JDBC), and with a\n"
    "               password file PREFIX.p12 (PKCS#12, its first line the password)\n"
    "  revoke       --ca DIR (--serial HEX | --cert FILE) [--reason NAME] [--crl-days 30]\n"
    "               record the revocation and write a new DIR/crl.pem\n"
    "  crl          --ca DIR [--crl-days 30]   write a new DIR/crl.pem (run before nextUpdate)\n"
    "  inspect      [--json] FILE...   certificates and CRLs: subject, issuer, SANs, serial,\n"
    "               SHA-256 fingerprint, validity\n"
    "  expiry       [--warn-days 30] [--crl-warn-days 2] [--json] PATH...   certificates\n"
    "               and CRLs in files and directories (recursive; files that are neither, or\n"
    "               that cannot be read, in a directory are skipped); exit 0 ok, 1 warning,\n"
    "               2 expired, not yet valid or stale, 3 unreadable or bad arguments\n";

// ---- arguments ----

struct OptionSpec {
  std::string_view name;
  enum Kind { value, list, flag } kind = value;
};

struct Arguments {
  std::map<std::string, std::vector<std::string>, std::less<>> options;
  std::vector<std::string> positional;

  bool has(std::string_view name) const { return options.contains(name); }
  std::string get(std::string_view name, std::string fallback = {}) const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(std::string_view name) const {
    auto it = options.find(name);
    return it == options.end() ? std::vector<std::string>{} : it->second;
  }
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Arguments parse_arguments(std::string_view command, int argc, char** argv,
                          std::initializer_list<OptionSpec> specs, bool positional_allowed) {
  Arguments args;
  for (int i = 0; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (!word.starts_with("--")) {
      if (!positional_allowed) {
        throw UsageError("unexpected argument \"" + std::string(word) + "\"");
      }
      args.positional.emplace_back(word);
      continue;
    }
    const std::string_view name = word.substr(2);
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const OptionSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      throw UsageError("unknown option " + std::string(word) + " for " + std::string(command));
    }
    auto& values = args.options[std::string(name)];
    if (spec->kind == OptionSpec::flag) {
      values.emplace_back();
      continue;
    }
    if (i + 1 >= argc) throw UsageError(std::string(word) + " needs a value");
    if (spec->kind == OptionSpec::value && !values.empty()) {
      throw UsageError(std::string(word) + " given twice");
    }
    values.emplace_back(argv[++i]);
  }
  return args;
}

std::string required(const Arguments& args, std::string_view name) {
  if (!args.has(name)) throw UsageError("--" + std::string(name) + " is required");
  std::string value = args.get(name);
  if (value.empty()) throw UsageError("--" + std::string(name) + " must not be empty");
  return value;
}

long long integer_option(const Arguments& args, std::string_view name, long long fallback,
                         long long min, long long max) {
  if (!args.has(name)) return fallback;
  const std::string text = args.get(name);
  long long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    throw UsageError("--" + std::string(name) + " must be a whole number from " +
                     std::to_string(min) + " to " + std::to_string(max));
  }
  return value;
}

std::chrono::seconds days_option(const Arguments& args, std::string_view name, int fallback) {
  return days(integer_option(args, name, fallback, 1, 36500));
}

pki::KeyType key_option(const Arguments& args) {
  const std::string key = args.get("key", "ec");
  if (key == "ec" || key == "ec-p256") return pki::KeyType::ec_p256;
  if (key == "rsa" || key == "rsa3072") return pki::KeyType::rsa3072;
  if (key == "rsa2048") return pki::KeyType::rsa2048;
  if (key == "rsa4096") return pki::KeyType::rsa4096;
  throw UsageError("--key must be ec, rsa (3072 bits), rsa2048, rsa3072 or rsa4096");
}

bool is_ip_literal(const std::string& text) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, text.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// A SPIFFE ID (spiffe://trust-domain/path): checked so that a typo does not become an identity
// no rule will ever match.
void check_uri(const std::string& uri) {
  if (uri.find("://") == std::string::npos) {
    throw UsageError("--uri \"" + uri + "\" is not a URI (scheme://...)");
  }
  if (!uri.starts_with("spiffe://")) return;
  const std::string_view rest = std::string_view(uri).substr(9);
  const std::string_view domain = rest.substr(0, rest.find('/'));
  const bool domain_ok = !domain.empty() && std::all_of(domain.begin(), domain.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
  const std::string_view path = rest.substr(domain.size());
  if (!domain_ok || path.find("//") != std::string_view::npos || path.ends_with("/") ||
      path.find('?') != std::string_view::npos || path.find('#') != std::string_view::npos) {
    throw UsageError("--uri \"" + uri +
                     "\" is not a SPIFFE ID: spiffe://trust-domain/path, a lower-case trust "
                     "domain and a path without empty segments, query or fragment");
  }
}

std::string read_password_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::string password;
  std::getline(in, password);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

// ---- printing ----

std::string format_time(std::time_t t) {
  return auth::pki::utc_time(t, "%Y-%m-%d %H:%M:%S UTC");
}

// Days from now until `t`, to the nearest whole day (negative once past), for display: a
// certificate issued for 365 days shows 365, not 364, a second later.
long long days_left(std::time_t t, std::time_t now) {
  const double seconds = static_cast<double>(t) - static_cast<double>(now);
  return std::llround(seconds / 86400.0);
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_list(const std::vector<std::string>& values) {
  std::string out = "[";
  for (const auto& v : values)
    out += (out.size() > 1 ? "," : "") + json_string(v);
  return out + "]";
}

// JSON objects, one per line, as one array.
void print_json_array(const std::vector<std::string>& objects) {
  std::printf("[");
  for (std::size_t i = 0; i < objects.size(); ++i)
    std::printf("%s%s", i == 0 ? "" : ",\n", objects[i].c_str());
  std::printf("]\n");
}

std::string key_description(X509* cert) {
  const EVP_PKEY* key = X509_get0_pubkey(cert);
  if (key == nullptr) return "unknown";
  const int bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      char group[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1) {
        const std::string_view name = group;
        // NIST's names, as the config's tls.groups and most documentation spell them.
        if (name == "prime256v1") return "EC P-256";
        if (name == "secp384r1") return "EC P-384";
        if (name == "secp521r1") return "EC P-521";
        return std::string("EC ") + group;
      }
      return "EC " + std::to_string(bits) + " bits";
    }
    case EVP_PKEY_RSA:
      return "RSA " + std::to_string(bits) + " bits";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    default:
      return std::to_string(bits) + " bits";
  }
}

std::vector<std::string> extended_key_usages(X509* cert) {
  std::vector<std::string> out;
  const uint32_t xku = X509_get_extended_key_usage(cert);
  if (xku == UINT32_MAX) return out;  // no extension: any purpose
  if (xku & XKU_SSL_SERVER) out.emplace_back("serverAuth");
  if (xku & XKU_SSL_CLIENT) out.emplace_back("clientAuth");
  if (xku & XKU_CODE_SIGN) out.emplace_back("codeSigning");
  if (xku & XKU_SMIME) out.emplace_back("emailProtection");
  if (xku & XKU_OCSP_SIGN) out.emplace_back("OCSPSigning");
  return out;
}

std::vector<std::string> subject_alt_names(const auth::CertificateIdentity& id) {
  std::vector<std::string> out;
  for (const auto& v : id.san_dns)
    out.push_back("DNS:" + v);
  for (const auto& v : id.san_ip)
    out.push_back("IP:" + v);
  for (const auto& v : id.san_email)
    out.push_back("email:" + v);
  for (const auto& v : id.san_uri)
    out.push_back("URI:" + v);
  return out;
}

// ---- commands ----

int init_ca(const Arguments& args) {
  const std::string dir = required(args, "ca");
  pki::CertificateSpec spec;
  spec.common_name = args.get("cn", "pgmtls CA");
  spec.organization = args.get("org");
  spec.is_ca = true;
  spec.path_length = 0;                        // it signs leaves only
  spec.not_before = -std::chrono::minutes(5);  // tolerate clients whose clock is a little behind
  spec.not_after = days_option(args, "days", 3650);
  spec.key_type = key_option(args);
  auto ca = pki::CaDirectory::create(dir, spec, days_option(args, "crl-days", 30));
  std::printf("created CA \"%s\" in %s\n",
              auth::name_rfc2253(X509_get_subject_name(ca.ca().cert.get())).c_str(), dir.c_str());
  std::printf("  %s        trust this: pgmtls tls.ca_file, clients' sslrootcert\n",
              ca.path("ca.crt").c_str());
  std::printf("  %s        private key (0600): keep it off the servers\n",
              ca.path("ca.key").c_str());
  std::printf("  %s       revocations: pgmtls tls.crl_file (refresh with `pki crl`)\n",
              ca.path("crl.pem").c_str());
  return 0;
}

// Writes PREFIX.crt and PREFIX.key and prints what was issued.
void write_leaf(const std::string& prefix, const pki::Credential& issued) {
  pki::write_file_atomically(prefix + ".crt", pki::to_pem(*issued.cert), 0644);
  pki::write_file_atomically(prefix + ".key", pki::private_key_to_pem(*issued.key), 0600);
  std::string ignored;
  const auto id = auth::extract_identity(issued.cert.get(), ignored);
  const auto not_after = auth::unix_time(X509_get0_notAfter(issued.cert.get()));
  std::printf("issued \"%s\" serial %s, valid until %s\n", id ? id->subject_dn.c_str() : "",
              id ? id->serial.c_str() : "", not_after ? format_time(*not_after).c_str() : "?");
  std::printf("  %s.crt\n  %s.key (0600)\n", prefix.c_str(), prefix.c_str());
}

// What issue-server and issue-client share: subject, validity, key type.
pki::CertificateSpec leaf_spec(const Arguments& args, int default_days) {
  pki::CertificateSpec spec;
  spec.common_name = required(args, "cn");
  spec.organization = args.get("org");
  spec.not_after = days_option(args, "days", default_days);
  spec.key_type = key_option(args);
  return spec;
}

int issue_server(const Arguments& args) {
  auto ca = pki::CaDirectory::open(required(args, "ca"));
  pki::CertificateSpec spec = leaf_spec(args, 397);  // the CA/Browser Forum's most
  spec.server_auth = true;
  spec.san.dns = args.all("dns");
  for (const auto& ip : args.all("ip")) {
    if (!is_ip_literal(ip)) throw UsageError("--ip \"" + ip + "\" is not an IP address");
    spec.san.ip.push_back(ip);
  }
  // Clients check the host name against the SANs alone once there are any (RFC 6125), so the
  // CN goes there too.
  auto& names = is_ip_literal(spec.common_name) ? spec.san.ip : spec.san.dns;
  if (std::find(names.begin(), names.end(), spec.common_name) == names.end()) {
    names.insert(names.begin(), spec.common_name);
  }
  const std::string prefix = required(args, "out");
  write_leaf(prefix, ca.issue(spec));
  return 0;
}

int issue_client(const Arguments& args) {
  auto ca = pki::CaDirectory::open(required(args, "ca"));
  pki::CertificateSpec spec = leaf_spec(args, 365);
  spec.client_auth = true;
  spec.san.email = args.all("email");
  spec.san.dns = args.all("dns");
  spec.san.uri = args.all("uri");
  for (const auto& uri : spec.san.uri)
    check_uri(uri);
  std::optional<std::string> password;
  if (args.has("pkcs12-password-file")) {
    password = read_password_file(args.get("pkcs12-password-file"));
  }
  const std::string prefix = required(args, "out");
  const auto issued = ca.issue(spec);
  write_leaf(prefix, issued);
  pki::write_file_atomically(prefix + ".pk8", pki::private_key_to_der(*issued.key), 0600);
  std::printf("  %s.pk8 (0600, PKCS#8 DER: pgJDBC's sslkey)\n", prefix.c_str());
  if (password) {
    pki::write_file_atomically(
        prefix + ".p12", pki::to_pkcs12(issued, {ca.ca().cert.get()}, spec.common_name, *password),
        0600);
    std::printf("  %s.p12 (0600, PKCS#12 with the CA certificate)\n", prefix.c_str());
  }
  return 0;
}

std::uint64_t serial_argument(const Arguments& args) {
  if (args.has("serial") == args.has("cert")) {
    throw UsageError("give exactly one of --serial HEX and --cert FILE");
  }
  if (args.has("cert")) {
    return pki::serial_of(*pki::read_certificate(args.get("cert")));
  }
  std::string text = args.get("serial");
  std::erase(text, ':');
  std::uint64_t serial = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), serial, 16);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    throw UsageError("--serial must be hexadecimal, as `pki inspect` prints it");
  }
  return serial;
}

void print_crl_written(const pki::CaDirectory& ca, const X509_CRL& crl) {
  const auto next = auth::unix_time(X509_CRL_get0_nextUpdate(&crl));
  const STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(const_cast<X509_CRL*>(&crl));
  std::printf("wrote %s: %d revoked, next update %s\n", ca.path("crl.pem").c_str(),
              revoked != nullptr ? sk_X509_REVOKED_num(revoked) : 0,
              next ? format_time(*next).c_str() : "?");
}

int revoke(const Arguments& args) {
  auto ca = pki::CaDirectory::open(required(args, "ca"));
  const std::uint64_t serial = serial_argument(args);
  std::optional<int> reason;
  if (args.has("reason")) {
    reason = pki::crl_reason_from_name(args.get("reason"));
    // removeFromCRL belongs in delta CRLs only (RFC 5280, 5.3.1), which this CA does not make.
    if (!reason || *reason == CRL_REASON_REMOVE_FROM_CRL) {
      throw UsageError(
          "--reason must be one of unspecified, keyCompromise, cACompromise, "
          "affiliationChanged, superseded, cessationOfOperation, certificateHold, "
          "privilegeWithdrawn, aACompromise");
    }
  }
  const auto record = ca.revoke(serial, reason, days_option(args, "crl-days", 30));
  // A serial revoked before keeps its first time and reason: say which stand.
  std::printf(
      "revoked %s (%s) at %s\n", record.subject.c_str(),
      record.reason ? std::string(pki::crl_reason_name(*record.reason)).c_str() : "no reason given",
      format_time(*record.revoked_at).c_str());
  print_crl_written(ca, *pki::read_crl_if_any(ca.path("crl.pem")));
  return 0;
}

int crl(const Arguments& args) {
  auto ca = pki::CaDirectory::open(required(args, "ca"));
  const auto written = ca.write_crl(days_option(args, "crl-days", 30));
  print_crl_written(ca, *written);
  return 0;
}

// One certificate or CRL found in a file, for inspect and expiry.
struct Item {
  std::string path;
  std::string kind;  // "certificate" or "crl"
  std::string subject;
  std::optional<std::time_t> not_before, not_after;  // a CRL: lastUpdate, nextUpdate
};

std::string certificate_text(X509* cert, const std::string& path, bool json, std::time_t now) {
  std::string error;
  const auto id = auth::extract_identity(cert, error);
  if (!id) throw std::runtime_error(path + ": " + error);
  const auto not_before = auth::unix_time(X509_get0_notBefore(cert));
  const auto not_after = auth::unix_time(X509_get0_notAfter(cert));
  const bool is_ca = X509_check_ca(cert) != 0;
  const auto sans = subject_alt_names(*id);
  const auto ekus = extended_key_usages(cert);
  const long long left = not_after ? days_left(*not_after, now) : 0;
  if (json) {
    return "{\"path\":" + json_string(path) +
           ",\"type\":\"certificate\",\"subject\":" + json_string(id->subject_dn) +
           ",\"issuer\":" + json_string(id->issuer_dn) + ",\"serial\":" + json_string(id->serial) +
           ",\"sha256\":" + json_string(id->sha256_fingerprint) +
           ",\"not_before\":" + json_string(not_before ? format_time(*not_before) : "") +
           ",\"not_after\":" + json_string(not_after ? format_time(*not_after) : "") +
           ",\"days_left\":" + std::to_string(left) + ",\"ca\":" + (is_ca ? "true" : "false") +
           ",\"key\":" + json_string(key_description(cert)) + ",\"san\":" + json_list(sans) +
           ",\"extended_key_usage\":" + json_list(ekus) + "}";
  }
  std::string out = path + ": certificate\n";
  auto line = [&](const char* name, const std::string& value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "  %-13s", name);
    out += buf + value + "\n";
  };
  line("subject", id->subject_dn);
  line("issuer", id->issuer_dn);
  line("serial", id->serial);
  line("sha256", id->sha256_fingerprint);
  line("not before", not_before ? format_time(*not_before) : "?");
  line("not after", not_after ? format_time(*not_after) + " (" + std::to_string(left) +
                                    (left == 1 || left == -1 ? " day" : " days") +
                                    (left < 0 ? " ago)" : " left)")
                              : "?");
  line("key", key_description(cert));
  line("ca", is_ca ? "yes" : "no");
  std::string joined;
  for (const auto& s : sans)
    joined += (joined.empty() ? "" : ", ") + s;
  line("san", joined.empty() ? "-" : joined);
  joined.clear();
  for (const auto& s : ekus)
    joined += (joined.empty() ? "" : ", ") + s;
  line("ext usage", joined.empty() ? "any" : joined);
  return out;
}

std::string crl_text(X509_CRL* crl, const std::string& path, bool json, std::time_t now) {
  const std::string issuer = auth::name_rfc2253(X509_CRL_get_issuer(crl));
  const auto last = auth::unix_time(X509_CRL_get0_lastUpdate(crl));
  const auto next = auth::unix_time(X509_CRL_get0_nextUpdate(crl));
  std::string number;
  if (auto* n =
          static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr))) {
    std::uint64_t value = 0;
    number = ASN1_INTEGER_get_uint64(&value, n) == 1 ? std::to_string(value) : auth::serial_hex(n);
    ASN1_INTEGER_free(n);
  }
  std::vector<std::string> revoked;
  const STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(crl);
  for (int i = 0; entries != nullptr && i < sk_X509_REVOKED_num(entries); ++i) {
    revoked.push_back(
        auth::serial_hex(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(entries, i))));
  }
  const long long left = next ? days_left(*next, now) : 0;
  if (json) {
    return "{\"path\":" + json_string(path) +
           ",\"type\":\"crl\",\"issuer\":" + json_string(issuer) +
           ",\"crl_number\":" + json_string(number) +
           ",\"last_update\":" + json_string(last ? format_time(*last) : "") +
           ",\"next_update\":" + json_string(next ? format_time(*next) : "") +
           ",\"days_left\":" + std::to_string(left) + ",\"revoked\":" + json_list(revoked) + "}";
  }
  std::string out = path + ": CRL\n";
  out += "  issuer       " + issuer + "\n";
  out += "  crl number   " + (number.empty() ? "-" : number) + "\n";
  out += "  last update  " + (last ? format_time(*last) : "?") + "\n";
  out += "  next update  " + (next ? format_time(*next) : "none") + "\n";
  out += "  revoked      " + std::to_string(revoked.size());
  for (std::size_t i = 0; i < revoked.size(); ++i)
    out += (i == 0 ? ": " : ", ") + revoked[i];
  return out + "\n";
}

int inspect(const Arguments& args) {
  if (args.positional.empty()) throw UsageError("name at least one file to inspect");
  const bool json = args.has("json");
  const std::time_t now = std::time(nullptr);
  std::vector<std::string> outputs;
  int status = 0;
  for (const auto& path : args.positional) {
    std::size_t found = 0;
    try {
      for (auto& cert : pki::read_certificates(path)) {
        outputs.push_back(certificate_text(cert.get(), path, json, now));
        ++found;
      }
      if (auto crl = pki::read_crl_if_any(path)) {
        outputs.push_back(crl_text(crl.get(), path, json, now));
        ++found;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pgmtls pki inspect: %s\n", e.what());
      status = 1;
      continue;
    }
    if (found == 0) {
      std::fprintf(stderr, "pgmtls pki inspect: %s: no certificate or CRL (PEM or DER)\n",
                   path.c_str());
      status = 1;
    }
  }
  if (json) {
    print_json_array(outputs);
  } else {
    for (std::size_t i = 0; i < outputs.size(); ++i)
      std::printf("%s%s", i == 0 ? "" : "\n", outputs[i].c_str());
  }
  return status;
}

// ---- expiry ----

enum ExpiryStatus { kOk = 0, kWarning = 1, kCritical = 2, kUnknown = 3 };

// The certificates and CRLs in one file; none for a file that holds neither (a key, a README).
std::vector<Item> items_in(const std::string& path) {
  std::vector<Item> items;
  for (auto& cert : pki::read_certificates(path)) {
    items.push_back({path, "certificate", auth::name_rfc2253(X509_get_subject_name(cert.get())),
                     auth::unix_time(X509_get0_notBefore(cert.get())),
                     auth::unix_time(X509_get0_notAfter(cert.get()))});
  }
  if (auto crl = pki::read_crl_if_any(path)) {
    items.push_back({path, "crl", "CRL of " + auth::name_rfc2253(X509_CRL_get_issuer(crl.get())),
                     auth::unix_time(X509_CRL_get0_lastUpdate(crl.get())),
                     auth::unix_time(X509_CRL_get0_nextUpdate(crl.get()))});
  }
  return items;
}

// A file worth reading while scanning a directory: regular, and small (certificates and CRLs
// are kilobytes; a directory may hold anything else too).
bool worth_reading(const std::filesystem::directory_entry& entry) {
  std::error_code ec;
  return entry.is_regular_file(ec) && entry.file_size(ec) <= 4 * 1024 * 1024 && !ec;
}

int expiry(const Arguments& args) {
  if (args.positional.empty()) throw UsageError("name at least one file or directory");
  const long long warn_days = integer_option(args, "warn-days", 30, 0, 36500);
  // CRLs are re-signed often (a nightly `pki crl`, each valid --crl-days), so their warning is
  // short: 2 days warns a 7-day nightly CRL after five missed nights, never just after writing.
  const long long crl_warn_days = integer_option(args, "crl-warn-days", 2, 0, 36500);
  const bool json = args.has("json");
  const std::time_t now = std::time(nullptr);
  int worst = kOk;
  std::vector<std::string> lines;
  auto report = [&](const Item& item) {
    int status = kOk;
    std::string state = "ok";
    long long left = 0;
    if (item.not_after) left = days_left(*item.not_after, now);
    if (item.not_before && *item.not_before > now) {
      status = kCritical;
      state = "not yet valid";
    } else if (!item.not_after) {
      state = "no expiry";  // a CRL without nextUpdate
    } else if (*item.not_after <= now) {
      status = kCritical;
      state = item.kind == "crl" ? "stale" : "expired";
    } else if (*item.not_after - now < (item.kind == "crl" ? crl_warn_days : warn_days) * 86400) {
      status = kWarning;
      state = "warning";
    }
    worst = std::max(worst, status);
    if (json) {
      lines.push_back("{\"path\":" + json_string(item.path) + ",\"type\":\"" + item.kind +
                      "\",\"subject\":" + json_string(item.subject) + ",\"not_after\":" +
                      json_string(item.not_after ? format_time(*item.not_after) : "") +
                      ",\"days_left\":" + std::to_string(left) + ",\"status\":\"" + state + "\"}");
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%-14s %6lld  %-23s  ", state.c_str(), left,
                    item.not_after ? format_time(*item.not_after).c_str() : "-");
      lines.push_back(buf + item.path + "  " + item.subject);
    }
  };
  auto unreadable = [&](const std::string& path, const std::string& why) {
    worst = std::max<int>(worst, kUnknown);
    std::fprintf(stderr, "pgmtls pki expiry: %s: %s\n", path.c_str(), why.c_str());
  };
  for (const auto& path : args.positional) {
    std::error_code ec;
    const auto type = std::filesystem::status(path, ec).type();
    if (ec || type == std::filesystem::file_type::not_found) {
      unreadable(path, "no such file or directory");
      continue;
    }
    if (type != std::filesystem::file_type::directory) {
      try {
        const auto items = items_in(path);
        if (items.empty()) unreadable(path, "no certificate or CRL (PEM or DER)");
        for (const auto& item : items)
          report(item);
      } catch (const std::exception& e) {
        unreadable(path, e.what());
      }
      continue;
    }
    std::vector<std::string> files;
    std::filesystem::recursive_directory_iterator it(
        path, std::filesystem::directory_options::skip_permission_denied, ec);
    for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (worth_reading(*it)) files.push_back(it->path().string());
    }
    if (ec) unreadable(path, ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      // A file this user may not read (a private key, the CA database) holds nothing to check.
      if (::access(file.c_str(), R_OK) != 0) continue;
      try {
        for (const auto& item : items_in(file))
          report(item);
      } catch (const std::exception& e) {
        unreadable(file, e.what());
      }
    }
  }
  if (json) {
    print_json_array(lines);
  } else {
    if (!lines.empty()) std::printf("%-14s %6s  %-23s  %s\n", "STATUS", "DAYS", "EXPIRES", "FILE");
    for (const auto& line : lines)
      std::printf("%s\n", line.c_str());
  }
  return worst;
}

}  // namespace

int run_pki(int argc, char** argv) {
  if (argc < 1 || std::string_view(argv[0]) == "--help" || std::string_view(argv[0]) == "-h") {
    std::fputs(kPkiUsage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const std::string_view command = argv[0];
  using O = OptionSpec;
  const O key{"key"}, days_opt{"days"}, crl_days{"crl-days"}, ca{"ca"}, cn{"cn"}, org{"org"},
      out{"out"}, json{"json", O::flag};
  const int usage_status = command == "expiry" ? kUnknown : 2;
  try {
    if (command == "init-ca") {
      return init_ca(parse_arguments(command, argc - 1, argv + 1,
                                     {ca, cn, org, key, days_opt, crl_days}, false));
    }
    if (command == "issue-server") {
      return issue_server(parse_arguments(
          command, argc - 1, argv + 1,
          {ca, cn, org, key, days_opt, out, {"dns", O::list}, {"ip", O::list}}, false));
    }
    if (command == "issue-client") {
      return issue_client(parse_arguments(command, argc - 1, argv + 1,
                                          {ca,
                                           cn,
                                           org,
                                           key,
                                           days_opt,
                                           out,
                                           {"email", O::list},
                                           {"dns", O::list},
                                           {"uri", O::list},
                                           {"pkcs12-password-file"}},
                                          false));
    }
    if (command == "revoke") {
      return revoke(parse_arguments(command, argc - 1, argv + 1,
                                    {ca, {"serial"}, {"cert"}, {"reason"}, crl_days}, false));
    }
    if (command == "crl") {
      return crl(parse_arguments(command, argc - 1, argv + 1, {ca, crl_days}, false));
    }
    if (command == "inspect") {
      return inspect(parse_arguments(command, argc - 1, argv + 1, {json}, true));
    }
    if (command == "expiry") {
      return expiry(parse_arguments(command, argc - 1, argv + 1,
                                    {{"warn-days"}, {"crl-warn-days"}, json}, true));
    }
    std::fprintf(stderr, "pgmtls pki: unknown command \"%s\"\n", argv[0]);
    std::fputs(kPkiUsage, stderr);
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pgmtls pki %s: %s\n", argv[0], e.what());
    return usage_status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmtls pki %s: %s\n", argv[0], e.what());
    return command == "expiry" ? kUnknown : 1;
  }
}

}  // namespace pgmtls::proxy
