#include "proxy/snapshot.h"

namespace pgmtls::proxy {

std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, config::Diagnostics& errors) {
  auto snap = std::make_shared<Snapshot>();
  const std::size_t errors_before = errors.size();

  auto tls = auth::build_server_tls_context(cfg.tls, errors);
  if (tls) {
    // Asio takes ownership of the SSL_CTX.
    snap->client_tls = std::make_unique<boost::asio::ssl::context>(tls->ctx.release());
    snap->crl_count = tls->crl_count;
    snap->server_subject = tls->server_subject;
    snap->server_not_after = tls->server_not_after;
    snap->cas = std::move(tls->cas);
    snap->crls = std::move(tls->crls);
  }

  // Every backend's TLS context, default first, then the SNI backends in order.
  std::vector<const config::BackendConfig*> backends{&cfg.backend};
  for (const auto& b : cfg.sni_backends)
    backends.push_back(&b);
  std::vector<std::unique_ptr<boost::asio::ssl::context>> backend_tls;
  for (const auto* b : backends) {
    auto ctx = auth::build_backend_tls_context(b->tls, errors, b->where);
    backend_tls.push_back(ctx ? std::make_unique<boost::asio::ssl::context>(ctx.release())
                              : nullptr);
  }

  // Each sni: route's server certificate, with every other tls: setting as the default's.
  for (const auto& route : cfg.sni) {
    config::TlsConfig tls_for_name = cfg.tls;
    tls_for_name.cert_file = route.cert_file;
    tls_for_name.key_file = route.key_file;
    auto ctx = auth::build_server_tls_context(tls_for_name, errors);
    if (!ctx) continue;
    snap->sni_tls.push_back(std::make_unique<boost::asio::ssl::context>(ctx->ctx.release()));
    snap->sni.add(route.server_name, snap->sni_tls.back()->native_handle());
  }

  auth::PolicyDefaults defaults{cfg.identity.source, cfg.identity.issuer,
                                cfg.identity.issuer_fingerprint,
                                cfg.identity.role_from_certificate};
  auto policy = auth::Policy::compile(cfg.hba_rules, cfg.ident_lines, defaults, cfg.map);
  if (auto* errs = std::get_if<config::Diagnostics>(&policy)) {
    errors.insert(errors.end(), errs->begin(), errs->end());
  } else {
    snap->policy = std::move(std::get<auth::Policy>(policy));
  }

  if (errors.size() != errors_before) return nullptr;
  snap->config = std::move(cfg);
  const auto& config = snap->config;
  for (std::size_t i = 0; i < backend_tls.size(); ++i) {
    const config::BackendConfig& b = i == 0 ? config.backend : config.sni_backends[i - 1];
    snap->routes.push_back({&b, std::move(backend_tls[i]), std::make_unique<Credentials>(b)});
  }
  for (const auto& route : config.sni) {
    std::size_t index = 0;
    for (std::size_t i = 1; i < snap->routes.size(); ++i) {
      if (snap->routes[i].backend->name == route.backend) index = i;
    }
    snap->sni_route.push_back(index);
  }
  if (!snap->sni.empty()) snap->sni.install(snap->client_tls->native_handle());
  return snap;
}

const Snapshot::Route& Snapshot::route_for(const SSL* ssl, int& sni_index) const {
  const SSL_CTX* chosen = SSL_get_SSL_CTX(ssl);
  for (std::size_t i = 0; i < sni_tls.size(); ++i) {
    if (sni_tls[i]->native_handle() == chosen) {
      sni_index = static_cast<int>(i);
      return routes[sni_route[i]];
    }
  }
  sni_index = -1;
  return routes.front();
}

}  // namespace pgmtls::proxy
