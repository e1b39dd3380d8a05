#include "proxy/admin.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <ctime>

#include "proxy/logging.h"

namespace pgmtls::proxy {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr auto kSessionsTimeout = std::chrono::seconds(5);
constexpr int kRequestsPerConnection = 100;
constexpr std::size_t kMaxBody = 64 * 1024;
constexpr std::size_t kMaxHeader = 8 * 1024;

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response text(http::status status, std::string body, unsigned version) {
  Response res(status, version);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  if (!res.body().empty() && res.body().back() != '\n') res.body().push_back('\n');
  return res;
}

}  // namespace

std::string sessions_json(std::vector<SessionInfo> sessions) {
  std::sort(sessions.begin(), sessions.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.id < b.id; });
  std::string out = "[";
  for (const auto& s : sessions) {
    if (out.size() > 1) out += ",";
    out += "\n  {\"id\":" + std::to_string(s.id);
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string*>{"client", &s.client},
          {"identity", &s.identity},
          {"user", &s.user},
          {"role", &s.role},
          {"database", &s.database},
          {"backend", &s.backend},
          {"state", &s.state}}) {
      out += ",\"";
      out += name;
      out += "\":" + json_string(*value);
    }
    out += ",\"started\":\"" + rfc3339(s.started) + "\"";
    out += ",\"bytes_in\":" + std::to_string(s.bytes_in);
    out += ",\"bytes_out\":" + std::to_string(s.bytes_out) + "}";
  }
  out += sessions.empty() ? "]\n" : "\n]\n";
  return out;
}

struct AdminServer::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io_, Hooks hooks_) : io(io_), hooks(std::move(hooks_)), acceptor(io_) {}

  asio::io_context& io;
  Hooks hooks;
  tcp::acceptor acceptor;
  std::optional<asio::ssl::context> tls;  // admin.tls: HTTPS

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        spdlog::warn("admin: accept failed: {}", ec.message());
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      asio::co_spawn(io, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    if (!tls) {
      co_await serve_requests(stream);
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), *tls);
    beast::get_lowest_layer(secure).expires_after(kRequestTimeout);
    auto [ec] = co_await secure.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (ec) co_return;  // no certificate, a wrong one, or not TLS at all
    co_await serve_requests(secure);
    beast::get_lowest_layer(secure).expires_after(kRequestTimeout);
    co_await secure.async_shutdown(use_tuple);
  }

  template <typename Stream>
  asio::awaitable<void> serve_requests(Stream& stream) {
    beast::flat_buffer buffer;
    for (int i = 0; i < kRequestsPerConnection; ++i) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxBody);
      parser.header_limit(kMaxHeader);
      beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
          ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == asio::ssl::error::stream_truncated) {
        break;
      }
      Response res;
      bool keep_alive = false;
      if (ec) {
        res = text(http::status::bad_request, "bad request: " + ec.message(), 11);
      } else {
        Request req = parser.release();
        keep_alive = req.keep_alive();
        res = co_await handle(req);
      }
      res.keep_alive(keep_alive);
      res.prepare_payload();
      beast::get_lowest_layer(stream).expires_after(kRequestTimeout);
      auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
      if (wec || !keep_alive) break;
    }
  }

  asio::awaitable<Response> handle(const Request& req) {
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    const unsigned v = req.version();
    auto only = [&](http::verb verb) -> std::optional<Response> {
      if (req.method() == verb) return std::nullopt;
      Response res =
          text(http::status::method_not_allowed, std::string(http::to_string(verb)) + " only", v);
      res.set(http::field::allow, http::to_string(verb));
      return res;
    };
    if (target == "/metrics") {
      if (auto refused = only(http::verb::get)) co_return *refused;
      Response res(http::status::ok, v);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = hooks.metrics ? hooks.metrics() : std::string();
      co_return res;
    }
    if (target == "/healthz") {
      if (auto refused = only(http::verb::get)) co_return *refused;
      co_return text(http::status::ok, "ok", v);
    }
    if (target == "/readyz") {
      if (auto refused = only(http::verb::get)) co_return *refused;
      const bool ready = hooks.ready && hooks.ready();
      co_return ready ? text(http::status::ok, "ready", v)
                      : text(http::status::service_unavailable, "draining", v);
    }
    if (target == "/reload") {
      if (auto refused = only(http::verb::post)) co_return *refused;
      std::string error;
      const bool ok = hooks.reload && hooks.reload(error);
      co_return ok ? text(http::status::ok, "reloaded", v)
                   : text(http::status::internal_server_error, "reload failed: " + error, v);
    }
    if (target == "/sessions") {
      if (auto refused = only(http::verb::get)) co_return *refused;
      auto sessions = co_await collect_sessions();
      if (!sessions) {
        co_return text(http::status::service_unavailable, "the workers did not answer in time", v);
      }
      Response res(http::status::ok, v);
      res.set(http::field::content_type, "application/json");
      res.set(http::field::cache_control, "no-store");
      res.body() = sessions_json(std::move(*sessions));
      co_return res;
    }
    co_return text(http::status::not_found, "not found", v);
  }

  // Asks every worker for its sessions; the answer comes back on this io_context.
  asio::awaitable<std::optional<std::vector<SessionInfo>>> collect_sessions() {
    struct Wait {
      explicit Wait(asio::io_context& io) : timer(io) {}
      asio::steady_timer timer;
      std::optional<std::vector<SessionInfo>> result;
    };
    auto wait = std::make_shared<Wait>(io);
    wait->timer.expires_after(kSessionsTimeout);
    if (hooks.sessions) {
      hooks.sessions([wait, &io = io](std::vector<SessionInfo> sessions) {
        asio::post(io, [wait, sessions = std::move(sessions)]() mutable {
          wait->result = std::move(sessions);
          // An expiry in the past ends the wait, even one that has not started yet.
          wait->timer.expires_at(asio::steady_timer::time_point::min());
        });
      });
    } else {
      wait->result.emplace();
      co_return wait->result;
    }
    auto [ec] = co_await wait->timer.async_wait(use_tuple);
    (void)ec;
    co_return wait->result;
  }
};

