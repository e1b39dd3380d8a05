// TLS 1.3 session resumption with real PostgreSQL behind pgmtls: a ticket resumes the session
// with the identity it was issued for, the issuer pins still apply, a reload (new CA or CRL)
// ends every ticket so a revocation takes effect for resumed clients too, tickets expire after
// tls.session_ticket_lifetime, and without that setting there are none.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "auth/identity.h"
#include "auth/pki.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"
#include "tests/integration/support/tls_session_client.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;

class ResumptionTest : public ProxySuite<ResumptionTest> {
 protected:
  static void SetUpTestSuite() {
    set_up_suite("CREATE ROLE alice LOGIN; CREATE ROLE carol LOGIN;");
  }

  void start(const ProxyConfig& c) { launch(c.to_yaml()); }
  // Tickets are off by default; these tests turn them on.
  static ProxyConfig ticket_config() {
    ProxyConfig c = config();
    c.tls_yaml = "  session_ticket_lifetime: 1h\n";
    return c;
  }
  TlsSessionClient client(const std::string& name) const {
    return TlsSessionClient(pki_->root_ca_file(), pki_->client(name));
  }
  TlsSessionClient::Attempt whoami(TlsSessionClient& c, const std::string& user = "alice") {
    return c.connect(proxy_->port(), user, "SELECT current_user");
  }
};

TEST_F(ResumptionTest, ATicketResumesTheSessionWithItsIdentity) {
  start(ticket_config());
  TlsSessionClient alice = client("alice");
  const auto full = whoami(alice);
  ASSERT_TRUE(full.ready) << full.error;
  EXPECT_FALSE(full.resumed);
  EXPECT_EQ(full.value, "alice");
  ASSERT_TRUE(alice.has_session()) << "pgmtls sent no session ticket";

  const std::size_t mark = proxy_->log_mark();
  for (int i = 0; i < 3; ++i) {  // each resumption hands out the ticket for the next
    const auto resumed = whoami(alice);
    ASSERT_TRUE(resumed.ready) << resumed.error;
    EXPECT_TRUE(resumed.resumed) << "attempt " << i;
    EXPECT_EQ(resumed.value, "alice");
  }
  EXPECT_TRUE(proxy_->wait_for_log({"session_start", "subject=\"CN=alice\"", "tls_resumed=true"},
                                   kLogTimeout, mark));
}

TEST_F(ResumptionTest, ResumedSessionsKeepTheIssuerPins) {
  ProxyConfig c = ticket_config();
  const std::string root_fp =
      auth::sha256_fingerprint(auth::pki::read_certificate(pki_->root_ca_file()).get());
  const std::string other_fp(64, 'a');
  // carol's chain is leaf, intermediate, root: the root's pin admits her. alice's pin names a CA
  // that is in no chain.
  c.extra_yaml = "hba:\n  - { database: all, user: carol, issuer_fingerprint: \"" + root_fp +
                 "\" }\n  - { database: all, user: alice, issuer_fingerprint: \"" + other_fp +
                 "\" }\n";
  start(c);
  TlsSessionClient carol = client("carol");
  const auto full = whoami(carol, "carol");
  ASSERT_TRUE(full.ready) << full.error;
  const auto resumed = whoami(carol, "carol");
  EXPECT_TRUE(resumed.resumed);
  EXPECT_TRUE(resumed.ready) << resumed.error;
  EXPECT_EQ(resumed.value, "carol");

  TlsSessionClient alice = client("alice");
  const auto refused = whoami(alice);
  EXPECT_FALSE(refused.ready);
  EXPECT_THAT(refused.error, HasSubstr("certificate authentication failed"));
  ASSERT_TRUE(alice.has_session());  // the ticket comes with the handshake, before the policy
  const auto refused_again = whoami(alice);
  EXPECT_TRUE(refused_again.resumed);
  EXPECT_FALSE(refused_again.ready);
  EXPECT_THAT(refused_again.error, HasSubstr("certificate authentication failed"));
}

TEST_F(ResumptionTest, AReloadEndsEveryTicketSoARevocationTakesEffect) {
  ProxyConfig c = ticket_config();
  start(c);  // no CRL yet
  TlsSessionClient revoked = client("revoked");
  TlsSessionClient alice = client("alice");
  ASSERT_TRUE(whoami(revoked).ready);
  ASSERT_TRUE(whoami(alice).ready);
  ASSERT_TRUE(revoked.has_session() && alice.has_session());

  c.crl_file = pki_->root_crl_file();  // lists `revoked`
  const std::size_t mark = proxy_->log_mark();
  reload(c.to_yaml(), "configuration reloaded");

  const auto refused = whoami(revoked);
  EXPECT_FALSE(refused.resumed);
  EXPECT_FALSE(refused.ready);
  EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=revoked"}, kLogTimeout, mark));
  const auto fresh = whoami(alice);
  EXPECT_FALSE(fresh.resumed) << "a ticket from before the reload was accepted";
  EXPECT_TRUE(fresh.ready) << fresh.error;
  const auto again = whoami(alice);  // with the new configuration's ticket
  EXPECT_TRUE(again.resumed);
  EXPECT_TRUE(again.ready) << again.error;
}

TEST_F(ResumptionTest, TicketsExpireAfterTheirLifetime) {
  ProxyConfig c = config();
  c.tls_yaml = "  session_ticket_lifetime: 1s\n";
  start(c);
  TlsSessionClient alice = client("alice");
  ASSERT_TRUE(whoami(alice).ready);
  ASSERT_TRUE(alice.has_session());
  // No event to wait for: the ticket's lifetime has to pass (lifetimes count whole seconds).
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  const auto later = whoami(alice);
  EXPECT_FALSE(later.resumed);
  EXPECT_TRUE(later.ready) << later.error;
}

TEST_F(ResumptionTest, NoTicketsUnlessALifetimeIsConfigured) {
  start(config());
  TlsSessionClient alice = client("alice");
  const auto first = whoami(alice);
  ASSERT_TRUE(first.ready) << first.error;
  EXPECT_FALSE(alice.has_session()) << "pgmtls sent a session ticket";
  const auto second = whoami(alice);
  EXPECT_FALSE(second.resumed);
  EXPECT_TRUE(second.ready) << second.error;
}

}  // namespace
}  // namespace pgmtls::integration
