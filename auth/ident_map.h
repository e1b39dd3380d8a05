// pg_ident-compatible user-name maps, compiled once per config snapshot.
#pragma once

#include <boost/regex.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/diagnostics.h"
#include "config/ident_file.h"

namespace pgmtls::auth {

// Compiles a regular expression for the maps and rules: Perl syntax, and ^ and $ match only at
// the ends of the text (as in PostgreSQL), never at a line break inside a certificate name.
// Throws boost::regex_error.
boost::regex compile_pg_regex(const std::string& pattern);

// regex_search that fails closed: a pattern whose matching exceeds Boost's complexity limit (a
// catastrophic backtracking pattern such as /^(.*)*x$) does not match instead of throwing.
bool pg_regex_search(std::string_view text, const boost::regex& regex,
                     boost::match_results<std::string_view::const_iterator>* match = nullptr);

class IdentMaps {
 public:
  struct Decision {
    bool allowed = false;
    const config::IdentLine* line = nullptr;  // the line that admitted the identity
  };

  // Compiles every line; invalid regular expressions are reported at their line.
  static std::variant<IdentMaps, config::Diagnostics> compile(std::vector<config::IdentLine> lines);

  // PostgreSQL's check_ident_usermap for `cert` (case-sensitive): does some line of `map` let
  // `identity` connect as `role`? An identity line starting with '/' is a regular expression
  // (unanchored, Perl syntax); its first capture replaces the first "\1" in the role column.
  // A role column "all" (unquoted, as written) admits any role; one starting with '/' is a regular
  // expression on the role.
  Decision check(std::string_view map, std::string_view identity, std::string_view role) const;

  bool has_map(std::string_view map) const;

  // The lines of `map` whose identity column matches `identity`, with the role each yields:
  // a concrete role (after \1 substitution), or a pattern admitting many (`all`, a /regex).
  struct Candidate {
    const config::IdentLine* line = nullptr;
    std::string role;  // concrete: the role; otherwise the role column as written
    bool concrete = true;
  };
  std::vector<Candidate> candidates(std::string_view map, std::string_view identity) const;

 private:
  struct Line {
    config::IdentLine source;
    std::optional<boost::regex> identity_regex;
    std::optional<boost::regex> role_regex;
    bool role_is_all = false;  // the unquoted keyword, as written (never a substitution result)
  };
  // Does `line` match `identity`? If so, sets `role` to the role column after \1 substitution.
  static bool match_identity(const Line& line, std::string_view identity, std::string& role);

  std::map<std::string, std::vector<Line>, std::less<>> maps_;
};

}  // namespace pgmtls::auth