AdminServer::AdminServer(asio::io_context& io, Hooks hooks)
    : state_(std::make_shared<State>(io, std::move(hooks))) {}

AdminServer::~AdminServer() {
  stop();
}

bool AdminServer::use_tls(const config::AdminConfig& admin, std::string& error) {
  auto& ctx = state_->tls.emplace(asio::ssl::context::tls_server);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  ctx.use_certificate_chain_file(admin.cert_file.path, ec);
  if (!ec) ctx.use_private_key_file(admin.key_file.path, asio::ssl::context::pem, ec);
  if (!ec && !admin.ca_file.empty()) {
    ctx.load_verify_file(admin.ca_file.path, ec);
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  if (ec) {
    error = "admin.tls: " + ec.message();
    state_->tls.reset();
    return false;
  }
  return true;
}

bool AdminServer::bind(const config::ListenAddress& address, std::string& error) {
  beast::error_code ec;
  const tcp::endpoint endpoint(asio::ip::make_address(address.host, ec), address.port);
  if (ec) {
    error = "invalid admin.listen address " + address.host + ": " + ec.message();
    return false;
  }
  auto& acceptor = state_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on admin.listen " + address.host + ":" + std::to_string(address.port) +
            ": " + ec.message();
    return false;
  }
  return true;
}

std::string AdminServer::local_address() const {
  beast::error_code ec;
  const auto ep = state_->acceptor.local_endpoint(ec);
  if (ec) return {};
  const auto addr = ep.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
         std::to_string(ep.port());
}

void AdminServer::start() {
  asio::co_spawn(state_->io, state_->accept_loop(), asio::detached);
}

void AdminServer::stop() {
  beast::error_code ignored;
  state_->acceptor.close(ignored);
}

}  // namespace pgmtls::proxy
