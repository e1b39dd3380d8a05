#include "auth/tls_context.h"

#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <ctime>
#include <filesystem>
#include <string>

#include "auth/verify_reason.h"

namespace pgmtls::auth {
namespace {

namespace fs = std::filesystem;

const std::string kPki = std::string(PGMTLS_TEST_DATA_DIR) + "/config/pki/";

// Distinct locations, so each test can tell which setting an error is pinned to.
const config::Location kTlsAt{"pgmtls.yaml", 2, 3};
const config::Location kCertAt{"pgmtls.yaml", 3, 14};
const config::Location kKeyAt{"pgmtls.yaml", 4, 13};
const config::Location kCaAt{"pgmtls.yaml", 5, 12};
const config::Location kCrlAt{"pgmtls.yaml", 6, 13};
const config::Location kCrlDirAt{"pgmtls.yaml", 7, 12};

config::TlsConfig corpus_tls() {
  config::TlsConfig tls;
  tls.where = kTlsAt;
  tls.cert_file = {kPki + "server.crt", kCertAt};
  tls.key_file = {kPki + "server.key", kKeyAt};
  tls.ca_file = {kPki + "ca.crt", kCaAt};
  return tls;
}

std::string all_errors(const config::Diagnostics& errors) {
  std::string out;
  for (const auto& e : errors)
    out += e.str() + "\n";
  return out;
}

bool same_place(const config::Location& a, const config::Location& b) {
  return a.file == b.file && a.line == b.line && a.column == b.column;
}

// The first diagnostic pinned to `where`, or nullptr.
const config::Diagnostic* error_at(const config::Diagnostics& errors,
                                   const config::Location& where) {
  for (const auto& e : errors)
    if (same_place(e.where, where)) return &e;
  return nullptr;
}

TEST(TlsContext, BuildsFromTheCorpusPki) {
  config::Diagnostics errors;
  auto ctx = build_server_tls_context(corpus_tls(), errors);
  ASSERT_TRUE(ctx) << all_errors(errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_NE(ctx->ctx, nullptr);
  EXPECT_EQ(ctx->crl_count, 0);
  EXPECT_NE(ctx->server_subject.find("CN=localhost"), std::string::npos) << ctx->server_subject;
  // The corpus certificate is valid for 100 years.
  EXPECT_GT(ctx->server_not_after, std::time(nullptr) + 50LL * 365 * 24 * 3600);

  SSL_CTX* c = ctx->ctx.get();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
  EXPECT_TRUE(SSL_CTX_get_verify_mode(c) & SSL_VERIFY_PEER);
  EXPECT_NE(SSL_CTX_get0_certificate(c), nullptr);
  EXPECT_NE(SSL_CTX_get0_privatekey(c), nullptr);
  // The CA's name goes into the CertificateRequest.
  STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(c);
  ASSERT_NE(names, nullptr);
  EXPECT_EQ(sk_X509_NAME_num(names), 1);
  // No CRL configured: no CRL checking (it would refuse every client).
  const unsigned long flags =
      X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(SSL_CTX_get_cert_store(c)));
  EXPECT_EQ(flags & X509_V_FLAG_CRL_CHECK, 0u);
}

TEST(TlsContext, Tls13Minimum) {
  auto tls = corpus_tls();
  tls.min_protocol_version = "TLSv1.3";
  config::Diagnostics errors;
  auto ctx = build_server_tls_context(tls, errors);
  ASSERT_TRUE(ctx) << all_errors(errors);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->ctx.get()), TLS1_3_VERSION);
}

TEST(TlsContext, MaxOlderThanMinIsAnError) {
  auto tls = corpus_tls();
  tls.min_protocol_version = "TLSv1.3";
  tls.max_protocol_version = "TLSv1.2";
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  const auto* e = error_at(errors, kTlsAt);
  ASSERT_NE(e, nullptr) << all_errors(errors);
  EXPECT_NE(e->message.find("max_protocol_version"), std::string::npos);
}

