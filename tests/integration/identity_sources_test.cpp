// What PostgreSQL cannot do: identities from subjectAltNames and fingerprints, issuer pinning
// between CAs that share one bundle, role_from_certificate, and `pgmtls map-test` explaining
// decisions. One pgmtls with inline YAML rules (keyed by database) in front of one PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <memory>

#include "auth/identity.h"
#include "auth/pki.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
namespace pki = auth::pki;

// Two client CAs in one trusted bundle, and client certificates carrying the identities under
// test. (The server's certificate comes from TestPki as usual.)
struct Certificates {
  std::string dir;
  std::string bundle;  // root A + root B
  std::string root_b_fingerprint;
  std::map<std::string, ClientCertificate> clients;

  static pki::Credential make_root(const std::string& name) {
    pki::CertificateSpec spec;
    spec.common_name = name;
    spec.organization = "pgmtls tests";
    spec.is_ca = true;
    return pki::self_signed(spec);
  }

  explicit Certificates(const std::string& directory) : dir(directory) {
    const pki::Credential root_a = make_root("Clients Root A");
    const pki::Credential root_b = make_root("Partner Root B");
    root_b_fingerprint = auth::sha256_fingerprint(root_b.cert.get());
    bundle = dir + "/bundle.crt";
    pki::write_certificates(bundle, {root_a.cert.get(), root_b.cert.get()});

    auto leaf = [&](const std::string& name, const std::string& cn, pki::SubjectAltNames san,
                    const pki::Credential& issuer) {
      pki::CertificateSpec spec;
      spec.common_name = cn;
      spec.client_auth = true;
      spec.san = std::move(san);
      const pki::Credential cred = pki::issue(spec, issuer);
      ClientCertificate c;
      c.cert_file = dir + "/" + name + ".crt";
      c.key_file = dir + "/" + name + ".key";
      pki::write_certificates(c.cert_file, {cred.cert.get()});
      pki::write_private_key(c.key_file, *cred.key);
      c.serial = pki::serial_of(*cred.cert);
      clients[name] = c;
    };
    leaf("spiffe", "workload-1",
         {.uri = {"spiffe://example.org/ns/dev/sa/other",
                  "spiffe://example.org/ns/prod/sa/reporting"}},
         root_a);
    leaf("dns", "ignored-cn", {.dns = {"foo.other.net", "billing.svc.example.com"}}, root_a);
    leaf("email", "Mail Robot", {.email = {"mailer@example.com"}}, root_a);
    leaf("plain", "alice", {}, root_a);
    leaf("alice-b", "alice", {}, root_b);  // same name, the other CA
    leaf("two-roles", "shared", {}, root_a);
  }
};

class IdentitySourcesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      postgres_ = std::make_unique<PostgresServer>();
      for (const char* role : {"alice", "reporting", "billing", "mailer", "fp_user", "ro", "rw"})
        postgres_->create_login_role(role);
      for (const char* db : {"uri", "dns", "email", "fp", "pin_dn", "pin_fp", "rfc", "rfc2"})
        postgres_->exec(std::string("CREATE DATABASE ") + db);
      pki_ = std::make_unique<TestPki>(0);
      certs_ = std::make_unique<Certificates>(pki_->dir());

      ProxyConfig config = base_proxy_config(*pki_, postgres_->port());
      config.ca_file = certs_->bundle;
      const std::string plain_fp = fingerprint_of(certs_->clients.at("plain").cert_file);
      config.maps_yaml = R"(  spiffe:
    - { identity: "spiffe://example.org/ns/prod/sa/reporting", role: reporting }
  services:
    - { identity: "/^([a-z]+)\\.svc\\.example\\.com$", role: "\\1" }
  mail:
    - { identity: mailer@example.com, role: mailer }
  fingerprints:
    - { identity: ")" + plain_fp +
                         R"(", role: fp_user }
  people:
    - { identity: alice, role: alice }
  shared:
    - { identity: shared, role: ro }
    - { identity: shared, role: rw }
)";
      config.extra_yaml = R"(hba:
  - { database: uri, user: all, identity: san_uri, map: spiffe }
  - { database: dns, user: all, identity: san_dns, map: services }
  - { database: email, user: all, identity: san_email, map: mail }
  - { database: fp, user: all, identity: fingerprint, map: fingerprints }
  - { database: pin_dn, user: all, map: people, issuer: "CN=Clients Root A,O=pgmtls tests" }
  - { database: pin_fp, user: all, map: people, issuer_fingerprint: ")" +
                          certs_->root_b_fingerprint + R"(" }
  - { database: rfc, user: all, map: people, role_from_certificate: true }
  - { database: rfc2, user: all, map: shared, role_from_certificate: true }
)";
      config_path_ = pki_->dir() + "/pgmtls.yaml";
      proxy_ = std::make_unique<PgmtlsProcess>(config_path_, config.to_yaml());
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static std::string fingerprint_of(const std::string& cert_file) {
    auto cert = pki::read_certificate(cert_file);
    return auth::sha256_fingerprint(cert.get());
  }

  static void TearDownTestSuite() {
    proxy_.reset();
    certs_.reset();
    pki_.reset();
    postgres_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_TRUE(proxy_->running()) << "pgmtls died in an earlier test";
    mark_ = proxy_->log_mark();
  }

  void TearDown() override {
    if (!proxy_) return;
    EXPECT_TRUE(proxy_->running()) << "pgmtls died during this test";
    if (HasFailure()) std::cerr << "pgmtls log of this test:\n" << proxy_->log_text(mark_);
  }

  static ConnectResult connect_as(const std::string& client, const std::string& user,
                                  const std::string& dbname) {
    return pg_connect(tls_conninfo(proxy_->port(), pki_->root_ca_file(),
                                   &certs_->clients.at(client), user, dbname));
  }

  // Connects and returns current_user, or fails the test.
  std::string session_user(const std::string& client, const std::string& user,
                           const std::string& dbname) {
    const ConnectResult c = connect_as(client, user, dbname);
    EXPECT_TRUE(c.ok()) << client << " as " << user << " on " << dbname << ": " << c.error;
    if (!c.ok()) return {};
    const QueryResult r = query(c.conn.get(), "SELECT current_user");
    EXPECT_TRUE(r.ok()) << r.error;
    return r.value.value_or("<null>");
  }

  void expect_refused(const std::string& client, const std::string& user, const std::string& dbname,
                      const std::string& reason) {
    const ConnectResult c = connect_as(client, user, dbname);
    ASSERT_FALSE(c.ok()) << client << " connected as " << user << " on " << dbname;
    EXPECT_THAT(c.error, HasSubstr("certificate authentication failed for user \"" + user + "\""));
    EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=" + reason, "user=" + user},
                                     kLogTimeout, mark_))
        << "no log line with reason=" << reason;
  }

  CommandResult map_test(const std::string& client, const std::string& user,
                         const std::string& dbname) {
    return run_command({pgmtls_binary(), "map-test", "--config", config_path_, "--cert",
                        certs_->clients.at(client).cert_file, "--user", user, "--database",
                        dbname});
  }

  static inline std::unique_ptr<PostgresServer> postgres_;
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::unique_ptr<Certificates> certs_;
  static inline std::unique_ptr<PgmtlsProcess> proxy_;
  static inline std::string config_path_;
  static inline std::string setup_error_;
  std::size_t mark_ = 0;
};

TEST_F(IdentitySourcesTest, SpiffeUriSanAdmitsWhenAnyOfSeveralUrisMaps) {
  EXPECT_EQ(session_user("spiffe", "reporting", "uri"), "reporting");
  expect_refused("spiffe", "alice", "uri", "map_denied");
}

