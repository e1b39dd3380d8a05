#include "proxy/iam_token.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <stdexcept>

#include "auth/aws_credentials.h"
#include "auth/aws_sigv4.h"
#include "proxy/credentials.h"
#include "proxy/http_client.h"

namespace pgmtls::proxy {

int run_iam_token(const IamTokenRequest& request) {
  config::CredentialConfig credential;
  credential.aws_region = request.region;
  const std::string region = aws_token_region(credential, request.host);
  if (region.empty()) {
    std::fprintf(stderr, "pgmtls iam-token: \"%s\" is not an RDS endpoint name; give --region\n",
                 request.host.c_str());
    return 1;
  }
  auth::aws::ChainSettings settings;
  settings.profile = request.profile;
  settings.region = region;
  auth::aws::CredentialChain chain(std::move(settings), std::make_shared<BeastHttpClient>());
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, chain.resolve(), boost::asio::use_future);
  io.run();
  const auto aws = future.get();
  if (!aws.credentials) {
    std::fprintf(stderr, "pgmtls iam-token: %s\n", aws.error.c_str());
    return 1;
  }
  try {
    const std::string token =
        auth::aws::rds_auth_token(request.host, request.port, region, request.user,
                                  *aws.credentials, std::chrono::system_clock::now());
    std::printf("%s\n", token.c_str());
    return 0;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "pgmtls iam-token: %s\n", e.what());
    return 1;
  }
}

}  // namespace pgmtls::proxy