TEST(TlsContext, CrlFileIsLoadedAndTurnsOnCrlChecks) {
  auto tls = corpus_tls();
  tls.crl_file = {kPki + "ca.crl", kCrlAt};
  config::Diagnostics errors;
  auto ctx = build_server_tls_context(tls, errors);
  ASSERT_TRUE(ctx) << all_errors(errors);
  EXPECT_EQ(ctx->crl_count, 1);
  const unsigned long flags =
      X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(SSL_CTX_get_cert_store(ctx->ctx.get())));
  EXPECT_NE(flags & X509_V_FLAG_CRL_CHECK, 0u);
  EXPECT_NE(flags & X509_V_FLAG_CRL_CHECK_ALL, 0u);
}

TEST(TlsContext, CrlDirectory) {
  const fs::path dir = fs::path(testing::TempDir()) / "pgmtls_crl_dir_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(kPki + "ca.crl", dir / "ca.crl");
  auto tls = corpus_tls();
  tls.crl_dir = {dir.string(), kCrlDirAt};
  config::Diagnostics errors;
  auto ctx = build_server_tls_context(tls, errors);
  ASSERT_TRUE(ctx) << all_errors(errors);
  EXPECT_EQ(ctx->crl_count, 1);

  // A file in the directory that is not a CRL is reported at crl_dir.
  fs::copy_file(kPki + "ca.crt", dir / "not-a-crl.pem");
  errors.clear();
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  const auto* e = error_at(errors, kCrlDirAt);
  ASSERT_NE(e, nullptr) << all_errors(errors);
  EXPECT_NE(e->message.find("not-a-crl.pem"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TlsContext, KeyNotMatchingTheCertificate) {
  auto tls = corpus_tls();
  tls.key_file = {kPki + "other.key", kKeyAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_FALSE(errors.empty());
  const auto* e = error_at(errors, kKeyAt);
  ASSERT_NE(e, nullptr) << all_errors(errors);
  EXPECT_NE(e->message.find("does not match"), std::string::npos) << e->str();
  EXPECT_NE(e->message.find("other.key"), std::string::npos) << e->str();
}

TEST(TlsContext, GarbageCertificateFile) {
  auto tls = corpus_tls();
  tls.cert_file = {kPki + "garbage.pem", kCertAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_FALSE(errors.empty());
  EXPECT_TRUE(same_place(errors.front().where, kCertAt)) << all_errors(errors);
  EXPECT_NE(errors.front().message.find("garbage.pem"), std::string::npos);
}

TEST(TlsContext, UnreadableCertificateFile) {
  auto tls = corpus_tls();
  tls.cert_file = {kPki + "no-such-file.crt", kCertAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_FALSE(errors.empty());
  EXPECT_TRUE(same_place(errors.front().where, kCertAt)) << all_errors(errors);
}

TEST(TlsContext, GarbageKeyFile) {
  auto tls = corpus_tls();
  tls.key_file = {kPki + "garbage.pem", kKeyAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  const auto* e = error_at(errors, kKeyAt);
  ASSERT_NE(e, nullptr) << all_errors(errors);
  EXPECT_NE(e->message.find("cannot load private key"), std::string::npos) << e->str();
}

TEST(TlsContext, CaFileWithNoCertificate) {
  auto tls = corpus_tls();
  tls.ca_file = {kPki + "garbage.pem", kCaAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_EQ(errors.size(), 1u) << all_errors(errors);
  EXPECT_TRUE(same_place(errors.front().where, kCaAt)) << all_errors(errors);
}

TEST(TlsContext, CaFileHoldingOnlyACrl) {
  auto tls = corpus_tls();
  tls.ca_file = {kPki + "ca.crl", kCaAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_EQ(errors.size(), 1u) << all_errors(errors);
  EXPECT_TRUE(same_place(errors.front().where, kCaAt)) << all_errors(errors);
}

TEST(TlsContext, CrlFileThatIsNotACrl) {
  for (const char* name : {"server.crt", "garbage.pem"}) {
    auto tls = corpus_tls();
    tls.crl_file = {kPki + name, kCrlAt};
    config::Diagnostics errors;
    EXPECT_FALSE(build_server_tls_context(tls, errors)) << name;
    ASSERT_EQ(errors.size(), 1u) << all_errors(errors);
    EXPECT_TRUE(same_place(errors.front().where, kCrlAt)) << all_errors(errors);
    EXPECT_NE(errors.front().message.find("no readable PEM CRL"), std::string::npos)
        << errors.front().str();
  }
}

TEST(TlsContext, BadCipherString) {
  auto tls = corpus_tls();
  tls.ciphers = "NOT-A-CIPHER";
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_EQ(errors.size(), 1u) << all_errors(errors);
  EXPECT_TRUE(same_place(errors.front().where, kTlsAt));
  EXPECT_NE(errors.front().message.find("tls.ciphers \"NOT-A-CIPHER\""), std::string::npos)
      << errors.front().str();
}

TEST(TlsContext, BadCipherSuitesAndGroups) {
  auto tls = corpus_tls();
  tls.ciphersuites = "TLS_NOT_A_SUITE";
  tls.groups = "P-999";
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  ASSERT_EQ(errors.size(), 2u) << all_errors(errors);
  EXPECT_NE(errors[0].message.find("tls.ciphersuites"), std::string::npos);
  EXPECT_NE(errors[1].message.find("tls.groups"), std::string::npos);
}

TEST(TlsContext, AllProblemsAreReported) {
  auto tls = corpus_tls();
  tls.ciphers = "NOT-A-CIPHER";
  tls.key_file = {kPki + "other.key", kKeyAt};
  tls.crl_file = {kPki + "garbage.pem", kCrlAt};
  config::Diagnostics errors;
  EXPECT_FALSE(build_server_tls_context(tls, errors));
  EXPECT_NE(error_at(errors, kTlsAt), nullptr) << all_errors(errors);
  EXPECT_NE(error_at(errors, kKeyAt), nullptr) << all_errors(errors);
  EXPECT_NE(error_at(errors, kCrlAt), nullptr) << all_errors(errors);
}

TEST(TlsContext, ErrorsAreAppendedToExistingOnes) {
  config::Diagnostics errors{{{"earlier.yaml", 1, 1}, "earlier problem"}};
  auto ctx = build_server_tls_context(corpus_tls(), errors);
  // Earlier problems elsewhere do not make a good TLS section fail.
  EXPECT_TRUE(ctx) << all_errors(errors);
  EXPECT_EQ(errors.size(), 1u);
}

TEST(VerifyReason, StableNames) {
  EXPECT_EQ(verify_reason(X509_V_OK), "ok");
  EXPECT_EQ(verify_reason(X509_V_ERR_CERT_REVOKED), "revoked");
  EXPECT_EQ(verify_reason(X509_V_ERR_CERT_HAS_EXPIRED), "expired");
  EXPECT_EQ(verify_reason(X509_V_ERR_CERT_NOT_YET_VALID), "not_yet_valid");
  EXPECT_EQ(verify_reason(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY), "unknown_ca");
  EXPECT_EQ(verify_reason(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), "unknown_ca");
  EXPECT_EQ(verify_reason(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), "unknown_ca");
  EXPECT_EQ(verify_reason(X509_V_ERR_INVALID_PURPOSE), "bad_purpose");
  EXPECT_EQ(verify_reason(X509_V_ERR_UNABLE_TO_GET_CRL), "crl_unavailable");
  // README's vocabulary: an expired or unverifiable CRL is "crl_invalid".
  EXPECT_EQ(verify_reason(X509_V_ERR_CRL_HAS_EXPIRED), "crl_invalid");
  EXPECT_EQ(verify_reason(X509_V_ERR_CERT_SIGNATURE_FAILURE), "bad_signature");
  EXPECT_EQ(verify_reason(X509_V_ERR_CERT_CHAIN_TOO_LONG), "chain_too_long");
  EXPECT_EQ(verify_reason(X509_V_ERR_HOSTNAME_MISMATCH), "invalid_certificate");
  EXPECT_EQ(verify_reason(123456), "invalid_certificate");
}

}  // namespace
}  // namespace pgmtls::auth
