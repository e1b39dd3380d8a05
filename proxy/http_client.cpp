#include "proxy/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "auth/openssl_ptr.h"

namespace pgmtls::proxy {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using auth::aws::HttpRequest;
using auth::aws::HttpResponse;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool header_safe(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

std::string describe(const beast::error_code& ec, const char* phase,
                     std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout)
    return std::string("timed out after ") + std::to_string(timeout.count()) + " ms (" + phase +
           ")";
  return std::string(phase) + ": " + ec.message();
}

// The resolver has no deadline of its own (getaddrinfo runs on Asio's internal thread); the
// caller waits on a timer that either the resolution or the deadline ends, so a stalled DNS
// server cannot hold it past the deadline.
struct Resolution {
  explicit Resolution(const asio::any_io_executor& ex) : resolver(ex), timer(ex) {}
  tcp::resolver resolver;
  asio::steady_timer timer;
  bool done = false;
  beast::error_code ec;
  tcp::resolver::results_type results;
};

asio::awaitable<std::vector<tcp::endpoint>> resolve(const std::string& host, std::uint16_t port,
                                                    asio::steady_timer::time_point deadline,
                                                    std::string& error) {
  auto ex = co_await asio::this_coro::executor;
  auto state = std::make_shared<Resolution>(ex);
  state->timer.expires_at(deadline);
  state->resolver.async_resolve(
      host, std::to_string(port),
      [state](const beast::error_code& ec, tcp::resolver::results_type r) {
        state->done = true;
        state->ec = ec;
        state->results = std::move(r);
        state->timer.cancel();
      });
  auto [ec] = co_await state->timer.async_wait(use_tuple);
  (void)ec;
  std::vector<tcp::endpoint> out;
  if (!state->done) {
    state->resolver.cancel();
    error = "timed out resolving " + host;
    co_return out;
  }
  if (state->ec) {
    error = "cannot resolve " + host + ": " + state->ec.message();
    co_return out;
  }
  for (const auto& entry : state->results)
    out.push_back(entry.endpoint());
  if (out.empty()) error = "cannot resolve " + host + ": no addresses";
  co_return out;
}

template <class Stream>
asio::awaitable<HttpResponse> exchange(Stream& stream, http::request<http::string_body>& request,
                                       std::size_t max_body, std::chrono::milliseconds timeout) {
  HttpResponse out;
  auto [wec, written] = co_await http::async_write(stream, request, use_tuple);
  (void)written;
  if (wec) {
    out.error = describe(wec, "sending the request", timeout);
    co_return out;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(max_body);
  auto [rec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
  (void)read;
  if (rec == http::error::body_limit) {
    out.error = "the response body is larger than " + std::to_string(max_body) + " bytes";
    co_return out;
  }
  if (rec) {
    out.error = describe(rec, "reading the response", timeout);
    co_return out;
  }
  out.status = static_cast<int>(parser.get().result_int());
  out.body = std::move(parser.get().body());
  co_return out;
}

// What one connection needs to know. Each transport has its own coroutine, so its stream object
// lives in one small frame.
struct Exchange {
  const std::vector<tcp::endpoint>& endpoints;
  const std::string& peer;
  asio::steady_timer::time_point deadline;
  std::chrono::milliseconds timeout;
  std::size_t max_body;
};

asio::awaitable<HttpResponse> over_tcp(const Exchange& x,
                                       http::request<http::string_body>& message) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_at(x.deadline);  // one deadline for connect, request and response
  auto [ec, endpoint] = co_await stream.async_connect(x.endpoints, use_tuple);
  (void)endpoint;
  if (ec) {
    HttpResponse out;
    out.error = describe(ec, ("connecting to " + x.peer).c_str(), x.timeout);
    co_return out;
  }
  HttpResponse out = co_await exchange(stream, message, x.max_body, x.timeout);
  co_return out;  // "Connection: close": the stream's destructor closes the socket
}

asio::awaitable<HttpResponse> over_tls(const Exchange& x, http::request<http::string_body>& message,
                                       asio::ssl::context& context, const std::string& host,
                                       bool ip_literal) {
  beast::ssl_stream<beast::tcp_stream> stream(co_await asio::this_coro::executor, context);
  // One deadline for connect, handshake, request and response.
  beast::get_lowest_layer(stream).expires_at(x.deadline);
  auto [ec, endpoint] =
      co_await beast::get_lowest_layer(stream).async_connect(x.endpoints, use_tuple);
  (void)endpoint;
  HttpResponse out;
  if (ec) {
    out.error = describe(ec, ("connecting to " + x.peer).c_str(), x.timeout);
    co_return out;
  }
  SSL* ssl = stream.native_handle();
  if (ip_literal) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (hec) {
    const long verify = SSL_get_verify_result(ssl);
    out.error = describe(hec, ("TLS handshake with " + x.peer).c_str(), x.timeout);
    if (verify != X509_V_OK)
      out.error += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    ERR_clear_error();
    co_return out;
  }
  out = co_await exchange(stream, message, x.max_body, x.timeout);
  ERR_clear_error();
  co_return out;
}

}  // namespace

struct BeastHttpClient::Tls {
  asio::ssl::context context{asio::ssl::context::tls_client};
  std::string error;  // non-empty: the trust store could not be loaded
};

BeastHttpClient::BeastHttpClient(Options options)
    : options_(std::move(options)), tls_(std::make_unique<Tls>()) {
  if (options_.ca_file.empty()) {
    if (const char* bundle = std::getenv("AWS_CA_BUNDLE"); bundle != nullptr && *bundle != '\0')
      options_.ca_file = bundle;
  }
  SSL_CTX* ctx = tls_->context.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  tls_->context.set_verify_mode(asio::ssl::verify_peer);
  beast::error_code ec;
  if (!options_.ca_file.empty()) {
    tls_->context.load_verify_file(options_.ca_file, ec);
    if (ec) tls_->error = "cannot load the CA bundle " + options_.ca_file + ": " + ec.message();
  } else {
    tls_->context.set_default_verify_paths(ec);
    if (ec) tls_->error = "cannot load the system trust store: " + ec.message();
  }
  ERR_clear_error();
}

BeastHttpClient::~BeastHttpClient() = default;

asio::awaitable<HttpResponse> BeastHttpClient::send(HttpRequest request) {
  HttpResponse out;
  std::string error;
  const auto url = auth::aws::parse_url(request.url, error);
  if (!url) {
    out.error = "bad URL: " + error;
    co_return out;
  }
  const bool https = url->scheme == "https";
  if (https && !tls_->error.empty()) {
    out.error = tls_->error;
    co_return out;
  }
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    out.error = "unknown method " + request.method;
    co_return out;
  }
  const auto deadline = asio::steady_timer::clock_type::now() + request.timeout;

