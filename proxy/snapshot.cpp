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
  }

  auto maps = auth::IdentMaps::compile(cfg.ident_lines);
  if (auto* errs = std::get_if<config::Diagnostics>(&maps)) {
    errors.insert(errors.end(), errs->begin(), errs->end());
  } else {
    snap->maps = std::move(std::get<auth::IdentMaps>(maps));
  }

  if (errors.size() != errors_before) return nullptr;
  snap->config = std::move(cfg);
  return snap;
}

}  // namespace pgmtls::proxy
