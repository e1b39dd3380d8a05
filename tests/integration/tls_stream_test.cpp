// proxy::TlsStream (OpenSSL on the socket's descriptor) against asio::ssl::stream as the peer,
// over real TCP on 127.0.0.1: the data both ways at once with full socket buffers, and each way
// a connection can end (close_notify, a TCP close without one, garbage instead of TLS).
#include "proxy/tls_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <cstdint>
#include <random>
#include <vector>

#include "auth/pki.h"

namespace pgmtls::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

class TlsStreamTest : public ::testing::Test {
 protected:
  TlsStreamTest()
      : server_ctx_(asio::ssl::context::tls_server), client_ctx_(asio::ssl::context::tls_client) {
    auth::pki::CertificateSpec spec;
    spec.common_name = "localhost";
    spec.server_auth = true;
    const auto credential = auth::pki::self_signed(spec);
    SSL_CTX_use_certificate(server_ctx_.native_handle(), credential.cert.get());
    SSL_CTX_use_PrivateKey(server_ctx_.native_handle(), credential.key.get());
    SSL_CTX_set_mode(server_ctx_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    client_ctx_.set_verify_mode(asio::ssl::verify_none);
    // As in pgmtls's main: OpenSSL writes with write(2), and a write to a peer that is gone must
    // be an error, not the end of the process.
    std::signal(SIGPIPE, SIG_IGN);
  }

  // A connected pair on 127.0.0.1: [pgmtls side, peer side].
  std::pair<tcp::socket, tcp::socket> connected_pair() {
    tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket client(io_);
    client.connect(acceptor.local_endpoint());
    tcp::socket server = acceptor.accept();
    return {std::move(server), std::move(client)};
  }

  // Runs `body` on io_ to completion (bounded: a hang fails the test instead of blocking).
  void run(asio::awaitable<void> body) {
    bool done = false;
    asio::co_spawn(io_, std::move(body), [&](std::exception_ptr e) {
      done = true;
      if (e) std::rethrow_exception(e);
    });
    io_.restart();
    io_.run_for(std::chrono::seconds(30));
    EXPECT_TRUE(done) << "did not finish within 30 s";
  }

  asio::io_context io_;
  asio::ssl::context server_ctx_;
  asio::ssl::context client_ctx_;
};

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> bytes(n);
  for (auto& b : bytes)
    b = static_cast<std::uint8_t>(gen());
  return bytes;
}

TEST_F(TlsStreamTest, EchoesManyMegabytesBothWaysAtOnce) {
  auto sockets = connected_pair();  // clang 14 cannot capture structured bindings
  tcp::socket& server_socket = sockets.first;
  tcp::socket& client_socket = sockets.second;
  TlsStream server(server_socket, server_ctx_);
  asio::ssl::stream<tcp::socket&> client(client_socket, client_ctx_);
  const auto sent = random_bytes(8 << 20, 1);
  std::vector<std::uint8_t> echoed(sent.size());
  error_code server_error, client_error;

  auto serve = [&]() -> asio::awaitable<void> {
    std::tie(server_error) =
        co_await server.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (server_error) co_return;
    // Echo in odd-sized pieces, so reads and writes straddle TLS records.
    std::vector<std::uint8_t> buf(7777);
    std::size_t total = 0;
    while (total < sent.size()) {
      auto [ec, n] = co_await server.async_read_some(asio::buffer(buf), use_tuple);
      if (ec) {
        server_error = ec;
        co_return;
      }
      std::tie(ec, std::ignore) =
          co_await asio::async_write(server, asio::buffer(buf.data(), n), use_tuple);
      if (ec) {
        server_error = ec;
        co_return;
      }
      total += n;
    }
  };
  auto talk = [&]() -> asio::awaitable<void> {
    std::tie(client_error) =
        co_await client.async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (client_error) co_return;
    // Writing all of it before reading any fills every buffer on the way: the echo must block in
    // its writes (WANT_WRITE) while more arrives.
    auto write_all = [&]() -> asio::awaitable<void> {
      auto [ec, n] = co_await asio::async_write(client, asio::buffer(sent), use_tuple);
      if (ec) client_error = ec;
    };
    auto read_all = [&]() -> asio::awaitable<void> {
      auto [ec, n] = co_await asio::async_read(client, asio::buffer(echoed), use_tuple);
      if (ec) client_error = ec;
    };
    co_await (write_all() && read_all());
  };
  run([&]() -> asio::awaitable<void> { co_await (serve() && talk()); }());
  EXPECT_FALSE(server_error) << server_error.message();
  EXPECT_FALSE(client_error) << client_error.message();
  EXPECT_TRUE(echoed == sent);
}

