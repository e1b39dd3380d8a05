// `pgmtls pki`: every subcommand run as a user would, its files checked by the openssl CLI and by
// a real PostgreSQL doing its own `cert` authentication (and CRL checking).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "auth/ca_database.h"
#include "auth/pki.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/process.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int file_mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

class PkiCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("pgmtls-pki-cmd"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  CommandResult pki(std::vector<std::string> args) {
    args.insert(args.begin(), {pgmtls_binary(), "pki"});
    return run_command(args);
  }
  // Runs `pgmtls pki ARGS` and expects success.
  std::string ok(std::vector<std::string> args) {
    const CommandResult r = pki(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // A CA in DIR/ca with a server certificate for localhost and 127.0.0.1 and a client "app_user".
  void make_ca() {
    ok({"init-ca", "--ca", path("ca"), "--cn", "Test CA"});
    ok({"issue-server", "--ca", path("ca"), "--cn", "localhost", "--ip", "127.0.0.1", "--out",
        path("server")});
    ok({"issue-client", "--ca", path("ca"), "--cn", "app_user", "--email", "app@example.com",
        "--uri", "spiffe://example.org/ns/prod/sa/app", "--out", path("client")});
  }

  CommandResult openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    return run_command(args);
  }

  std::string dir_;
};

TEST_F(PkiCommandTest, IssuedCertificatesVerifyWithOpenssl) {
  make_ca();
  EXPECT_EQ(file_mode(path("ca/ca.key")), 0600);
  EXPECT_EQ(file_mode(path("server.key")), 0600);
  EXPECT_EQ(file_mode(path("client.key")), 0600);
  EXPECT_EQ(file_mode(path("ca")), 0700);

  auto r = openssl(
      {"verify", "-CAfile", path("ca/ca.crt"), "-purpose", "sslclient", path("client.crt")});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = openssl({"verify", "-CAfile", path("ca/ca.crt"), "-purpose", "sslserver", "-verify_hostname",
               "localhost", "-verify_ip", "127.0.0.1", path("server.crt")});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Purposes are not interchangeable.
  r = openssl(
      {"verify", "-CAfile", path("ca/ca.crt"), "-purpose", "sslserver", path("client.crt")});
  EXPECT_NE(r.exit_code, 0) << r.output;
  // The empty CRL init-ca wrote verifies too.
  r = openssl({"verify", "-CAfile", path("ca/ca.crt"), "-CRLfile", path("ca/crl.pem"), "-crl_check",
               path("client.crt")});
  EXPECT_EQ(r.exit_code, 0) << r.output;

  r = openssl({"x509", "-in", path("client.crt"), "-noout", "-ext", "subjectAltName"});
  EXPECT_THAT(r.output, HasSubstr("email:app@example.com"));
  EXPECT_THAT(r.output, HasSubstr("URI:spiffe://example.org/ns/prod/sa/app"));
  r = openssl({"x509", "-in", path("server.crt"), "-noout", "-ext", "subjectAltName"});
  EXPECT_THAT(r.output, HasSubstr("DNS:localhost"));  // the CN, added as a SAN
  EXPECT_THAT(r.output, HasSubstr("IP Address:127.0.0.1"));
}

TEST_F(PkiCommandTest, ClientKeyAlsoAsPkcs8DerAndPkcs12) {
  ok({"init-ca", "--ca", path("ca")});
  write_text_file(path("pw"), "correct horse\n", 0600);
  const std::string out =
      ok({"issue-client", "--ca", path("ca"), "--cn", "jdbc_app", "--key", "rsa2048", "--out",
          path("jdbc"), "--pkcs12-password-file", path("pw")});
  EXPECT_THAT(out, HasSubstr("jdbc.pk8"));
  EXPECT_EQ(file_mode(path("jdbc.pk8")), 0600);
  EXPECT_EQ(file_mode(path("jdbc.p12")), 0600);
  // The DER key is the PEM key.
  auto der = openssl({"pkey", "-inform", "DER", "-in", path("jdbc.pk8"), "-pubout"});
  auto pem = openssl({"pkey", "-in", path("jdbc.key"), "-pubout"});
  ASSERT_EQ(der.exit_code, 0) << der.output;
  EXPECT_EQ(der.output, pem.output);
  EXPECT_THAT(der.output, HasSubstr("BEGIN PUBLIC KEY"));
  // The PKCS#12 bundle opens with the password (the first line of the file), holds the key,
  // the certificate and the CA, and refuses a wrong password.
  auto p12 =
      openssl({"pkcs12", "-in", path("jdbc.p12"), "-passin", "pass:correct horse", "-nodes"});
  ASSERT_EQ(p12.exit_code, 0) << p12.output;
  EXPECT_THAT(p12.output, HasSubstr("subject=CN = jdbc_app"));
  EXPECT_THAT(p12.output, HasSubstr("subject=CN = pgmtls CA"));
  EXPECT_THAT(p12.output, HasSubstr("BEGIN PRIVATE KEY"));
  p12 = openssl({"pkcs12", "-in", path("jdbc.p12"), "-passin", "pass:wrong", "-nodes"});
  EXPECT_NE(p12.exit_code, 0);
}

TEST_F(PkiCommandTest, PostgresCertAuthAcceptsIssuedCertificateUntilRevoked) {
  make_ca();
  PostgresOptions options;
  options.settings = {"ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key",
                      "ssl_ca_file=ca.crt", "ssl_crl_file=crl.pem"};
  options.data_files = {{"server.crt", read_file(path("server.crt"))},
                        {"server.key", read_file(path("server.key"))},
                        {"ca.crt", read_file(path("ca/ca.crt"))},
                        {"crl.pem", read_file(path("ca/crl.pem"))},
                        {"pg_hba.conf",
                         "local all all trust\n"
                         "hostssl all all 127.0.0.1/32 cert\n"}};
  auto postgres = std::make_unique<PostgresServer>(options);
  postgres->create_login_role("app_user");

  const ClientCertificate client{path("client.crt"), path("client.key"), 0};
  {
    auto c = pg_connect(tls_conninfo(postgres->port(), path("ca/ca.crt"), &client, "app_user"));
    ASSERT_TRUE(c.ok()) << c.error;
    EXPECT_EQ(query(c.conn.get(), "SELECT current_user").value, "app_user");
  }

  const std::string out =
      ok({"revoke", "--ca", path("ca"), "--cert", path("client.crt"), "--reason", "superseded"});
  EXPECT_THAT(out, HasSubstr("1 revoked"));
  auto r = openssl({"verify", "-CAfile", path("ca/ca.crt"), "-CRLfile", path("ca/crl.pem"),
                    "-crl_check", path("client.crt")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("certificate revoked"));

  // PostgreSQL reads its CRL again on reload.
  write_text_file(postgres->data_dir() + "/crl.pem", read_file(path("ca/crl.pem")), 0600);
  postgres->exec("SELECT pg_reload_conf()");
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    auto c = pg_connect(tls_conninfo(postgres->port(), path("ca/ca.crt"), &client, "app_user"));
    refused = !c.ok();
    if (refused)
      EXPECT_THAT(c.error, HasSubstr("revoked"));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // reload is asynchronous
  }
  EXPECT_TRUE(refused);
}

TEST_F(PkiCommandTest, CaDatabaseRecordsIssuesRevocationsAndCrlNumbers) {
  make_ca();
  auto db = auth::pki::CaDirectory::open(path("ca")).database();
  ASSERT_EQ(db.records.size(), 2u);
  EXPECT_EQ(db.records[0].subject, "CN=localhost");
  EXPECT_EQ(db.records[1].subject, "CN=app_user");
  EXPECT_EQ(db.crl_number, 1u);
  const auto serial = auth::pki::serial_of(*auth::pki::read_certificate(path("client.crt")));
  EXPECT_EQ(db.records[1].serial, serial);

  char hex[17];
  std::snprintf(hex, sizeof hex, "%llX", static_cast<unsigned long long>(serial));
  ok({"revoke", "--ca", path("ca"), "--serial", hex, "--reason", "keyCompromise"});
  ok({"crl", "--ca", path("ca"), "--crl-days", "2"});
  db = auth::pki::CaDirectory::open(path("ca")).database();
  EXPECT_EQ(db.crl_number, 3u);
  ASSERT_TRUE(db.records[1].revoked_at.has_value());
  EXPECT_EQ(db.records[1].reason, CRL_REASON_KEY_COMPROMISE);
  EXPECT_FALSE(db.records[0].revoked_at.has_value());

  const auto inspect = ok({"inspect", path("ca/crl.pem")});
  EXPECT_THAT(inspect, HasSubstr("crl number   3"));
  // Serials print in whole bytes, as `openssl x509 -serial` does: 0A2B..., not A2B...
  const std::string printed = (std::strlen(hex) % 2 ? "0" : "") + std::string(hex);
  EXPECT_THAT(inspect, HasSubstr("revoked      1: " + printed));
  const auto text = openssl({"crl", "-in", path("ca/crl.pem"), "-noout", "-text"});
  EXPECT_THAT(text.output, HasSubstr("Key Compromise"));
  EXPECT_THAT(text.output, HasSubstr("X509v3 CRL Number: \n                3"));

  // Unknown serials and bad reasons are refused, and change nothing.
  auto r = pki({"revoke", "--ca", path("ca"), "--serial", "ABCDEF"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("was not issued by the CA"));
  r = pki({"revoke", "--ca", path("ca"), "--serial", hex, "--reason", "tired"});
  EXPECT_EQ(r.exit_code, 2);
  r = pki({"revoke", "--ca", path("ca"), "--serial", hex, "--reason", "removeFromCRL"});
  EXPECT_EQ(r.exit_code, 2);  // delta CRLs only
  // Revoking again keeps, and reports, the first reason.
  r = pki({"revoke", "--ca", path("ca"), "--serial", hex, "--reason", "superseded"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("(keyCompromise)"));
  EXPECT_EQ(auth::pki::CaDirectory::open(path("ca")).database().crl_number, 4u);
}

TEST_F(PkiCommandTest, ConcurrentIssuesAreAllRecorded) {
  ok({"init-ca", "--ca", path("ca")});
  std::vector<std::thread> threads;
  std::vector<int> codes(8, -1);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      codes[i] = pki({"issue-client", "--ca", path("ca"), "--cn", "user" + std::to_string(i),
                      "--out", path("user" + std::to_string(i))})
                     .exit_code;
    });
  }
  for (auto& t : threads)
    t.join();
  for (int code : codes)
    EXPECT_EQ(code, 0);
  const auto db = auth::pki::CaDirectory::open(path("ca")).database();
  EXPECT_EQ(db.records.size(), 8u);
}

