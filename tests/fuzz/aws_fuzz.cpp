// The parsers of auth/aws_credentials.h, which read what AWS endpoints and local files hand
// pgmtls: parse_url, parse_ini, parse_flat_json_object, parse_sts_credentials and parse_iso8601.
//
// The first byte picks the parser and the rest is its input: 'u' URL, 'i' shared config or
// credentials file, 'j' JSON object (container / IMDS credentials), 'x' STS XML response, 't' ISO
// 8601 time. Any other first byte feeds the rest to all five.
#include <time.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ratio>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>

#include "auth/aws_credentials.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;
namespace aws = pgmtls::auth::aws;
using std::chrono::system_clock;

namespace {

constexpr auto npos = std::string_view::npos;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

bool is_trimmed(std::string_view s) {
  return s.empty() || (!is_space(s.front()) && !is_space(s.back()));
}

bool has_control_char(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// ---- parse_url

void check_url(std::string_view text) {
  std::string error;
  const auto url = aws::parse_url(text, error);
  if (!url) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  FUZZ_CHECK(url->scheme == "http" || url->scheme == "https");
  FUZZ_CHECK(!url->host.empty());
  FUZZ_CHECK(url->host.find_first_of("[]@/?#") == std::string::npos);
  FUZZ_CHECK(!has_control_char(url->host));
  FUZZ_CHECK(url->port != 0);
  FUZZ_CHECK(url->target.starts_with('/'));
  for (char ch : url->target) {
    const auto c = static_cast<unsigned char>(ch);
    FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '#');
  }
  // The URL a client would write from the pieces reads back as the same pieces.
  const bool ipv6 = url->host.find(':') != std::string::npos;
  const std::string again = url->scheme + "://" + (ipv6 ? "[" + url->host + "]" : url->host) + ":" +
                            std::to_string(url->port) + url->target;
  std::string again_error;
  const auto reparsed = aws::parse_url(again, again_error);
  FUZZ_CHECK(reparsed.has_value());
  FUZZ_CHECK(reparsed->scheme == url->scheme);
  FUZZ_CHECK(reparsed->host == url->host);
  FUZZ_CHECK(reparsed->port == url->port);
  FUZZ_CHECK(reparsed->target == url->target);
}

// ---- parse_ini

void check_ini(std::string_view text) {
  std::string error;
  const auto ini = aws::parse_ini(text, error);
  if (!ini) {
    // "line N: why", N a line of the input.
    FUZZ_CHECK(error.starts_with("line "));
    std::size_t pos = 5, line = 0;
    while (pos < error.size() && error[pos] >= '0' && error[pos] <= '9' && line < 100000000)
      line = line * 10 + static_cast<std::size_t>(error[pos++] - '0');
    FUZZ_CHECK(error.compare(pos, 2, ": ") == 0 && error.size() > pos + 2);
    std::size_t lines = 1;
    for (char c : text)
      lines += c == '\n';
    FUZZ_CHECK(line >= 1 && line <= lines);
    return;
  }
  // Written back out one "key=value" per line (no spaces around '=', so that a value starting
  // with '#' or ';' is not read as a comment), the file reads back the same.
  std::string again;
  for (const auto& [name, settings] : ini->sections) {
    FUZZ_CHECK(!name.empty() && is_trimmed(name));
    FUZZ_CHECK(name.find(']') == std::string::npos);
    for (std::size_t i = 0; i < name.size(); ++i) {
      // Inner whitespace collapses to single spaces.
      if (is_space(name[i])) FUZZ_CHECK(name[i] == ' ' && name[i + 1] != ' ');
    }
    again += "[" + name + "]\n";
    for (const auto& [key, value] : settings) {
      FUZZ_CHECK(!key.empty() && is_trimmed(key));
      FUZZ_CHECK(key.find_first_of("=\n") == std::string::npos);
      FUZZ_CHECK(key.front() != '[' && key.front() != '#' && key.front() != ';');
      for (char c : key)
        FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
      FUZZ_CHECK(is_trimmed(value));
      FUZZ_CHECK(value.find('\n') == std::string::npos);
      for (std::size_t i = 1; i < value.size(); ++i) {
        // Whitespace then '#' or ';' starts a comment, which is never part of the value.
        FUZZ_CHECK(!((value[i] == '#' || value[i] == ';') && is_space(value[i - 1])));
      }
      again += key + "=" + value + "\n";
    }
  }
  std::string again_error;
  const auto reparsed = aws::parse_ini(again, again_error);
  FUZZ_CHECK(reparsed.has_value());
  FUZZ_CHECK(reparsed->sections == ini->sections);
}

// ---- parse_flat_json_object

constexpr std::size_t kMaxJson = 64 * 1024;

std::string json_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

void check_json(std::string_view text) {
  std::string error;
  const auto object = aws::parse_flat_json_object(text, error);
  if (!object) {
    FUZZ_CHECK(!error.empty());
    if (text.size() > kMaxJson) return;
    // "what at offset N", N within the input.
    const std::size_t at = error.rfind(" at offset ");
    FUZZ_CHECK(at != std::string::npos);
    const std::string offset = error.substr(at + 11);
    FUZZ_CHECK(!offset.empty() && offset.size() <= 6 &&
               offset.find_first_not_of("0123456789") == std::string::npos);
    FUZZ_CHECK(std::stoul(offset) <= text.size());
    return;
  }
  FUZZ_CHECK(text.size() <= kMaxJson);
  const std::size_t start = text.find_first_not_of(" \t\r\n");
  FUZZ_CHECK(start != npos && text[start] == '{' && text.find_last_not_of(" \t\r\n") != start);
  // Written back with every value as a string, the same keys and values come back.
  std::string again = "{";
  for (const auto& [key, value] : *object) {
    if (again.size() > 1) again += ',';
    again += json_quote(key) + ":" + json_quote(value);
  }
  again += '}';
  if (again.size() > kMaxJson) return;
  std::string again_error;
  const auto reparsed = aws::parse_flat_json_object(again, again_error);
  FUZZ_CHECK(reparsed.has_value());
  FUZZ_CHECK(*reparsed == *object);
}

// ---- parse_sts_credentials

// Every error parse_sts_credentials gives for a response that is not an <ErrorResponse>. None
// holds text from the response, so none can hold a secret from it.
const std::set<std::string>& sts_errors() {
  static const std::set<std::string> errors = [] {
    std::set<std::string> out = {"no <Credentials> element", "more than one <Credentials> element",
                                 "malformed <Expiration>"};
    for (const char* name : {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}) {
      const std::string element = "<" + std::string(name) + ">";
      out.insert("no " + element + " element");
      out.insert(element + " is not closed");
      out.insert("more than one " + element + " element");
      out.insert("empty " + element);
      for (const char* why : {"unexpected markup inside an element", "bad entity reference",
                              "bad character reference", "unknown entity"})
        out.insert(element + ": " + why);
    }
    return out;
  }();
  return errors;
}

void check_sts(std::string_view text) {
  std::string error;
  const auto creds = aws::parse_sts_credentials(text, error);
  const bool error_response = text.find("<ErrorResponse") != npos;
  if (creds) {
    FUZZ_CHECK(!error_response);
    FUZZ_CHECK(!creds->access_key_id.empty());
    FUZZ_CHECK(!creds->secret_access_key.empty());
    FUZZ_CHECK(!creds->session_token.empty());
    FUZZ_CHECK(creds->expiration.has_value());
    return;
  }
  FUZZ_CHECK(!error.empty());
  if (error_response) {
    // "CODE: MESSAGE" from the response, on one line and capped (64 + 200 bytes and "..."s).
    FUZZ_CHECK(!has_control_char(error));
    FUZZ_CHECK(error.size() <= 64 + 3 + 2 + 200 + 3);
  } else {
    if (!sts_errors().count(error)) std::fprintf(stderr, "unexpected error: %s\n", error.c_str());
    FUZZ_CHECK(sts_errors().count(error) == 1);
  }
}

// ---- parse_iso8601

// An independent reading of the grammar: nanoseconds since the epoch, or nullopt. The calendar is
// checked by timegm/gmtime_r round trip rather than by a table of month lengths.
std::optional<__int128> reference_iso8601(std::string_view s) {
  auto number = [&](std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (s.size() < 20 || !number(0, 4, year) || s[4] != '-' || !number(5, 2, month) || s[7] != '-' ||
      !number(8, 2, day) || s[10] != 'T' || !number(11, 2, hour) || s[13] != ':' ||
      !number(14, 2, minute) || s[16] != ':' || !number(17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const time_t t = timegm(&tm);
  std::tm back{};
  if (gmtime_r(&t, &back) == nullptr || back.tm_year != year - 1900 || back.tm_mon != month - 1 ||
      back.tm_mday != day)
    return std::nullopt;  // 31 April, 29 February of a common year
  std::size_t pos = 19;
  __int128 nanos = 0;
  if (s[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
      ++pos;
    if (pos == start || pos - start > 9) return std::nullopt;
    std::string digits(s.substr(start, pos - start));
    digits.resize(9, '0');
    nanos = std::stol(digits);
  }
  const std::string_view zone = s.substr(pos);
  int offset_minutes = 0;
  if (zone != "Z") {
    int oh, om;
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || !number(pos + 1, 2, oh) ||
        zone[3] != ':' || !number(pos + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_minutes = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  }
  // parse_iso8601 works in 64-bit nanoseconds and turns down a time whose whole seconds reach
  // 2^63 ns either side of 1970 (1677 to 2262), rather than overflow.
  const std::int64_t whole = static_cast<std::int64_t>(t) - offset_minutes * 60;
  constexpr std::int64_t kLimit = std::numeric_limits<std::int64_t>::max() / 1000000000;
  if (whole >= kLimit || whole <= -kLimit) return std::nullopt;
  return static_cast<__int128>(whole) * 1000000000 + nanos;
}

void check_iso8601(std::string_view text) {
  static_assert(std::is_same_v<system_clock::period, std::nano>,
                "the reference counts system_clock ticks in nanoseconds");
  const auto parsed = aws::parse_iso8601(text);
  const auto expected = reference_iso8601(text);
  FUZZ_CHECK(parsed.has_value() == expected.has_value());
  if (parsed) FUZZ_CHECK(parsed->time_since_epoch().count() == *expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input = fuzz::as_text(data + 1, size - 1);
  switch (data[0]) {
    case 'u':
      check_url(input);
      break;
    case 'i':
      check_ini(input);
      break;
    case 'j':
      check_json(input);
      break;
    case 'x':
      check_sts(input);
      break;
    case 't':
      check_iso8601(input);
      break;
    default:
      check_url(input);
      check_ini(input);
      check_json(input);
      check_sts(input);
      check_iso8601(input);
  }
  return 0;
}
