#include "proxy/iam_token.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <stdexcept>

#include "auth/aws_sigv4.h"
#include "proxy/credentials.h"

namespace pgmtls::proxy {

int run_iam_token(const IamTokenRequest& request) {
  std::string region = request.region;
  if (region.empty()) {
    region = auth::aws::region_from_rds_host(request.host).value_or("");
    if (region.empty()) {
      std::fprintf(stderr, "pgmtls iam-token: \"%s\" is not an RDS endpoint name; give --region\n",
                   request.host.c_str());
      return 1;
    }
  }
  boost::asio::io_context io;
  std::string error;
  auto future = boost::asio::co_spawn(io, fetch_aws_credentials(request.profile, error),
                                      boost::asio::use_future);
  io.run();
  const auto creds = future.get();
  if (!creds) {
    std::fprintf(stderr, "pgmtls iam-token: no AWS credentials: %s\n", error.c_str());
    return 1;
  }
  try {
    const std::string token = auth::aws::rds_auth_token(
        request.host, request.port, region, request.user, *creds, std::chrono::system_clock::now());
    std::printf("%s\n", token.c_str());
    return 0;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "pgmtls iam-token: %s\n", e.what());
    return 1;
  }
}

}  // namespace pgmtls::proxy