  // The request first: nothing goes on the wire if it cannot be built.
  http::request<http::string_body> message{verb, url->target, 11};
  const bool ipv6 = url->host.find(':') != std::string::npos;
  std::string host_header = ipv6 ? "[" + url->host + "]" : url->host;
  if (url->port != (https ? 443 : 80)) host_header += ":" + std::to_string(url->port);
  message.set(http::field::host, host_header);
  message.set(http::field::user_agent, "pgmtls");
  message.set(http::field::connection, "close");
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || !header_safe(name) || !header_safe(value) ||
        name.find_first_of(": ") != std::string::npos) {
      out.error = "header " + name + " holds a character HTTP does not allow";
      co_return out;
    }
    message.set(name, value);
  }
  message.body() = std::move(request.body);
  message.prepare_payload();

  std::vector<tcp::endpoint> endpoints;
  beast::error_code ec;
  const auto address = asio::ip::make_address(url->host, ec);
  const bool ip_literal = !ec;
  if (ip_literal) {
    endpoints.emplace_back(address, url->port);
  } else {
    endpoints = co_await resolve(url->host, url->port, deadline, error);
    if (endpoints.empty()) {
      out.error = error;
      co_return out;
    }
  }
  const std::string peer =
      (ipv6 ? "[" + url->host + "]" : url->host) + ":" + std::to_string(url->port);
  Exchange x{endpoints, peer, deadline, request.timeout, options_.max_body};
  if (!https) {
    out = co_await over_tcp(x, message);
  } else {
    out = co_await over_tls(x, message, tls_->context, url->host, ip_literal);
  }
  co_return out;
}

}  // namespace pgmtls::proxy