TEST_F(TlsStreamTest, CloseNotifyIsEofAndATcpCloseWithoutOneIsTruncation) {
  for (const bool notify : {true, false}) {
    auto sockets = connected_pair();  // clang 14 cannot capture structured bindings
    tcp::socket& server_socket = sockets.first;
    tcp::socket& client_socket = sockets.second;
    TlsStream server(server_socket, server_ctx_);
    asio::ssl::stream<tcp::socket&> client(client_socket, client_ctx_);
    error_code read_error;
    run([&]() -> asio::awaitable<void> {
      auto serve = [&]() -> asio::awaitable<void> {
        auto [ec] = co_await server.async_handshake(asio::ssl::stream_base::server, use_tuple);
        EXPECT_FALSE(ec) << ec.message();
        std::uint8_t byte = 0;
        std::tie(read_error, std::ignore) =
            co_await server.async_read_some(asio::buffer(&byte, 1), use_tuple);
        server_socket.close();  // ends the peer's wait for our close_notify too
      };
      auto leave = [&]() -> asio::awaitable<void> {
        auto [ec] = co_await client.async_handshake(asio::ssl::stream_base::client, use_tuple);
        EXPECT_FALSE(ec) << ec.message();
        if (notify) {
          co_await client.async_shutdown(use_tuple);  // sends close_notify
        } else {
          client_socket.close();
        }
      };
      co_await (serve() && leave());
    }());
    if (notify) {
      EXPECT_EQ(read_error, asio::error::eof) << read_error.message();
    } else {
      EXPECT_EQ(read_error, asio::ssl::error::stream_truncated) << read_error.message();
    }
  }
}

TEST_F(TlsStreamTest, GarbageInsteadOfAClientHelloFailsTheHandshakeWithOpenSslsReason) {
  auto sockets = connected_pair();  // clang 14 cannot capture structured bindings
  tcp::socket& server_socket = sockets.first;
  tcp::socket& client_socket = sockets.second;
  TlsStream server(server_socket, server_ctx_);
  const std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(client_socket, asio::buffer(garbage));
  error_code ec;
  run([&]() -> asio::awaitable<void> {
    std::tie(ec) = co_await server.async_handshake(asio::ssl::stream_base::server, use_tuple);
  }());
  EXPECT_EQ(ec.category(), asio::error::get_ssl_category());
  EXPECT_THAT(ec.message(), ::testing::HasSubstr("http request"));
}

TEST_F(TlsStreamTest, AnImmediateResultIsNotDeliveredInsideTheInitiatingCall) {
  auto sockets = connected_pair();
  TlsStream server(sockets.first, server_ctx_);
  bool initiated = false, completed = false, completed_early = false;
  server.async_read_some(asio::mutable_buffer(), [&](error_code ec, std::size_t n) {
    completed = true;
    completed_early = !initiated;
    EXPECT_FALSE(ec);
    EXPECT_EQ(n, 0u);
  });
  initiated = true;
  io_.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(completed);
  EXPECT_FALSE(completed_early);
}

}  // namespace
}  // namespace pgmtls::proxy
