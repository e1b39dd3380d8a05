#include "auth/ident_map.h"

namespace pgmtls::auth {

boost::regex compile_pg_regex(const std::string& pattern) {
  return boost::regex(pattern, boost::regex::perl | boost::regex::no_mod_m);
}

bool pg_regex_search(std::string_view text, const boost::regex& regex,
                     boost::match_results<std::string_view::const_iterator>* match) {
  try {
    if (match != nullptr) return boost::regex_search(text.begin(), text.end(), *match, regex);
    return boost::regex_search(text.begin(), text.end(), regex);
  } catch (const std::runtime_error&) {
    return false;  // boost::regex_error(error_complexity / error_stack)
  }
}

namespace {

std::optional<boost::regex> compile_regex(const std::string& pattern, const config::Location& where,
                                          config::Diagnostics& errors) {
  try {
    return compile_pg_regex(pattern);
  } catch (const boost::regex_error& e) {
    errors.push_back({where, "invalid regular expression \"" + pattern + "\": " + e.what()});
    return std::nullopt;
  }
}

}  // namespace

std::variant<IdentMaps, config::Diagnostics> IdentMaps::compile(
    std::vector<config::IdentLine> lines) {
  IdentMaps maps;
  config::Diagnostics errors;
  for (auto& source : lines) {
    Line line;
    if (source.identity.starts_with('/')) {
      line.identity_regex = compile_regex(source.identity.substr(1), source.where, errors);
      if (!line.identity_regex) continue;
      if (source.role.find("\\1") != std::string::npos && line.identity_regex->mark_count() < 1) {
        errors.push_back({source.where, "regular expression \"" + source.identity.substr(1) +
                                            "\" has no subexpressions as requested by "
                                            "backreference in \"" +
                                            source.role + "\""});
        continue;
      }
    }
    if (source.role.starts_with('/')) {
      line.role_regex = compile_regex(source.role.substr(1), source.where, errors);
      if (!line.role_regex) continue;
    }
    line.role_is_all = source.role == "all" && !source.role_quoted;
    line.source = std::move(source);
    maps.maps_[line.source.map].push_back(std::move(line));
  }
  if (!errors.empty()) return errors;
  return maps;
}

bool IdentMaps::has_map(std::string_view map) const {
  return maps_.find(map) != maps_.end();
}

bool IdentMaps::match_identity(const Line& line, std::string_view identity, std::string& role) {
  role = line.source.role;
  if (!line.identity_regex) return line.source.identity == identity;
  boost::match_results<std::string_view::const_iterator> match;
  if (!pg_regex_search(identity, *line.identity_regex, &match)) {
    return false;
  }
  if (const auto at = role.find("\\1"); at != std::string::npos)
    role.replace(at, 2, match[1].str());
  return true;
}

IdentMaps::Decision IdentMaps::check(std::string_view map, std::string_view identity,
                                     std::string_view role) const {
  auto it = maps_.find(map);
  if (it == maps_.end()) return {};
  std::string expected_role;
  for (const Line& line : it->second) {
    if (!match_identity(line, identity, expected_role)) continue;
    bool role_ok = false;
    if (line.role_regex) {
      role_ok = pg_regex_search(role, *line.role_regex);
    } else if (line.role_is_all) {
      role_ok = true;
    } else {
      // Compared literally: a substitution that yields "all" names a role called all.
      role_ok = expected_role == role;
    }
    if (role_ok) return {true, &line.source};
  }
  return {};
}

std::vector<IdentMaps::Candidate> IdentMaps::candidates(std::string_view map,
                                                        std::string_view identity) const {
  std::vector<Candidate> out;
  auto it = maps_.find(map);
  if (it == maps_.end()) return out;
  for (const Line& line : it->second) {
    std::string role;
    if (!match_identity(line, identity, role)) continue;
    const bool concrete = !line.role_regex && !line.role_is_all;
    out.push_back({&line.source, concrete ? std::move(role) : line.source.role, concrete});
  }
  return out;
}

}  // namespace pgmtls::auth
