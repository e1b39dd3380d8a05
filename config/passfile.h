// libpq's password file (~/.pgpass): "hostname:port:database:username:password" lines, '*'
// matching anything, '\' escaping ':' and '\', '#' comment lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.h"

namespace pgmtls::config {

struct PassfileEntry {
  std::string host, port, database, user, password;
  int line = 0;
};

// Parses passfile text; malformed lines are reported (without their content: they hold secrets).
std::vector<PassfileEntry> parse_passfile(std::string_view text, const std::string& file,
                                          Diagnostics& errors);

// The password of the first line matching, as libpq looks it up.
std::optional<std::string> passfile_lookup(const std::vector<PassfileEntry>& entries,
                                           std::string_view host, std::uint16_t port,
                                           std::string_view database, std::string_view user);

}  // namespace pgmtls::config
