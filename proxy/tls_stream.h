// A TLS stream that runs OpenSSL straight on the socket's descriptor, for the client and backend
// connections of sessions. asio::ssl::stream keeps two 17 KiB buffers and a BIO pair per
// connection and copies every byte through them; this one lets OpenSSL read and write the
// non-blocking socket itself and only waits for readiness (socket.async_wait) when OpenSSL asks
// to. With SSL_MODE_RELEASE_BUFFERS an idle connection then holds no record buffers at all, and
// the data path saves two copies per direction.
//
// It models asio's AsyncReadStream and AsyncWriteStream (async_read_some, async_write_some,
// get_executor), so asio::async_read / async_write compose with it, plus async_handshake and
// native_handle as asio::ssl::stream has them. One read and one write may be in flight at once,
// as with asio::ssl::stream; all calls on the socket's executor (a session's worker).
// Errors: asio::error::eof for a close_notify, asio::ssl::error::stream_truncated for a TCP close
// without one, the OS error for a failed read or write, otherwise OpenSSL's error in asio's SSL
// category, exactly as asio::ssl::stream reports them. OpenSSL's socket BIO writes with write(2):
// the process must ignore SIGPIPE (pgmtls's main does).
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/system/error_code.hpp>
#include <cerrno>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace pgmtls::proxy {

class TlsStream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using error_code = boost::system::error_code;

  // A new SSL object from `context` on `socket`'s descriptor; `socket` must outlive the stream
  // and be connected. Throws std::runtime_error if OpenSSL cannot allocate it.
  TlsStream(boost::asio::ip::tcp::socket& socket, boost::asio::ssl::context& context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  // Moving takes the SSL object along; the socket stays where it was.
  TlsStream(TlsStream&& other) noexcept
      : socket_(other.socket_), ssl_(std::exchange(other.ssl_, nullptr)) {}
  TlsStream& operator=(TlsStream&&) = delete;

  // The socket object now holding the connection's descriptor, after that socket was moved
  // (a pooled backend connection changes hands so). Nothing may be in flight.
  void rebind(boost::asio::ip::tcp::socket& socket) { socket_ = &socket; }

  SSL* native_handle() const { return ssl_; }

  // Sends TLS's close_notify once, if the handshake finished and nothing failed since (a fatal
  // error puts OpenSSL back "in init"), without waiting for the peer's: the socket is closed
  // next. A client then sees an orderly end instead of a truncated stream. Nothing may be in
  // flight.
  void close_notify() {
    if (SSL_is_init_finished(ssl_) && (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) == 0) {
      SSL_shutdown(ssl_);
      ERR_clear_error();
    }
  }
  executor_type get_executor() { return socket_->get_executor(); }

  // Signature void(error_code).
  template <typename Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Token&& token) {
    if (type == boost::asio::ssl::stream_base::server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
    }
    return run<void(error_code)>([ssl = ssl_](std::size_t&) { return SSL_do_handshake(ssl); },
                                 std::forward<Token>(token));
  }

  // Signature void(error_code, std::size_t), as a socket's.
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const boost::asio::mutable_buffer b = first_buffer<boost::asio::mutable_buffer>(buffers);
    return run<void(error_code, std::size_t)>(
        [ssl = ssl_, b](std::size_t& n) {
          return b.size() == 0 ? 1 : SSL_read_ex(ssl, b.data(), b.size(), &n);
        },
        std::forward<Token>(token));
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const boost::asio::const_buffer b = first_buffer<boost::asio::const_buffer>(buffers);
    return run<void(error_code, std::size_t)>(
        [ssl = ssl_, b](std::size_t& n) {
          return b.size() == 0 ? 1 : SSL_write_ex(ssl, b.data(), b.size(), &n);
        },
        std::forward<Token>(token));
  }

 private:
  template <typename Buffer, typename Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  // The error of a failed OpenSSL call that will not succeed by waiting; `os_error` is errno
  // right after the call.
  static error_code error_of(int ssl_error, int os_error);

  // Calls `attempt` (an OpenSSL call: > 0 done, else SSL_get_error says why) until it completes,
  // waiting for the readiness OpenSSL asks for in between. Never completes inside the initiating
  // call: an immediate result is posted, as asio's own operations do.
  template <typename Attempt, bool kWithSize>
  struct Op {
    TlsStream& stream;
    Attempt attempt;
    bool started = false;

    template <typename Self>
    void operator()(Self& self, error_code ec = {}) {
      const bool first = !started;
      started = true;
      std::size_t n = 0;
      if (!ec) {
        ERR_clear_error();
        errno = 0;
        const int result = attempt(n);
        if (result > 0) return finish(self, first, ec, n);
        const int os_error = errno;
        const int why = SSL_get_error(stream.ssl_, result);
        if (why == SSL_ERROR_WANT_READ || why == SSL_ERROR_WANT_WRITE) {
          stream.socket_->async_wait(why == SSL_ERROR_WANT_READ
                                         ? boost::asio::ip::tcp::socket::wait_read
                                         : boost::asio::ip::tcp::socket::wait_write,
                                     std::move(self));
          return;
        }
        ec = error_of(why, os_error);
        n = 0;
      }
      finish(self, first, ec, n);
    }

    template <typename Self>
    void finish(Self& self, bool first, error_code ec, std::size_t n) {
      if (!first) return complete(self, ec, n);
      auto executor = stream.get_executor();
      boost::asio::post(executor,
                        [self = std::move(self), ec, n]() mutable { complete(self, ec, n); });
    }

    template <typename Self>
    static void complete(Self& self, error_code ec, std::size_t n) {
      if constexpr (kWithSize) {
        self.complete(ec, n);
      } else {
        self.complete(ec);
      }
    }
  };

  template <typename Signature, typename Attempt, typename Token>
  auto run(Attempt attempt, Token&& token) {
    constexpr bool with_size = !std::is_same_v<Signature, void(error_code)>;
    return boost::asio::async_compose<Token, Signature>(
        Op<Attempt, with_size>{*this, std::move(attempt)}, token, *socket_);
  }

  boost::asio::ip::tcp::socket* socket_;
  SSL* ssl_ = nullptr;
};

}  // namespace pgmtls::proxy
