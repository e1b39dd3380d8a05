// The password pgmtls answers a backend with, for one role. Static sources (password_file,
// password_env, passfile) answer at once; a `command` runs asynchronously on the asking session's
// executor, never blocking a worker, and its output is shared by every worker until its TTL
// passes. One Credentials lives in each config snapshot.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "auth/aws_sigv4.h"
#include "config/config.h"

namespace pgmtls::proxy {

class Credentials {
 public:
  struct Result {
    std::optional<std::string> password;  // nullopt: no credential, or the source failed
    std::string error;                    // why not, for the log; never holds the secret
  };

  explicit Credentials(const config::BackendConfig& backend) : backend_(backend) {}

  // The password for `role` connecting to `database`; nullopt with an empty error when the
  // backend has no credential for the role.
  boost::asio::awaitable<Result> password_for(const std::string& role, const std::string& database);

 private:
  struct Waiter {
    explicit Waiter(const boost::asio::any_io_executor& ex) : timer(ex) {}
    boost::asio::steady_timer timer;
    Result result;
  };
  struct CommandEntry {
    std::string value;
    std::chrono::steady_clock::time_point expires;
    bool in_flight = false;
    std::vector<std::shared_ptr<Waiter>> waiters;
  };

  boost::asio::awaitable<Result> command_password(const config::CredentialConfig& credential,
                                                  const std::string& role);
  boost::asio::awaitable<Result> iam_token(const config::CredentialConfig& credential,
                                           const std::string& role);

  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point created;
  };

  const config::BackendConfig& backend_;
  std::mutex mutex_;
  std::map<std::string, CommandEntry> commands_;  // by role
  std::map<std::string, Token> tokens_;           // by role
};

// AWS credentials from the standard sources, for signing RDS tokens; nullopt with `error` set when
// none can be had.
boost::asio::awaitable<std::optional<auth::aws::Credentials>> fetch_aws_credentials(
    const std::string& profile, std::string& error);

// Runs `argv` (no shell) with `env` added to pgmtls's environment; stdout (without one trailing
// newline) is the result. Killed after `timeout`. Exposed for tests.
boost::asio::awaitable<Credentials::Result> run_credential_command(
    const std::vector<std::string>& argv, const std::vector<std::string>& env,
    std::chrono::milliseconds timeout);

}  // namespace pgmtls::proxy
