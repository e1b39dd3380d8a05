// pgmtls: an mTLS-terminating connection proxy for PostgreSQL.
//   pgmtls run --config FILE     serve
//   pgmtls check --config FILE   validate the config and everything it names, then exit
//   pgmtls map-test --config FILE --cert CERT --user ROLE [--database DB] [--address IP]
//   pgmtls iam-token --host H [--port P] [--region R] --user U [--profile NAME]
//   pgmtls pki COMMAND ...       a small CA (proxy/pki_command.h)

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <map>

#include "config/config.h"
#include "proxy/iam_token.h"
#include "proxy/logging.h"
#include "proxy/map_test.h"
#include "proxy/pki_command.h"
#include "proxy/server.h"
#include "proxy/snapshot.h"

namespace {

using namespace pgmtls;

constexpr const char* kUsage =
    "usage: pgmtls run --config FILE     serve connections\n"
    "       pgmtls check --config FILE   validate the configuration and exit\n"
    "       pgmtls map-test --config FILE --cert CLIENT.crt --user ROLE [--database DB]\n"
    "                       [--address IP]   explain whether a certificate may connect\n"
    "       pgmtls iam-token --host HOST [--port 5432] [--region R] --user ROLE [--profile P]\n"
    "                                    print an RDS IAM auth token\n"
    "       pgmtls pki COMMAND ...       a small CA: init-ca, issue-server, issue-client,\n"
    "                                    revoke, crl, inspect, expiry (pgmtls pki --help)\n"
    "       pgmtls --version\n";

void print_errors(const config::Diagnostics& errors) {
  for (const auto& e : errors)
    std::fprintf(stderr, "%s\n", e.str().c_str());
}

// Loads the config and builds a snapshot from it; prints every problem and returns null on error.
std::shared_ptr<const proxy::Snapshot> load(const std::string& path) {
  auto loaded = config::load_config_file(path);
  if (!loaded.ok()) {
    print_errors(loaded.errors);
    return nullptr;
  }
  config::Diagnostics errors;
  auto snapshot = proxy::build_snapshot(std::move(*loaded.config), errors);
  if (!snapshot) print_errors(errors);
  return snapshot;
}

int check(const std::string& path) {
  auto snap = load(path);
  if (!snap) {
    std::fprintf(stderr, "%s: configuration is invalid\n", path.c_str());
    return 1;
  }
  const auto& cfg = snap->config;
  std::printf("%s: configuration is valid\n", path.c_str());
  std::printf("  listen            %s:%u (%s)\n", cfg.listen.host.c_str(), cfg.listen.port,
              cfg.workers == 0 ? "one worker per core"
                               : (std::to_string(cfg.workers) + " workers").c_str());
  std::printf("  server cert       %s\n", snap->server_subject.c_str());
  std::printf("  client CAs        %s, %d CRL(s)\n", cfg.tls.ca_file.path.c_str(), snap->crl_count);
  if (cfg.hba_rules.empty()) {
    std::printf(
        "  access            every client, identity %s, %s\n",
        std::string(config::to_string(cfg.identity.source)).c_str(),
        cfg.map.empty() ? "must equal the requested role" : ("map \"" + cfg.map + "\"").c_str());
  } else {
    std::printf("  access            %zu rule(s) from %s, default identity %s\n",
                cfg.hba_rules.size(), cfg.hba_origin.c_str(),
                std::string(config::to_string(cfg.identity.source)).c_str());
  }
  std::printf("  map lines         %zu\n", cfg.ident_lines.size());
  std::printf("  backend           %s:%u (sslmode %s)\n", cfg.backend.host.c_str(),
              cfg.backend.port, std::string(config::to_string(cfg.backend.tls.sslmode)).c_str());
  for (const auto& route : cfg.sni) {
    const config::BackendConfig* b = &cfg.backend;
    for (const auto& other : cfg.sni_backends) {
      if (other.name == route.backend) b = &other;
    }
    std::printf("  server name       %s -> backends.%s (%s:%u)\n", route.server_name.c_str(),
                route.backend.c_str(), b->host.c_str(), b->port);
  }
  return 0;
}

int run(const std::string& path) {
  // Log at info until the config says otherwise, so load errors are visible.
  auto snap = load(path);
  if (!snap) return 1;
  pgmtls::proxy::setup_logging(snap->config.log.level, snap->config.log.json
                                                           ? proxy::LogFormat::json
                                                           : proxy::LogFormat::text);
  std::signal(SIGPIPE, SIG_IGN);

  // Reloads read the same file again, with the same checks as start-up.
  auto loader = [path](std::string& errors) -> std::shared_ptr<const proxy::Snapshot> {
    auto loaded = config::load_config_file(path);
    config::Diagnostics diagnostics = std::move(loaded.errors);
    std::shared_ptr<const proxy::Snapshot> next;
    if (loaded.config && diagnostics.empty())
      next = proxy::build_snapshot(std::move(*loaded.config), diagnostics);
    for (const auto& d : diagnostics)
      errors += (errors.empty() ? "" : "; ") + d.str();
    return next;
  };
  proxy::Server server(snap, loader);
  std::string error;
  if (!server.bind(error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  spdlog::info("listening on {} with {} workers", server.local_address(), server.worker_count());
  return server.run();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 &&
      (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "version") == 0)) {
    std::printf("pgmtls %s\n", PGMTLS_VERSION);
    return 0;
  }
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string_view command = argv[1];
  if (command == "pki") return proxy::run_pki(argc - 2, argv + 2);
  std::map<std::string, std::string, std::less<>> options;
  for (int i = 2; i < argc; i += 2) {
    const std::string_view name = argv[i];
    if (!name.starts_with("--") || i + 1 >= argc) {
      std::fprintf(stderr, "pgmtls: expected --option VALUE, got \"%s\"\n", argv[i]);
      std::fputs(kUsage, stderr);
      return 2;
    }
    options[std::string(name.substr(2))] = argv[i + 1];
  }
  auto allowed = [&](std::initializer_list<std::string_view> names) {
    for (const auto& [name, value] : options) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        std::fprintf(stderr, "pgmtls %s: unknown option --%s\n", argv[1], name.c_str());
        return false;
      }
    }
    for (const auto name : names) {
      const bool required = (name == "config" && command != "iam-token") ||
                            (command == "map-test" && (name == "cert" || name == "user")) ||
                            (command == "iam-token" && (name == "host" || name == "user"));
      if (required) {
        if (!options.contains(name)) {
          std::fprintf(stderr, "pgmtls %s: --%s is required\n", argv[1], std::string(name).c_str());
          return false;
        }
      }
    }
    return true;
  };
  try {
    if (command == "check" || command == "run") {
      if (!allowed({"config"})) return 2;
      return command == "check" ? check(options["config"]) : run(options["config"]);
    }
    if (command == "map-test") {
      if (!allowed({"config", "cert", "user", "database", "address"})) return 2;
      auto snap = load(options["config"]);
      if (!snap) return 2;
      proxy::MapTestRequest request;
      request.cert_file = options["cert"];
      request.user = options["user"];
      request.database = options["database"];
      if (options.contains("address")) request.address = options["address"];
      return proxy::run_map_test(*snap, request);
    }
    if (command == "iam-token") {
      if (!allowed({"host", "port", "region", "user", "profile"})) return 2;
      proxy::IamTokenRequest request;
      request.host = options["host"];
      request.user = options["user"];
      request.region = options["region"];
      request.profile = options["profile"];
      if (options.contains("port")) {
        const std::string& text = options["port"];
        unsigned port = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
        if (ec != std::errc() || ptr != text.data() + text.size() || port == 0 || port > 65535) {
          std::fprintf(stderr, "pgmtls iam-token: --port must be 1 to 65535\n");
          return 2;
        }
        request.port = static_cast<std::uint16_t>(port);
      }
      return proxy::run_iam_token(request);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmtls: %s\n", e.what());
    return 1;
  }
  std::fputs(kUsage, stderr);
  return 2;
}
