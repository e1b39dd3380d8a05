#include "auth/aws_credentials.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace pgmtls::auth::aws {

namespace {

namespace asio = boost::asio;
using std::chrono::system_clock;

// Local files worth reading: credentials and config files, tokens. Anything larger is a mistake.
constexpr std::size_t kMaxFileSize = 1024 * 1024;
constexpr std::size_t kMaxTokenSize = 64 * 1024;
constexpr std::size_t kMaxJsonSize = 64 * 1024;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool has_control_char(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Text that came from a server, made fit for a one-line log message.
std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(c < 0x20 || c == 0x7f ? ' ' : ch);
  }
  if (s.size() > max) out += "...";
  return out;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

enum class ReadStatus { ok, missing, failed };

// Reads a regular file of at most `max` bytes; `error` says why not (without the content).
ReadStatus read_file(const std::string& path, std::size_t max, std::string& out,
                     std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    error = "cannot read " + path + ": " + std::strerror(err);
    return err == ENOENT ? ReadStatus::missing : ReadStatus::failed;
  }
  out.clear();
  char buf[8192];
  bool ok = true;
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f);
    out.append(buf, n);
    if (out.size() > max) {
      error = path + " is larger than " + std::to_string(max) + " bytes";
      ok = false;
      break;
    }
    if (n < sizeof buf) {
      if (std::ferror(f)) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        ok = false;
      }
      break;
    }
  }
  std::fclose(f);
  if (!ok) out.clear();
  return ok ? ReadStatus::ok : ReadStatus::failed;
}

// A bearer token from a file: trailing whitespace (a final newline) is dropped; it must then be a
// single non-empty line, since it goes into an HTTP header or form.
std::optional<std::string> read_token_file(const std::string& path, std::string& error) {
  std::string token;
  if (read_file(path, kMaxTokenSize, token, error) != ReadStatus::ok) return std::nullopt;
  while (!token.empty() && is_space(token.back()))
    token.pop_back();
  if (token.empty()) {
    error = path + " is empty";
    return std::nullopt;
  }
  if (has_control_char(token)) {
    error = path + " holds more than one line or a control character";
    return std::nullopt;
  }
  return token;
}

