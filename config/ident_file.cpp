#include "config/ident_file.h"

namespace pgmtls::config {

namespace {

std::vector<IdentLine> to_ident_lines(const std::vector<ConfLine>& records, Diagnostics& errors) {
  std::vector<IdentLine> lines;
  for (const ConfLine& record : records) {
    if (record.fields.size() != 3) {
      errors.push_back(
          {record.where,
           std::string(record.fields.size() < 3 ? "missing entry at end of line: " : "") +
               "a user-name map line needs exactly 3 fields (MAPNAME "
               "SYSTEM-USERNAME PG-USERNAME), found " +
               std::to_string(record.fields.size())});
      continue;
    }
    bool ok = true;
    for (const ConfField& field : record.fields) {
      if (field.size() != 1) {
        errors.push_back({{record.where.file, record.where.line, field[1].column},
                          "multiple values in ident field (an unquoted comma separates values; "
                          "quote a regular expression or name that contains commas)"});
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    IdentLine line;
    line.map = record.fields[0][0].text;
    line.identity = record.fields[1][0].text;
    line.role = record.fields[2][0].text;
    line.role_quoted = record.fields[2][0].quoted;
    line.where = record.where;
    line.text = record.text;
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

std::vector<IdentLine> parse_ident_text(std::string_view text, const std::string& file,
                                        Diagnostics& errors) {
  return to_ident_lines(parse_conf_text(text, file, errors), errors);
}

std::vector<IdentLine> load_ident_file(const std::string& path, const Location& referenced_from,
                                       Diagnostics& errors) {
  return to_ident_lines(read_conf_file(path, referenced_from, "ident_file", errors), errors);
}

}  // namespace pgmtls::config
