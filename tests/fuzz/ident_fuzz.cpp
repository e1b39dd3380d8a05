// pg_ident.conf text through auth::IdentMaps: parse_ident_text, compile (Boost.Regex, \1
// substitution), then check and candidates for an identity and a role taken from the input.
// Input: ident text, NUL, identity, NUL, role. Inputs with include directives are skipped.
#include <cstddef>
#include <cstdint>
#include <set>
#include <variant>

#include "auth/ident_map.h"
#include "config/ident_file.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;

namespace {

void exercise(const auth::IdentMaps& maps, const std::string& map, std::string_view identity,
              std::string_view role) {
  const auto decision = maps.check(map, identity, role);
  if (decision.allowed) {
    FUZZ_CHECK(maps.has_map(map));
    FUZZ_CHECK(decision.line != nullptr && decision.line->map == map);
  }
  for (const auto& candidate : maps.candidates(map, identity)) {
    FUZZ_CHECK(candidate.line != nullptr && candidate.line->map == map);
    // A concrete role a line yields for this identity is one the map admits.
    if (candidate.concrete && !candidate.role.empty()) {
      FUZZ_CHECK(maps.check(map, identity, candidate.role).allowed);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_text(data, size), 3);
  if (fuzz::reads_files(parts[0], false)) return 0;

  config::Diagnostics errors;
  auto lines = config::parse_ident_text(parts[0], "pg_ident.conf", errors);
  fuzz::render(errors);
  std::set<std::string> map_names{"no-such-map"};
  for (const auto& line : lines) {
    map_names.insert(line.map);
  }

  auto compiled = auth::IdentMaps::compile(std::move(lines));
  if (auto* errs = std::get_if<config::Diagnostics>(&compiled)) {
    FUZZ_CHECK(!errs->empty());
    fuzz::render(*errs);
    return 0;
  }
  const auto& maps = std::get<auth::IdentMaps>(compiled);
  const std::string_view identity = parts[1];
  const std::string_view role = parts[2];
  // Matching never throws: a regex past Boost's complexity limit fails closed.
  for (const auto& map : map_names)
    exercise(maps, map, identity, role);
  return 0;
}
