#include "proxy/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace pgmtls::proxy {

namespace {

// Marks a message whose payload is already JSON fields (from log_event in json format).
constexpr char kPreformatted = '\x1e';

std::atomic<LogFormat> g_format{LogFormat::text};

// The json format's %* flag: the pre-rendered fields of an event, or a free-text message.
class JsonPayload final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string out;
    if (!payload.empty() && payload.front() == kPreformatted) {
      out.assign(payload.substr(1));
    } else {
      out = "\"message\":" + json_string(payload);
    }
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonPayload>();
  }
};

}  // namespace

void setup_logging(const std::string& level, LogFormat format) {
  auto logger = spdlog::stderr_logger_mt("pgmtls");
  if (format == LogFormat::json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonPayload>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%*})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  }
  g_format = format;
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

std::string log_value(std::string_view value) {
  if (value.empty()) return "-";
  bool plain = true;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || c == '"' || c == '\\' || c == '=' || u >= 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < ' ' || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string json_string(std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < value.size();) {
    const char c = value[i];
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      // Valid UTF-8 passes through; any other byte becomes U+FFFD, so that a line stays valid
      // JSON whatever a client or a certificate sent.
      const std::size_t n = u >= 0xf0 && u <= 0xf4   ? 4
                            : u >= 0xe0              ? 3
                            : u >= 0xc2 && u <= 0xdf ? 2
                                                     : 0;
      bool valid = n != 0 && i + n <= value.size();
      for (std::size_t k = 1; valid && k < n; ++k)
        valid = (static_cast<unsigned char>(value[i + k]) & 0xc0) == 0x80;
      if (valid) {
        out.append(value.substr(i, n));
        i += n;
      } else {
        out += "\\ufffd";
        ++i;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\u00";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xf]);
    } else {
      out.push_back(c);
    }
    ++i;
  }
  out.push_back('"');
  return out;
}

void log_event(spdlog::level::level_enum level, std::string_view event,
               const std::vector<LogField>& fields) {
  std::string line;
  if (g_format.load() == LogFormat::json) {
    line.push_back(kPreformatted);
    line += "\"event\":" + json_string(event);
    for (const auto& f : fields) {
      line += ",\"";
      line += f.key;
      line += "\":";
      line += f.number ? f.value : json_string(f.value);
    }
  } else {
    line = event;
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      line += f.number ? f.value : log_value(f.value);
    }
  }
  spdlog::log(level, "{}", line);
}

}  // namespace pgmtls::proxy
