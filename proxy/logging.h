// Logger set-up and structured log events. One event is one line: in `text` format
// "EVENT key=value key=value ...", in `json` format one JSON object per line with "time",
// "level", "event" and the fields. Free-text messages become {"time","level","message"} in json.
#pragma once

#include <spdlog/common.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgmtls::proxy {

enum class LogFormat { text, json };

// Installs the process-wide logger (stderr) at the given level name, in `format`.
void setup_logging(const std::string& level, LogFormat format = LogFormat::text);

// A log value: bare when it is a simple token, otherwise double-quoted with \" and \\ escaped.
// Empty values print as "-".
std::string log_value(std::string_view value);

// `value` as a JSON string literal, quotes included.
std::string json_string(std::string_view value);

struct LogField {
  LogField(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  LogField(std::string_view k, std::uint64_t v) : key(k), value(std::to_string(v)), number(true) {}
  LogField(std::string_view k, std::int64_t v) : key(k), value(std::to_string(v)), number(true) {}

  std::string_view key;
  std::string value;
  bool number = false;
};

// Logs one structured event in the configured format.
void log_event(spdlog::level::level_enum level, std::string_view event,
               const std::vector<LogField>& fields);

}  // namespace pgmtls::proxy
