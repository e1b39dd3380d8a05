// pgmtls: an mTLS-terminating connection proxy for PostgreSQL.
//   pgmtls run --config FILE     serve
//   pgmtls check --config FILE   validate the config and everything it names, then exit

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/logging.h"
#include "proxy/server.h"
#include "proxy/snapshot.h"

namespace {

using namespace pgmtls;

constexpr const char* kUsage =
    "usage: pgmtls run --config FILE     serve connections\n"
    "       pgmtls check --config FILE   validate the configuration and exit\n"
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
  std::printf("  backend           %s:%u (plain TCP)\n", cfg.backend.host.c_str(),
              cfg.backend.port);
  return 0;
}

int run(const std::string& path) {
  // Log at info until the config says otherwise, so load errors are visible.
  auto snap = load(path);
  if (!snap) return 1;
  pgmtls::proxy::setup_logging(snap->config.log.level);
  std::signal(SIGPIPE, SIG_IGN);

  proxy::Server server(snap);
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
  if (argc != 4 || std::strcmp(argv[2], "--config") != 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string_view command = argv[1];
  const std::string path = argv[3];
  try {
    if (command == "check") return check(path);
    if (command == "run") return run(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmtls: %s\n", e.what());
    return 1;
  }
  std::fputs(kUsage, stderr);
  return 2;
}
