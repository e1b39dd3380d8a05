#include "config/passfile.h"

namespace pgmtls::config {

namespace {

// Splits one line into its 5 fields, honouring backslash escapes; false if malformed.
bool split_fields(std::string_view line, std::vector<std::string>& fields) {
  fields.assign(1, {});
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\\' && i + 1 < line.size()) {
      fields.back().push_back(line[++i]);
    } else if (c == ':' && fields.size() < 5) {
      fields.emplace_back();
    } else {
      fields.back().push_back(c);
    }
  }
  return fields.size() == 5;
}

bool field_matches(const std::string& pattern, std::string_view value) {
  return pattern == "*" || pattern == value;
}

}  // namespace

std::vector<PassfileEntry> parse_passfile(std::string_view text, const std::string& file,
                                          Diagnostics& errors) {
  std::vector<PassfileEntry> out;
  int line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> f;
    if (!split_fields(line, f)) {
      errors.push_back({{file, line_no, 0},
                        "a password file line needs 5 fields, hostname:port:database:username:"
                        "password (the line is not shown: it may hold a password)"});
      continue;
    }
    out.push_back({f[0], f[1], f[2], f[3], f[4], line_no});
  }
  return out;
}

std::optional<std::string> passfile_lookup(const std::vector<PassfileEntry>& entries,
                                           std::string_view host, std::uint16_t port,
                                           std::string_view database, std::string_view user) {
  const std::string port_text = std::to_string(port);
  for (const auto& e : entries) {
    if (field_matches(e.host, host) && field_matches(e.port, port_text) &&
        field_matches(e.database, database) && field_matches(e.user, user)) {
      return e.password;
    }
  }
  return std::nullopt;
}

}  // namespace pgmtls::config