TEST_F(IdentitySourcesTest, DnsSanWithRegexAndSubstitution) {
  EXPECT_EQ(session_user("dns", "billing", "dns"), "billing");
  expect_refused("dns", "foo", "dns", "map_denied");
}

TEST_F(IdentitySourcesTest, EmailSan) {
  EXPECT_EQ(session_user("email", "mailer", "email"), "mailer");
}

TEST_F(IdentitySourcesTest, CertificateWithoutTheSourceHasNoIdentity) {
  expect_refused("plain", "reporting", "uri", "no_identity");
}

TEST_F(IdentitySourcesTest, FingerprintIdentifiesOneCertificateNotItsName) {
  EXPECT_EQ(session_user("plain", "fp_user", "fp"), "fp_user");
  // The same CN from the other CA has another fingerprint.
  expect_refused("alice-b", "fp_user", "fp", "map_denied");
}

TEST_F(IdentitySourcesTest, IssuerDnPinsTheCa) {
  EXPECT_EQ(session_user("plain", "alice", "pin_dn"), "alice");
  expect_refused("alice-b", "alice", "pin_dn", "issuer_mismatch");
}

TEST_F(IdentitySourcesTest, IssuerFingerprintPinsTheOtherCa) {
  EXPECT_EQ(session_user("alice-b", "alice", "pin_fp"), "alice");
  expect_refused("plain", "alice", "pin_fp", "issuer_mismatch");
}

TEST_F(IdentitySourcesTest, RoleFromCertificateReplacesAnUnmappedRole) {
  EXPECT_EQ(session_user("plain", "ubuntu", "rfc"), "alice");
  EXPECT_TRUE(proxy_->wait_for_log(
      {"result=ok", "user=ubuntu", "role=alice", "role_from_certificate: requested \\\"ubuntu\\\""},
      kLogTimeout, mark_));
  // The requested role still wins when the map allows it.
  EXPECT_EQ(session_user("plain", "alice", "rfc"), "alice");
}

TEST_F(IdentitySourcesTest, RoleFromCertificateNeedsExactlyOneCandidate) {
  expect_refused("two-roles", "ubuntu", "rfc2", "map_denied");
  EXPECT_EQ(session_user("two-roles", "rw", "rfc2"), "rw");
}

TEST_F(IdentitySourcesTest, MapTestAdmitsWithTheDecidingRuleAndMapLine) {
  const CommandResult r = map_test("spiffe", "reporting", "uri");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("verified   yes"));
  EXPECT_THAT(r.output, HasSubstr("spiffe://example.org/ns/prod/sa/reporting"));
  EXPECT_THAT(r.output, HasSubstr("hostssl uri all all cert identity=san_uri map=spiffe\n"
                                  "    matches: this rule decides"));
  EXPECT_THAT(r.output, HasSubstr("verdict      ADMIT as role \"reporting\""));
}

TEST_F(IdentitySourcesTest, MapTestExplainsARefusal) {
  const CommandResult r = map_test("dns", "admin", "dns");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // Every rule before the deciding one says why it was skipped.
  EXPECT_THAT(r.output, HasSubstr("skipped: database \"dns\" is not in uri"));
  EXPECT_THAT(r.output, HasSubstr("verdict      REFUSE (map_denied)"));
  EXPECT_THAT(r.output,
              HasSubstr("client sees  FATAL 28000 certificate authentication failed for user "
                        "\"admin\""));
  // ... and which lines the identity did match, with the role each would give.
  EXPECT_THAT(r.output, HasSubstr("maps \"billing.svc.example.com\" to role \"billing\""));
}

TEST_F(IdentitySourcesTest, MapTestReportsAnIssuerMismatch) {
  const CommandResult r = map_test("plain", "alice", "pin_fp");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("REFUSE (issuer_mismatch)"));
  EXPECT_THAT(r.output, HasSubstr(certs_->root_b_fingerprint));
}

}  // namespace
}  // namespace pgmtls::integration
