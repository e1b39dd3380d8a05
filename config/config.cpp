#include "config/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace pgmtls::config {

namespace {

// A DNS name as RFC 1123 allows it: letters, digits, hyphens and dots, at most 253 characters.
bool is_host_name(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
  });
}

// Certificates, keys, rule files and secrets are small; anything bigger is a mistake.
constexpr off_t kMaxConfigFileSize = 16 << 20;

constexpr std::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                           "error", "critical", "off"};

class Loader {
 public:
  Loader(std::string file, std::string base_dir, Diagnostics& errors)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), errors_(errors) {}

  Location loc(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return {file_, 0, 0};
    return {file_, mark.line + 1, mark.column + 1};
  }

  void error(const Location& where, std::string message) {
    errors_.push_back({where, std::move(message)});
  }
  void error(const YAML::Node& node, std::string message) { error(loc(node), std::move(message)); }

  // Calls `handle(key, value)` for each entry of a mapping; unknown keys are errors.
  using Handler = std::function<void(const YAML::Node& value)>;
  bool walk(const YAML::Node& node, const std::string& path,
            const std::vector<std::pair<std::string_view, Handler>>& handlers) {
    if (!node.IsMap()) {
      error(node, (path.empty() ? std::string("the config") : path) + " must be a mapping");
      return false;
    }
    std::set<std::string> seen;
    for (const auto& entry : node) {
      const std::string key = entry.first.Scalar();
      const std::string full = path.empty() ? key : path + "." + key;
      if (!seen.insert(key).second) {
        error(entry.first, "duplicate key \"" + full + "\"");
        continue;
      }
      auto it = std::find_if(handlers.begin(), handlers.end(),
                             [&](const auto& h) { return h.first == key; });
      if (it == handlers.end()) {
        std::string known;
        for (const auto& h : handlers)
          known += (known.empty() ? "" : ", ") + std::string(h.first);
        error(entry.first, "unknown key \"" + full + "\" (expected one of: " + known + ")");
        continue;
      }
      it->second(entry.second);
    }
    return true;
  }

  std::optional<std::string> scalar(const YAML::Node& node, const std::string& key) {
    if (!node.IsScalar()) {
      error(node, key + " must be a single value");
      return std::nullopt;
    }
    return node.Scalar();
  }

  void string_value(const YAML::Node& node, const std::string& key, std::string& out) {
    if (auto v = scalar(node, key)) out = *v;
  }

  template <typename Int>
  void integer(const YAML::Node& node, const std::string& key, Int min, Int max, Int& out) {
    auto v = scalar(node, key);
    if (!v) return;
    long long value = 0;
    auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), value);
    if (ec != std::errc() || ptr != v->data() + v->size() || value < static_cast<long long>(min) ||
        value > static_cast<long long>(max)) {
      error(node, key + " must be a whole number from " + std::to_string(min) + " to " +
                      std::to_string(max) + ", not \"" + *v + "\"");
      return;
    }
    out = static_cast<Int>(value);
  }

  void duration(const YAML::Node& node, const std::string& key, std::chrono::milliseconds& out) {
    auto v = scalar(node, key);
    if (!v) return;
    auto d = parse_duration(*v);
    if (!d || d->count() <= 0) {
      error(node,
            key + " must be a positive duration such as 10s, 500ms or 2m, not \"" + *v + "\"");
      return;
    }
    out = *d;
  }

  // A duration where 0 (or "off") turns the feature off.
  void optional_duration(const YAML::Node& node, const std::string& key,
                         std::chrono::milliseconds& out) {
    auto v = scalar(node, key);
    if (!v) return;
    auto d = *v == "off" ? std::optional(std::chrono::milliseconds(0)) : parse_duration(*v);
    if (!d || d->count() < 0) {
      error(node,
            key + " must be a duration such as 10s, 500ms or 2m, or 0 (off), not \"" + *v + "\"");
      return;
    }
    out = *d;
  }

  void certificate_event_action(const YAML::Node& node, const std::string& key,
                                CertificateEventAction& out) {
    auto v = scalar(node, key);
    if (!v) return;
    if (*v == "keep") {
      out = CertificateEventAction::keep;
    } else if (*v == "terminate") {
      out = CertificateEventAction::terminate;
    } else {
      error(node, key + " must be keep or terminate, not \"" + *v + "\"");
    }
  }

  std::string resolve(const std::string& path) const {
    if (path.empty() || path.front() == '/' || base_dir_.empty()) return path;
    return (std::filesystem::path(base_dir_) / path).lexically_normal().string();
  }

  // A readable regular file (or directory, when `directory`), resolved against the config's folder.
  // Returns false (after reporting) unless the path is usable; only then may it be read.
  bool path(const YAML::Node& node, const std::string& key, PathSetting& out,
            bool directory = false) {
    auto v = scalar(node, key);
    if (!v) return false;
    out.where = loc(node);
    if (v->empty()) {
      error(node, key + " must not be empty");
      return false;
    }
    out.path = resolve(*v);
    struct stat st {};
    if (::stat(out.path.c_str(), &st) != 0 || ::access(out.path.c_str(), R_OK) != 0) {
      error(node, "cannot read " + key + " \"" + out.path + "\": " + std::strerror(errno));
      return false;
    }
    if (directory && !S_ISDIR(st.st_mode)) {
      error(node, key + " \"" + out.path + "\" is not a directory");
      return false;
    }
    if (!directory && !S_ISREG(st.st_mode)) {
      error(node, key + " \"" + out.path + "\" is not a regular file");
      return false;
    }
    if (!directory && st.st_size > kMaxConfigFileSize) {
      error(node, key + " \"" + out.path + "\" is larger than " +
                      std::to_string(kMaxConfigFileSize >> 20) + " MiB");
      return false;
    }
    files_.push_back(out.path);
    return true;
  }

  void require(const YAML::Node& parent, const std::string& parent_name, const std::string& key,
               bool present) {
    if (!present) {
      error(parent, (parent_name.empty() ? "" : parent_name + ".") + key + " is required");
    }
  }

  void load(const YAML::Node& root, Config& cfg) {
    bool has_listen = false;
    bool has_tls = false;
    bool has_backends = false;
    std::optional<YAML::Node> sni_node;
    std::optional<YAML::Node> ident_file_node;
    std::optional<YAML::Node> maps_node;
    std::optional<YAML::Node> hba_file_node;
    std::optional<YAML::Node> hba_node;
    walk(
        root, "",
        {
            {"listen",
             [&](const YAML::Node& n) {
               has_listen = true;
               auto v = scalar(n, "listen");
               if (!v) return;
               std::string why;
               auto addr = parse_listen_address(*v, why);
               if (!addr) {
                 error(n, "invalid listen address \"" + *v + "\": " + why);
                 return;
               }
               cfg.listen = *addr;
               cfg.listen.where = loc(n);
             }},
            {"workers",
             [&](const YAML::Node& n) { integer(n, "workers", 0u, 1024u, cfg.workers); }},
            {"startup_timeout",
             [&](const YAML::Node& n) { duration(n, "startup_timeout", cfg.startup_timeout); }},
            {"shutdown_timeout",
             [&](const YAML::Node& n) { duration(n, "shutdown_timeout", cfg.shutdown_timeout); }},
            {"idle_timeout",
             [&](const YAML::Node& n) { optional_duration(n, "idle_timeout", cfg.idle_timeout); }},
            {"on_revocation",
             [&](const YAML::Node& n) {
               certificate_event_action(n, "on_revocation", cfg.on_revocation);
             }},
            {"on_expiry",
             [&](const YAML::Node& n) { certificate_event_action(n, "on_expiry", cfg.on_expiry); }},
            {"watch_interval",
             [&](const YAML::Node& n) {
               optional_duration(n, "watch_interval", cfg.watch_interval);
             }},
            {"tls",
             [&](const YAML::Node& n) {
               has_tls = true;
               load_tls(n, cfg.tls);
             }},
            {"identity", [&](const YAML::Node& n) { load_identity(n, cfg.identity); }},
            {"map",
             [&](const YAML::Node& n) {
               string_value(n, "map", cfg.map);
               cfg.map_where = loc(n);
             }},
            {"ident_file", [&](const YAML::Node& n) { ident_file_node = n; }},
            {"maps", [&](const YAML::Node& n) { maps_node = n; }},
            {"hba_file", [&](const YAML::Node& n) { hba_file_node = n; }},
            {"hba", [&](const YAML::Node& n) { hba_node = n; }},
            {"backends",
             [&](const YAML::Node& n) {
               has_backends = true;
               load_backends(n, cfg);
             }},
            {"limits", [&](const YAML::Node& n) { load_limits(n, cfg.limits); }},
            {"proxy_protocol",
             [&](const YAML::Node& n) { load_proxy_protocol(n, cfg.proxy_protocol); }},
            {"tcp_keepalives",
             [&](const YAML::Node& n) { load_keepalives(n, cfg.tcp_keepalives); }},
            {"cancel", [&](const YAML::Node& n) { load_cancel(n, cfg.cancel); }},
            {"admin", [&](const YAML::Node& n) { load_admin(n, cfg.admin); }},
            {"log", [&](const YAML::Node& n) { load_log(n, cfg.log); }},
            {"sni", [&](const YAML::Node& n) { sni_node = n; }},
        });
    if (!root.IsMap()) return;
    require(root, "", "listen", has_listen);
    require(root, "", "tls", has_tls);
    require(root, "", "backends", has_backends);
    load_sni(sni_node, cfg);

    const std::size_t errors_before_maps = errors_.size();
    if (ident_file_node && maps_node) {
      error(*maps_node, "give either ident_file or maps, not both");
    } else if (ident_file_node) {
      PathSetting file;
      if (path(*ident_file_node, "ident_file", file) && errors_.size() == errors_before_maps) {
        cfg.ident_lines = load_ident_file(file.path, loc(*ident_file_node), errors_);
      }
    } else if (maps_node) {
      load_maps(*maps_node, cfg.ident_lines);
    }
    const bool maps_ok = errors_.size() == errors_before_maps;
    const std::string maps_origin = ident_file_node ? "ident_file" : "maps";
    auto map_defined = [&](const std::string& name) {
      return std::any_of(cfg.ident_lines.begin(), cfg.ident_lines.end(),
                         [&](const IdentLine& l) { return l.map == name; });
    };

    if (hba_file_node && hba_node) {
      error(*hba_node, "give either hba_file or hba, not both");
    } else if (hba_file_node) {
      PathSetting file;
      if (path(*hba_file_node, "hba_file", file)) {
        const std::size_t before = errors_.size();
        cfg.hba_rules = load_hba_file(file.path, loc(*hba_file_node), errors_);
        cfg.hba_origin = "hba_file " + file.path;
        if (errors_.size() == before && cfg.hba_rules.empty()) {
          error(*hba_file_node, "hba_file \"" + file.path +
                                    "\" holds no rules, so every connection would be refused");
        }
      }
    } else if (hba_node) {
      load_hba(*hba_node, cfg.hba_rules);
      cfg.hba_origin = "hba";
      if (hba_node->IsSequence() && hba_node->size() == 0) {
        error(*hba_node, "hba holds no rules, so every connection would be refused");
      }
    }
    const bool has_rules = hba_file_node || hba_node;
    if (has_rules && !cfg.map.empty()) {
      error(cfg.map_where, "map applies only when there are no hba rules; write map=" + cfg.map +
                               " on the rules that should use it");
    }
    if (maps_ok && !cfg.map.empty() && !map_defined(cfg.map)) {
      error(cfg.map_where, "map \"" + cfg.map + "\" is not defined in " + maps_origin);
    }
    if (maps_ok) {
      for (const auto& rule : cfg.hba_rules) {
        if (!rule.map.empty() && !map_defined(rule.map)) {
          error(rule.where, "map \"" + rule.map + "\" is not defined in " +
                                (ident_file_node || maps_node ? maps_origin
                                                              : "any ident_file or maps section"));
        }
      }
    }
  }

  void load_tls(const YAML::Node& node, TlsConfig& tls) {
    tls.where = loc(node);
    walk(node, "tls",
         {
             {"cert_file", [&](const YAML::Node& n) { path(n, "tls.cert_file", tls.cert_file); }},
             {"key_file", [&](const YAML::Node& n) { path(n, "tls.key_file", tls.key_file); }},
             {"ca_file", [&](const YAML::Node& n) { path(n, "tls.ca_file", tls.ca_file); }},
             {"crl_file", [&](const YAML::Node& n) { path(n, "tls.crl_file", tls.crl_file); }},
             {"crl_dir", [&](const YAML::Node& n) { path(n, "tls.crl_dir", tls.crl_dir, true); }},
             {"min_protocol_version",
              [&](const YAML::Node& n) {
                protocol_version(n, "tls.min_protocol_version", tls.min_protocol_version);
              }},
             {"max_protocol_version",
              [&](const YAML::Node& n) {
                protocol_version(n, "tls.max_protocol_version", tls.max_protocol_version);
              }},
             {"ciphers", [&](const YAML::Node& n) { string_value(n, "tls.ciphers", tls.ciphers); }},
             {"ciphersuites",
              [&](const YAML::Node& n) { string_value(n, "tls.ciphersuites", tls.ciphersuites); }},
             {"groups", [&](const YAML::Node& n) { string_value(n, "tls.groups", tls.groups); }},
             {"verify_depth",
              [&](const YAML::Node& n) {
                integer(n, "tls.verify_depth", 0, 100, tls.verify_depth);
              }},
             {"session_ticket_lifetime",
              [&](const YAML::Node& n) {
                optional_duration(n, "tls.session_ticket_lifetime", tls.session_ticket_lifetime);
                if (tls.session_ticket_lifetime > std::chrono::hours(24 * 7)) {
                  error(n, "tls.session_ticket_lifetime must be at most 168h (7 days, RFC 8446)");
                }
                if (tls.session_ticket_lifetime.count() % 1000 != 0) {
                  error(n, "tls.session_ticket_lifetime must be whole seconds");
                }
              }},
             {"session_ticket_key_file",
              [&](const YAML::Node& n) {
                if (path(n, "tls.session_ticket_key_file", tls.session_ticket_key_file)) {
                  load_ticket_keys(n, tls);
                }
              }},
         });
    if (!tls.session_ticket_key_file.empty() && tls.session_ticket_lifetime.count() == 0) {
      error(tls.session_ticket_key_file.where,
            "tls.session_ticket_key_file needs tls.session_ticket_lifetime (tickets are off)");
    }
    if (!node.IsMap()) return;
    require(node, "tls", "cert_file", node["cert_file"].IsDefined());
    require(node, "tls", "key_file", node["key_file"].IsDefined());
    require(node, "tls", "ca_file", node["ca_file"].IsDefined());
  }

  // One key per line as 160 hex digits; blank lines and # comments are skipped.
  void load_ticket_keys(const YAML::Node& node, TlsConfig& tls) {
    const std::string& file = tls.session_ticket_key_file.path;
    std::string text;
    if (!read_secret_file(file, text)) {
      error(node, "cannot read tls.session_ticket_key_file \"" + file + "\"");
      return;
    }
    int line_number = 0;
    std::size_t at = 0;
    while (at < text.size()) {
      ++line_number;
      std::size_t end = text.find('\n', at);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + at, end - at);
      at = end + 1;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
        line.remove_suffix(1);
      if (line.empty() || line.front() == '#') continue;
      std::array<std::uint8_t, 80> key{};
      bool ok = line.size() == 2 * key.size();
      for (std::size_t i = 0; ok && i < key.size(); ++i) {
        auto [ptr, ec] = std::from_chars(line.data() + 2 * i, line.data() + 2 * i + 2, key[i], 16);
        ok = ec == std::errc() && ptr == line.data() + 2 * i + 2;
      }
      if (!ok) {
        error(node, "tls.session_ticket_key_file " + file + ":" + std::to_string(line_number) +
                        ": a key is 160 hex digits (openssl rand -hex 80)");
        return;
      }
      for (const auto& other : tls.session_ticket_keys) {
        if (std::equal(other.begin(), other.begin() + 16, key.begin())) {
          error(node, "tls.session_ticket_key_file " + file + ":" + std::to_string(line_number) +
                          ": two keys share a name (the first 16 bytes)");
          return;
        }
      }
      tls.session_ticket_keys.push_back(key);
    }
    if (tls.session_ticket_keys.empty()) {
      error(node, "tls.session_ticket_key_file \"" + file + "\" holds no key");
    }
  }

  void protocol_version(const YAML::Node& node, const std::string& key, std::string& out) {
    auto v = scalar(node, key);
    if (!v) return;
    if (*v != "TLSv1.2" && *v != "TLSv1.3") {
      error(node, key + " must be TLSv1.2 or TLSv1.3, not \"" + *v + "\"");
      return;
    }
    out = *v;
  }

  void load_identity(const YAML::Node& node, IdentityConfig& identity) {
    walk(node, "identity",
         {
             {"source",
              [&](const YAML::Node& n) {
                auto v = scalar(n, "identity.source");
                if (!v) return;
                auto source = parse_identity_source(*v);
                if (!source) {
                  error(n, "identity.source \"" + *v +
                               "\" is not supported (expected cn, dn, san_dns, san_email, "
                               "san_uri or fingerprint)");
                  return;
                }
                identity.source = *source;
              }},
             {"issuer",
              [&](const YAML::Node& n) {
                auto v = scalar(n, "identity.issuer");
                if (v) identity.issuer = *v;
              }},
             {"issuer_fingerprint",
              [&](const YAML::Node& n) {
                auto v = scalar(n, "identity.issuer_fingerprint");
                if (!v) return;
                auto fp = normalize_sha256_fingerprint(*v);
                if (!fp) {
                  error(n,
                        "identity.issuer_fingerprint must be a SHA-256 fingerprint: 64 hex "
                        "digits, colons allowed");
                  return;
                }
                identity.issuer_fingerprint = *fp;
              }},
             {"role_from_certificate",
              [&](const YAML::Node& n) {
                boolean(n, "identity.role_from_certificate", identity.role_from_certificate);
              }},
         });
  }

  void boolean(const YAML::Node& node, const std::string& key, bool& out) {
    auto v = scalar(node, key);
    if (!v) return;
    if (*v == "true" || *v == "yes" || *v == "on") {
      out = true;
    } else if (*v == "false" || *v == "no" || *v == "off") {
      out = false;
    } else {
      error(node, key + " must be true or false, not \"" + *v + "\"");
    }
  }

  // One YAML column value, read with pg_hba.conf's lexical rules so that it means what the same
  // text means in the file ("a,b" is a list, "\"all\"" a database named all).
  std::optional<ConfField> hba_field(const YAML::Node& node, const std::string& key) {
    std::vector<std::string> items;
    if (node.IsSequence()) {
      for (const auto& item : node) {
        auto v = scalar(item, key);
        if (!v) return std::nullopt;
        items.push_back(*v);
      }
    } else if (auto v = scalar(node, key)) {
      items.push_back(*v);
    } else {
      return std::nullopt;
    }
    ConfField field;
    for (const auto& item : items) {
      Diagnostics errs;
      auto lines = parse_conf_text(item, file_, errs, false);
      if (!errs.empty() || lines.size() != 1 || lines[0].fields.size() != 1) {
        error(node, key + " \"" + item + "\" must be one name or a comma-separated list" +
                        (errs.empty() ? "" : ": " + errs[0].message));
        return std::nullopt;
      }
      for (auto& tok : lines[0].fields[0]) {
        tok.column = loc(node).column;
        field.push_back(std::move(tok));
      }
    }
    if (field.empty()) {
      error(node, key + " must not be empty");
      return std::nullopt;
    }
    return field;
  }

  void load_hba(const YAML::Node& node, std::vector<HbaRule>& rules) {
    if (!node.IsSequence()) {
      error(node, "hba must be a list of rules ({type, database, user, address, method, ...})");
      return;
    }
    std::size_t index = 0;
    for (const auto& item : node) {
      const std::string prefix = "hba[" + std::to_string(index++) + "]";
      const std::size_t errors_before = errors_.size();
      HbaRule rule;
      rule.where = loc(item);
      ConfField type{{"hostssl", false, 0}}, databases, users, address{{"all", false, 0}};
      ConfField method{{"cert", false, 0}};
      std::vector<std::pair<std::string, YAML::Node>> options;
      auto field = [&](ConfField& out, const char* key) {
        return [&, key](const YAML::Node& n) {
          if (auto f = hba_field(n, prefix + "." + key)) out = std::move(*f);
        };
      };
      if (!walk(
              item, prefix,
              {
                  {"type", field(type, "type")},
                  {"database", field(databases, "database")},
                  {"user", field(users, "user")},
                  {"address", field(address, "address")},
                  {"method", field(method, "method")},
                  {"map", [&](const YAML::Node& n) { options.emplace_back("map", n); }},
                  {"identity", [&](const YAML::Node& n) { options.emplace_back("identity", n); }},
                  {"issuer", [&](const YAML::Node& n) { options.emplace_back("issuer", n); }},
                  {"issuer_fingerprint",
                   [&](const YAML::Node& n) { options.emplace_back("issuer_fingerprint", n); }},
                  {"role_from_certificate",
                   [&](const YAML::Node& n) { options.emplace_back("role_from_certificate", n); }},
              })) {
        continue;
      }
      if (databases.empty()) error(item, prefix + ".database is required (e.g. all)");
      if (users.empty()) error(item, prefix + ".user is required (e.g. all)");
      if (errors_.size() != errors_before) continue;
      for (const auto* f : {&type, &address, &method}) {
        if (f->size() != 1) error(item, prefix + ": type, address and method take one value");
      }
      if (errors_.size() != errors_before) continue;
      parse_hba_conn_type(type[0], rule.where, rule.type, errors_);
      parse_hba_names(databases, "database", rule.where, rule.databases, errors_);
      parse_hba_names(users, "user", rule.where, rule.users, errors_);
      parse_hba_address(address[0], nullptr, rule.where, rule.address, errors_);
      parse_hba_method(method[0], rule.where, rule.method, errors_);
      if (errors_.size() != errors_before) continue;
      rule.text = std::string(to_string(rule.type)) + " " + join(databases) + " " + join(users) +
                  " " + rule.address.text + " " + std::string(to_string(rule.method));
      for (const auto& [name, n] : options) {
        auto v = scalar(n, prefix + "." + name);
        if (!v) continue;
        if (parse_hba_option(name, *v, loc(n), rule, errors_)) rule.text += " " + name + "=" + *v;
      }
      if (errors_.size() == errors_before) rules.push_back(std::move(rule));
    }
  }

  static std::string join(const ConfField& field) {
    std::string out;
    for (const auto& tok : field)
      out += (out.empty() ? "" : ",") + (tok.quoted ? "\"" + tok.text + "\"" : tok.text);
    return out;
  }

  void load_maps(const YAML::Node& node, std::vector<IdentLine>& lines) {
    if (!node.IsMap()) {
      error(node, "maps must be a mapping from map name to a list of {identity, role} entries");
      return;
    }
    for (const auto& entry : node) {
      const std::string name = entry.first.Scalar();
      const YAML::Node& list = entry.second;
      if (!list.IsSequence()) {
        error(list, "maps." + name + " must be a list of {identity, role} entries");
        continue;
      }
      for (const auto& item : list) {
        IdentLine line;
        line.map = name;
        line.where = loc(item);
        bool has_identity = false;
        bool has_role = false;
        if (!walk(item, "maps." + name + "[]",
                  {
                      {"identity",
                       [&](const YAML::Node& n) {
                         has_identity = scalar(n, "identity").has_value();
                         if (has_identity) line.identity = n.Scalar();
                       }},
                      {"role",
                       [&](const YAML::Node& n) {
                         has_role = scalar(n, "role").has_value();
                         if (has_role) line.role = n.Scalar();
                       }},
                  })) {
          continue;
        }
        if (!has_identity || !has_role) {
          error(item, "a map entry needs both identity and role");
          continue;
        }
        lines.push_back(std::move(line));
      }
    }
  }

  // backends: one backend, or several of which one is named "default" (for clients that name no
  // server, or one no sni: route lists) and the others are reached through sni: routes.
  void load_backends(const YAML::Node& node, Config& cfg) {
    if (!node.IsMap() || node.size() == 0) {
      error(node, "backends must be a mapping of backend names to settings");
      return;
    }
    std::vector<BackendConfig> all;
    for (const auto& entry : node) {
      all.emplace_back();
      load_backend(entry, all.back());
    }
    if (all.size() == 1) {
      cfg.backend = std::move(all.front());
      return;
    }
    auto def = std::find_if(all.begin(), all.end(),
                            [](const BackendConfig& b) { return b.name == "default"; });
    if (def == all.end()) {
      error(node,
            "with several backends, one must be named \"default\" (for clients whose server "
            "name no sni: route lists)");
      return;
    }
    cfg.backend = std::move(*def);
    all.erase(def);
    cfg.sni_backends = std::move(all);
  }

  // sni: [{server_name, cert_file, key_file, backend}], checked against backends: every route
  // names a backend, and every backend but "default" is some route's.
  void load_sni(const std::optional<YAML::Node>& node, Config& cfg) {
    auto known = [&](const std::string& name) {
      if (name == cfg.backend.name) return true;
      for (const auto& b : cfg.sni_backends) {
        if (b.name == name) return true;
      }
      return false;
    };
    if (node) {
      if (!node->IsSequence()) {
        error(*node, "sni must be a list of {server_name, cert_file, key_file, backend}");
        return;
      }
      for (const auto& item : *node) {
        SniRoute route;
        route.where = loc(item);
        bool has_name = false, has_cert = false, has_key = false, has_backend = false;
        walk(
            item, "sni[]",
            {{"server_name",
              [&](const YAML::Node& n) {
                auto v = scalar(n, "sni[].server_name");
                if (!v) return;
                std::string name = *v;
                std::transform(name.begin(), name.end(), name.begin(),
                               [](unsigned char c) { return std::tolower(c); });
                const std::string_view base =
                    name.starts_with("*.") ? std::string_view(name).substr(2) : name;
                if (!is_host_name(base) || base.find('.') == std::string_view::npos ||
                    base.find('*') != std::string_view::npos) {
                  error(n, "sni[].server_name \"" + *v +
                               "\" must be a host name with a dot, or *.domain");
                  return;
                }
                for (const auto& other : cfg.sni) {
                  if (other.server_name == name) {
                    error(n, "sni[].server_name \"" + *v + "\" is listed twice");
                  }
                }
                has_name = true;
                route.server_name = std::move(name);
              }},
             {"cert_file",
              [&](const YAML::Node& n) { has_cert = path(n, "sni[].cert_file", route.cert_file); }},
             {"key_file",
              [&](const YAML::Node& n) { has_key = path(n, "sni[].key_file", route.key_file); }},
             {"backend", [&](const YAML::Node& n) {
                auto v = scalar(n, "sni[].backend");
                if (!v) return;
                has_backend = true;
                if (!known(*v)) {
                  error(n, "sni[].backend \"" + *v + "\" is not a name under backends");
                }
                route.backend = *v;
              }}});
        if (!item.IsMap()) continue;
        require(item, "sni[]", "server_name", has_name);
        require(item, "sni[]", "cert_file", has_cert);
        require(item, "sni[]", "key_file", has_key);
        require(item, "sni[]", "backend", has_backend);
        cfg.sni.push_back(std::move(route));
      }
    }
    for (const auto& b : cfg.sni_backends) {
      const bool used = std::any_of(cfg.sni.begin(), cfg.sni.end(),
                                    [&](const SniRoute& r) { return r.backend == b.name; });
      if (!used) error(b.where, "backends." + b.name + " is not the backend of any sni: route");
    }
  }

  void load_backend(const YAML::detail::iterator_value& entry, BackendConfig& backend) {
    backend.name = entry.first.Scalar();
    backend.where = loc(entry.second);
    const std::string prefix = "backends." + backend.name;
    bool has_host = false;
    std::vector<std::string> host_names;
    std::vector<std::uint16_t> ports{5432};
    std::optional<YAML::Node> host_node, port_node;
    walk(
        entry.second, prefix,
        {
            {"host",
             [&](const YAML::Node& n) {
               has_host = true;
               auto v = scalar(n, prefix + ".host");
               if (!v) return;
               for (const auto& h : split_list(*v)) {
                 if (h.empty()) {
                   error(n, prefix + ".host has an empty entry");
                   return;
                 }
                 host_names.push_back(h);
               }
               host_node = n;
             }},
            {"port",
             [&](const YAML::Node& n) {
               auto v = scalar(n, prefix + ".port");
               if (!v) return;
               ports.clear();
               for (const auto& p : split_list(*v)) {
                 unsigned port = 0;
                 auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
                 if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535) {
                   error(n, prefix +
                                ".port must be a port number from 1 to 65535 (or a comma "
                                "list of them), not \"" +
                                *v + "\"");
                   return;
                 }
                 ports.push_back(static_cast<std::uint16_t>(port));
               }
               port_node = n;
             }},
            {"target_session_attrs",
             [&](const YAML::Node& n) {
               auto v = scalar(n, prefix + ".target_session_attrs");
               if (!v) return;
               for (auto a : {TargetSessionAttrs::any, TargetSessionAttrs::read_write,
                              TargetSessionAttrs::read_only, TargetSessionAttrs::primary,
                              TargetSessionAttrs::standby, TargetSessionAttrs::prefer_standby}) {
                 if (*v == to_string(a)) {
                   backend.target_session_attrs = a;
                   return;
                 }
               }
               error(n, prefix +
                            ".target_session_attrs must be any, read-write, read-only, "
                            "primary, standby or prefer-standby, not \"" +
                            *v + "\"");
             }},
            {"connect_timeout",
             [&](const YAML::Node& n) {
               duration(n, prefix + ".connect_timeout", backend.connect_timeout);
             }},
            {"sslmode",
             [&](const YAML::Node& n) {
               auto v = scalar(n, prefix + ".sslmode");
               if (!v) return;
               auto mode = parse_sslmode(*v);
               if (!mode) {
                 error(n, prefix +
                              ".sslmode must be disable, prefer, require, verify-ca or "
                              "verify-full, not \"" +
                              *v + "\"");
                 return;
               }
               backend.tls.sslmode = *mode;
             }},
            {"sslrootcert",
             [&](const YAML::Node& n) {
               if (n.IsScalar() && n.Scalar() == "system") {
                 backend.tls.system_roots = true;
               } else {
                 path(n, prefix + ".sslrootcert", backend.tls.sslrootcert);
               }
             }},
            {"sslcert",
             [&](const YAML::Node& n) { path(n, prefix + ".sslcert", backend.tls.sslcert); }},
            {"sslkey",
             [&](const YAML::Node& n) { path(n, prefix + ".sslkey", backend.tls.sslkey); }},
            {"ssl_min_protocol_version",
             [&](const YAML::Node& n) {
               protocol_version(n, prefix + ".ssl_min_protocol_version",
                                backend.tls.ssl_min_protocol_version);
             }},
            {"sslsni",
             [&](const YAML::Node& n) { boolean(n, prefix + ".sslsni", backend.tls.sslsni); }},
            {"allow_cleartext_password_without_tls",
             [&](const YAML::Node& n) {
               boolean(n, prefix + ".allow_cleartext_password_without_tls",
                       backend.allow_cleartext_password_without_tls);
             }},
            {"pool_mode",
             [&](const YAML::Node& n) {
               auto v = scalar(n, prefix + ".pool_mode");
               if (!v) return;
               if (*v == "none") {
                 backend.pool.mode = PoolMode::none;
               } else if (*v == "session") {
                 backend.pool.mode = PoolMode::session;
               } else if (*v == "transaction") {
                 backend.pool.mode = PoolMode::transaction;
               } else {
                 error(n, prefix + ".pool_mode must be none, session or transaction, not \"" + *v +
                              "\"");
               }
             }},
            {"pool_size",
             [&](const YAML::Node& n) {
               integer(n, prefix + ".pool_size", 1u, 100000u, backend.pool.pool_size);
             }},
            {"query_wait_timeout",
             [&](const YAML::Node& n) {
               duration(n, prefix + ".query_wait_timeout", backend.pool.query_wait_timeout);
             }},
            {"max_prepared_statements",
             [&](const YAML::Node& n) {
               integer(n, prefix + ".max_prepared_statements", 1u, 100000u,
                       backend.pool.max_prepared_statements);
             }},
            {"server_idle_timeout",
             [&](const YAML::Node& n) {
               duration(n, prefix + ".server_idle_timeout", backend.pool.server_idle_timeout);
             }},
            {"server_lifetime",
             [&](const YAML::Node& n) {
               duration(n, prefix + ".server_lifetime", backend.pool.server_lifetime);
             }},
            {"server_reset_query",
             [&](const YAML::Node& n) {
               string_value(n, prefix + ".server_reset_query", backend.pool.server_reset_query);
             }},
            {"auth",
             [&](const YAML::Node& n) { load_credential(n, prefix + ".auth", backend.auth); }},
            {"roles",
             [&](const YAML::Node& n) {
               if (!n.IsMap()) {
                 error(n, prefix + ".roles must map role names to {auth: ...}");
                 return;
               }
               for (const auto& role : n) {
                 const std::string name = role.first.Scalar();
                 const std::string role_prefix = prefix + ".roles." + name;
                 CredentialConfig& credential = backend.roles[name];
                 walk(role.second, role_prefix, {{"auth", [&](const YAML::Node& a) {
                                                    load_credential(a, role_prefix + ".auth",
                                                                    credential);
                                                  }}});
               }
             }},
        });
    if (backend.pool.mode != PoolMode::none &&
        backend.target_session_attrs != TargetSessionAttrs::any) {
      // A pooled connection's server may have been promoted or demoted since it was checked.
      error(entry.second, prefix + ": pool_mode " + std::string(to_string(backend.pool.mode)) +
                              " needs target_session_attrs any");
    }
    const auto& tls = backend.tls;
    if ((tls.sslmode == SslMode::verify_ca || tls.sslmode == SslMode::verify_full) &&
        tls.sslrootcert.empty() && !tls.system_roots) {
      error(entry.second, prefix + ".sslmode " + std::string(to_string(tls.sslmode)) +
                              " needs sslrootcert: a CA bundle file (such as RDS's "
                              "global-bundle.pem), or \"system\" for the system's trust store");
    }
    if (tls.sslcert.empty() != tls.sslkey.empty()) {
      error(entry.second, prefix + ": sslcert and sslkey go together");
    }
    // An IAM token is a bearer credential sent as a cleartext password: only to a verified RDS.
    auto uses_iam = [](const CredentialConfig& c) {
      return c.kind == CredentialConfig::Kind::aws_iam;
    };
    bool any_iam = uses_iam(backend.auth);
    for (const auto& [role, c] : backend.roles)
      any_iam = any_iam || uses_iam(c);
    if (any_iam && tls.sslmode != SslMode::verify_full) {
      error(entry.second, prefix +
                              ": aws_iam sends the token as a password, so it needs "
                              "sslmode: verify-full (and sslrootcert: RDS's "
                              "global-bundle.pem)");
    }
    if (entry.second.IsMap()) require(entry.second, prefix, "host", has_host);
    if (!host_names.empty()) {
      if (ports.size() != 1 && ports.size() != host_names.size()) {
        error(port_node ? *port_node : entry.second,
              prefix + ".port lists " + std::to_string(ports.size()) + " ports for " +
                  std::to_string(host_names.size()) + " hosts (give one port, or one per host)");
        return;
      }
      for (std::size_t i = 0; i < host_names.size(); ++i)
        backend.hosts.push_back({host_names[i], ports.size() == 1 ? ports[0] : ports[i]});
      backend.host = backend.hosts.front().host;
      backend.port = backend.hosts.front().port;
    }
  }

  // "a, b,c" -> {"a", "b", "c"}: entries trimmed of spaces.
  static std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = text.find(',', start);
      std::string item =
          text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      const auto first = item.find_first_not_of(" \t");
      const auto last = item.find_last_not_of(" \t");
      out.push_back(first == std::string::npos ? "" : item.substr(first, last - first + 1));
      if (comma == std::string::npos) return out;
      start = comma + 1;
    }
  }

  // One credential source: password_file, password_env, passfile or command.
  void load_credential(const YAML::Node& node, const std::string& key, CredentialConfig& out) {
    out.where = loc(node);
    int sources = 0;
    walk(node, key,
         {
             {"password_file",
              [&](const YAML::Node& n) {
                ++sources;
                PathSetting file;
                if (!path(n, key + ".password_file", file)) return;
                std::string text;
                if (!read_secret_file(file.path, text)) {
                  error(n, "cannot read " + key + ".password_file \"" + file.path +
                               "\": " + std::strerror(errno));
                  return;
                }
                // One trailing newline is the file's, not the password's.
                if (text.ends_with('\n')) text.pop_back();
                if (text.ends_with('\r')) text.pop_back();
                if (text.empty()) error(n, key + ".password_file \"" + file.path + "\" is empty");
                out.kind = CredentialConfig::Kind::password;
                out.password = std::move(text);
                out.origin = "password_file " + file.path;
              }},
             {"password_env",
              [&](const YAML::Node& n) {
                ++sources;
                auto v = scalar(n, key + ".password_env");
                if (!v) return;
                const char* value = std::getenv(v->c_str());
                if (value == nullptr || *value == '\0') {
                  error(n, key + ".password_env: the environment variable " + *v +
                               " is not set or empty");
                  return;
                }
                out.kind = CredentialConfig::Kind::password;
                out.password = value;
                out.origin = "password_env " + *v;
              }},
             {"passfile",
              [&](const YAML::Node& n) {
                ++sources;
                PathSetting file;
                if (!path(n, key + ".passfile", file)) return;
                struct stat st {};
                if (::stat(file.path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
                  error(n, key + ".passfile \"" + file.path +
                               "\" has group or world access; permissions should be u=rw "
                               "(0600) or less");
                  return;
                }
                std::string text;
                if (!read_secret_file(file.path, text)) {
                  error(n, "cannot read " + key + ".passfile \"" + file.path +
                               "\": " + std::strerror(errno));
                  return;
                }
                out.kind = CredentialConfig::Kind::passfile;
                out.passfile = parse_passfile(text, file.path, errors_);
                out.origin = "passfile " + file.path;
              }},
             {"command",
              [&](const YAML::Node& n) {
                ++sources;
                out.command.clear();
                if (n.IsScalar()) {
                  out.command.push_back(n.Scalar());
                } else if (n.IsSequence()) {
                  for (const auto& arg : n) {
                    if (auto v = scalar(arg, key + ".command")) out.command.push_back(*v);
                  }
                }
                if (out.command.empty() || out.command.front().empty() ||
                    out.command.front().front() != '/') {
                  error(n, key +
                               ".command must be a list [\"/absolute/program\", \"arg\", ...] "
                               "(no shell is involved)");
                  return;
                }
                if (::access(out.command.front().c_str(), X_OK) != 0) {
                  error(n, "cannot run " + key + ".command \"" + out.command.front() +
                               "\": " + std::strerror(errno));
                  return;
                }
                out.kind = CredentialConfig::Kind::command;
                out.origin = "command " + out.command.front();
              }},
             {"aws_iam",
              [&](const YAML::Node& n) {
                ++sources;
                out.kind = CredentialConfig::Kind::aws_iam;
                out.origin = "aws_iam";
                if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "{}")) return;
                walk(n, key + ".aws_iam",
                     {
                         {"region",
                          [&](const YAML::Node& v) {
                            string_value(v, key + ".aws_iam.region", out.aws_region);
                          }},
                         {"profile",
                          [&](const YAML::Node& v) {
                            string_value(v, key + ".aws_iam.profile", out.aws_profile);
                          }},
                         {"token_reuse",
                          [&](const YAML::Node& v) {
                            duration(v, key + ".aws_iam.token_reuse", out.token_reuse);
                            if (out.token_reuse > std::chrono::minutes(14)) {
                              error(v, key +
                                           ".aws_iam.token_reuse must be at most 14m: an RDS "
                                           "token is valid for 15 minutes");
                            }
                          }},
                     });
              }},
             {"ttl", [&](const YAML::Node& n) { duration(n, key + ".ttl", out.ttl); }},
             {"timeout", [&](const YAML::Node& n) { duration(n, key + ".timeout", out.timeout); }},
         });
    if (node.IsMap() && sources != 1) {
      error(node,
            key + " needs exactly one of password_file, password_env, passfile, command, aws_iam");
    }
    if (node.IsMap() && out.kind != CredentialConfig::Kind::command &&
        (node["ttl"].IsDefined() || node["timeout"].IsDefined())) {
      error(node, key + ": ttl and timeout apply only to command");
    }
  }

  static bool read_secret_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream buf;
    buf << in.rdbuf();
    out = buf.str();
    return true;
  }

  static std::optional<SslMode> parse_sslmode(const std::string& text) {
    for (auto mode : {SslMode::disable, SslMode::prefer, SslMode::require, SslMode::verify_ca,
                      SslMode::verify_full}) {
      if (text == to_string(mode)) return mode;
    }
    return std::nullopt;
  }

  // The files and directories the path settings named, in the order read.
  std::vector<std::string> take_files() { return std::move(files_); }

  void load_proxy_protocol(const YAML::Node& node, ProxyProtocolConfig& proxy) {
    proxy.where = loc(node);
    walk(node, "proxy_protocol", {{"trusted_sources", [&](const YAML::Node& n) {
                                     if (!n.IsSequence() || n.size() == 0) {
                                       error(n,
                                             "proxy_protocol.trusted_sources must be a list of "
                                             "addresses such as 10.0.0.0/8 or samenet");
                                       return;
                                     }
                                     for (const auto& item : n) {
                                       auto v = scalar(item, "proxy_protocol.trusted_sources[]");
                                       if (!v) continue;
                                       HbaAddress address;
                                       if (parse_hba_address(ConfToken{*v, false, 1}, nullptr,
                                                             loc(item), address, errors_)) {
                                         proxy.trusted_sources.push_back(std::move(address));
                                       }
                                     }
                                   }}});
  }

  void load_limits(const YAML::Node& node, LimitsConfig& limits) {
    const unsigned kMax = 10'000'000;
    walk(node, "limits",
         {{"max_client_connections",
           [&](const YAML::Node& n) {
             integer(n, "limits.max_client_connections", 0u, kMax, limits.max_client_connections);
           }},
          {"per_role",
           [&](const YAML::Node& n) { integer(n, "limits.per_role", 0u, kMax, limits.per_role); }},
          {"per_identity",
           [&](const YAML::Node& n) {
             integer(n, "limits.per_identity", 0u, kMax, limits.per_identity);
           }},
          {"max_handshakes",
           [&](const YAML::Node& n) {
             integer(n, "limits.max_handshakes", 1u, kMax, limits.max_handshakes);
           }},
          {"failed_handshakes", [&](const YAML::Node& n) {
             walk(n, "limits.failed_handshakes",
                  {{"max",
                    [&](const YAML::Node& v) {
                      integer(v, "limits.failed_handshakes.max", 0u, kMax,
                              limits.failed_handshakes);
                    }},
                   {"window",
                    [&](const YAML::Node& v) {
                      duration(v, "limits.failed_handshakes.window", limits.failed_window);
                    }},
                   {"block", [&](const YAML::Node& v) {
                      duration(v, "limits.failed_handshakes.block", limits.failed_block);
                    }}});
           }}});
  }

  void load_keepalives(const YAML::Node& node, KeepaliveConfig& keepalives) {
    walk(node, "tcp_keepalives",
         {{"idle",
           [&](const YAML::Node& n) {
             optional_duration(n, "tcp_keepalives.idle", keepalives.idle);
           }},
          {"interval",
           [&](const YAML::Node& n) {
             duration(n, "tcp_keepalives.interval", keepalives.interval);
           }},
          {"count", [&](const YAML::Node& n) {
             integer(n, "tcp_keepalives.count", 1u, 1000u, keepalives.count);
           }}});
  }

  void load_cancel(const YAML::Node& node, CancelConfig& cancel) {
    std::optional<YAML::Node> peers_node;
    walk(node, "cancel",
         {{"instance_id",
           [&](const YAML::Node& n) {
             integer(n, "cancel.instance_id", 0u, 255u, cancel.instance_id);
           }},
          {"peer_secret_file",
           [&](const YAML::Node& n) {
             PathSetting file;
             if (!path(n, "cancel.peer_secret_file", file)) return;
             std::string secret;
             if (!read_secret_file(file.path, secret)) {
               error(n, "cannot read cancel.peer_secret_file \"" + file.path + "\"");
               return;
             }
             while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
               secret.pop_back();
             if (secret.size() < 32) {
               error(n, "cancel.peer_secret_file \"" + file.path +
                            "\" must hold at least 32 bytes (e.g. openssl rand -hex 32)");
               return;
             }
             cancel.peer_secret = std::move(secret);
           }},
          {"peers", [&](const YAML::Node& n) { peers_node = n; }}});
    if (!peers_node) return;
    if (!peers_node->IsSequence()) {
      error(*peers_node, "cancel.peers must be a list of {id, address}");
      return;
    }
    for (const auto& item : *peers_node) {
      PeerConfig peer;
      bool has_id = false, has_address = false;
      walk(item, "cancel.peers[]",
           {{"id",
             [&](const YAML::Node& n) {
               has_id = true;
               integer(n, "cancel.peers[].id", 0u, 255u, peer.id);
             }},
            {"address", [&](const YAML::Node& n) {
               auto v = scalar(n, "cancel.peers[].address");
               if (!v) return;
               std::string why;
               auto addr = parse_host_port(*v, true, why);
               if (!addr || addr->port == 0) {
                 has_address = true;  // present, if wrong: one message is enough
                 error(n, "invalid cancel.peers[].address \"" + *v +
                              "\": " + (addr ? "the port must not be 0" : why));
                 return;
               }
               has_address = true;
               addr->where = loc(n);
               peer.address = *addr;
             }}});
      if (!item.IsMap()) continue;
      require(item, "cancel.peers[]", "id", has_id);
      require(item, "cancel.peers[]", "address", has_address);
      if (has_id && peer.id == cancel.instance_id) {
        error(item, "cancel.peers[] has id " + std::to_string(peer.id) +
                        ", which is this instance's own cancel.instance_id");
      }
      for (const auto& other : cancel.peers) {
        if (has_id && other.id == peer.id)
          error(item, "cancel.peers[] lists id " + std::to_string(peer.id) + " twice");
      }
      cancel.peers.push_back(peer);
    }
    if (!cancel.peers.empty() && cancel.peer_secret.empty()) {
      error(*peers_node,
            "cancel.peers needs cancel.peer_secret_file: forwarded cancels are signed");
    }
  }

  void load_admin(const YAML::Node& node, AdminConfig& admin) {
    walk(node, "admin",
         {{"listen",
           [&](const YAML::Node& n) {
             auto v = scalar(n, "admin.listen");
             if (!v) return;
             std::string why;
             auto addr = parse_listen_address(*v, why);
             if (!addr) {
               error(n, "invalid admin.listen address \"" + *v + "\": " + why);
               return;
             }
             addr->where = loc(n);
             admin.listen = *addr;
           }},
          {"tls", [&](const YAML::Node& n) {
             walk(n, "admin.tls",
                  {{"cert_file",
                    [&](const YAML::Node& v) { path(v, "admin.tls.cert_file", admin.cert_file); }},
                   {"key_file",
                    [&](const YAML::Node& v) { path(v, "admin.tls.key_file", admin.key_file); }},
                   {"ca_file",
                    [&](const YAML::Node& v) { path(v, "admin.tls.ca_file", admin.ca_file); }}});
             if (n.IsMap() && (admin.cert_file.empty() || admin.key_file.empty())) {
               error(n, "admin.tls needs cert_file and key_file");
             }
           }}});
  }

  void load_log(const YAML::Node& node, LogConfig& log) {
    walk(node, "log",
         {{"level",
           [&](const YAML::Node& n) {
             auto v = scalar(n, "log.level");
             if (!v) return;
             if (std::find(std::begin(kLogLevels), std::end(kLogLevels), *v) ==
                 std::end(kLogLevels)) {
               error(n,
                     "log.level must be one of trace, debug, info, warn, error, critical, off; "
                     "not \"" +
                         *v + "\"");
               return;
             }
             log.level = *v;
           }},
          {"format", [&](const YAML::Node& n) {
             auto v = scalar(n, "log.format");
             if (!v) return;
             if (*v != "text" && *v != "json") {
               error(n, "log.format must be text or json, not \"" + *v + "\"");
               return;
             }
             log.json = *v == "json";
           }}});
  }

 private:
  std::string file_;
  std::string base_dir_;
  Diagnostics& errors_;
  std::vector<std::string> files_;  // every path setting that was read
};

}  // namespace

