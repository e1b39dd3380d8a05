// Cost of the trust work every new connection pays, without sockets or threads: the server side of
// a mutual TLS 1.3 handshake (pgmtls's SSL_CTX against a bare one, so what pgmtls adds to
// OpenSSL's own cost shows), extracting the certificate identity, and the access decision (hba
// rules and ident maps, exact and regular-expression lines).
//
// The handshake benchmarks run client and server in one thread over a BIO pair and time only the
// server's SSL_do_handshake calls (manual time), so their figure is the server CPU per handshake
// that bench/run.sh compares with the public-key crypto limit of `openssl speed`.
#include <benchmark/benchmark.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <variant>

#include "auth/ident_map.h"
#include "auth/identity.h"
#include "auth/pki.h"
#include "auth/policy.h"
#include "auth/tls_context.h"
#include "config/hba_file.h"
#include "config/ident_file.h"

namespace {

using namespace pgmtls;
namespace pki = auth::pki;

// One ECDSA P-256 PKI, as the end-to-end harness uses, written to a temporary folder because
// pgmtls's context builder reads files.
struct Pki {
  std::filesystem::path dir;
  pki::Credential ca, server, client;

  Pki() {
    char tmpl[] = "/tmp/pgmtls-auth-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    ca = pki::self_signed({.common_name = "bench CA", .is_ca = true});
    pki::CertificateSpec server_spec{.common_name = "localhost", .server_auth = true};
    server_spec.san.dns = {"localhost"};
    server = pki::issue(server_spec, ca);
    pki::CertificateSpec client_spec{.common_name = "app_user", .client_auth = true};
    client_spec.san.dns = {"app.example.internal"};
    client_spec.san.email = {"app@example.internal"};
    client_spec.san.uri = {"spiffe://example.internal/ns/prod/sa/app"};
    client = pki::issue(client_spec, ca);
    pki::write_certificates(path("ca.crt"), {ca.cert.get()});
    pki::write_certificates(path("server.crt"), {server.cert.get()});
    pki::write_private_key(path("server.key"), *server.key);
    pki::write_certificates(path("client.crt"), {client.cert.get()});
    pki::write_private_key(path("client.key"), *client.key);
  }
  ~Pki() { std::filesystem::remove_all(dir); }

  std::string path(const char* name) const { return (dir / name).string(); }
};

const Pki& bench_pki() {
  static const Pki pki;
  return pki;
}

// An SSL_CTX with a certificate, its key, and the CA bundle that verifies the peer.
auth::SslCtxPtr context_with(const SSL_METHOD* method, const Pki& pki, const char* cert,
                             const char* key) {
  auth::SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx ||
      SSL_CTX_use_certificate_file(ctx.get(), pki.path(cert).c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), pki.path(key).c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx.get(), pki.path("ca.crt").c_str(), nullptr) != 1) {
    throw std::runtime_error(std::string("SSL_CTX for ") + cert);
  }
  // As libpq: no session cache, so every handshake is a full one.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

auth::SslCtxPtr client_context(const Pki& pki) {
  auto ctx = context_with(TLS_client_method(), pki, "client.crt", "client.key");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

// OpenSSL's own cost: certificate, key and CA bundle, client certificate required, no tickets.
auth::SslCtxPtr bare_server_context(const Pki& pki) {
  auto ctx = context_with(TLS_server_method(), pki, "server.crt", "server.key");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  return ctx;
}

auth::SslCtxPtr pgmtls_server_context(const Pki& pki, std::chrono::milliseconds ticket_lifetime) {
  config::TlsConfig tls;
  tls.cert_file.path = pki.path("server.crt");
  tls.key_file.path = pki.path("server.key");
  tls.ca_file.path = pki.path("ca.crt");
  tls.session_ticket_lifetime = ticket_lifetime;
  config::Diagnostics errors;
  auto built = auth::build_server_tls_context(tls, errors);
  if (!built) throw std::runtime_error("pgmtls server context: " + errors.front().str());
  return std::move(built->ctx);
}

// The server's half of one handshake step; not inlined, so that callgrind's inclusive cost of this
// function is the server's instructions per handshake.
[[gnu::noinline]] int server_step(SSL* server) {
  return SSL_do_handshake(server);
}

// One full handshake; returns the server's share of the time.
std::chrono::nanoseconds handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx) {
  BIO* server_bio = nullptr;
  BIO* client_bio = nullptr;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  auth::SslPtr server(SSL_new(server_ctx));
  auth::SslPtr client(SSL_new(client_ctx));
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_accept_state(server.get());
  SSL_set_connect_state(client.get());
  SSL_set_tlsext_host_name(client.get(), "localhost");
  SSL_set1_host(client.get(), "localhost");
  std::chrono::nanoseconds server_time{0};
  bool server_done = false;
  bool client_done = false;
  for (int round = 0; round < 8 && !(server_done && client_done); ++round) {
    if (!client_done) {
      const int rc = SSL_do_handshake(client.get());
      if (rc == 1) {
        client_done = true;
      } else if (SSL_get_error(client.get(), rc) != SSL_ERROR_WANT_READ) {
        throw std::runtime_error("client handshake failed");
      }
    }
    if (!server_done) {
      const auto start = std::chrono::steady_clock::now();
      const int rc = server_step(server.get());
      server_time += std::chrono::steady_clock::now() - start;
      if (rc == 1) {
        server_done = true;
      } else if (SSL_get_error(server.get(), rc) != SSL_ERROR_WANT_READ) {
        throw std::runtime_error("server handshake failed");
      }
    }
  }
  if (!server_done || !client_done || SSL_get_verify_result(server.get()) != X509_V_OK ||
      SSL_get0_peer_certificate(server.get()) == nullptr) {
    throw std::runtime_error("handshake did not complete with a verified client certificate");
  }
  return server_time;
}

