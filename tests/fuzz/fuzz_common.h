// Helpers shared by the libFuzzer targets in this folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/conf_file.h"
#include "config/diagnostics.h"

// A broken invariant is a finding: say which one and abort, so libFuzzer keeps the input.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace pgmtls::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits a fuzz input into NUL-separated parts: at most `count` parts, the last one taking the
// rest; missing parts are empty. Seeds write the parts with printf '...\0...'.
inline std::vector<std::string_view> split_parts(std::string_view input, std::size_t count) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < count) {
    const auto nul = input.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(input.substr(0, nul));
    input.remove_prefix(nul + 1);
  }
  parts.push_back(input);
  parts.resize(count);
  return parts;
}

// Whether parsing `text` as a pg_hba.conf / pg_ident.conf would read other files: an include
// directive, or (with `at_files`) an unquoted "@file" token. Fuzz targets skip such inputs so that
// they never touch the filesystem with names chosen by the fuzzer.
inline bool reads_files(std::string_view text, bool at_files) {
  config::Diagnostics errors;
  const auto records = config::parse_conf_text(text, "fuzz.conf", errors, false);
  for (const auto& error : errors) {
    if (error.message.ends_with(" is not allowed here")) return true;  // an include directive
  }
  if (!at_files) return false;
  for (const auto& record : records) {
    for (const auto& field : record.fields) {
      for (const auto& token : field) {
        if (!token.quoted && token.text.starts_with('@')) return true;
      }
    }
  }
  return false;
}

// Touches every diagnostic's text, so that a bad location or message shows up under ASan.
inline std::size_t render(const config::Diagnostics& errors) {
  std::size_t total = 0;
  for (const auto& error : errors)
    total += error.str().size();
  return total;
}

}  // namespace pgmtls::fuzz