std::string_view to_string(SslMode mode) {
  switch (mode) {
    case SslMode::disable:
      return "disable";
    case SslMode::prefer:
      return "prefer";
    case SslMode::require:
      return "require";
    case SslMode::verify_ca:
      return "verify-ca";
    case SslMode::verify_full:
      return "verify-full";
  }
  return "?";
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0 || digits > 9) return std::nullopt;
  long long value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  const std::string_view unit = text.substr(digits);
  if (unit.empty() || unit == "s") return std::chrono::seconds(value);
  if (unit == "ms") return std::chrono::milliseconds(value);
  if (unit == "m" || unit == "min") return std::chrono::minutes(value);
  if (unit == "h") return std::chrono::hours(value);
  return std::nullopt;
}

std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string& error) {
  return parse_host_port(text, false, error);
}

std::optional<ListenAddress> parse_host_port(std::string_view text, bool allow_names,
                                             std::string& error) {
  std::string host;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "expected [IPv6]:port";
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      error = "\"" + host + "\" is not an IPv6 address";
      return std::nullopt;
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = "expected host:port";
      return std::nullopt;
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1 && !(allow_names && is_host_name(host))) {
      error = "\"" + host + "\" is not an IPv4 address" +
              (allow_names ? std::string(" or a host name") : std::string()) +
              " (write IPv6 as [addr]:port)";
      return std::nullopt;
    }
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port > 65535) {
    error = "port must be a number from 0 to 65535";
    return std::nullopt;
  }
  ListenAddress addr;
  addr.host = std::move(host);
  addr.port = static_cast<std::uint16_t>(port);
  return addr;
}