void run_handshakes(benchmark::State& state, SSL_CTX* server_ctx) {
  const auto client_ctx = client_context(bench_pki());
  for (auto _ : state) {
    const auto server_time = handshake(server_ctx, client_ctx.get());
    state.SetIterationTime(std::chrono::duration<double>(server_time).count());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ServerHandshake_BareOpenSsl(benchmark::State& state) {
  const auto ctx = bare_server_context(bench_pki());
  run_handshakes(state, ctx.get());
}
BENCHMARK(BM_ServerHandshake_BareOpenSsl)->UseManualTime()->Unit(benchmark::kMicrosecond);

// pgmtls's defaults: no session tickets.
void BM_ServerHandshake_Pgmtls(benchmark::State& state) {
  const auto ctx = pgmtls_server_context(bench_pki(), std::chrono::milliseconds(0));
  run_handshakes(state, ctx.get());
}
BENCHMARK(BM_ServerHandshake_Pgmtls)->UseManualTime()->Unit(benchmark::kMicrosecond);

// tls.session_ticket_lifetime set: every full handshake also makes a ticket.
void BM_ServerHandshake_PgmtlsTickets(benchmark::State& state) {
  const auto ctx = pgmtls_server_context(bench_pki(), std::chrono::hours(1));
  run_handshakes(state, ctx.get());
}
BENCHMARK(BM_ServerHandshake_PgmtlsTickets)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_ExtractIdentity(benchmark::State& state) {
  X509* cert = bench_pki().client.cert.get();
  std::string error;
  for (auto _ : state) {
    auto identity = auth::extract_identity(cert, error);
    if (!identity) throw std::runtime_error(error);
    benchmark::DoNotOptimize(identity);
  }
}
BENCHMARK(BM_ExtractIdentity);

// A map of `lines` exact lines for other identities, then the line that admits. Arg: lines.
auth::IdentMaps ident_maps(const std::string& last_line, int lines) {
  std::string text;
  for (int i = 0; i < lines; ++i) {
    text += "certmap service_" + std::to_string(i) + " role_" + std::to_string(i) + "\n";
  }
  text += last_line + "\n";
  config::Diagnostics errors;
  auto compiled = auth::IdentMaps::compile(config::parse_ident_text(text, "bench", errors));
  if (!errors.empty() || !std::holds_alternative<auth::IdentMaps>(compiled)) {
    throw std::runtime_error("ident map");
  }
  return std::get<auth::IdentMaps>(std::move(compiled));
}

// Args: lines before the one that admits.
void BM_IdentMap(benchmark::State& state, const char* admitting_line, const char* identity,
                 const char* role) {
  const auto maps = ident_maps(admitting_line, static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto decision = maps.check("certmap", identity, role);
    if (!decision.allowed) throw std::runtime_error("not admitted");
    benchmark::DoNotOptimize(decision);
  }
}
BENCHMARK_CAPTURE(BM_IdentMap, exact, "certmap app_user app", "app_user", "app")->Arg(0)->Arg(100);
// PostgreSQL's documented pattern: the role is the part of the identity before the @.
BENCHMARK_CAPTURE(BM_IdentMap, regex, R"(certmap /^(.*)@example\.internal$ \1)",
                  "app@example.internal", "app")
    ->Arg(0)
    ->Arg(100);

// The whole access decision for one connection: 20 non-matching rules, then a cert rule with a
// map over the SAN e-mail; the identity extracted beforehand, as the session does.
void BM_PolicyEvaluate(benchmark::State& state) {
  std::string hba;
  for (int i = 0; i < 20; ++i) {
    hba += "hostssl db_" + std::to_string(i) + " all 10.0.0.0/8 cert\n";
  }
  hba += "hostssl all all 127.0.0.1/32 cert map=certmap clientname=SAN_EMAIL\n";
  config::Diagnostics errors;
  auto rules = config::parse_hba_text(hba, "bench", errors);
  auto ident = config::parse_ident_text(R"(certmap /^(.*)@example\.internal$ \1)", "bench", errors);
  auto compiled = auth::Policy::compile(std::move(rules), std::move(ident), {});
  if (!errors.empty() || !std::holds_alternative<auth::Policy>(compiled)) {
    throw std::runtime_error("policy");
  }
  const auto& policy = std::get<auth::Policy>(compiled);
  std::string error;
  const auto identity = auth::extract_identity(bench_pki().client.cert.get(), error);
  auth::AccessRequest request;
  request.address = boost::asio::ip::make_address("127.0.0.1");
  request.user = "app";
  request.database = "postgres";
  for (auto _ : state) {
    auto verdict = policy.evaluate(request, &*identity);
    if (!verdict.admitted()) throw std::runtime_error("not admitted: " + verdict.detail);
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_PolicyEvaluate);

}  // namespace
