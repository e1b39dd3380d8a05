// auth/pki checked with OpenSSL's own verifier: what it issues verifies (or fails) the way the
// integration tests rely on.
#include "auth/pki.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/integration/support/process.h"

namespace pgmtls::integration {
namespace {

namespace pki = auth::pki;
using std::chrono::days;

pki::CertificateSpec ca(const std::string& name) {
  pki::CertificateSpec spec;
  spec.common_name = name;
  spec.is_ca = true;
  return spec;
}

pki::CertificateSpec client(const std::string& name) {
  pki::CertificateSpec spec;
  spec.common_name = name;
  spec.client_auth = true;
  return spec;
}

// X509_verify_cert's result for `leaf` against `root`, with an optional untrusted intermediate
// and CRLs (which turn on full-chain CRL checking).
int verify(const X509* leaf, const X509* root, const X509* intermediate = nullptr,
           std::vector<const X509_CRL*> crls = {}) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
  X509_STORE_add_cert(store.get(), const_cast<X509*>(root));
  for (const X509_CRL* crl : crls)
    X509_STORE_add_crl(store.get(), const_cast<X509_CRL*>(crl));
  if (!crls.empty()) {
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  auto free_stack = [](STACK_OF(X509) * s) { sk_X509_free(s); };
  std::unique_ptr<STACK_OF(X509), decltype(free_stack)> chain(sk_X509_new_null(), free_stack);
  if (intermediate) sk_X509_push(chain.get(), const_cast<X509*>(intermediate));
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      &X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), const_cast<X509*>(leaf), chain.get());
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  X509_verify_cert(ctx.get());
  return X509_STORE_CTX_get_error(ctx.get());
}

TEST(PkiTest, ChainThroughIntermediateVerifies) {
  const auto root = pki::self_signed(ca("root"));
  auto inter_spec = ca("intermediate");
  inter_spec.path_length = 0;
  inter_spec.key_type = pki::KeyType::rsa2048;
  const auto inter = pki::issue(inter_spec, root);
  const auto leaf = pki::issue(client("leaf"), inter);
  EXPECT_EQ(verify(leaf.cert.get(), root.cert.get(), inter.cert.get()), X509_V_OK);
  EXPECT_EQ(verify(leaf.cert.get(), root.cert.get()), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST(PkiTest, ValidityOffsetsMakeExpiredAndNotYetValidCertificates) {
  const auto root = pki::self_signed(ca("root"));
  auto expired = client("expired");
  expired.not_before = -days(2);
  expired.not_after = -days(1);
  auto future = client("future");
  future.not_before = days(1);
  EXPECT_EQ(verify(pki::issue(expired, root).cert.get(), root.cert.get()),
            X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(verify(pki::issue(future, root).cert.get(), root.cert.get()),
            X509_V_ERR_CERT_NOT_YET_VALID);
}

TEST(PkiTest, ExtendedKeyUsageDecidesPurpose) {
  const auto root = pki::self_signed(ca("root"));
  auto server = client("server");
  server.client_auth = false;
  server.server_auth = true;
  EXPECT_EQ(verify(pki::issue(server, root).cert.get(), root.cert.get()),
            X509_V_ERR_INVALID_PURPOSE);
}

TEST(PkiTest, CrlRevokesListedSerialAndGoesStale) {
  const auto root = pki::self_signed(ca("root"));
  auto revoked_spec = client("revoked");
  revoked_spec.serial = 4242;
  const auto revoked = pki::issue(revoked_spec, root);
  const auto good = pki::issue(client("good"), root);
  EXPECT_EQ(pki::serial_of(*revoked.cert), 4242u);
  pki::CrlSpec spec;
  spec.revoked_serials = {4242};
  const auto crl = pki::make_crl(spec, root);
  EXPECT_EQ(verify(revoked.cert.get(), root.cert.get(), nullptr, {crl.get()}),
            X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(good.cert.get(), root.cert.get(), nullptr, {crl.get()}), X509_V_OK);
  spec.last_update = -days(2);
  spec.next_update = -days(1);
  const auto stale = pki::make_crl(spec, root);
  EXPECT_EQ(verify(good.cert.get(), root.cert.get(), nullptr, {stale.get()}),
            X509_V_ERR_CRL_HAS_EXPIRED);
}

TEST(PkiTest, SubjectAltNamesAndSubject) {
  const auto root = pki::self_signed(ca("root"));
  auto spec = client("localhost");
  spec.organization = "Example, Inc.";
  spec.san.dns = {"localhost"};
  spec.san.ip = {"127.0.0.1", "::1"};
  spec.san.email = {"bob@example.com"};
  spec.san.uri = {"spiffe://example.org/a,b"};
  const auto leaf = pki::issue(spec, root);
  X509* cert = leaf.cert.get();
  EXPECT_EQ(X509_check_host(cert, "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "::1", 0), 1);
  EXPECT_EQ(X509_check_email(cert, "bob@example.com", 0, 0), 1);
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  EXPECT_STREQ(subject, "/O=Example, Inc./CN=localhost");
  EXPECT_NE(X509_get0_subject_key_id(cert), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(cert), nullptr);
}

TEST(PkiTest, FilesRoundTripAndKeyIsPrivate) {
  const std::string dir = make_temp_dir("pgmtls-pki-test");
  const auto root = pki::self_signed(ca("root"));
  pki::write_certificates(dir + "/root.crt", {root.cert.get()});
  pki::write_private_key(dir + "/root.key", *root.key);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/root.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto cert = pki::read_certificate(dir + "/root.crt");
  const auto key = pki::read_private_key(dir + "/root.key");
  EXPECT_EQ(X509_cmp(cert.get(), root.cert.get()), 0);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_THAT(pki::private_key_to_pem(*key), ::testing::StartsWith("-----BEGIN PRIVATE KEY-----"));
  std::filesystem::remove_all(dir);
}

TEST(PkiTest, ErrorsCarryOpenSslText) {
  const auto root = pki::self_signed(ca("root"));
  auto spec = client("x");
  spec.san.ip = {"not-an-ip"};
  try {
    pki::issue(spec, root);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("not-an-ip"));
  }
  EXPECT_THROW(pki::read_certificate("/nonexistent/x.crt"), std::runtime_error);
}

}  // namespace
}  // namespace pgmtls::integration
