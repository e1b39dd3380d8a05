#include "config/ident_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pgmtls::config {

namespace {

struct Token {
  std::string text;
  int column = 0;
  bool quoted = false;  // some part of it was inside double quotes
};

// Splits one logical line into whitespace-separated tokens. A '#' outside quotes starts a comment;
// inside double quotes whitespace and '#' are literal and "" is one quote character.
bool tokenize(std::string_view line, std::vector<Token>& tokens, std::string& error) {
  std::size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    if (c == '#') break;
    Token tok;
    tok.column = static_cast<int>(i) + 1;
    bool in_quotes = false;
    while (i < line.size()) {
      const char d = line[i];
      if (in_quotes) {
        if (d == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            tok.text.push_back('"');
            i += 2;
            continue;
          }
          in_quotes = false;
          ++i;
          continue;
        }
        tok.text.push_back(d);
        ++i;
        continue;
      }
      if (d == ' ' || d == '\t' || d == '\r' || d == '#') break;
      if (d == '"') {
        in_quotes = true;
        tok.quoted = true;
        ++i;
        continue;
      }
      tok.text.push_back(d);
      ++i;
    }
    if (in_quotes) {
      error = "unterminated quoted string";
      return false;
    }
    tokens.push_back(std::move(tok));
  }
  return true;
}

}  // namespace

std::vector<IdentLine> parse_ident_text(std::string_view text, const std::string& file,
                                        Diagnostics& errors) {
  std::vector<IdentLine> lines;
  int line_no = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    ++line_no;
    start = end + 1;

    std::vector<Token> tokens;
    std::string error;
    if (!tokenize(line, tokens, error)) {
      errors.push_back({{file, line_no, 0}, error});
    } else if (tokens.empty()) {
      // blank or comment
    } else if (tokens.size() != 3) {
      errors.push_back({{file, line_no, tokens.front().column},
                        "a user-name map line needs exactly 3 fields (MAPNAME SYSTEM-USERNAME "
                        "PG-USERNAME), found " +
                            std::to_string(tokens.size())});
    } else {
      lines.push_back({tokens[0].text,
                       tokens[1].text,
                       tokens[2].text,
                       {file, line_no, tokens[0].column},
                       tokens[2].quoted});
    }
    if (end == text.size()) break;
  }
  return lines;
}

std::vector<IdentLine> load_ident_file(const std::string& path, const Location& referenced_from,
                                       Diagnostics& errors) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    errors.push_back(
        {referenced_from, "cannot read ident_file \"" + path + "\": " + std::strerror(errno)});
    return {};
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_ident_text(buf.str(), path, errors);
}

}  // namespace pgmtls::config
