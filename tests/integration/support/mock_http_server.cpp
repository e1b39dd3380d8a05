#include "tests/integration/support/mock_http_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <list>
#include <stdexcept>

namespace pgmtls::integration {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

MockHttpResponse MockHttpResponse::held() {
  return held(MockHttpResponse());
}

MockHttpResponse MockHttpResponse::held(MockHttpResponse response) {
  response.hold = true;
  return response;
}

MockHttpResponse MockHttpResponse::raw_bytes(std::string bytes) {
  MockHttpResponse response;
  response.raw = std::move(bytes);
  return response;
}

std::optional<std::string> MockHttpRequest::header(const std::string& lower_case_name) const {
  auto it = headers.find(lower_case_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> MockHttpRequest::form_value(const std::string& name) const {
  std::string_view form = body;
  if (const auto q = target.find('?'); body.empty() && q != std::string::npos)
    form = std::string_view(target).substr(q + 1);
  while (!form.empty()) {
    const std::size_t amp = form.find('&');
    const std::string_view pair = form.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    form.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

struct MockHttpServer::State {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::optional<asio::ssl::context> tls;

  mutable std::mutex mutex;
  mutable std::condition_variable arrived;
  Handler handler;
  std::vector<MockHttpRequest> requests;

  // Touched on the server thread only.
  bool released = false;
  std::list<asio::steady_timer*> held;

  MockHttpResponse handle(const MockHttpRequest& request) {
    Handler h;
    {
      std::lock_guard lock(mutex);
      requests.push_back(request);
      h = handler;
    }
    arrived.notify_all();
    return h(request);
  }

  asio::awaitable<void> wait_release() {
    if (released) co_return;
    asio::steady_timer timer(io, asio::steady_timer::time_point::max());
    auto it = held.insert(held.end(), &timer);
    auto [ec] = co_await timer.async_wait(use_tuple);
    (void)ec;
    held.erase(it);
  }

  template <class Stream>
  asio::awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(stream, buffer, req, use_tuple);
      (void)n;
      if (ec) co_return;
      MockHttpRequest record;
      record.method = std::string(req.method_string());
      record.target = std::string(req.target());
      for (const auto& field : req)
        record.headers[lower(std::string(field.name_string()))] = std::string(field.value());
      record.body = req.body();
      MockHttpResponse answer = handle(record);
      if (answer.hold) co_await wait_release();
      if (answer.raw) {
        auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(*answer.raw), use_tuple);
        (void)wec;
        (void)wn;
        co_return;
      }
      http::response<http::string_body> res{static_cast<http::status>(answer.status), 11};
      res.set(http::field::server, "pgmtls-mock");
      res.set(http::field::content_type, answer.content_type);
      res.body() = answer.body;
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
      (void)wn;
      if (wec || !req.keep_alive()) co_return;
    }
  }

  asio::awaitable<void> connection(tcp::socket socket) {
    if (!tls) {
      co_await serve(socket);
      beast::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      co_return;
    }
    asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls);
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (ec) co_return;
    co_await serve(stream);
    auto [sec] = co_await stream.async_shutdown(use_tuple);
    (void)sec;
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (ec) co_return;
      asio::co_spawn(io, connection(std::move(socket)), asio::detached);
    }
  }
};

namespace {

std::shared_ptr<MockHttpServer::State> make_state(MockHttpServer::Handler handler) {
  auto state = std::make_shared<MockHttpServer::State>();
  state->handler = std::move(handler);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  state->acceptor.open(endpoint.protocol());
  state->acceptor.set_option(tcp::acceptor::reuse_address(true));
  state->acceptor.bind(endpoint);
  state->acceptor.listen();
  return state;
}

}  // namespace

MockHttpServer::MockHttpServer(Handler handler) : state_(make_state(std::move(handler))) {
  port_ = state_->acceptor.local_endpoint().port();
  asio::co_spawn(state_->io, state_->accept_loop(), asio::detached);
  thread_ = std::thread([state = state_] { state->io.run(); });
}

MockHttpServer::MockHttpServer(Handler handler, const std::string& cert_file,
                               const std::string& key_file)
    : state_(make_state(std::move(handler))), tls_(true) {
  port_ = state_->acceptor.local_endpoint().port();
  state_->tls.emplace(asio::ssl::context::tls_server);
  state_->tls->use_certificate_chain_file(cert_file);
  state_->tls->use_private_key_file(key_file, asio::ssl::context::pem);
  asio::co_spawn(state_->io, state_->accept_loop(), asio::detached);
  thread_ = std::thread([state = state_] { state->io.run(); });
}

MockHttpServer::~MockHttpServer() {
  state_->io.stop();
  thread_.join();
}

std::string MockHttpServer::url() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

void MockHttpServer::set_handler(Handler handler) {
  std::lock_guard lock(state_->mutex);
  state_->handler = std::move(handler);
}

std::vector<MockHttpRequest> MockHttpServer::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

std::size_t MockHttpServer::request_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests.size();
}

bool MockHttpServer::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mutex);
  return state_->arrived.wait_for(lock, timeout, [&] { return state_->requests.size() >= n; });
}

void MockHttpServer::release() {
  asio::post(state_->io, [state = state_.get()] {
    state->released = true;
    for (auto* timer : state->held)
      timer->cancel();
  });
}

}  // namespace pgmtls::integration
