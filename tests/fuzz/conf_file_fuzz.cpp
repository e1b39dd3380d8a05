// config::parse_conf_text: the lexical layer of pg_hba.conf and pg_ident.conf (quoting, comma
// lists, continuations, comments). Includes are not followed, so nothing is read from disk.
#include <cstddef>
#include <cstdint>

#include "config/conf_file.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  config::Diagnostics errors;
  const auto lines = config::parse_conf_text(text, "fuzz.conf", errors, false);
  for (const auto& line : lines) {
    FUZZ_CHECK(!line.fields.empty());
    FUZZ_CHECK(line.where.line >= 1 && line.where.column >= 1);
    FUZZ_CHECK(!line.text.empty());
    FUZZ_CHECK(line.text.size() <= size);
    for (const auto& field : line.fields) {
      FUZZ_CHECK(!field.empty());
      for (const auto& token : field) {
        FUZZ_CHECK(token.column >= 1);
        FUZZ_CHECK(token.text.size() <= size);
      }
    }
  }
  for (const auto& error : errors)
    FUZZ_CHECK(error.where.line >= 1 && !error.message.empty());
  fuzz::render(errors);
  return 0;
}
