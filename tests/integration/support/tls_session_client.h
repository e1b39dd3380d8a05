// A PostgreSQL client on OpenSSL directly, for what libpq cannot do: TLS session resumption.
// libpq never offers a session ticket; drivers that keep a TLS session cache (pgJDBC through
// JSSE, Npgsql) do, and this client behaves like them.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {

// One TLS connection to pgmtls, up to the end of its handshake, for tests that go on to speak
// the protocol badly, or stop speaking, on purpose. Blocking, each call bounded by 10 s.
class TlsConnection {
 public:
  TlsConnection() = default;
  TlsConnection(TlsConnection&& other) noexcept;
  TlsConnection& operator=(TlsConnection&&) = delete;
  ~TlsConnection();  // closes the socket without a close_notify, as a vanishing client would

  bool ok() const { return ssl_ != nullptr; }
  SSL* ssl() const { return ssl_; }
  const std::string& error() const { return error_; }  // why the handshake failed
  bool write(const std::string& bytes);                // false once the peer is gone
  // Whether the peer closes (TLS close_notify, TCP close or reset) within `timeout`; anything it
  // sends meanwhile is read and dropped. True at once for a connection whose handshake failed.
  bool closed_within(std::chrono::milliseconds timeout);

 private:
  friend class TlsSessionClient;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string error_;
};

class TlsSessionClient {
 public:
  // sslmode=verify-full against `root_ca_file` (host name "localhost"), with `client`'s
  // certificate and key; `max_version` (TLS1_2_VERSION, say) caps the protocol, 0 does not.
  TlsSessionClient(const std::string& root_ca_file, const ClientCertificate& client,
                   int max_version = 0);

  // Connects to 127.0.0.1:port, sends the SSLRequest and completes the TLS handshake (offering
  // the kept session, if any).
  TlsConnection handshake(std::uint16_t port);

  struct Attempt {
    bool handshake = false;  // the TLS handshake completed
    bool resumed = false;    // ... by resuming the previous attempt's session
    bool ready = false;      // ReadyForQuery arrived after the StartupMessage
    std::string value;       // the first column of the first row of `sql`'s result
    std::string error;       // an ErrorResponse's message, or what failed
  };

  // One connection to 127.0.0.1:port: SSLRequest, TLS (offering the session kept from the last
  // attempt that left one), StartupMessage, `sql` as a simple query, Terminate. Every step is
  // bounded by 10 s. Keeps the newest resumable session the server gave.
  Attempt connect(std::uint16_t port, const std::string& user, const std::string& sql);

  bool has_session() const { return session_ != nullptr; }

 private:
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session_;
};

}  // namespace pgmtls::integration
