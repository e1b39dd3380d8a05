// `pgmtls iam-token`: prints an RDS IAM auth token, as `aws rds generate-db-auth-token` does,
// with the same credentials and signing code pgmtls uses for backends.
#pragma once

#include <cstdint>
#include <string>

namespace pgmtls::proxy {

struct IamTokenRequest {
  std::string host;
  std::uint16_t port = 5432;
  std::string region;  // empty: from the RDS host name
  std::string user;
  std::string profile;  // empty: AWS_PROFILE, else "default"
};

// Prints the token on stdout; returns 0, or 1 after printing why on stderr.
int run_iam_token(const IamTokenRequest& request);

}  // namespace pgmtls::proxy
