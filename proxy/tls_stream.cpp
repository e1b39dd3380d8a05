#include "proxy/tls_stream.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <stdexcept>

namespace pgmtls::proxy {

TlsStream::TlsStream(boost::asio::ip::tcp::socket& socket, boost::asio::ssl::context& context)
    : socket_(&socket), ssl_(SSL_new(context.native_handle())) {
  error_code ec;
  socket.non_blocking(true, ec);
  if (ssl_ == nullptr || ec || SSL_set_fd(ssl_, socket.native_handle()) != 1) {
    SSL_free(ssl_);
    throw std::runtime_error("cannot set up TLS on the connection");
  }
  // Partial writes: async_write resumes where a short write stopped, from a moving buffer.
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                         SSL_MODE_RELEASE_BUFFERS);
  // One read() takes whatever records arrived, not a header and then a body.
  SSL_set_read_ahead(ssl_, 1);
}

TlsStream::~TlsStream() {
  SSL_free(ssl_);
}

TlsStream::error_code TlsStream::error_of(int ssl_error, int os_error) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return boost::asio::error::eof;
  const unsigned long e = ERR_get_error();
  if (ssl_error == SSL_ERROR_SYSCALL && e == 0) {
    // The OS said why, or the peer closed TCP without a close_notify.
    if (os_error != 0) return {os_error, boost::system::system_category()};
    return boost::asio::ssl::error::stream_truncated;
  }
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    return boost::asio::ssl::error::stream_truncated;
  }
  if (e == 0) return boost::asio::error::connection_aborted;
  return {static_cast<int>(e), boost::asio::error::get_ssl_category()};
}

}  // namespace pgmtls::proxy
