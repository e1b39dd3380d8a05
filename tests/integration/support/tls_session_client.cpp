#include "tests/integration/support/tls_session_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <stdexcept>
#include <utility>

#include "tests/integration/support/pg_client.h"

namespace pgmtls::integration {
namespace {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no OpenSSL error queued" : out;
}

// A blocking TCP socket with 10 s send and receive timeouts.
int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool read_exactly(SSL* ssl, std::string& out, std::size_t n) {
  out.resize(n);
  std::size_t got = 0;
  while (got < n) {
    const int r = SSL_read(ssl, out.data() + got, static_cast<int>(n - got));
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

// The 'M' field of an ErrorResponse body.
std::string error_message(const std::string& body) {
  for (std::size_t at = 0; at < body.size() && body[at] != '\0';) {
    const char code = body[at];
    const std::size_t end = body.find('\0', at + 1);
    if (end == std::string::npos) break;
    if (code == 'M') return body.substr(at + 1, end - at - 1);
    at = end + 1;
  }
  return "ErrorResponse without a message";
}

// Reads backend messages up to ReadyForQuery; false (with `error` set) on an ErrorResponse or
// a broken stream. The first DataRow's first column goes to `value`.
bool read_until_ready(SSL* ssl, std::string& value, std::string& error) {
  for (;;) {
    std::string header;
    if (!read_exactly(ssl, header, 5)) {
      error = "connection closed while waiting for ReadyForQuery";
      return false;
    }
    const std::uint32_t length = (std::uint32_t(std::uint8_t(header[1])) << 24) |
                                 (std::uint32_t(std::uint8_t(header[2])) << 16) |
                                 (std::uint32_t(std::uint8_t(header[3])) << 8) |
                                 std::uint32_t(std::uint8_t(header[4]));
    std::string body;
    if (length < 4 || length > (1u << 20) || !read_exactly(ssl, body, length - 4)) {
      error = "bad message from the server";
      return false;
    }
    switch (header[0]) {
      case 'E':
        error = error_message(body);
        return false;
      case 'Z':
        return true;
      case 'D':
        if (value.empty() && body.size() >= 6) {
          const std::uint32_t n = (std::uint32_t(std::uint8_t(body[2])) << 24) |
                                  (std::uint32_t(std::uint8_t(body[3])) << 16) |
                                  (std::uint32_t(std::uint8_t(body[4])) << 8) |
                                  std::uint32_t(std::uint8_t(body[5]));
          if (n != 0xffffffffu && 6 + n <= body.size()) value = body.substr(6, n);
        }
        break;
      default:
        break;  // authentication ok, parameters, key data, row description, command complete
    }
  }
}

}  // namespace

TlsConnection::TlsConnection(TlsConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      error_(std::move(other.error_)) {}

TlsConnection::~TlsConnection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
}

bool TlsConnection::write(const std::string& bytes) {
  return ssl_ != nullptr && SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) > 0;
}

bool TlsConnection::closed_within(std::chrono::milliseconds timeout) {
  if (ssl_ == nullptr) return true;
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (SSL_pending(ssl_) == 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) == 0) return false;
    }
    char buf[4096];
    ERR_clear_error();
    if (SSL_read(ssl_, buf, sizeof buf) <= 0) return true;
  }
}

TlsSessionClient::TlsSessionClient(const std::string& root_ca_file, const ClientCertificate& client,
                                   int max_version)
    : ctx_(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free), session_(nullptr, &SSL_SESSION_free) {
  if (!ctx_ || SSL_CTX_load_verify_locations(ctx_.get(), root_ca_file.c_str(), nullptr) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx_.get(), client.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_.get(), client.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      (max_version != 0 && SSL_CTX_set_max_proto_version(ctx_.get(), max_version) != 1)) {
    throw std::runtime_error("TlsSessionClient: " + openssl_errors());
  }
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_CLIENT);
}

TlsConnection TlsSessionClient::handshake(std::uint16_t port) {
  TlsConnection c;
  c.fd_ = connect_loopback(port);
  if (c.fd_ < 0) {
    c.error_ = "cannot connect";
    return c;
  }
  const std::string request = ssl_request();
  char answer = 0;
  if (::send(c.fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(request.size()) ||
      ::recv(c.fd_, &answer, 1, 0) != 1 || answer != 'S') {
    c.error_ = "SSLRequest not accepted";
    return c;
  }
  SSL* ssl = SSL_new(ctx_.get());
  if (ssl == nullptr) {
    c.error_ = "SSL_new: " + openssl_errors();
    return c;
  }
  SSL_set_fd(ssl, c.fd_);
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set1_host(ssl, "localhost");
  if (session_) SSL_set_session(ssl, session_.get());
  ERR_clear_error();
  if (SSL_connect(ssl) != 1) {
    c.error_ = "TLS handshake failed: " + openssl_errors();
    SSL_free(ssl);
    return c;
  }
  c.ssl_ = ssl;
  return c;
}

TlsSessionClient::Attempt TlsSessionClient::connect(std::uint16_t port, const std::string& user,
                                                    const std::string& sql) {
  Attempt a;
  TlsConnection c = handshake(port);
  if (!c.ok()) {
    a.error = c.error();
    return a;
  }
  SSL* ssl = c.ssl();
  a.handshake = true;
  a.resumed = SSL_session_reused(ssl) == 1;

  if (!c.write(startup_message(user, "postgres"))) {
    a.error = "cannot send the StartupMessage";
  } else if (read_until_ready(ssl, a.value, a.error)) {
    a.ready = true;
    std::string query = "Q" + be32(static_cast<std::uint32_t>(4 + sql.size() + 1)) + sql;
    query.push_back('\0');
    if (!c.write(query)) {
      a.error = "cannot send the query";
    } else {
      read_until_ready(ssl, a.value, a.error);
    }
    c.write("X" + be32(4));
  }
  // TLS 1.3 tickets arrive after the handshake; by now the reads above have processed them.
  if (SSL_SESSION* s = SSL_get1_session(ssl)) {
    if (SSL_SESSION_is_resumable(s) == 1) {
      session_.reset(s);
    } else {
      SSL_SESSION_free(s);
    }
  }
  SSL_shutdown(ssl);
  return a;
}

}  // namespace pgmtls::integration
