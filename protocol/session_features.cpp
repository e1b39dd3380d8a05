#include "protocol/session_features.h"

#include <array>
#include <cctype>
#include <cstddef>
#include <string>

namespace pgmtls::protocol {

namespace {

bool word_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool word_char(char c) {
  return word_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0 || c == '$';
}

// One statement's words as far as the rules need them: the first few, and whether two
// sequences appear anywhere in it.
struct Statement {
  std::array<std::string, 3> first;
  std::size_t words = 0;
  bool with_hold = false;
  bool on_commit_drop = false;
  std::string previous, before_previous;

  void add(std::string word) {
    if (words < first.size()) first[words] = word;
    ++words;
    if (previous == "with" && word == "hold") with_hold = true;
    if (before_previous == "on" && previous == "commit" && word == "drop") on_commit_drop = true;
    before_previous = std::move(previous);
    previous = std::move(word);
  }
  const std::string& at(std::size_t i) const {
    static const std::string none;
    return i < first.size() && i < words ? first[i] : none;
  }
};

std::string_view judge(const Statement& s) {
  const auto& w0 = s.at(0);
  const auto& w1 = s.at(1);
  if (w0 == "set") {
    if (w1 == "local" || w1 == "transaction" || w1 == "constraints") return {};
    if (w1 == "session" && s.at(2) == "characteristics") return "SET SESSION CHARACTERISTICS";
    return "SET";
  }
  if (w0 == "reset") return "RESET";
  if (w0 == "listen") return "LISTEN";
  if (w0 == "prepare" && w1 != "transaction") return "PREPARE";
  if (w0 == "deallocate") return "DEALLOCATE";
  if (w0 == "discard") return "DISCARD";
  if (w0 == "declare" && s.with_hold) return "DECLARE ... WITH HOLD";
  if (w0 == "load") return "LOAD";
  if (w0 == "create") {
    const bool temp =
        w1 == "temp" || w1 == "temporary" ||
        ((w1 == "global" || w1 == "local") && (s.at(2) == "temp" || s.at(2) == "temporary"));
    if (temp && !s.on_commit_drop) return "CREATE TEMPORARY TABLE";
  }
  return {};
}

// Position after a dollar-quote opening tag at `i` ("$$" or "$tag$"), or npos if `i` does not
// start one ($1 is a parameter).
std::size_t dollar_tag_end(std::string_view sql, std::size_t i) {
  std::size_t j = i + 1;
  if (j < sql.size() && sql[j] == '$') return j + 1;
  if (j >= sql.size() || !word_start(sql[j])) return std::string_view::npos;
  while (j < sql.size() && word_char(sql[j]) && sql[j] != '$')
    ++j;
  return j < sql.size() && sql[j] == '$' ? j + 1 : std::string_view::npos;
}

}  // namespace

std::string_view session_feature(std::string_view sql) {
  Statement statement;
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (c == ';') {
      if (auto feature = judge(statement); !feature.empty()) return feature;
      statement = {};
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n')
        ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      int depth = 0;  // PostgreSQL's block comments nest
      while (i < n) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '\'' || c == '"') {
      // A backslash escapes only in E'...' strings; '' and "" are the quote itself.
      const bool escapes = c == '\'' && i > 0 && (sql[i - 1] == 'e' || sql[i - 1] == 'E') &&
                           (i < 2 || !word_char(sql[i - 2]));
      ++i;
      while (i < n) {
        if (escapes && sql[i] == '\\') {
          i += 2;
        } else if (sql[i] == c) {
          if (i + 1 < n && sql[i + 1] == c) {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
      if (c == '"') statement.add("\"");  // a quoted identifier is a word, never a keyword
    } else if (c == '$' && dollar_tag_end(sql, i) != std::string_view::npos) {
      const std::size_t body = dollar_tag_end(sql, i);
      const std::string_view tag = sql.substr(i, body - i);
      const std::size_t end = sql.find(tag, body);
      i = end == std::string_view::npos ? n : end + tag.size();
      statement.add("$");
    } else if (word_start(c)) {
      std::string word;
      while (i < n && word_char(sql[i])) {
        word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(sql[i]))));
        ++i;
      }
      // E'...' : the E is the string's prefix, not a word.
      if (!(word == "e" && i < n && sql[i] == '\'')) statement.add(std::move(word));
    } else {
      ++i;
    }
  }
  return judge(statement);
}

}  // namespace pgmtls::protocol
