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

  if (auto backend_ctx =
          auth::build_backend_tls_context(cfg.backend.tls, errors, cfg.backend.where)) {
    snap->backend_tls = std::make_unique<boost::asio::ssl::context>(backend_ctx.release());
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
  snap->credentials = std::make_unique<Credentials>(snap->config.backend);
  return snap;
}

}  // namespace pgmtls::proxy
