#include "auth/identity.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "auth/openssl_ptr.h"

namespace pgmtls::auth {
namespace {

// A certificate assembled field by field; only what extract_identity reads matters.
class CertBuilder {
 public:
  CertBuilder() : cert_(X509_new()), subject_(X509_NAME_new()), issuer_(X509_NAME_new()) {
    X509_set_version(cert_.get(), 2);
    X509_gmtime_adj(X509_getm_notBefore(cert_.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert_.get()), 3600);
    set_serial(1);
  }
  ~CertBuilder() {
    X509_NAME_free(subject_);
    X509_NAME_free(issuer_);
  }
  CertBuilder(const CertBuilder&) = delete;
  CertBuilder& operator=(const CertBuilder&) = delete;

  CertBuilder& subject(const char* field, std::string_view value) {
    add(subject_, field, value, MBSTRING_UTF8);
    return *this;
  }
  // Raw bytes stored as the given ASN.1 string type, without any conversion or checks.
  CertBuilder& subject_raw(int nid, int asn1_type, std::string_view value) {
    EXPECT_EQ(X509_NAME_add_entry_by_NID(subject_, nid, asn1_type,
                                         reinterpret_cast<const unsigned char*>(value.data()),
                                         static_cast<int>(value.size()), -1, 0),
              1);
    return *this;
  }
  CertBuilder& issuer(const char* field, std::string_view value) {
    add(issuer_, field, value, MBSTRING_UTF8);
    return *this;
  }
  CertBuilder& set_serial(std::uint64_t serial) {
    EXPECT_EQ(ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert_.get()), serial), 1);
    return *this;
  }
  CertBuilder& set_serial_hex(const char* hex) {
    BIGNUM* bn = nullptr;
    EXPECT_GT(BN_hex2bn(&bn, hex), 0);
    EXPECT_NE(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert_.get())), nullptr);
    BN_free(bn);
    return *this;
  }
  CertBuilder& san(int type, std::string_view value) {
    sans_.emplace_back(type, std::string(value));
    return *this;
  }

  X509Ptr build() {
    // OpenSSL copies names through DER; a name it cannot re-read is refused here.
    EXPECT_EQ(X509_set_subject_name(cert_.get(), subject_), 1);
    EXPECT_EQ(
        X509_set_issuer_name(cert_.get(), X509_NAME_entry_count(issuer_) > 0 ? issuer_ : subject_),
        1);
    if (!sans_.empty()) {
      GENERAL_NAMES* names = sk_GENERAL_NAME_new_null();
      for (const auto& [type, value] : sans_) {
        ASN1_IA5STRING* str = ASN1_IA5STRING_new();
        ASN1_STRING_set(str, value.data(), static_cast<int>(value.size()));
        GENERAL_NAME* gn = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(gn, type, str);
        sk_GENERAL_NAME_push(names, gn);
      }
      EXPECT_EQ(X509_add1_ext_i2d(cert_.get(), NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT),
                1);
      GENERAL_NAMES_free(names);
    }
    EvpPkeyPtr key(EVP_EC_gen("P-256"));
    EXPECT_NE(key, nullptr);
    X509_set_pubkey(cert_.get(), key.get());
    EXPECT_GT(X509_sign(cert_.get(), key.get(), EVP_sha256()), 0);
    return std::move(cert_);
  }

 private:
  static void add(X509_NAME* name, const char* field, std::string_view value, int type) {
    EXPECT_EQ(X509_NAME_add_entry_by_txt(name, field, type,
                                         reinterpret_cast<const unsigned char*>(value.data()),
                                         static_cast<int>(value.size()), -1, 0),
              1)
        << field;
  }

  X509Ptr cert_;
  X509_NAME* subject_;
  X509_NAME* issuer_;
  std::vector<std::pair<int, std::string>> sans_;
};

std::string openssl_serial_text(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  i2a_ASN1_INTEGER(bio.get(), X509_get0_serialNumber(cert));
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

TEST(Identity, CommonNameAndDistinguishedNames) {
  auto cert = CertBuilder()
                  .subject("O", "Example")
                  .subject("CN", "alice")
                  .issuer("C", "US")
                  .issuer("O", "Example")
                  .issuer("CN", "Example Client CA")
                  .build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->cn, "alice");
  EXPECT_EQ(id->subject_dn, "CN=alice,O=Example");
  EXPECT_EQ(id->issuer_dn, "CN=Example Client CA,O=Example,C=US");
  EXPECT_TRUE(id->san_dns.empty());
  EXPECT_TRUE(id->san_email.empty());
  EXPECT_TRUE(id->san_uri.empty());
}

// PostgreSQL's clientname=DN string escapes bytes above 0x7f (the differential test against a real
// PostgreSQL found this); the CN stays UTF-8.
TEST(Identity, DnEscapingFollowsPostgresRfc2253) {
  auto cert = CertBuilder().subject("O", "Acme, Inc.").subject("CN", "Jos\xc3\xa9").build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->cn, "Jos\xc3\xa9");
  EXPECT_EQ(id->subject_dn, "CN=Jos\\C3\\A9,O=Acme\\, Inc.");
}

TEST(Identity, FirstCommonNameIsUsed) {
  auto cert = CertBuilder().subject("CN", "first").subject("CN", "second").build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->cn, "first");
}

