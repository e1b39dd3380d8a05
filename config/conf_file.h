// The lexical layer PostgreSQL's pg_hba.conf and pg_ident.conf share: one record per line, '#'
// comments, double-quoted tokens ("" is a literal quote), comma-separated lists inside a field, a
// trailing backslash continuing the line, and the include directives of PostgreSQL 16:
// `include FILE`, `include_if_exists FILE`, `include_dir DIR` (its *.conf files, sorted by name),
// with relative paths resolved against the directory of the file that names them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.h"

namespace pgmtls::config {

struct ConfToken {
  std::string text;
  bool quoted = false;  // some part was inside double quotes: never a keyword
  int column = 0;       // 1-based

  // An unquoted keyword such as `all`, `samehost` or `include`.
  bool is_keyword(std::string_view word) const { return !quoted && text == word; }
};

// One field is a comma-separated list of tokens ("db1,db2" is one field with two tokens).
using ConfField = std::vector<ConfToken>;

struct ConfLine {
  std::vector<ConfField> fields;
  Location where;    // the file and line of the record's first token
  std::string text;  // the record as written (continuations joined), for explanations
};

// Include directives nest at most this deep (PostgreSQL's limit too); deeper means a loop.
inline constexpr int kMaxIncludeDepth = 10;

// Splits `text` into records, following include directives (unless `follow_includes` is false, in
// which case they are reported as errors). `file` names the text in diagnostics and locates
// relative includes. Lines in error are reported and skipped.
std::vector<ConfLine> parse_conf_text(std::string_view text, const std::string& file,
                                      Diagnostics& errors, bool follow_includes = true,
                                      int depth = 0);

// Reads `path` and parses it; an unreadable file is reported at `referenced_from` with `what`
// ("ident_file", "hba_file", ...) naming it.
std::vector<ConfLine> read_conf_file(const std::string& path, const Location& referenced_from,
                                     std::string_view what, Diagnostics& errors, int depth = 0);

// Expands "@file" tokens of a field (pg_hba.conf's database and user columns): the file's
// tokens, separated by whitespace, commas or newlines, replace it. Relative to `where.file`'s
// directory.
ConfField expand_at_files(const ConfField& field, const Location& where, Diagnostics& errors,
                          int depth = 0);

}  // namespace pgmtls::config
