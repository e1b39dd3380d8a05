// The password pgmtls answers a backend with, for one role. Static sources (password_file,
// password_env, passfile) answer at once; a `command` runs asynchronously on the asking session's
// executor, never blocking a worker, and its output is shared by every worker until its TTL
// passes. `aws_iam` signs an RDS token with credentials from the AWS provider chain (one chain per
// profile and region, shared by every worker, refreshed before the credentials expire). One
// Credentials lives in each config snapshot, which sessions hold while they use it.
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

#include "auth/aws_credentials.h"
#include "auth/aws_sigv4.h"
#include "config/config.h"

namespace pgmtls::proxy {

class Credentials {
 public:
  struct Result {
    std::optional<std::string> password;  // nullopt: no credential, or the source failed
    std::string error;                    // why not, for the log; never holds the secret
  };

  explicit Credentials(const config::BackendConfig& backend);
  ~Credentials();

  // The password for `role` connecting to `database` on `host`:`port` (one of the backend's
  // hosts); nullopt with an empty error when the backend has no credential for the role.
  boost::asio::awaitable<Result> password_for(const std::string& role, const std::string& database,
                                              const std::string& host, std::uint16_t port);

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
                                           const std::string& role, const std::string& host,
                                           std::uint16_t port);

  struct Token {
    std::string value;
    std::chrono::steady_clock::time_point reuse_until;
  };

  const config::BackendConfig& backend_;
  // By (profile, region); made with the snapshot and never changed, so read without the mutex.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<auth::aws::CredentialChain>>
      aws_chains_;
  std::mutex mutex_;
  std::map<std::string, CommandEntry> commands_;  // by role
  std::map<std::string, Token> tokens_;           // by role@host:port
};

// The region an aws_iam token is signed for: the configured one, else the one in an RDS host name;
// empty if neither.
std::string aws_token_region(const config::CredentialConfig& credential, const std::string& host);

// Runs `argv` (no shell) with `env` added to pgmtls's environment; stdout (without one trailing
// newline) is the result. Killed after `timeout`. Exposed for tests.
boost::asio::awaitable<Credentials::Result> run_credential_command(
    const std::vector<std::string>& argv, const std::vector<std::string>& env,
    std::chrono::milliseconds timeout);

}  // namespace pgmtls::proxy