// ---- JSON (flat objects only)

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  std::optional<std::map<std::string, std::string>> object(std::string& error) {
    std::map<std::string, std::string> out;
    skip_ws();
    if (!eat('{')) return fail(error, "expected '{'");
    skip_ws();
    if (eat('}')) return finish(std::move(out), error);
    for (;;) {
      skip_ws();
      std::string key;
      if (!string(key, error)) return std::nullopt;
      skip_ws();
      if (!eat(':')) return fail(error, "expected ':'");
      skip_ws();
      std::string value;
      if (!scalar(value, error)) return std::nullopt;
      if (!out.emplace(std::move(key), std::move(value)).second)
        return fail(error, "duplicate key");
      skip_ws();
      if (eat('}')) return finish(std::move(out), error);
      if (!eat(',')) return fail(error, "expected ',' or '}'");
    }
  }

 private:
  std::optional<std::map<std::string, std::string>> finish(std::map<std::string, std::string> m,
                                                           std::string& error) {
    skip_ws();
    if (pos_ != s_.size()) return fail(error, "trailing data after the object");
    return m;
  }

  std::nullopt_t fail(std::string& error, const char* what) {
    error = std::string(what) + " at offset " + std::to_string(pos_);
    return std::nullopt;
  }

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r' || s_[pos_] == '\n'))
      ++pos_;
  }

  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool hex4(std::uint32_t& v) {
    if (s_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_value(s_[pos_++]);
      if (h < 0) return false;
      v = v * 16 + static_cast<std::uint32_t>(h);
    }
    return true;
  }

  bool string(std::string& out, std::string& error) {
    if (!eat('"')) {
      fail(error, "expected a string");
      return false;
    }
    while (pos_ < s_.size()) {
      const char ch = s_[pos_++];
      const auto c = static_cast<unsigned char>(ch);
      if (ch == '"') return true;
      if (c < 0x20) {
        fail(error, "control character in a string");
        return false;
      }
      if (ch != '\\') {
        out.push_back(ch);
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) {
            fail(error, "bad \\u escape");
            return false;
          }
          if (cp >= 0xd800 && cp < 0xdc00) {
            std::uint32_t low = 0;
            if (!eat('\\') || !eat('u') || !hex4(low) || low < 0xdc00 || low >= 0xe000) {
              fail(error, "unpaired surrogate");
              return false;
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            fail(error, "unpaired surrogate");
            return false;
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail(error, "bad escape");
          return false;
      }
    }
    fail(error, "unterminated string");
    return false;
  }

  bool literal(std::string_view word, std::string& out) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    out = word;
    return true;
  }

  bool number(std::string& out) {
    const std::size_t start = pos_;
    eat('-');
    const std::size_t int_start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
      ++pos_;
    const std::size_t int_digits = pos_ - int_start;
    if (int_digits == 0 || (int_digits > 1 && s_[int_start] == '0')) return false;
    if (eat('.')) {
      const std::size_t frac = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      if (pos_ == frac) return false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!eat('+')) eat('-');
      const std::size_t exp = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      if (pos_ == exp) return false;
    }
    out = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  bool scalar(std::string& out, std::string& error) {
    if (pos_ >= s_.size()) {
      fail(error, "expected a value");
      return false;
    }
    const char c = s_[pos_];
    if (c == '"') return string(out, error);
    if (c == '{' || c == '[') {
      fail(error, "nested values are not supported");
      return false;
    }
    if (literal("true", out) || literal("false", out) || literal("null", out)) return true;
    if (number(out)) return true;
    fail(error, "expected a value");
    return false;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

// ---- XML (the few elements of an STS response)

std::optional<std::string> xml_decode(std::string_view text, std::string& error) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '<') {
      error = "unexpected markup inside an element";
      return std::nullopt;
    }
    if (c != '&') {
      out.push_back(c);
      continue;
    }
    const std::size_t end = text.find(';', i);
    if (end == std::string_view::npos || end - i > 12) {
      error = "bad entity reference";
      return std::nullopt;
    }
    const std::string_view name = text.substr(i + 1, end - i - 1);
    if (name == "amp") {
      out.push_back('&');
    } else if (name == "lt") {
      out.push_back('<');
    } else if (name == "gt") {
      out.push_back('>');
    } else if (name == "quot") {
      out.push_back('"');
    } else if (name == "apos") {
      out.push_back('\'');
    } else if (name.size() >= 2 && name[0] == '#') {
      std::uint32_t cp = 0;
      const bool is_hex = name[1] == 'x';
      const std::string_view digits = name.substr(is_hex ? 2 : 1);
      if (digits.empty()) {
        error = "bad character reference";
        return std::nullopt;
      }
      for (char d : digits) {
        const int v = is_hex ? hex_value(d) : (d >= '0' && d <= '9' ? d - '0' : -1);
        if (v < 0 || cp > 0x10ffff) {
          error = "bad character reference";
          return std::nullopt;
        }
        cp = cp * (is_hex ? 16 : 10) + static_cast<std::uint32_t>(v);
      }
      if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) {
        error = "bad character reference";
        return std::nullopt;
      }
      append_utf8(out, cp);
    } else {
      error = "unknown entity";
      return std::nullopt;
    }
    i = end;
  }
  return out;
}

// The text of the one <name>...</name> inside `scope`; nullopt (with `error`) if it is absent,
// repeated or not plain text.
std::optional<std::string> xml_element(std::string_view scope, std::string_view name,
                                       std::string& error) {
  const std::string open = "<" + std::string(name) + ">";
  const std::string close = "</" + std::string(name) + ">";
  const std::size_t start = scope.find(open);
  if (start == std::string_view::npos) {
    error = "no <" + std::string(name) + "> element";
    return std::nullopt;
  }
  const std::size_t text_start = start + open.size();
  const std::size_t end = scope.find(close, text_start);
  if (end == std::string_view::npos) {
    error = "<" + std::string(name) + "> is not closed";
    return std::nullopt;
  }
  if (scope.find(open, text_start) != std::string_view::npos) {
    error = "more than one <" + std::string(name) + "> element";
    return std::nullopt;
  }
  std::string why;
  auto text = xml_decode(scope.substr(text_start, end - text_start), why);
  if (!text) {
    error = "<" + std::string(name) + ">: " + why;
    return std::nullopt;
  }
  return text;
}

