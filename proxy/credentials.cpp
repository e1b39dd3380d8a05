#include "proxy/credentials.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "proxy/http_client.h"
#include "proxy/metrics.h"

extern char** environ;

namespace pgmtls::proxy {

namespace {

namespace asio = boost::asio;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A password is short; more output than this is a misbehaving command.
constexpr std::size_t kMaxOutput = 64 * 1024;

asio::awaitable<void> read_all(asio::posix::stream_descriptor& fd, std::string& out) {
  char buf[4096];
  while (out.size() <= kMaxOutput) {
    auto [ec, n] = co_await fd.async_read_some(asio::buffer(buf), use_tuple);
    if (ec) break;  // eof, or the pipe was closed
    out.append(buf, n);
  }
}

asio::awaitable<void> wait_readable(asio::posix::stream_descriptor& fd) {
  auto [ec] = co_await fd.async_wait(asio::posix::stream_descriptor::wait_read, use_tuple);
  (void)ec;
}

std::string first_line(const std::string& text, std::size_t max = 200) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > max) line = line.substr(0, max) + "...";
  return line;
}

}  // namespace

asio::awaitable<Credentials::Result> run_credential_command(const std::vector<std::string>& argv,
                                                            const std::vector<std::string>& env,
                                                            std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  const std::string program = argv.empty() ? std::string() : argv.front();
  auto failed = [&](const std::string& why) {
    return Credentials::Result{std::nullopt, "command " + program + ": " + why};
  };

  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    co_return failed("pipe: " + why);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_strings)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  for (auto& a : args)
    argvp.push_back(a.data());
  argvp.push_back(nullptr);

  pid_t pid = -1;
  const int spawn_error =
      ::posix_spawn(&pid, program.c_str(), &actions, nullptr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (spawn_error != 0) {
    ::close(out[0]);
    ::close(err[0]);
    co_return failed(std::string("cannot start: ") + std::strerror(spawn_error));
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);  // just killed: returns at once
    ::close(out[0]);
    ::close(err[0]);
    co_return failed(std::string("pidfd_open: ") + std::strerror(errno));
  }

  asio::posix::stream_descriptor stdout_fd(ex, out[0]);
  asio::posix::stream_descriptor stderr_fd(ex, err[0]);
  asio::posix::stream_descriptor exit_fd(ex, pidfd);
  std::string output;
  std::string errors;
  asio::steady_timer timer(ex, timeout);
  auto finished = co_await (
      (read_all(stdout_fd, output) && read_all(stderr_fd, errors) && wait_readable(exit_fd)) ||
      timer.async_wait(use_tuple));
  if (finished.index() == 1 || output.size() > kMaxOutput) {
    ::kill(pid, SIGKILL);
    co_await wait_readable(exit_fd);  // the kernel reaps it promptly
    ::waitpid(pid, nullptr, WNOHANG);
    co_return failed(finished.index() == 1
                         ? "did not finish within " + std::to_string(timeout.count()) + " ms"
                         : "wrote more than " + std::to_string(kMaxOutput) + " bytes");
  }
  int status = 0;
  ::waitpid(pid, &status, WNOHANG);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status)
                                ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                : "was killed by signal " + std::to_string(WTERMSIG(status));
    co_return failed(how + (errors.empty() ? "" : " (stderr: " + first_line(errors) + ")"));
  }
  if (output.ends_with('\n')) output.pop_back();
  if (output.ends_with('\r')) output.pop_back();
  if (output.empty()) co_return failed("printed nothing");
  co_return Credentials::Result{std::move(output), {}};
}

asio::awaitable<Credentials::Result> Credentials::password_for(const std::string& role,
                                                               const std::string& database,
                                                               const std::string& host,
                                                               std::uint16_t port) {
  const auto& credential = backend_.credential_for(role);
  switch (credential.kind) {
    case config::CredentialConfig::Kind::none:
      co_return Result{};
    case config::CredentialConfig::Kind::password:
      co_return Result{credential.password, {}};
    case config::CredentialConfig::Kind::passfile: {
      auto password = config::passfile_lookup(credential.passfile, host, port, database, role);
      if (!password) co_return Result{std::nullopt, "no line of " + credential.origin + " matches"};
      co_return Result{std::move(password), {}};
    }
    case config::CredentialConfig::Kind::aws_iam: {
      auto result = co_await iam_token(credential, role, host, port);
      co_return result;
    }
    case config::CredentialConfig::Kind::command: {
      auto result = co_await command_password(credential, role);
      co_return result;
    }
  }
  co_return Result{};
}

