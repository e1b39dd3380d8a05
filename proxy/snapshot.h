// One immutable view of the configuration and everything built from it (TLS context, access
// policy). Sessions hold the snapshot they started with; a reload builds a new one and swaps it in
// whole.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "auth/policy.h"
#include "auth/tls_context.h"
#include "config/config.h"
#include "proxy/credentials.h"

namespace pgmtls::proxy {

struct Snapshot {
  config::Config config;
  // The SSL_CTX is shared by all sessions; OpenSSL makes concurrent use safe. Asio wants a
  // non-const reference to it, hence the pointer.
  std::unique_ptr<boost::asio::ssl::context> client_tls;
  // Towards the backend; null for sslmode disable.
  std::unique_ptr<boost::asio::ssl::context> backend_tls;
  int crl_count = 0;
  std::string server_subject;
  // For monitoring: when the server certificate and each trusted CA expire, when each CRL is due.
  std::time_t server_not_after = 0;
  std::vector<auth::ServerTlsContext::Ca> cas;
  std::vector<auth::ServerTlsContext::Crl> crls;
  auth::Policy policy;
  // Backend credentials (command outputs cached here); refers to `config`.
  std::unique_ptr<Credentials> credentials;
};

// Builds a snapshot, or reports every error (file:line: reason) and returns null.
std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, config::Diagnostics& errors);

}  // namespace pgmtls::proxy
