// One immutable view of the configuration and everything built from it (TLS context, access
// policy). Sessions hold the snapshot they started with; a reload builds a new one and swaps it in
// whole.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <vector>

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
  // A backend and what reaching it takes: routes[0] is config.backend (clients without a listed
  // server name), then one per config.sni_backends.
  struct Route {
    const config::BackendConfig* backend = nullptr;  // into `config`
    // Towards the backend; null for sslmode disable.
    std::unique_ptr<boost::asio::ssl::context> backend_tls;
    // Backend credentials (command outputs cached here); refers to *backend.
    std::unique_ptr<Credentials> credentials;
  };
  std::vector<Route> routes;
  // One per config.sni entry: its server certificate's SSL_CTX, and the route it leads to.
  std::vector<std::unique_ptr<boost::asio::ssl::context>> sni_tls;
  std::vector<std::size_t> sni_route;
  auth::SniTable sni;  // installed on client_tls
  int crl_count = 0;
  std::string server_subject;
  // For monitoring: when the server certificate and each trusted CA expire, when each CRL is due.
  std::time_t server_not_after = 0;
  std::vector<auth::ServerTlsContext::Ca> cas;
  std::vector<auth::ServerTlsContext::Crl> crls;
  auth::Policy policy;

  // The route of a finished handshake: the sni: route whose SSL_CTX the server name switched it
  // to, else routes[0]; `sni_index` receives the config.sni index (-1 for none). The name is
  // matched once, in the handshake (auth::SniTable), not again here.
  const Route& route_for(const SSL* ssl, int& sni_index) const;
};

// Builds a snapshot, or reports every error (file:line: reason) and returns null.
std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, config::Diagnostics& errors);

}  // namespace pgmtls::proxy
