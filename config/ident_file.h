// pg_ident.conf: "MAPNAME SYSTEM-USERNAME PG-USERNAME" records in the syntax of config/conf_file.h
// (comments, quoting, include directives).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/conf_file.h"
#include "config/diagnostics.h"

namespace pgmtls::config {

// One user-name map line, from pg_ident.conf or the YAML `maps:` section. `identity` is an exact
// name or, when it starts with '/', a regular expression whose first capture may be spliced into
// `role` as \1.
struct IdentLine {
  std::string map;
  std::string identity;
  std::string role;
  Location where;
  // The role was written in double quotes in pg_ident.conf, so "all" is a role named all and not
  // the keyword (PostgreSQL 16 semantics).
  bool role_quoted = false;
  std::string text = {};  // the line as written, for explanations (empty for YAML entries)
};

// Parses pg_ident.conf text; `file` names it in diagnostics and locates relative includes. Lines
// in error are skipped and reported; the rest are returned.
std::vector<IdentLine> parse_ident_text(std::string_view text, const std::string& file,
                                        Diagnostics& errors);

// Reads and parses a pg_ident.conf file; an unreadable file is reported at `referenced_from`.
std::vector<IdentLine> load_ident_file(const std::string& path, const Location& referenced_from,
                                       Diagnostics& errors);

}  // namespace pgmtls::config
