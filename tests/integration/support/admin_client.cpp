#include "tests/integration/support/admin_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>

#include "proxy/http_client.h"

namespace pgmtls::integration {

auth::aws::HttpResponse admin_request(const std::string& address, const std::string& method,
                                      const std::string& path, const std::string& ca_file) {
  boost::asio::io_context io;
  proxy::BeastHttpClient client(proxy::BeastHttpClient::Options{ca_file});
  auth::aws::HttpRequest request;
  request.method = method;
  request.url = (ca_file.empty() ? "http://" : "https://") + address + path;
  auto future = boost::asio::co_spawn(io, client.send(request), boost::asio::use_future);
  io.run();
  return future.get();
}

std::string admin_address(const PgmtlsProcess& proxy) {
  const auto line = proxy.wait_for_log({"admin endpoint on http"}, std::chrono::seconds(10));
  if (!line) return {};
  return line->substr(line->find("://") + 3);
}

}  // namespace pgmtls::integration
