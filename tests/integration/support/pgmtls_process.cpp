#include "tests/integration/support/pgmtls_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

#ifndef PGMTLS_BINARY
#define PGMTLS_BINARY "pgmtls"
#endif

namespace pgmtls::integration {
namespace {

constexpr std::string_view kListening = "listening on 127.0.0.1:";
constexpr auto kStopTimeout = std::chrono::seconds(10);

bool contains_all(const std::string& line, const std::vector<std::string>& needles) {
  for (const auto& needle : needles) {
    if (line.find(needle) == std::string::npos) return false;
  }
  return true;
}

}  // namespace

std::string pgmtls_binary() {
  const char* path = std::getenv("PGMTLS_BINARY");
  return path && *path ? path : PGMTLS_BINARY;
}

std::string ProxyConfig::to_yaml() const {
  std::string y;
  y += "listen: " + listen + "\n";
  y += "workers: " + std::to_string(workers) + "\n";
  y += "startup_timeout: " + startup_timeout + "\n";
  y += "shutdown_timeout: " + shutdown_timeout + "\n";
  y += "tls:\n";
  y += "  cert_file: " + cert_file + "\n";
  y += "  key_file: " + key_file + "\n";
  y += "  ca_file: " + ca_file + "\n";
  if (!crl_file.empty()) y += "  crl_file: " + crl_file + "\n";
  if (!crl_dir.empty()) y += "  crl_dir: " + crl_dir + "\n";
  y += "  min_protocol_version: TLSv1.2\n";
  y += tls_yaml;
  if (!map.empty()) y += "map: " + map + "\n";
  if (!maps_yaml.empty()) y += "maps:\n" + maps_yaml;
  if (!ident_file.empty()) y += "ident_file: " + ident_file + "\n";
  y += "backends:\n";
  y += "  default:\n";
  y += "    host: " + backend_host + "\n";
  y += "    port: " + std::to_string(backend_port) + "\n";
  y += "    connect_timeout: " + backend_connect_timeout + "\n";
  y += more_backends_yaml;
  y += "log:\n";
  y += "  level: " + log_level + "\n";
  if (!log_format.empty()) y += "  format: " + log_format + "\n";
  y += extra_yaml;
  return y;
}

PgmtlsProcess::PgmtlsProcess(const std::string& config_path, const std::string& yaml,
                             std::chrono::milliseconds startup_timeout) {
  write_text_file(config_path, yaml);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  try {
    child_ = std::make_unique<ChildProcess>(SpawnOptions{
        {pgmtls_binary(), "run", "--config", config_path}, std::nullopt, out[1], out[1]});
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  ::close(out[1]);
  reader_ = std::thread([this, fd = out[0]] { read_log(fd); });

  const auto line = wait_for_log({std::string(kListening)}, startup_timeout);
  std::optional<unsigned> port;
  if (line) {
    const char* begin = line->data() + line->find(kListening) + kListening.size();
    unsigned value = 0;
    const auto parsed = std::from_chars(begin, line->data() + line->size(), value);
    if (parsed.ec == std::errc() && value > 0 && value < 65536) port = value;
  }
  if (!port) {
    child_->signal(SIGKILL);
    child_->wait_for_exit(kStopTimeout);
    reader_.join();
    throw std::runtime_error("pgmtls did not report \"" + std::string(kListening) +
                             "PORT\" within " + std::to_string(startup_timeout.count()) + " ms (" +
                             child_->describe_status() + "); its output:\n" + log_text());
  }
  port_ = static_cast<std::uint16_t>(*port);
}

PgmtlsProcess::~PgmtlsProcess() {
  if (stopped_by_test_ && !child_->running()) {
    // The test stopped it and checked how.
  } else if (!child_->running()) {
    ADD_FAILURE() << "pgmtls " << child_->describe_status()
                  << " before it was asked to stop. Log:\n"
                  << log_text();
  } else {
    child_->signal(SIGTERM);
    if (!child_->wait_for_exit(kStopTimeout)) {
      ADD_FAILURE() << "pgmtls did not exit within 10 s of SIGTERM; killing it. Log:\n"
                    << log_text();
      child_->signal(SIGKILL);
      child_->wait_for_exit(kStopTimeout);
    } else {
      const int status = *child_->wait_status();
      const bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                         (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
      EXPECT_TRUE(clean) << "pgmtls " << child_->describe_status() << " after SIGTERM. Log:\n"
                         << log_text();
    }
  }
  if (reader_.joinable()) reader_.join();
}

std::optional<int> PgmtlsProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  stopped_by_test_ = true;
  if (!child_->wait_for_exit(timeout)) return std::nullopt;
  const int status = *child_->wait_status();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

bool PgmtlsProcess::running() {
  return child_->running();
}

void PgmtlsProcess::read_log(int fd) {
  const bool echo = std::getenv("PGMTLS_IT_ECHO") != nullptr;
  std::string partial;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buffer, static_cast<std::size_t>(n));
    std::vector<std::string> complete;
    std::size_t start = 0;
    for (std::size_t end; (end = partial.find('\n', start)) != std::string::npos; start = end + 1) {
      complete.push_back(partial.substr(start, end - start));
    }
    partial.erase(0, start);
    if (complete.empty()) continue;
    if (echo) {
      for (const auto& line : complete)
        std::cerr << "[pgmtls] " << line << "\n";
    }
    std::lock_guard lock(mutex_);
    for (auto& line : complete)
      lines_.push_back(std::move(line));
    changed_.notify_all();
  }
  ::close(fd);
  std::lock_guard lock(mutex_);
  if (!partial.empty()) lines_.push_back(partial);
  eof_ = true;
  changed_.notify_all();
}

std::size_t PgmtlsProcess::log_mark() const {
  std::lock_guard lock(mutex_);
  return lines_.size();
}

std::vector<std::string> PgmtlsProcess::log_lines(std::size_t since) const {
  std::lock_guard lock(mutex_);
  if (since >= lines_.size()) return {};
  return {lines_.begin() + static_cast<std::ptrdiff_t>(since), lines_.end()};
}

std::string PgmtlsProcess::log_text(std::size_t since) const {
  std::string text;
  for (const auto& line : log_lines(since))
    text += line + "\n";
  return text;
}

std::optional<std::string> PgmtlsProcess::wait_for_log(const std::vector<std::string>& needles,
                                                       std::chrono::milliseconds timeout,
                                                       std::size_t since) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  std::size_t next = since;
  for (;;) {
    for (; next < lines_.size(); ++next) {
      if (contains_all(lines_[next], needles)) return lines_[next];
    }
    if (eof_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (; next < lines_.size(); ++next) {
        if (contains_all(lines_[next], needles)) return lines_[next];
      }
      return std::nullopt;
    }
  }
}

CommandResult run_pgmtls_check(const std::string& config_path) {
  return run_command({pgmtls_binary(), "check", "--config", config_path}, std::chrono::seconds(30));
}

}  // namespace pgmtls::integration
