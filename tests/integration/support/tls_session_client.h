// A PostgreSQL client on OpenSSL directly, for what libpq cannot do: TLS session resumption.
// libpq never offers a session ticket; drivers that keep a TLS session cache (pgJDBC through
// JSSE, Npgsql) do, and this client behaves like them.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {

class TlsSessionClient {
 public:
  // sslmode=verify-full against `root_ca_file` (host name "localhost"), with `client`'s
  // certificate and key.
  TlsSessionClient(const std::string& root_ca_file, const ClientCertificate& client);

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