LoadResult load_config_text(std::string_view yaml, const std::string& name,
                            const std::string& base_dir) {
  LoadResult result;
  Config cfg;
  cfg.source = name;
  Loader loader(name, base_dir, result.errors);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    Location where{name, e.mark.is_null() ? 0 : e.mark.line + 1,
                   e.mark.is_null() ? 0 : e.mark.column + 1};
    result.errors.push_back({where, "invalid YAML: " + e.msg});
    return result;
  }
  if (!root || root.IsNull()) {
    result.errors.push_back({{name, 0, 0}, "the config is empty"});
    return result;
  }
  try {
    loader.load(root, cfg);
  } catch (const YAML::Exception& e) {
    result.errors.push_back({loader.loc(root), std::string("invalid config: ") + e.what()});
  }
  cfg.files = loader.take_files();
  if (result.errors.empty()) result.config = std::move(cfg);
  return result;
}

LoadResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back(
        {{path, 0, 0}, std::string("cannot read config: ") + std::strerror(errno)});
    return result;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string base = std::filesystem::path(path).parent_path().string();
  LoadResult result = load_config_text(buf.str(), path, base);
  if (result.config) result.config->files.insert(result.config->files.begin(), path);
  return result;
}

std::string_view to_string(PoolMode mode) {
  switch (mode) {
    case PoolMode::none:
      return "none";
    case PoolMode::session:
      return "session";
    case PoolMode::transaction:
      return "transaction";
  }
  return "?";
}

std::string_view to_string(TargetSessionAttrs attrs) {
  switch (attrs) {
    case TargetSessionAttrs::any:
      return "any";
    case TargetSessionAttrs::read_write:
      return "read-write";
    case TargetSessionAttrs::read_only:
      return "read-only";
    case TargetSessionAttrs::primary:
      return "primary";
    case TargetSessionAttrs::standby:
      return "standby";
    case TargetSessionAttrs::prefer_standby:
      return "prefer-standby";
  }
  return "any";
}

std::string_view to_string(CertificateEventAction action) {
  return action == CertificateEventAction::terminate ? "terminate" : "keep";
}

}  // namespace pgmtls::config
