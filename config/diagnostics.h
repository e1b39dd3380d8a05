// Where a setting came from, and an error about it, printed as "file:line:col: message".
#pragma once

#include <string>
#include <vector>

namespace pgmtls::config {

struct Location {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown

  std::string str() const;
};

struct Diagnostic {
  Location where;
  std::string message;

  std::string str() const;
};

using Diagnostics = std::vector<Diagnostic>;

}  // namespace pgmtls::config
