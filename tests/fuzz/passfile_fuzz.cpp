// config::parse_passfile (libpq's password file syntax) and passfile_lookup.
#include <cstddef>
#include <cstdint>

#include "config/passfile.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  config::Diagnostics errors;
  const auto entries = config::parse_passfile(text, "fuzz.pgpass", errors);
  fuzz::render(errors);
  for (const auto& entry : entries)
    FUZZ_CHECK(entry.line >= 1);
  passfile_lookup(entries, "db.example.com", 5432, "app", "alice");
  if (!entries.empty()) {
    const auto& e = entries.front();
    std::uint16_t port = 0;
    for (char c : e.port)
      port = static_cast<std::uint16_t>(port * 10 + (c >= '0' && c <= '9' ? c - '0' : 0));
    const auto found = passfile_lookup(entries, e.host, port, e.database, e.user);
    if (e.host != "*" && e.port != "*" && e.database != "*" && e.user != "*" &&
        e.port == std::to_string(port)) {
      FUZZ_CHECK(found.has_value());
    }
  }
  return 0;
}
