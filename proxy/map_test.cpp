#include "proxy/map_test.h"

#include <openssl/pem.h>

#include <cstdio>

#include "auth/identity.h"
#include "auth/policy.h"
#include "auth/tls_context.h"
#include "auth/verify_reason.h"

namespace pgmtls::proxy {

namespace {

std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string subject_of(X509* cert) {
  std::string error;
  auto id = auth::extract_identity(cert, error);
  return id ? id->subject_dn : "?";
}

// Reads every certificate in a PEM file, leaf first.
std::vector<auth::X509Ptr> read_chain(const std::string& path, std::string& error) {
  std::vector<auth::X509Ptr> certs;
  auth::BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    error = "cannot read " + path + ": " + auth::openssl_error_text();
    return certs;
  }
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
    certs.emplace_back(cert);
  ERR_clear_error();  // the end of the file reads as an error
  if (certs.empty()) error = path + " holds no PEM certificate";
  return certs;
}

}  // namespace

int run_map_test(const Snapshot& snapshot, const MapTestRequest& request) {
  std::string error;
  auto certs = read_chain(request.cert_file, error);
  if (certs.empty()) {
    std::fprintf(stderr, "pgmtls map-test: %s\n", error.c_str());
    return 2;
  }
  boost::system::error_code ec;
  auth::AccessRequest access;
  access.address = boost::asio::ip::make_address(request.address, ec);
  if (ec) {
    std::fprintf(stderr, "pgmtls map-test: --address \"%s\" is not an IP address\n",
                 request.address.c_str());
    return 2;
  }
  access.user = request.user;
  access.database = request.database.empty() ? request.user : request.database;

  auto identity = auth::extract_identity(certs[0].get(), error);
  if (!identity) {
    std::printf("certificate  %s\n  unusable     %s\nverdict      REFUSE\n",
                request.cert_file.c_str(), error.c_str());
    return 1;
  }
  std::printf("certificate  %s\n", request.cert_file.c_str());
  std::printf("  subject    %s\n", identity->subject_dn.c_str());
  std::printf("  issuer     %s\n", identity->issuer_dn.c_str());
  std::printf("  serial     %s\n", identity->serial.c_str());
  std::printf("  sha256     %s\n", identity->sha256_fingerprint.c_str());
  if (!identity->san_dns.empty()) std::printf("  san dns    %s\n", join(identity->san_dns).c_str());
  if (!identity->san_email.empty()) {
    std::printf("  san email  %s\n", join(identity->san_email).c_str());
  }
  if (!identity->san_uri.empty()) std::printf("  san uri    %s\n", join(identity->san_uri).c_str());

  std::vector<X509*> untrusted;
  for (std::size_t i = 1; i < certs.size(); ++i)
    untrusted.push_back(certs[i].get());
  std::vector<auth::X509Ptr> chain;
  const long verified = auth::verify_client_certificate(snapshot.client_tls->native_handle(),
                                                        certs[0].get(), untrusted, chain, error);
  if (verified == X509_V_OK) {
    std::vector<std::string> names;
    for (const auto& cert : chain)
      names.push_back(subject_of(cert.get()));
    std::printf("  verified   yes, against tls.ca_file%s: %s\n",
                snapshot.crl_count > 0 ? " and its CRLs" : "", join(names, " <- ").c_str());
    for (std::size_t i = 1; i < chain.size(); ++i)
      identity->ca_fingerprints.push_back(auth::sha256_fingerprint(chain[i].get()));
  } else {
    std::printf("  verified   NO (%s): %s\n", std::string(auth::verify_reason(verified)).c_str(),
                error.c_str());
  }

  std::printf("request      user \"%s\", database \"%s\", from %s over SSL\n", access.user.c_str(),
              access.database.c_str(), request.address.c_str());
  const auto& cfg = snapshot.config;
  std::printf("rules        %s\n", snapshot.policy.implicit() ? "none configured: one implicit rule"
                                                              : ("from " + cfg.hba_origin).c_str());
  std::vector<std::string> trace;
  const auth::Verdict verdict = snapshot.policy.evaluate(access, &*identity, &trace);
  for (const auto& line : trace)
    std::printf("  %s\n", line.c_str());

  if (verdict.admitted() && !verdict.identity.empty()) {
    std::printf("identity     \"%s\"\n", verdict.identity.c_str());
  }
  if (verdict.ident_line != nullptr) {
    const auto& line = *verdict.ident_line;
    std::printf("map line     %s: %s\n", line.where.str().c_str(),
                line.text.empty() ? (line.map + " " + line.identity + " " + line.role).c_str()
                                  : line.text.c_str());
  }
  if (verified != X509_V_OK) {
    std::printf("verdict      REFUSE: the TLS handshake fails before any rule applies (%s)\n",
                std::string(auth::verify_reason(verified)).c_str());
    if (verdict.admitted()) {
      std::printf("             (with a valid certificate the rules would admit it as \"%s\")\n",
                  verdict.role.c_str());
    }
    return 1;
  }
  if (verdict.admitted()) {
    std::printf("verdict      ADMIT as role \"%s\"\n", verdict.role.c_str());
    if (verdict.role_substituted) std::printf("             %s\n", verdict.detail.c_str());
    return 0;
  }
  std::printf("verdict      REFUSE (%s)\n", std::string(auth::to_string(verdict.kind)).c_str());
  std::printf("  client sees  FATAL 28000 %s\n", verdict.client_message.c_str());
  std::printf("  because      %s\n", verdict.detail.c_str());
  return 1;
}

}  // namespace pgmtls::proxy
