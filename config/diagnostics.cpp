#include "config/diagnostics.h"

namespace pgmtls::config {

std::string Location::str() const {
  std::string out = file.empty() ? std::string("<config>") : file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out;
}

std::string Diagnostic::str() const {
  return where.str() + ": " + message;
}

}  // namespace pgmtls::config
