#include "config/conf_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace pgmtls::config {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// Splits one logical line into fields of comma-separated tokens, as PostgreSQL's next_token: an
// unquoted '#' ends the line, an unquoted ',' continues the field with the next token, blanks end
// a token, and inside double quotes everything is literal ("" is one quote character).
bool tokenize(std::string_view line, std::vector<ConfField>& fields, std::string& error) {
  std::size_t i = 0;
  bool continue_field = false;  // the previous token ended with a comma
  for (;;) {
    while (i < line.size() && is_blank(line[i]))
      ++i;
    if (i == line.size() || line[i] == '#') break;
    ConfToken tok;
    tok.column = static_cast<int>(i) + 1;
    bool in_quotes = false;
    bool comma = false;
    while (i < line.size()) {
      const char c = line[i];
      if (in_quotes) {
        if (c == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            tok.text.push_back('"');
            i += 2;
            continue;
          }
          in_quotes = false;
        } else {
          tok.text.push_back(c);
        }
        ++i;
        continue;
      }
      if (is_blank(c) || c == '#') break;
      if (c == ',') {
        comma = true;
        ++i;
        break;
      }
      if (c == '"') {
        in_quotes = true;
        tok.quoted = true;
      } else {
        tok.text.push_back(c);
      }
      ++i;
    }
    if (in_quotes) {
      error = "unterminated quoted string";
      return false;
    }
    if (continue_field) {
      fields.back().push_back(std::move(tok));
    } else {
      fields.push_back({std::move(tok)});
    }
    continue_field = comma;
  }
  if (continue_field) {
    error = "a list ends with a comma";
    return false;
  }
  return true;
}

// The record as written, without its comment and surrounding blanks.
std::string display_text(std::string_view logical) {
  bool in_quotes = false;
  std::size_t cut = logical.size();
  for (std::size_t i = 0; i < logical.size(); ++i) {
    if (logical[i] == '"') in_quotes = !in_quotes;
    if (logical[i] == '#' && !in_quotes) {
      cut = i;
      break;
    }
  }
  const std::string_view kept = logical.substr(0, cut);
  const auto first = kept.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return std::string(kept.substr(first, kept.find_last_not_of(" \t\r") - first + 1));
}

std::string directory_of(const std::string& file) {
  return std::filesystem::path(file).parent_path().string();
}

std::string resolve_against(const std::string& file, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  const std::string dir = directory_of(file);
  if (dir.empty()) return path;
  return (std::filesystem::path(dir) / path).lexically_normal().string();
}

// Rule files are small; a device or a huge file named by mistake must not be read forever.
constexpr std::uintmax_t kMaxConfFileSize = 16 << 20;

bool read_whole_file(const std::string& path, std::string& out, std::string& error) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && status.type() != std::filesystem::file_type::regular) {
    error = "not a regular file";
    return false;
  }
  if (!ec && std::filesystem::file_size(path, ec) > kMaxConfFileSize) {
    error = "larger than 16 MiB";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::strerror(errno);
    return false;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  out = buf.str();
  return true;
}

// One include directive. Appends the included records to `out`.
void follow_include(const ConfLine& line, std::string_view directive, Diagnostics& errors,
                    int depth, std::vector<ConfLine>& out) {
  if (line.fields.size() != 2 || line.fields[1].size() != 1) {
    errors.push_back({line.where, std::string(directive) + " needs exactly one file name"});
    return;
  }
  const std::string target = resolve_against(line.where.file, line.fields[1][0].text);
  if (depth + 1 > kMaxIncludeDepth) {
    errors.push_back({line.where, "cannot include \"" + target + "\": more than " +
                                      std::to_string(kMaxIncludeDepth) +
                                      " nested includes (an include loop?)"});
    return;
  }
  std::vector<std::string> files;
  if (directive == "include_dir") {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(target, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with('.') || !name.ends_with(".conf")) continue;
      std::error_code type_ec;
      if (!entry.is_regular_file(type_ec)) continue;
      files.push_back(entry.path().string());
    }
    if (ec) {
      errors.push_back({line.where, "cannot read include_dir \"" + target + "\": " + ec.message()});
      return;
    }
    std::sort(files.begin(), files.end());
  } else {
    if (directive == "include_if_exists") {
      std::error_code ec;
      if (!std::filesystem::exists(target, ec)) return;  // PostgreSQL skips it too
    }
    files.push_back(target);
  }
  for (const auto& file : files) {
    auto lines = read_conf_file(file, line.where, directive, errors, depth + 1);
    out.insert(out.end(), std::make_move_iterator(lines.begin()),
               std::make_move_iterator(lines.end()));
  }
}

}  // namespace

