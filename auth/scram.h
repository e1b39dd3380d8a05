// The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as PostgreSQL
// speaks it in its SASL exchange, and the MD5 password hash of AuthenticationMD5Password. Pure:
// the caller moves the messages; nothing here does I/O.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgmtls::auth {

// A backend may ask for any iteration count; more than this is treated as hostile (PBKDF2 runs on
// a worker thread). PostgreSQL's default is 4096.
inline constexpr std::uint32_t kMaxScramIterations = 100000;

class ScramClient {
 public:
  enum class ChannelBinding {
    none,                  // "n,,": the connection is not TLS
    unsupported,           // "y,,": we could bind, but the server did not offer -PLUS
    tls_server_end_point,  // "p=tls-server-end-point,,": SCRAM-SHA-256-PLUS
  };

  // `cb_data` is the channel binding data (the hash of the server's certificate) for
  // tls_server_end_point. `nonce` is for tests; empty: 18 random bytes, base64. `user` goes into
  // the SCRAM message; PostgreSQL takes the role from the StartupMessage and ignores it, so it is
  // empty as libpq sends it (tests set it to reproduce RFC 7677's example).
  ScramClient(std::string password, ChannelBinding binding, std::vector<std::uint8_t> cb_data = {},
              std::string nonce = {}, std::string_view user = {});

  // The SASLInitialResponse payload: gs2 header + client-first-message-bare.
  std::string client_first() const;

  // Consumes server-first-message; returns client-final-message, or nullopt with `error()` set.
  std::optional<std::string> client_final(std::string_view server_first);

  // Checks server-final-message: the server must prove it knows the password's verifier.
  bool verify_server_final(std::string_view server_final);

  const std::string& error() const { return error_; }

 private:
  std::string gs2_header() const;

  std::string password_;
  ChannelBinding binding_;
  std::vector<std::uint8_t> cb_data_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::vector<std::uint8_t> server_signature_;
  std::string error_;
};

// "md5" + md5hex(md5hex(password + user) + salt), as AuthenticationMD5Password asks.
std::string md5_password(std::string_view user, std::string_view password,
                         const std::uint8_t salt[4]);

// RFC 5929 tls-server-end-point: the server certificate's hash, with SHA-256 in place of MD5 and
// SHA-1. Empty if the certificate's signature algorithm cannot be determined.
std::vector<std::uint8_t> tls_server_end_point(X509* server_certificate);

std::string base64_encode(const std::uint8_t* data, std::size_t len);
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace pgmtls::auth
