// Real client drivers through pgmtls, each with sslmode=verify-full and a client certificate:
// a query, a prepared statement, COPY in and out, and a cancel. libpq itself is exercised by every
// other suite; this one runs psql and the drivers applications use, from the Debian packages that
// deploy/install-deps.sh installs: psycopg2 (python3-psycopg2) and pgJDBC (libpostgresql-jdbc-java,
// run as a single-file Java program, which needs the JDK's compiler), and node-postgres (the npm
// packages pinned in clients/node/package-lock.json).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;

class ClientsTest : public ProxySuite<ClientsTest> {
 protected:
  static void SetUpTestSuite() { set_up_suite("CREATE ROLE alice LOGIN;"); }

  static std::string client_script(const std::string& name) {
    return std::string(PGMTLS_SOURCE_DIR) + "/tests/integration/clients/" + name;
  }
  // Each client script prints a line per step it completed; the cancel must have gone through
  // pgmtls to the session's backend.
  void expect_every_step(const CommandResult& r) const {
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("query ok user=alice"));
    EXPECT_THAT(r.output, HasSubstr("prepared ok"));
    EXPECT_THAT(r.output, HasSubstr("copy ok rows=1000"));
    EXPECT_THAT(r.output, HasSubstr("cancel ok"));
    EXPECT_TRUE(proxy_->wait_for_log({"result=ok", "reason=cancel_forwarded"}, kLogTimeout));
  }
  std::string conninfo() const {
    return tls_conninfo(proxy_->port(), pki_->root_ca_file(), &pki_->client("alice"), "alice",
                        "postgres");
  }
};

TEST_F(ClientsTest, PsqlQueriesPreparesCopiesAndCancels) {
  launch(config().to_yaml());
  const CommandResult r = run_command({"/bin/bash", client_script("psql_client.sh"), conninfo()},
                                      std::chrono::seconds(90));
  expect_every_step(r);
}

TEST_F(ClientsTest, Psycopg2QueriesPreparesCopiesAndCancels) {
  launch(config().to_yaml());
  // Debian's interpreter, where python3-psycopg2 lives (not whatever python3 is first on PATH).
  const CommandResult r =
      run_command({"/usr/bin/python3", client_script("psycopg2_client.py"), conninfo()},
                  std::chrono::seconds(60));
  expect_every_step(r);
}

TEST_F(ClientsTest, PgJdbcQueriesPreparesCopiesAndCancels) {
  launch(config().to_yaml());
  // pgJDBC reads the client key as PKCS#8 DER, not PEM.
  const ClientCertificate& alice = pki_->client("alice");
  const std::string der_key = pki_->dir() + "/alice.pk8";
  const CommandResult convert =
      run_command({"/usr/bin/openssl", "pkcs8", "-topk8", "-nocrypt", "-in", alice.key_file,
                   "-outform", "DER", "-out", der_key});
  ASSERT_EQ(convert.exit_code, 0) << convert.output;
  const std::string url =
      "jdbc:postgresql://localhost:" + std::to_string(proxy_->port()) +
      "/postgres?user=alice&sslmode=verify-full&sslrootcert=" + pki_->root_ca_file() +
      "&sslcert=" + alice.cert_file + "&sslkey=" + der_key + "&connectTimeout=10";
  const CommandResult r = run_command({"/usr/bin/java", "-cp", "/usr/share/java/postgresql.jar",
                                       client_script("JdbcClient.java"), url},
                                      std::chrono::seconds(90));
  expect_every_step(r);
}

TEST_F(ClientsTest, NodePostgresQueriesPreparesCopiesAndCancels) {
  launch(config().to_yaml());
  const ClientCertificate& alice = pki_->client("alice");
  const CommandResult r = run_command(
      {"/usr/bin/env", "node", client_script("node/client.js"), std::to_string(proxy_->port()),
       pki_->root_ca_file(), alice.cert_file, alice.key_file},
      std::chrono::seconds(60));
  expect_every_step(r);
}

}  // namespace
}  // namespace pgmtls::integration