TEST(Identity, NoCommonNameGivesAnEmptyCn) {
  auto cert = CertBuilder().subject("O", "Example").build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->cn, "");
  EXPECT_EQ(id->subject_dn, "O=Example");
}

TEST(Identity, SerialIsUpperCaseHex) {
  auto cert = CertBuilder().subject("CN", "a").set_serial(0x0123456789abcdefULL).build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->serial, "0123456789ABCDEF");
}

TEST(Identity, SerialMatchesOpenSslsOwnPrinting) {
  for (const char* hex :
       {"1", "7F", "80", "1001", "ABCDEF", "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "3A5B9C0D1E2F30415263748596A7B8C9DAEBFC0D"}) {
    auto cert = CertBuilder().subject("CN", "a").set_serial_hex(hex).build();
    std::string error;
    auto id = extract_identity(cert.get(), error);
    ASSERT_TRUE(id) << error;
    EXPECT_EQ(id->serial, openssl_serial_text(cert.get())) << hex;
  }
}

// RFC 5280 forbids it, but OpenSSL accepts serial 0 and `openssl x509 -serial` prints "00".
TEST(Identity, SerialZeroMatchesOpenSslsOwnPrinting) {
  auto cert = CertBuilder().subject("CN", "a").set_serial(0).build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(openssl_serial_text(cert.get()), "00");
  EXPECT_EQ(id->serial, "00");
}

TEST(Identity, Sha256FingerprintEqualsX509Digest) {
  auto cert = CertBuilder().subject("CN", "alice").build();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  ASSERT_EQ(X509_digest(cert.get(), EVP_sha256(), md, &md_len), 1);
  ASSERT_EQ(md_len, 32u);
  std::string expected;
  for (unsigned int i = 0; i < md_len; ++i) {
    char buf[3];
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    expected += buf;
  }
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->sha256_fingerprint, expected);
  EXPECT_EQ(id->sha256_fingerprint.size(), 64u);

  // A different certificate has a different fingerprint.
  auto other = CertBuilder().subject("CN", "alice").build();
  auto other_id = extract_identity(other.get(), error);
  ASSERT_TRUE(other_id);
  EXPECT_NE(other_id->sha256_fingerprint, id->sha256_fingerprint);
}

TEST(Identity, SubjectAlternativeNames) {
  auto cert = CertBuilder()
                  .subject("CN", "workload")
                  .san(GEN_DNS, "db-client.example.org")
                  .san(GEN_EMAIL, "alice@example.org")
                  .san(GEN_URI, "spiffe://example.org/ns/prod/sa/x")
                  .san(GEN_DNS, "second.example.org")
                  .build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->san_dns, (std::vector<std::string>{"db-client.example.org", "second.example.org"}));
  EXPECT_EQ(id->san_email, (std::vector<std::string>{"alice@example.org"}));
  EXPECT_EQ(id->san_uri, (std::vector<std::string>{"spiffe://example.org/ns/prod/sa/x"}));
}

TEST(Identity, SanWithEmbeddedNulIsSkipped) {
  auto cert = CertBuilder()
                  .subject("CN", "x")
                  .san(GEN_DNS, std::string_view("good.example.org\0.evil.net", 26))
                  .san(GEN_DNS, "ok.example.org")
                  .san(GEN_URI, std::string_view("spiffe://a\0b", 12))
                  .build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->san_dns, (std::vector<std::string>{"ok.example.org"}));
  EXPECT_TRUE(id->san_uri.empty());
}

TEST(Identity, CommonNameWithEmbeddedNulIsRefused) {
  auto cert =
      CertBuilder()
          .subject_raw(NID_commonName, V_ASN1_UTF8STRING, std::string_view("alice\0admin", 11))
          .build();
  std::string error;
  auto id = extract_identity(cert.get(), error);
  EXPECT_FALSE(id.has_value());
  EXPECT_FALSE(error.empty());
}

TEST(Identity, CommonNameWithEmbeddedNulInAsciiStringIsRefused) {
  auto cert = CertBuilder()
                  .subject_raw(NID_commonName, V_ASN1_IA5STRING, std::string_view("bob\0x", 5))
                  .build();
  std::string error;
  EXPECT_FALSE(extract_identity(cert.get(), error).has_value());
  EXPECT_FALSE(error.empty());
}

TEST(Identity, CorpusServerCertificate) {
  const std::string path = std::string(PGMTLS_TEST_DATA_DIR) + "/config/pki/server.crt";
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  ASSERT_NE(bio, nullptr);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(cert, nullptr);
  std::string error;
  auto id = extract_identity(cert.get(), error);
  ASSERT_TRUE(id) << error;
  EXPECT_EQ(id->cn, "localhost");
  EXPECT_EQ(id->subject_dn, "CN=localhost,O=pgmtls test");
  EXPECT_EQ(id->issuer_dn, "CN=pgmtls test CA,O=pgmtls test");
  EXPECT_EQ(id->serial, "1001");
  EXPECT_EQ(id->san_dns, (std::vector<std::string>{"localhost"}));
  EXPECT_TRUE(id->san_uri.empty());
}

}  // namespace
}  // namespace pgmtls::auth
