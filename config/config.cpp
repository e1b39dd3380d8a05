#include "config/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace pgmtls::config {

namespace {

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

  std::string resolve(const std::string& path) const {
    if (path.empty() || path.front() == '/' || base_dir_.empty()) return path;
    return (std::filesystem::path(base_dir_) / path).lexically_normal().string();
  }

  // A readable regular file (or directory, when `directory`), resolved against the config's folder.
  void path(const YAML::Node& node, const std::string& key, PathSetting& out,
            bool directory = false) {
    auto v = scalar(node, key);
    if (!v) return;
    out.where = loc(node);
    if (v->empty()) {
      error(node, key + " must not be empty");
      return;
    }
    out.path = resolve(*v);
    struct stat st {};
    if (::stat(out.path.c_str(), &st) != 0 || ::access(out.path.c_str(), R_OK) != 0) {
      error(node, "cannot read " + key + " \"" + out.path + "\": " + std::strerror(errno));
      return;
    }
    if (directory && !S_ISDIR(st.st_mode)) {
      error(node, key + " \"" + out.path + "\" is not a directory");
    } else if (!directory && !S_ISREG(st.st_mode)) {
      error(node, key + " \"" + out.path + "\" is not a regular file");
    }
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
    std::optional<YAML::Node> ident_file_node;
    std::optional<YAML::Node> maps_node;
    walk(root, "",
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
             {"tls",
              [&](const YAML::Node& n) {
                has_tls = true;
                load_tls(n, cfg.tls);
              }},
             {"identity", [&](const YAML::Node& n) { load_identity(n, cfg); }},
             {"map",
              [&](const YAML::Node& n) {
                string_value(n, "map", cfg.map);
                cfg.map_where = loc(n);
              }},
             {"ident_file", [&](const YAML::Node& n) { ident_file_node = n; }},
             {"maps", [&](const YAML::Node& n) { maps_node = n; }},
             {"backends",
              [&](const YAML::Node& n) {
                has_backends = true;
                load_backends(n, cfg.backend);
              }},
             {"log", [&](const YAML::Node& n) { load_log(n, cfg.log); }},
         });
    if (!root.IsMap()) return;
    require(root, "", "listen", has_listen);
    require(root, "", "tls", has_tls);
    require(root, "", "backends", has_backends);

    const std::size_t errors_before_maps = errors_.size();
    if (ident_file_node && maps_node) {
      error(*maps_node, "give either ident_file or maps, not both");
    } else if (ident_file_node) {
      PathSetting file;
      path(*ident_file_node, "ident_file", file);
      if (!file.empty() && errors_.size() == errors_before_maps) {
        cfg.ident_lines = load_ident_file(file.path, loc(*ident_file_node), errors_);
      }
    } else if (maps_node) {
      load_maps(*maps_node, cfg.ident_lines);
    }
    if (!cfg.map.empty() && errors_.size() == errors_before_maps) {
      const bool defined = std::any_of(cfg.ident_lines.begin(), cfg.ident_lines.end(),
                                       [&](const IdentLine& l) { return l.map == cfg.map; });
      if (!defined) {
        error(cfg.map_where, "map \"" + cfg.map + "\" is not defined in " +
                                 (ident_file_node ? "ident_file" : "maps"));
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
         });
    if (!node.IsMap()) return;
    require(node, "tls", "cert_file", node["cert_file"].IsDefined());
    require(node, "tls", "key_file", node["key_file"].IsDefined());
    require(node, "tls", "ca_file", node["ca_file"].IsDefined());
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

  void load_identity(const YAML::Node& node, Config& cfg) {
    walk(node, "identity",
         {{"source", [&](const YAML::Node& n) {
             auto v = scalar(n, "identity.source");
             if (!v) return;
             if (*v != "cn") {
               error(n, "identity.source \"" + *v + "\" is not supported (supported: cn)");
               return;
             }
             cfg.identity_source = *v;
           }}});
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

  void load_backends(const YAML::Node& node, BackendConfig& backend) {
    if (!node.IsMap() || node.size() != 1) {
      error(node,
            "backends must be a mapping with exactly one backend (routing between several "
            "backends is not supported yet)");
      return;
    }
    const auto entry = *node.begin();
    backend.name = entry.first.Scalar();
    backend.where = loc(entry.second);
    const std::string prefix = "backends." + backend.name;
    bool has_host = false;
    walk(entry.second, prefix,
         {
             {"host",
              [&](const YAML::Node& n) {
                has_host = true;
                string_value(n, prefix + ".host", backend.host);
                if (backend.host.empty()) error(n, prefix + ".host must not be empty");
              }},
             {"port",
              [&](const YAML::Node& n) {
                integer(n, prefix + ".port", std::uint16_t{1}, std::uint16_t{65535}, backend.port);
              }},
             {"connect_timeout",
              [&](const YAML::Node& n) {
                duration(n, prefix + ".connect_timeout", backend.connect_timeout);
              }},
             {"sslmode",
              [&](const YAML::Node& n) {
                auto v = scalar(n, prefix + ".sslmode");
                if (v && *v != "disable") {
                  error(n, prefix + ".sslmode \"" + *v +
                               "\" is not supported yet (this version connects to backends over "
                               "plain TCP: sslmode: disable)");
                }
              }},
         });
    if (entry.second.IsMap()) require(entry.second, prefix, "host", has_host);
  }

  void load_log(const YAML::Node& node, LogConfig& log) {
    walk(node, "log", {{"level", [&](const YAML::Node& n) {
                          auto v = scalar(n, "log.level");
                          if (!v) return;
                          if (std::find(std::begin(kLogLevels), std::end(kLogLevels), *v) ==
                              std::end(kLogLevels)) {
                            error(n,
                                  "log.level must be one of trace, debug, info, warn, error, "
                                  "critical, off; not \"" +
                                      *v + "\"");
                            return;
                          }
                          log.level = *v;
                        }}});
  }

 private:
  std::string file_;
  std::string base_dir_;
  Diagnostics& errors_;
};

}  // namespace

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
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1) {
      error = "\"" + host + "\" is not an IPv4 address (write IPv6 as [addr]:port)";
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
  return load_config_text(buf.str(), path, base);
}

}  // namespace pgmtls::config