TEST_F(PkiCommandTest, InspectPrintsWhatOpensslSees) {
  make_ca();
  const std::string out = ok({"inspect", path("client.crt")});
  EXPECT_THAT(out, HasSubstr("subject      CN=app_user"));
  EXPECT_THAT(out, HasSubstr("issuer       CN=Test CA"));
  EXPECT_THAT(out, HasSubstr("san          email:app@example.com, URI:spiffe://"));
  EXPECT_THAT(out, HasSubstr("ext usage    clientAuth"));
  EXPECT_THAT(out, HasSubstr("(365 days left)"));
  // Fingerprint and serial as openssl prints them (upper-case, colons), normalised.
  auto fp =
      openssl({"x509", "-in", path("client.crt"), "-noout", "-fingerprint", "-sha256", "-serial"});
  std::smatch m;
  const std::string fp_out = fp.output;
  ASSERT_TRUE(std::regex_search(fp_out, m, std::regex("Fingerprint=([0-9A-F:]+)")));
  std::string expected = m[1];
  std::erase(expected, ':');
  std::transform(expected.begin(), expected.end(), expected.begin(), ::tolower);
  EXPECT_THAT(out, HasSubstr("sha256       " + expected));
  ASSERT_TRUE(std::regex_search(fp_out, m, std::regex("serial=([0-9A-F]+)")));
  EXPECT_THAT(out, HasSubstr("serial       " + m[1].str()));

  const std::string json = ok({"inspect", "--json", path("server.crt"), path("ca/crl.pem")});
  EXPECT_THAT(json, HasSubstr("\"sha256\":\""));
  EXPECT_THAT(json, HasSubstr("\"san\":[\"DNS:localhost\",\"IP:127.0.0.1\"]"));
  EXPECT_THAT(json, HasSubstr("\"type\":\"crl\""));
  // A DER certificate reads too; a key file is not a certificate.
  openssl({"x509", "-in", path("client.crt"), "-outform", "DER", "-out", path("client.der")});
  EXPECT_THAT(ok({"inspect", path("client.der")}), HasSubstr("subject      CN=app_user"));
  auto r = pki({"inspect", path("client.key")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("no certificate or CRL"));
  // A missing file is reported; the others are still shown.
  r = pki({"inspect", path("missing.crt"), path("server.crt")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("missing.crt"));
  EXPECT_THAT(r.output, HasSubstr("subject      CN=localhost"));
}

TEST_F(PkiCommandTest, ExpiryExitCodesFollowTheWorstFile) {
  make_ca();
  ::mkdir(path("certs").c_str(), 0755);
  std::filesystem::copy(path("server.crt"), path("certs/server.crt"));
  std::filesystem::copy(path("client.crt"), path("certs/client.crt"));
  write_text_file(path("certs/README"), "not a certificate\n");

  // A fresh CA directory (30-day CRL) passes with the defaults, though its key is skipped
  // when unreadable and its files that are no certificate are ignored.
  auto r = pki({"expiry", path("ca")});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("CRL of CN=Test CA"));
  r = pki({"expiry", "--crl-warn-days", "31", path("ca")});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = pki({"expiry", "--warn-days", "30", path("certs")});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("certs/client.crt  CN=app_user"));
  EXPECT_THAT(r.output, Not(HasSubstr("README")));
  // 365 days left is within a 400-day warning.
  r = pki({"expiry", "--warn-days", "400", path("certs/client.crt")});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("warning"));

  // An expired certificate (made with the library: the command refuses past validity) and a
  // stale CRL are critical.
  auto ca = auth::pki::CaDirectory::open(path("ca"));
  auth::pki::CertificateSpec spec;
  spec.common_name = "old";
  spec.client_auth = true;
  spec.not_before = -std::chrono::days(10);
  spec.not_after = -std::chrono::days(3);
  const auto old = auth::pki::issue(spec, ca.ca());
  auth::pki::write_certificates(path("certs/old.crt"), {old.cert.get()});
  r = pki({"expiry", "--json", path("certs")});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"subject\":\"CN=old\""));
  EXPECT_THAT(r.output, HasSubstr("\"days_left\":-3,\"status\":\"expired\""));

  auth::pki::CrlSpec stale;
  stale.last_update = -std::chrono::days(9);
  stale.next_update = -std::chrono::days(2);
  auth::pki::write_crl(path("stale.crl"), *auth::pki::make_crl(stale, ca.ca()));
  r = pki({"expiry", path("stale.crl")});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("stale"));

  r = pki({"expiry", path("missing")});
  EXPECT_EQ(r.exit_code, 3);
  r = pki({"expiry", "--warn-days", "soon", path("certs")});
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(PkiCommandTest, MistakesGetClearErrors) {
  ok({"init-ca", "--ca", path("ca"), "--days", "30"});
  auto r = pki({"init-ca", "--ca", path("ca")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("refusing to replace a CA"));
  r = pki({"issue-client", "--ca", path("ca"), "--cn", "x", "--out", path("x")});
  EXPECT_EQ(r.exit_code, 1);  // 365 days > the CA's 30
  EXPECT_THAT(r.output, HasSubstr("would outlive its CA"));
  r = pki({"issue-client", "--ca", path("ca"), "--cn", "x", "--days", "7", "--uri",
           "spiffe://Example.org/x", "--out", path("x")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("not a SPIFFE ID"));
  r = pki({"issue-server", "--ca", path("ca"), "--cn", "db", "--ip", "db.internal", "--out",
           path("x")});
  EXPECT_EQ(r.exit_code, 2);
  r = pki({"issue-server", "--ca", path("ca"), "--cn", "db", "--out", path("x"), "--bogus", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown option --bogus"));
  r = pki(
      {"issue-server", "--ca", path("nothing"), "--cn", "db", "--days", "7", "--out", path("x")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("nothing/ca.crt"));
  r = pki({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  // A database edited by hand into nonsense is named with its line.
  write_text_file(path("ca/ca.db"), "crl_number 1\nV nothex 20300101000000Z - - CN=x\n", 0600);
  r = pki({"issue-client", "--ca", path("ca"), "--cn", "x", "--days", "7", "--out", path("x")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("ca.db: line 2: the serial must be hexadecimal"));
}

}  // namespace
}  // namespace pgmtls::integration
