// Builds the server-side SSL_CTX for client connections from the tls: section of the config.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/openssl_ptr.h"
#include "config/config.h"

namespace pgmtls::auth {

struct ServerTlsContext {
  SslCtxPtr ctx;
  int crl_count = 0;           // CRLs loaded from crl_file and crl_dir
  std::string server_subject;  // the server certificate's subject, for the start-up log
  std::time_t server_not_after = 0;
  struct Ca {
    std::string subject;  // RFC 2253
    std::time_t not_after = 0;
  };
  std::vector<Ca> cas;  // the trusted CAs for client certificates
  struct Crl {
    std::string issuer;           // RFC 2253
    std::time_t next_update = 0;  // 0: the CRL has none
  };
  std::vector<Crl> crls;
};

// Loads certificate chain, key (and checks they match), CA bundle, CRLs; sets protocol versions,
// ciphers, groups, TLS 1.3 session tickets and client-certificate verification (peer certificate
// requested, verified for chain, validity, CRLs of the whole chain and TLS-client purpose). Errors
// name the config key.
std::optional<ServerTlsContext> build_server_tls_context(const config::TlsConfig& tls,
                                                         config::Diagnostics& errors);

// The client-side SSL_CTX pgmtls uses towards a backend: minimum version, trusted roots
// (sslrootcert or the system store), pgmtls's own certificate and key (sslcert/sslkey), and peer
// verification for verify-ca / verify-full, or for require when a root bundle is given (libpq's
// rule). Host name checks are per connection (configure_backend_ssl). Null for sslmode disable.
SslCtxPtr build_backend_tls_context(const config::BackendTlsConfig& tls,
                                    config::Diagnostics& errors, const config::Location& where);

// Per-connection settings on a backend SSL: SNI (unless disabled or `host` is an IP literal) and,
// for verify-full, the host name or IP address the certificate must carry.
bool configure_backend_ssl(SSL* ssl, const config::BackendTlsConfig& tls, const std::string& host);

// SHA-256 (lower-case hex) of the CA certificates that vouched for this connection's client
// certificate, issuer first: from the verified chain after a full handshake, from the session
// ticket after a resumption. Empty without a verified client certificate.
std::vector<std::string> verified_ca_fingerprints(SSL* ssl);

// Server names (TLS SNI) with SSL_CTXs of their own: the same trust settings, another server
// certificate. Installed on the default SSL_CTX, it switches each handshake whose ClientHello names
// one of them to that SSL_CTX; any other keeps the default's certificate. Not owning; the table
// and its contexts must outlive every handshake on the default context.
class SniTable {
 public:
  // `server_name` in lower case; "*.example.com" matches exactly one more label in front.
  void add(std::string server_name, SSL_CTX* ctx);
  // The entry for a server name sent by a client: an exact name first, then a wildcard; -1 for
  // none (or no name).
  int find(const char* server_name) const;
  SSL_CTX* context(int index) const { return entries_[static_cast<std::size_t>(index)].second; }
  bool empty() const { return entries_.empty(); }
  void install(SSL_CTX* default_ctx) const;

 private:
  std::vector<std::pair<std::string, SSL_CTX*>> entries_;
};

// A connection that began with a TLS ClientHello instead of an SSLRequest (PostgreSQL 17's
// sslnegotiation=direct). Its handshake is refused, with TLS's no_application_protocol alert,
// unless the client offers ALPN "postgresql"; `refused` then says why.
struct DirectTls {
  std::string refused;
};
// Marks `ssl` as a direct TLS connection; `state` must outlive the handshake.
void mark_direct_tls(SSL* ssl, DirectTls* state);

// Makes the verification of this connection's client certificate record, on the first failure,
// which certificate failed and why ("depth 0 subject \"CN=...\": certificate has expired") into
// `*out`. `out` must outlive the handshake.
void record_verify_failure(SSL* ssl, std::string* out);

// Verifies a client certificate offline exactly as a handshake against `ctx` would (its CA store,
// CRL flags and TLS-client purpose), for `pgmtls map-test`. `untrusted` holds intermediates the
// client would send. On success `chain` receives the verified chain, leaf first; otherwise
// `error` says which certificate failed and why, and the X509_V_ERR_* code is returned.
long verify_client_certificate(SSL_CTX* ctx, X509* leaf, const std::vector<X509*>& untrusted,
                               std::vector<X509Ptr>& chain, std::string& error);

}  // namespace pgmtls::auth