// ---- Dates

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::string format_time(system_clock::time_point t) {
  const std::time_t tt = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---- Endpoints

bool is_region(std::string_view region) {
  if (region.empty() || region.size() > 64) return false;
  for (char c : region)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

std::string without_trailing_slash(std::string s) {
  while (s.ends_with('/'))
    s.pop_back();
  return s;
}

// Hosts a plain-http AWS_CONTAINER_CREDENTIALS_FULL_URI may name (the SDKs' rule: loopback, the
// ECS agent, the EKS Pod Identity agent).
bool container_host_allowed(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "169.254.170.2" || host == "169.254.170.23" ||
      lower(host) == "fd00:ec2::23")
    return true;
  // 127.0.0.0/8 as a dotted quad.
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3 && !host.ends_with('.') && host.find("..") == std::string::npos;
}

std::string random_session_name() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned> dist(0, 15);
  std::string name = "pgmtls-";
  for (int i = 0; i < 16; ++i)
    name.push_back("0123456789abcdef"[dist(rd)]);
  return name;
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += uri_encode(name) + "=" + uri_encode(value);
  }
  return out;
}

// Code and message of a JSON error body, if the body is one (container agents answer so).
std::string json_error_detail(std::string_view body) {
  std::string ignored;
  auto fields = parse_flat_json_object(body, ignored);
  if (!fields) return {};
  std::string detail;
  for (const char* key : {"Code", "code"}) {
    if (auto it = fields->find(key); it != fields->end()) detail = printable(it->second, 64);
  }
  for (const char* key : {"Message", "message"}) {
    if (auto it = fields->find(key); it != fields->end())
      detail += (detail.empty() ? "" : ": ") + printable(it->second);
  }
  return detail;
}

using Result = CredentialChain::Result;

Result failure(std::string why) {
  return Result{std::nullopt, {}, std::move(why)};
}

// Temporary credentials from a container agent or IMDS JSON document.
Result credentials_from_json(std::string_view body, bool expiration_required, std::string source) {
  std::string error;
  auto fields = parse_flat_json_object(body, error);
  if (!fields) return failure(source + " answered with malformed JSON (" + error + ")");
  auto field = [&](const char* name) -> const std::string* {
    auto it = fields->find(name);
    return it == fields->end() || it->second.empty() ? nullptr : &it->second;
  };
  if (const std::string* code = field("Code"); code != nullptr && *code != "Success")
    return failure(source + " answered Code " + printable(*code, 64));
  Credentials creds;
  for (auto [name, target] : {std::pair{"AccessKeyId", &creds.access_key_id},
                              std::pair{"SecretAccessKey", &creds.secret_access_key},
                              std::pair{"Token", &creds.session_token}}) {
    const std::string* value = field(name);
    if (value == nullptr) return failure(source + " answered without " + name);
    *target = *value;
  }
  if (const std::string* expiration = field("Expiration")) {
    creds.expiration = parse_iso8601(*expiration);
    if (!creds.expiration) return failure(source + " answered with a malformed Expiration");
  } else if (expiration_required) {
    return failure(source + " answered without Expiration");
  }
  return Result{std::move(creds), {}, {}};
}

}  // namespace

// ---- Public parsers

std::optional<Url> parse_url(std::string_view url, std::string& error) {
  const std::size_t colon = url.find("://");
  if (colon == std::string_view::npos) {
    error = "not an absolute URL";
    return std::nullopt;
  }
  Url out;
  out.scheme = lower(url.substr(0, colon));
  if (out.scheme != "http" && out.scheme != "https") {
    error = "scheme is not http or https";
    return std::nullopt;
  }
  std::string_view rest = url.substr(colon + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    error = "user information in URLs is not supported";
    return std::nullopt;
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 literal";
      return std::nullopt;
    }
    out.host = std::string(authority.substr(1, close - 1));
    for (char c : out.host) {
      if (hex_value(c) < 0 && c != ':' && c != '.') {
        error = "bad IPv6 literal";
        return std::nullopt;
      }
    }
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "unexpected text after the IPv6 literal";
        return std::nullopt;
      }
      port = after.substr(1);
      if (port.empty()) {
        error = "empty port";
        return std::nullopt;
      }
    }
  } else {
    const std::size_t c = authority.find(':');
    out.host = std::string(authority.substr(0, c));
    if (c != std::string_view::npos) {
      port = authority.substr(c + 1);
      if (port.empty()) {
        error = "empty port";
        return std::nullopt;
      }
    }
    for (char ch : out.host) {
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '-' || ch == '_')) {
        error = "bad host name";
        return std::nullopt;
      }
    }
  }
  if (out.host.empty()) {
    error = "no host";
    return std::nullopt;
  }
  if (port.empty()) {
    out.port = out.scheme == "https" ? 443 : 80;
  } else {
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || value > 65535) {
        error = "bad port";
        return std::nullopt;
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535 || port.size() > 5) {
      error = "bad port";
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  if (target.find('#') != std::string_view::npos) {
    error = "fragments are not supported";
    return std::nullopt;
  }
  for (char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) {
      error = "the path holds a space, a control or a non-ASCII character";
      return std::nullopt;
    }
  }
  if (target.empty()) {
    out.target = "/";
  } else if (target.front() == '?') {
    out.target = "/" + std::string(target);
  } else {
    out.target = std::string(target);
  }
  return out;
}

