// Logger set-up and helpers for the one-line-per-connection log format (key=value pairs).
#pragma once

#include <string>
#include <string_view>

namespace pgmtls::proxy {

// Installs the process-wide logger (stderr) at the given level name.
void setup_logging(const std::string& level);

// A log value: bare when it is a simple token, otherwise double-quoted with \" and \\ escaped.
// Empty values print as "-".
std::string log_value(std::string_view value);

}  // namespace pgmtls::proxy
