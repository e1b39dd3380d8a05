// Child processes for integration tests: fork/exec with optional privilege drop, waiting for exit
// with a deadline (via a pidfd, so no polling), and running a command to capture its output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace pgmtls::integration {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the executable's path
  // Run as this user (setgroups/setgid/setuid in the child before exec); needs root.
  std::optional<std::pair<uid_t, gid_t>> run_as;
  int stdout_fd = -1;  // -1: /dev/null
  int stderr_fd = -1;  // -1: /dev/null
};

class ChildProcess {
 public:
  // Throws std::runtime_error if fork or exec fails.
  explicit ChildProcess(const SpawnOptions& options);
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) and reaps the child if it still runs.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits up to `timeout` for the child to exit and reaps it. True once it has exited.
  bool wait_for_exit(std::chrono::milliseconds timeout);
  bool running() { return !wait_for_exit(std::chrono::milliseconds(0)); }
  // The raw wait status, once exited.
  std::optional<int> wait_status() const { return status_; }
  std::string describe_status() const;

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  bool timed_out = false;
  std::string output;  // stdout and stderr interleaved
};

// Runs argv to completion (SIGKILL after `timeout`), capturing stdout and stderr together.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The uid/gid of a system user; nullopt if it does not exist.
std::optional<std::pair<uid_t, gid_t>> lookup_user(const std::string& name);

// A fresh directory under $TMPDIR (or /tmp) named prefix-XXXXXX.
std::string make_temp_dir(const std::string& prefix);

void write_text_file(const std::string& path, const std::string& content, int mode = 0644);

}  // namespace pgmtls::integration