asio::awaitable<Credentials::Result> Credentials::command_password(
    const config::CredentialConfig& credential, const std::string& role) {
  auto ex = co_await asio::this_coro::executor;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    CommandEntry& entry = commands_[role];
    if (!entry.value.empty() && std::chrono::steady_clock::now() < entry.expires) {
      co_return Result{entry.value, {}};
    }
    if (entry.in_flight) {
      waiter = std::make_shared<Waiter>(ex);
      entry.waiters.push_back(waiter);
    } else {
      entry.in_flight = true;
    }
  }
  if (waiter) {
    // Another session is running the command; its result wakes this one (the timer is
    // cancelled on this session's own thread, so the wake-up cannot come before the wait).
    waiter->timer.expires_at(asio::steady_timer::time_point::max());
    co_await waiter->timer.async_wait(use_tuple);
    std::lock_guard lock(mutex_);
    co_return waiter->result;
  }

  Result result = co_await run_credential_command(
      credential.command,
      {"PGMTLS_ROLE=" + role, "PGMTLS_BACKEND_HOST=" + backend_.host,
       "PGMTLS_BACKEND_PORT=" + std::to_string(backend_.port)},
      credential.timeout);
  std::vector<std::shared_ptr<Waiter>> waiters;
  {
    std::lock_guard lock(mutex_);
    CommandEntry& entry = commands_[role];
    entry.in_flight = false;
    if (result.password) {
      entry.value = *result.password;
      entry.expires = std::chrono::steady_clock::now() + credential.ttl;
    }
    waiters.swap(entry.waiters);
    for (auto& w : waiters)
      w->result = result;
  }
  for (auto& w : waiters)
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  co_return result;
}

std::string aws_token_region(const config::CredentialConfig& credential, const std::string& host) {
  if (!credential.aws_region.empty()) return credential.aws_region;
  return auth::aws::region_from_rds_host(host).value_or("");
}

Credentials::Credentials(const config::BackendConfig& backend) : backend_(backend) {
  std::shared_ptr<auth::aws::HttpClient> http;
  auto add_chain = [&](const config::CredentialConfig& credential) {
    if (credential.kind != config::CredentialConfig::Kind::aws_iam) return;
    const std::string region = aws_token_region(credential, backend_.host);
    auto& chain = aws_chains_[{credential.aws_profile, region}];
    if (chain) return;
    // One HTTP client (it holds the CA store for STS) for all chains; loaded here, at snapshot
    // build time, not on a worker.
    if (!http) http = std::make_shared<BeastHttpClient>();
    auth::aws::ChainSettings settings;
    settings.profile = credential.aws_profile;
    settings.region = region;
    chain = std::make_unique<auth::aws::CredentialChain>(std::move(settings), http);
  };
  add_chain(backend_.auth);
  for (const auto& [role, credential] : backend_.roles)
    add_chain(credential);
}

Credentials::~Credentials() = default;

asio::awaitable<Credentials::Result> Credentials::iam_token(
    const config::CredentialConfig& credential, const std::string& role, const std::string& host,
    std::uint16_t port) {
  const std::string token_key = role + "@" + host + ":" + std::to_string(port);
  {
    std::lock_guard lock(mutex_);
    auto it = tokens_.find(token_key);
    if (it != tokens_.end() && std::chrono::steady_clock::now() < it->second.reuse_until) {
      co_return Result{it->second.value, {}};
    }
  }
  const std::string region = aws_token_region(credential, backend_.host);
  if (region.empty()) {
    co_return Result{std::nullopt, "aws_iam: the region is not configured and \"" + backend_.host +
                                       "\" is not an RDS endpoint name"};
  }
  auth::aws::CredentialChain& chain = *aws_chains_.at({credential.aws_profile, region});
  const auto aws = co_await chain.get();
  if (!aws.error.empty()) ++process_metrics().aws_credential_failures;
  if (!aws.credentials) co_return Result{std::nullopt, "aws_iam: " + aws.error};
  if (!aws.error.empty()) spdlog::warn("aws_iam: {}", aws.error);

  const auto now = std::chrono::system_clock::now();
  const auto steady_now = std::chrono::steady_clock::now();
  Token token;
  try {
    token.value = auth::aws::rds_auth_token(host, port, region, role, *aws.credentials, now);
  } catch (const std::invalid_argument& e) {
    co_return Result{std::nullopt, std::string("aws_iam: cannot sign a token: ") + e.what()};
  }
  // A token is only as good as the credentials that signed it: temporary credentials that expire
  // first end its reuse (30 s early, for the backend's clock and the connection in flight).
  token.reuse_until = steady_now + credential.token_reuse;
  if (const auto& expiration = aws.credentials->expiration) {
    const auto left = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        *expiration - now - std::chrono::seconds(30));
    token.reuse_until = std::min(token.reuse_until, steady_now + left);
  }
  ++process_metrics().iam_tokens_signed;
  spdlog::info("aws_iam: signed a token for role {} at {}:{} in {} with {} credentials", role, host,
               port, region, aws.provider);
  std::lock_guard lock(mutex_);
  tokens_[token_key] = token;
  co_return Result{std::move(token.value), {}};
}

}  // namespace pgmtls::proxy
