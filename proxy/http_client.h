// The HTTP client the AWS credential providers (auth/aws_credentials.h) talk through: HTTP/1.1
// over TCP or TLS with Boost.Beast, one connection per request ("Connection: close").
//
// - Runs on the caller's executor, which must not run handlers concurrently (an io_context run by
//   one thread, as each pgmtls worker is, or a strand). Host names are resolved asynchronously;
//   IP literals skip the resolver.
// - HttpRequest::timeout bounds the whole exchange: the caller gets an answer by then even if DNS,
//   the peer or the network stalls.
// - https:// verifies the server's chain and name (DNS name or IP address) against AWS_CA_BUNDLE
//   if set (the SDKs' variable; it replaces the system store), else the system trust store; TLS
//   1.2 at least; SNI for names.
// - A response body over 1 MiB is an error, as are headers over Beast's default 8 KiB.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <memory>
#include <string>

#include "auth/aws_credentials.h"

namespace pgmtls::proxy {

class BeastHttpClient final : public auth::aws::HttpClient {
 public:
  struct Options {
    std::string ca_file;  // PEM bundle; empty: $AWS_CA_BUNDLE, else the system trust store
    std::size_t max_body = 1024 * 1024;
  };

  // Never throws: a CA bundle that cannot be loaded fails every https request with the reason.
  explicit BeastHttpClient(Options options);
  BeastHttpClient() : BeastHttpClient(Options{}) {}
  ~BeastHttpClient() override;

  boost::asio::awaitable<auth::aws::HttpResponse> send(auth::aws::HttpRequest request) override;

 private:
  struct Tls;
  Options options_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace pgmtls::proxy