std::vector<ConfLine> parse_conf_text(std::string_view text, const std::string& file,
                                      Diagnostics& errors, bool follow_includes, int depth) {
  std::vector<ConfLine> out;
  int line_no = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    // A logical line: physical lines joined while they end with a backslash.
    std::string logical;
    const int first_line = line_no + 1;
    for (;;) {
      std::size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view physical = text.substr(start, end - start);
      ++line_no;
      start = end + 1;
      if (physical.ends_with('\r')) physical.remove_suffix(1);
      if (physical.ends_with('\\') && start < text.size()) {
        physical.remove_suffix(1);
        logical.append(physical);
        continue;
      }
      logical.append(physical);
      break;
    }

    ConfLine line;
    std::string error;
    if (!tokenize(logical, line.fields, error)) {
      errors.push_back({{file, first_line, 0}, error});
      continue;
    }
    if (line.fields.empty()) continue;
    line.where = {file, first_line, line.fields[0][0].column};
    line.text = display_text(logical);

    const ConfField& first = line.fields[0];
    if (first.size() == 1) {
      for (std::string_view directive : {"include", "include_if_exists", "include_dir"}) {
        if (!first[0].is_keyword(directive)) continue;
        if (!follow_includes) {
          errors.push_back({line.where, std::string(directive) + " is not allowed here"});
        } else {
          follow_include(line, directive, errors, depth, out);
        }
        line.fields.clear();
        break;
      }
    }
    if (!line.fields.empty()) out.push_back(std::move(line));
  }
  return out;
}

std::vector<ConfLine> read_conf_file(const std::string& path, const Location& referenced_from,
                                     std::string_view what, Diagnostics& errors, int depth) {
  std::string text;
  std::string error;
  if (!read_whole_file(path, text, error)) {
    errors.push_back(
        {referenced_from, "cannot read " + std::string(what) + " \"" + path + "\": " + error});
    return {};
  }
  return parse_conf_text(text, path, errors, true, depth);
}

ConfField expand_at_files(const ConfField& field, const Location& where, Diagnostics& errors,
                          int depth) {
  ConfField out;
  for (const ConfToken& tok : field) {
    if (tok.quoted || !tok.text.starts_with('@')) {
      out.push_back(tok);
      continue;
    }
    if (tok.text.size() == 1) {
      errors.push_back({where, "\"@\" must be followed by a file name"});
      continue;
    }
    const std::string path = resolve_against(where.file, tok.text.substr(1));
    if (depth + 1 > kMaxIncludeDepth) {
      errors.push_back({where, "cannot read \"" + path + "\": more than " +
                                   std::to_string(kMaxIncludeDepth) + " nested @ files"});
      continue;
    }
    std::string text;
    std::string error;
    if (!read_whole_file(path, text, error)) {
      errors.push_back(
          {where, "cannot read \"" + path + "\" (named by " + tok.text + "): " + error});
      continue;
    }
    for (const ConfLine& line : parse_conf_text(text, path, errors, false)) {
      for (const ConfField& inner : line.fields) {
        ConfField expanded = expand_at_files(inner, line.where, errors, depth + 1);
        out.insert(out.end(), expanded.begin(), expanded.end());
      }
    }
  }
  return out;
}

}  // namespace pgmtls::config