std::optional<IniFile> parse_ini(std::string_view text, std::string& error) {
  IniFile out;
  std::map<std::string, std::string>* section = nullptr;
  bool in_subsettings = false;  // after "key =" with no value, indented lines belong to it
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (raw.ends_with('\r')) raw.remove_suffix(1);
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    const bool indented = is_space(raw.front());
    if (indented && in_subsettings) continue;
    in_subsettings = false;
    auto fail = [&](const std::string& why) {
      error = "line " + std::to_string(line_no) + ": " + why;
      return std::nullopt;
    };
    if (line.front() == '[') {
      const std::size_t close = line.find(']');
      if (close == std::string_view::npos) return fail("section header without ']'");
      const std::string_view after = trim(line.substr(close + 1));
      if (!after.empty() && after.front() != '#' && after.front() != ';')
        return fail("unexpected text after the section header");
      // Collapse inner whitespace: "[profile   dev]" names the profile "dev".
      std::string name;
      bool space = false;
      for (char c : trim(line.substr(1, close - 1))) {
        if (is_space(c)) {
          space = true;
          continue;
        }
        if (space && !name.empty()) name.push_back(' ');
        space = false;
        name.push_back(c);
      }
      if (name.empty()) return fail("empty section name");
      section = &out.sections[name];
      continue;
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) return fail("expected \"[section]\" or \"key = value\"");
    if (section == nullptr) return fail("setting before the first [section]");
    const std::string key = lower(trim(line.substr(0, eq)));
    if (key.empty()) return fail("setting without a name");
    std::string_view value = line.substr(eq + 1);
    for (std::size_t i = 1; i < value.size(); ++i) {
      if ((value[i] == '#' || value[i] == ';') && is_space(value[i - 1])) {
        value = value.substr(0, i);
        break;
      }
    }
    value = trim(value);
    if (value.empty()) in_subsettings = true;
    (*section)[key] = std::string(value);
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_flat_json_object(std::string_view text,
                                                                         std::string& error) {
  if (text.size() > kMaxJsonSize) {
    error = "larger than " + std::to_string(kMaxJsonSize) + " bytes";
    return std::nullopt;
  }
  return JsonParser(text).object(error);
}

std::optional<Credentials> parse_sts_credentials(std::string_view xml, std::string& error) {
  if (xml.find("<ErrorResponse") != std::string_view::npos) {
    std::string ignored;
    std::string code = xml_element(xml, "Code", ignored).value_or("");
    if (code.empty()) code = "unknown error";  // "<Code></Code>" too: the error is never empty
    const std::string message = xml_element(xml, "Message", ignored).value_or("");
    error = printable(code, 64) + (message.empty() ? "" : ": " + printable(message));
    return std::nullopt;
  }
  const std::size_t open = xml.find("<Credentials>");
  const std::size_t close = xml.find("</Credentials>");
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    error = "no <Credentials> element";
    return std::nullopt;
  }
  if (xml.find("<Credentials>", open + 1) != std::string_view::npos) {
    error = "more than one <Credentials> element";
    return std::nullopt;
  }
  const std::string_view scope = xml.substr(open, close - open);
  Credentials creds;
  for (auto [name, target] : {std::pair{"AccessKeyId", &creds.access_key_id},
                              std::pair{"SecretAccessKey", &creds.secret_access_key},
                              std::pair{"SessionToken", &creds.session_token}}) {
    auto value = xml_element(scope, name, error);
    if (!value) return std::nullopt;
    if (value->empty()) {
      error = "empty <" + std::string(name) + ">";
      return std::nullopt;
    }
    *target = std::move(*value);
  }
  auto expiration = xml_element(scope, "Expiration", error);
  if (!expiration) return std::nullopt;
  creds.expiration = parse_iso8601(trim(*expiration));
  if (!creds.expiration) {
    error = "malformed <Expiration>";
    return std::nullopt;
  }
  return creds;
}

