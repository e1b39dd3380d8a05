// config::load_config_text: the YAML configuration, then (when it loads) the policy built from
// it, as `pgmtls check` and the proxy's snapshot do. Relative paths resolve against the unit
// tests' config corpus, so seeds taken from it load fully. Inputs that could name device or
// kernel files (/dev, /proc, /sys, or a double-quoted YAML escape that could spell them) are
// skipped: reading /dev/zero would never end.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <variant>

#include "auth/policy.h"
#include "config/config.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;

namespace {

bool names_special_files(std::string_view text) {
  for (std::string_view bad : {"/dev", "/proc", "/sys", "/run", "dev/", "proc/", "sys/"}) {
    if (text.find(bad) != std::string_view::npos) return true;
  }
  return text.find('"') != std::string_view::npos && text.find('\\') != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  if (names_special_files(text)) return 0;
  auto result = config::load_config_text(text, "fuzz.yaml", PGMTLS_FUZZ_CONFIG_DIR);
  for (const auto& error : result.errors)
    FUZZ_CHECK(!error.message.empty());
  fuzz::render(result.errors);
  if (std::getenv("PGMTLS_FUZZ_VERBOSE") != nullptr) {
    // For writing seeds: why a config does not load.
    for (const auto& error : result.errors)
      std::fprintf(stderr, "%s\n", error.str().c_str());
  }
  if (!result.ok()) return 0;

  config::Config& cfg = *result.config;
  auth::PolicyDefaults defaults;
  defaults.identity = cfg.identity.source;
  defaults.issuer = cfg.identity.issuer;
  defaults.issuer_fingerprint = cfg.identity.issuer_fingerprint;
  defaults.role_from_certificate = cfg.identity.role_from_certificate;
  auto policy = auth::Policy::compile(cfg.hba_rules, cfg.ident_lines, defaults, cfg.map);
  if (auto* errs = std::get_if<config::Diagnostics>(&policy)) fuzz::render(*errs);
  if (std::getenv("PGMTLS_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "loaded; policy %s\n",
                 std::holds_alternative<auth::Policy>(policy) ? "compiled" : "refused");
  }
  return 0;
}
