#include "tests/integration/support/process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace pgmtls::integration {
namespace {

std::string errno_text(const std::string& what, int error = errno) {
  return what + ": " + std::strerror(error);
}

// What the child reports through the close-on-exec pipe when it cannot get as far as exec.
struct ChildFailure {
  int stage;
  int error;
};
constexpr const char* kStages[] = {"dup2", "setgroups", "setgid", "setuid", "exec"};

[[noreturn]] void child_fail(int pipe_fd, int stage) {
  const ChildFailure failure{stage, errno};
  [[maybe_unused]] ssize_t n = ::write(pipe_fd, &failure, sizeof failure);
  ::_exit(127);
}

// poll() with EINTR handled; returns poll's result.
int poll_one(int fd, short events, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<long>(0, left.count())));
    if (rc >= 0 || errno != EINTR) return rc;
  }
}

}  // namespace

ChildProcess::ChildProcess(const SpawnOptions& options) {
  if (options.argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& arg : options.argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const int out = options.stdout_fd >= 0 ? options.stdout_fd : devnull;
  const int err = options.stderr_fd >= 0 ? options.stderr_fd : devnull;

  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    if (::dup2(devnull, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) {
      child_fail(error_pipe[1], 0);
    }
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);  // nothing else leaks into the child
    if (options.run_as) {
      if (::setgroups(0, nullptr) != 0) child_fail(error_pipe[1], 1);
      if (::setgid(options.run_as->second) != 0) child_fail(error_pipe[1], 2);
      if (::setuid(options.run_as->first) != 0) child_fail(error_pipe[1], 3);
    }
    // A test binary killed by a timeout must not leave servers behind. (Set after setuid, which
    // clears it; the parent may have died before this line.)
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
    ::execv(args[0], args.data());
    child_fail(error_pipe[1], 4);
  }
  const int fork_errno = errno;
  ::close(error_pipe[1]);
  if (devnull >= 0) ::close(devnull);
  if (pid_ < 0) {
    ::close(error_pipe[0]);
    throw std::runtime_error(errno_text("fork", fork_errno));
  }
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(error_pipe[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(error_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = status;
    throw std::runtime_error(std::string("cannot start ") + options.argv[0] + ": " +
                             kStages[failure.stage] + ": " + std::strerror(failure.error));
  }
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0) {
    const std::string message = errno_text("pidfd_open");
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    status_ = 0;
    throw std::runtime_error(message);
  }
}

ChildProcess::~ChildProcess() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_for_exit(std::chrono::seconds(10));
  }
  if (pidfd_ >= 0) ::close(pidfd_);
}

void ChildProcess::signal(int sig) const {
  if (!status_) ::kill(pid_, sig);
}

bool ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  if (status_) return true;
  if (poll_one(pidfd_, POLLIN, timeout) <= 0) return false;
  int status = 0;
  pid_t rc;
  do {
    rc = ::waitpid(pid_, &status, 0);
  } while (rc < 0 && errno == EINTR);
  status_ = status;
  return true;
}

std::string ChildProcess::describe_status() const {
  if (!status_) return "still running";
  if (WIFEXITED(*status_)) return "exited with status " + std::to_string(WEXITSTATUS(*status_));
  if (WIFSIGNALED(*status_)) {
    return std::string("killed by signal ") + ::strsignal(WTERMSIG(*status_));
  }
  return "wait status " + std::to_string(*status_);
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  CommandResult result;
  std::optional<ChildProcess> child;
  try {
    child.emplace(SpawnOptions{argv, std::nullopt, out[1], out[1]});
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  ::close(out[1]);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || poll_one(out[0], POLLIN, left) <= 0) {
      result.timed_out = true;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  if (result.timed_out) child->signal(SIGKILL);
  if (child->wait_for_exit(std::chrono::seconds(10)) && WIFEXITED(*child->wait_status()) &&
      !result.timed_out) {
    result.exit_code = WEXITSTATUS(*child->wait_status());
  }
  return result;
}

std::optional<std::pair<uid_t, gid_t>> lookup_user(const std::string& name) {
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) {
    return std::nullopt;
  }
  return std::make_pair(found->pw_uid, found->pw_gid);
}

std::string make_temp_dir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(errno_text("mkdtemp"));
  return pattern;
}

void write_text_file(const std::string& path, const std::string& content, int mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error(errno_text("cannot create " + path));
  ::fchmod(fd, static_cast<mode_t>(mode));
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string message = errno_text("cannot write " + path);
      ::close(fd);
      throw std::runtime_error(message);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

}  // namespace pgmtls::integration