std::optional<system_clock::time_point> parse_iso8601(std::string_view s) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day) || s[10] != 'T' || !digits(s, 11, 2, hour) ||
      s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' || !digits(s, 17, 2, second))
    return std::nullopt;
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || day < 1 ||
      day > kDaysInMonth[month - 1] + (month == 2 && leap ? 1 : 0) || hour > 23 || minute > 59 ||
      second > 59)
    return std::nullopt;
  std::size_t pos = 19;
  std::chrono::nanoseconds fraction{0};
  if (s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    std::int64_t scale = 100000000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      fraction += std::chrono::nanoseconds((s[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  std::chrono::minutes offset{0};
  const std::string_view zone = s.substr(pos);
  if (zone == "Z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh = 0, om = 0;
    if (!digits(zone, 1, 2, oh) || !digits(zone, 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset = std::chrono::minutes(oh * 60 + om);
    if (zone[0] == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const auto whole =
      std::chrono::seconds(days * 86400 + hour * 3600 + minute * 60 + second) - offset;
  // The sum below is in 64-bit nanoseconds, about 292 years either side of 1970: a time outside
  // (say 9999-12-31T23:59:59Z for "never expires") would overflow, so it is no time at all.
  constexpr auto kLimit =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::nanoseconds::max());
  if (whole >= kLimit || whole <= -kLimit) return std::nullopt;
  const auto since_epoch = whole + fraction;
  return system_clock::time_point(std::chrono::duration_cast<system_clock::duration>(since_epoch));
}

std::optional<std::string> process_environment(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// ---- The chain

// A provider's answer. Success and failure convert from Result (a failure counts as configured);
// skip() is for a provider whose settings are absent, and the chain goes on to the next.
struct CredentialChain::Attempt {
  Attempt(Result r) : result(std::move(r)) {}  // NOLINT(google-explicit-constructor)
  static Attempt skip(std::string why) {
    Attempt a(failure(std::move(why)));
    a.configured = false;
    return a;
  }
  Result result;
  bool configured = true;
};

// Releases the refresh and wakes its waiters if the refreshing coroutine is destroyed before it
// finished (its io_context stopped): no waiter may wait forever.
class CredentialChain::RefreshGuard {
 public:
  explicit RefreshGuard(CredentialChain& chain) : chain_(&chain) {}
  RefreshGuard(const RefreshGuard&) = delete;
  RefreshGuard& operator=(const RefreshGuard&) = delete;
  ~RefreshGuard() {
    if (chain_ != nullptr) chain_->finish_refresh(failure("the credential refresh was abandoned"));
  }
  void release() { chain_ = nullptr; }

 private:
  CredentialChain* chain_;
};

CredentialChain::CredentialChain(ChainSettings settings, std::shared_ptr<HttpClient> http)
    : settings_(std::move(settings)), http_(std::move(http)), session_name_(random_session_name()) {
  if (!settings_.environment) settings_.environment = process_environment;
}

CredentialChain::~CredentialChain() = default;

system_clock::time_point CredentialChain::now() const {
  return settings_.clock ? settings_.clock() : system_clock::now();
}

std::optional<std::string> CredentialChain::env(std::string_view name) const {
  auto value = settings_.environment(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

asio::awaitable<Result> CredentialChain::get() {
  auto ex = co_await asio::this_coro::executor;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    if (cached_ && !expires_within(*cached_->credentials, now(), settings_.refresh_margin)) {
      co_return *cached_;
    }
    if (in_flight_) {
      waiter = std::make_shared<Waiter>(ex);
      waiters_.push_back(waiter);
    } else {
      in_flight_ = true;
    }
  }
  if (waiter) {
    // Another caller is refreshing; finish_refresh wakes this one on its own executor (it sets the
    // timer's expiry to the past, which also works if that happens before this wait starts).
    auto [ec] = co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
    std::lock_guard lock(mutex_);
    co_return waiter->result;
  }
  RefreshGuard guard(*this);
  Result result = co_await resolve();
  guard.release();
  co_return finish_refresh(std::move(result));
}

Result CredentialChain::finish_refresh(Result result) {
  std::vector<std::shared_ptr<Waiter>> waiters;
  {
    std::lock_guard lock(mutex_);
    in_flight_ = false;
    if (result.credentials) {
      cached_ = result;
    } else if (cached_ && cached_->credentials->expiration &&
               *cached_->credentials->expiration > now()) {
      // An early refresh failed; the cached credentials still work until they expire.
      std::string why = std::move(result.error);
      result = *cached_;
      result.error = "refresh failed, using the cached credentials until they expire: " + why;
    }
    for (auto& weak : waiters_) {
      if (auto w = weak.lock()) {
        w->result = result;
        waiters.push_back(std::move(w));
      }
    }
    waiters_.clear();
  }
  // Each waiter is woken on its own executor. An expiry in the past also covers a waiter that has
  // not started waiting yet.
  for (auto& w : waiters)
    asio::post(w->timer.get_executor(),
               [w] { w->timer.expires_at(asio::steady_timer::time_point()); });
  return result;
}

asio::awaitable<Result> CredentialChain::resolve() {
  std::string reasons;
  using Provider = asio::awaitable<Attempt> (CredentialChain::*)();
  static constexpr std::pair<const char*, Provider> kProviders[] = {
      {"environment", &CredentialChain::from_environment},
      {"web-identity", &CredentialChain::from_web_identity},
      {"shared-files", &CredentialChain::from_shared_files},
      {"container", &CredentialChain::from_container},
      {"imds", &CredentialChain::from_imds},
  };
  for (const auto& [name, provider] : kProviders) {
    Attempt attempt = co_await (this->*provider)();
    Result& r = attempt.result;
    if (r.credentials) {
      const Credentials& c = *r.credentials;
      if (c.access_key_id.empty() || c.secret_access_key.empty()) {
        r.error = "incomplete credentials";
      } else if (c.expiration && *c.expiration <= now()) {
        r.error = "the credentials expired at " + format_time(*c.expiration);
      } else {
        if (r.provider.empty()) r.provider = name;
        r.error.clear();
        co_return r;
      }
    }
    if (!reasons.empty()) reasons += "; ";
    reasons += std::string(name) + ": " + r.error;
    if (attempt.configured) {
      Result stop = failure("no AWS credentials: " + reasons);
      stop.provider = name;
      co_return stop;
    }
  }
  co_return failure("no AWS credentials: " + reasons);
}

asio::awaitable<CredentialChain::Attempt> CredentialChain::from_environment() {
  auto id = env("AWS_ACCESS_KEY_ID");
  auto secret = env("AWS_SECRET_ACCESS_KEY");
  if (!id && !secret) co_return Attempt::skip("AWS_ACCESS_KEY_ID is not set");
  if (!id) co_return failure("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  if (!secret) co_return failure("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  Credentials creds;
  creds.access_key_id = std::move(*id);
  creds.secret_access_key = std::move(*secret);
  creds.session_token = env("AWS_SESSION_TOKEN").value_or("");
  co_return Result{std::move(creds), "environment", {}};
}

asio::awaitable<CredentialChain::Attempt> CredentialChain::from_web_identity() {
  auto token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  auto role_arn = env("AWS_ROLE_ARN");
  if (!token_file && !role_arn) co_return Attempt::skip("AWS_WEB_IDENTITY_TOKEN_FILE is not set");
  if (!token_file) co_return failure("AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not");
  if (!role_arn) co_return failure("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
  std::string error;
  auto token = read_token_file(*token_file, error);
  if (!token) co_return failure("web identity token: " + error);

  std::string endpoint;
  const bool ignore_overrides =
      lower(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").value_or("")) == "true";
  if (!ignore_overrides) {
    endpoint = env("AWS_ENDPOINT_URL_STS").value_or(env("AWS_ENDPOINT_URL").value_or(""));
  }
  if (endpoint.empty()) {
    std::string region =
        env("AWS_REGION").value_or(env("AWS_DEFAULT_REGION").value_or(settings_.region));
    if (region.empty()) {
      endpoint = "https://sts.amazonaws.com";
    } else if (!is_region(region)) {
      co_return failure("\"" + printable(region, 64) + "\" is not a region name");
    } else {
      endpoint =
          "https://sts." + region + ".amazonaws.com" + (region.starts_with("cn-") ? ".cn" : "");
    }
  }
  HttpRequest request;
  request.method = "POST";
  request.url = without_trailing_slash(endpoint) + "/";
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                     {"Accept", "text/xml"}};
  request.body =
      form_encode({{"Action", "AssumeRoleWithWebIdentity"},
                   {"Version", "2011-06-15"},
                   {"RoleArn", *role_arn},
                   {"RoleSessionName", env("AWS_ROLE_SESSION_NAME").value_or(session_name_)},
                   {"WebIdentityToken", *token}});
  request.timeout = settings_.http_timeout;
  const std::string where = "STS " + request.url;
  HttpResponse response = co_await http_->send(std::move(request));
  if (!response.error.empty()) co_return failure(where + ": " + response.error);
  if (response.status != 200) {
    std::string detail;
    parse_sts_credentials(response.body, detail);
    const bool is_error_response = response.body.find("<ErrorResponse") != std::string::npos;
    co_return failure(where + " returned HTTP " + std::to_string(response.status) +
                      (is_error_response ? " (" + detail + ")" : ""));
  }
  auto creds = parse_sts_credentials(response.body, error);
  if (!creds) co_return failure(where + " answered without usable credentials (" + error + ")");
  co_return Result{std::move(creds), "web-identity", {}};
}

asio::awaitable<CredentialChain::Attempt> CredentialChain::from_shared_files() {
  const auto named =
      !settings_.profile.empty() ? std::optional(settings_.profile) : env("AWS_PROFILE");
  const bool named_profile = named.has_value();
  const std::string profile = named.value_or("default");
  const std::string provider = "shared-files:" + profile;
  const auto home = env("HOME");
  auto path_of = [&](const char* variable, const char* file) -> std::optional<std::string> {
    if (auto path = env(variable)) {
      if (path->starts_with("~/") && home) return *home + path->substr(1);
      return path;
    }
    if (!home) return std::nullopt;
    return *home + "/.aws/" + file;
  };
  const auto credentials_path = path_of("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  const auto config_path = path_of("AWS_CONFIG_FILE", "config");
  if (!credentials_path && !config_path)
    co_return Attempt::skip(
        "HOME is not set and neither AWS_SHARED_CREDENTIALS_FILE nor AWS_CONFIG_FILE is");

  // Settings of the profile: the config file's, then the credentials file's on top.
  std::map<std::string, std::string> settings;
  bool found = false;
  std::vector<std::string> read_files;
  for (const auto& [path, is_config] :
       {std::pair{config_path, true}, std::pair{credentials_path, false}}) {
    if (!path) continue;
    std::string text, error;
    const ReadStatus status = read_file(*path, kMaxFileSize, text, error);
    if (status == ReadStatus::missing) continue;
    if (status == ReadStatus::failed) co_return failure(error);
    read_files.push_back(*path);
    auto ini = parse_ini(text, error);
    if (!ini) co_return failure(*path + ": " + error);
    std::vector<std::string> names;
    if (!is_config) {
      names = {profile};
    } else if (profile == "default") {
      names = {"default", "profile default"};
    } else {
      names = {"profile " + profile};
    }
    for (const auto& name : names) {
      auto it = ini->sections.find(name);
      if (it == ini->sections.end()) continue;
      found = true;
      for (const auto& [key, value] : it->second)
        settings[key] = value;
    }
  }
  if (read_files.empty()) {
    co_return Attempt::skip("no credentials file (" + credentials_path.value_or("-") +
                            ") or config file (" + config_path.value_or("-") + ")");
  }
  if (!found) {
    std::string files;
    for (const auto& f : read_files)
      files += (files.empty() ? "" : " or ") + f;
    // A profile someone named must exist; the default one need not.
    const std::string why = "profile " + profile + " not found in " + files;
    if (named_profile) co_return failure(why);
    co_return Attempt::skip(why);
  }
  auto value = [&](const char* key) -> const std::string* {
    auto it = settings.find(key);
    return it == settings.end() || it->second.empty() ? nullptr : &it->second;
  };
  const std::string* id = value("aws_access_key_id");
  const std::string* secret = value("aws_secret_access_key");
  if (id != nullptr && secret != nullptr) {
    Credentials creds;
    creds.access_key_id = *id;
    creds.secret_access_key = *secret;
    if (const std::string* token = value("aws_session_token")) creds.session_token = *token;
    co_return Result{std::move(creds), provider, {}};
  }
  if (id != nullptr)
    co_return failure("profile " + profile + " has aws_access_key_id but no aws_secret_access_key");
  if (secret != nullptr)
    co_return failure("profile " + profile + " has aws_secret_access_key but no aws_access_key_id");
  for (const char* key : {"role_arn", "source_profile", "credential_source", "credential_process",
                          "web_identity_token_file", "sso_session", "sso_start_url"}) {
    if (value(key) != nullptr) {
      co_return failure("profile " + profile + " uses " + key +
                        ", which pgmtls does not support; give the profile static keys or use "
                        "another credential source");
    }
  }
  // A profile that only holds settings (region, output): the next provider may have credentials.
  co_return Attempt::skip("profile " + profile + " has no aws_access_key_id");
}

asio::awaitable<CredentialChain::Attempt> CredentialChain::from_container() {
  auto relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!relative && !full)
    co_return Attempt::skip("neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set");
  std::string url;
  std::string error;
  if (relative) {
    if (!relative->starts_with('/'))
      co_return failure("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI does not start with '/'");
    url = without_trailing_slash(
              env("PGMTLS_AWS_CONTAINER_CREDENTIALS_ENDPOINT").value_or("http://169.254.170.2")) +
          *relative;
    if (!parse_url(url, error))
      co_return failure("container endpoint " + printable(url) + ": " + error);
  } else {
    url = *full;
    auto parsed = parse_url(url, error);
    if (!parsed) co_return failure("AWS_CONTAINER_CREDENTIALS_FULL_URI: " + error);
    if (parsed->scheme == "http" && !container_host_allowed(parsed->host)) {
      co_return failure(
          "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is allowed only to a "
          "loopback address or the ECS / EKS agent, not " +
          parsed->host);
    }
  }
  HttpRequest request;
  request.url = url;
  request.headers = {{"Accept", "application/json"}};
  std::optional<std::string> token;
  if (auto token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    token = read_token_file(*token_file, error);
    if (!token) co_return failure("authorization token: " + error);
  } else if ((token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))) {
    if (has_control_char(*token))
      co_return failure(
          "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break or control character");
  }
  if (token) request.headers.emplace_back("Authorization", *token);
  request.timeout = settings_.http_timeout;
  HttpResponse response = co_await http_->send(std::move(request));
  if (!response.error.empty()) co_return failure(url + ": " + response.error);
  if (response.status != 200) {
    const std::string detail = json_error_detail(response.body);
    co_return failure(url + " returned HTTP " + std::to_string(response.status) +
                      (detail.empty() ? "" : " (" + detail + ")"));
  }
  Result r = credentials_from_json(response.body, false, url);
  if (r.credentials) r.provider = "container";
  co_return r;
}

asio::awaitable<CredentialChain::Attempt> CredentialChain::from_imds() {
  if (lower(env("AWS_EC2_METADATA_DISABLED").value_or("")) == "true")
    co_return Attempt::skip("disabled by AWS_EC2_METADATA_DISABLED");
  std::string endpoint;
  if (auto configured = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
    endpoint = *configured;
  } else if (lower(env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE").value_or("")) == "ipv6") {
    endpoint = "http://[fd00:ec2::254]";
  } else {
    endpoint = "http://169.254.169.254";
  }
  endpoint = without_trailing_slash(endpoint);
  std::string error;
  if (!parse_url(endpoint, error)) co_return failure("instance metadata endpoint: " + error);

  HttpRequest token_request;
  token_request.method = "PUT";
  token_request.url = endpoint + "/latest/api/token";
  token_request.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
  token_request.timeout = settings_.imds_timeout;
  HttpResponse response = co_await http_->send(std::move(token_request));
  if (!response.error.empty())
    co_return failure("no instance metadata service at " + endpoint + " (" + response.error + ")");
  if (response.status != 200)
    co_return failure("IMDSv2 token request returned HTTP " + std::to_string(response.status));
  const std::string token(trim(response.body));
  if (token.empty() || has_control_char(token))
    co_return failure("IMDSv2 token response is empty or malformed");

  const std::string roles_url = endpoint + "/latest/meta-data/iam/security-credentials/";
  HttpRequest roles_request;
  roles_request.url = roles_url;
  roles_request.headers = {{"X-aws-ec2-metadata-token", token}};
  roles_request.timeout = settings_.imds_timeout;
  response = co_await http_->send(std::move(roles_request));
  if (!response.error.empty()) co_return failure(roles_url + ": " + response.error);
  if (response.status == 404) co_return failure("no IAM role is attached to this instance");
  if (response.status != 200)
    co_return failure(roles_url + " returned HTTP " + std::to_string(response.status));
  const std::string_view body = response.body;
  const std::string role(trim(body.substr(0, body.find('\n'))));
  if (role.empty()) co_return failure("no IAM role is attached to this instance");
  for (char c : role) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("+=,.@_-").find(c) != std::string_view::npos;
    if (!ok) co_return failure(roles_url + " answered with a malformed role name");
  }

  HttpRequest creds_request;
  creds_request.url = roles_url + role;
  creds_request.headers = {{"X-aws-ec2-metadata-token", token}};
  creds_request.timeout = settings_.imds_timeout;
  const std::string where = creds_request.url;
  response = co_await http_->send(std::move(creds_request));
  if (!response.error.empty()) co_return failure(where + ": " + response.error);
  if (response.status != 200)
    co_return failure(where + " returned HTTP " + std::to_string(response.status));
  Result r = credentials_from_json(response.body, true, where);
  if (r.credentials) r.provider = "imds";
  co_return r;
}

}  // namespace pgmtls::auth::aws
