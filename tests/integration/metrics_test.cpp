// The /metrics exposition: real connections, each ending a different way, and the counters,
// histograms and certificate gauges they must move; the whole exposition passes `promtool check
// metrics` (Debian's prometheus package).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json/src.hpp>  // Boost.JSON, header-only: an independent parser for the log lines
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/support/admin_client.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

using ::testing::HasSubstr;

// The value of the sample `name{...}` whose labels include every one of `labels` (each written
// as name="value"); nullopt if there is none.
std::optional<double> sample(const std::string& exposition, const std::string& name,
                             const std::vector<std::string>& labels = {}) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    const std::string series = line.substr(0, space);
    if (series != name && !series.starts_with(name + "{")) continue;
    bool all = true;
    for (const auto& label : labels)
      all = all && series.find(label) != std::string::npos;
    if (all) return std::stod(line.substr(space + 1));
  }
  return std::nullopt;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    postgres_ = std::make_unique<PostgresServer>();
    postgres_->exec("CREATE ROLE alice LOGIN; CREATE ROLE carol LOGIN;");
    pki_ = std::make_unique<TestPki>(0);
    ProxyConfig c = base_proxy_config(*pki_, postgres_->port());
    c.crl_file = pki_->all_crls_file();
    c.extra_yaml = "admin:\n  listen: 127.0.0.1:0\n";
    proxy_ = std::make_unique<PgmtlsProcess>(pki_->dir() + "/metrics.yaml", c.to_yaml());
    admin_ = admin_address(*proxy_);
    ASSERT_FALSE(admin_.empty());
  }
  void TearDown() override {
    if (HasFailure() && proxy_) std::cerr << "pgmtls log:\n" << proxy_->log_text();
    proxy_.reset();
  }

  ConnectResult connect(const std::string& client, const std::string& user) {
    return pg_connect(tls_conninfo(proxy_->port(), pki_->root_ca_file(),
                                   client.empty() ? nullptr : &pki_->client(client), user));
  }
  std::string scrape() {
    const auto r = admin_request(admin_, "GET", "/metrics");
    EXPECT_EQ(r.status, 200) << r.error;
    return r.body;
  }

  std::unique_ptr<PostgresServer> postgres_;
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<PgmtlsProcess> proxy_;
  std::string admin_;
};

TEST_F(MetricsTest, EveryOutcomeIsCountedByResultAndReason) {
  struct Case {
    std::string client, user, result, reason;
  };
  const std::vector<Case> cases = {
      {"alice", "alice", "ok", ""},  // client_closed or backend_closed, whichever saw it first
      {"", "alice", "rejected", "no_cert"},
      {"unknown-ca", "alice", "rejected", "unknown_ca"},
      {"revoked", "alice", "rejected", "revoked"},
      {"expired", "alice", "rejected", "expired"},
      {"not-yet-valid", "alice", "rejected", "not_yet_valid"},
      {"server-auth-only", "alice", "rejected", "bad_purpose"},
      {"alice", "carol", "rejected", "map_denied"},
  };
  for (const auto& c : cases) {
    ConnectResult r = connect(c.client, c.user);
    EXPECT_EQ(r.ok(), c.result == "ok") << c.reason << ": " << r.error;
    if (r.ok()) EXPECT_TRUE(query(r.conn.get(), "SELECT 1").ok());
  }
  {
    RawSocket garbage(proxy_->port());
    garbage.send(be32(3) + be32(80877103));
    garbage.read_until_closed(5s);
  }
  {
    RawSocket plaintext(proxy_->port());
    plaintext.send(startup_message("alice", "postgres"));
    plaintext.read_until_closed(5s);
  }
  // Every connection has ended (and been counted) once its log line is out.
  ASSERT_TRUE(proxy_->wait_for_log({"reason=ssl_required"}, kLogTimeout));
  for (const char* why : {"protocol_error", "map_denied", "bad_purpose", "not_yet_valid", "expired",
                          "revoked", "unknown_ca", "no_cert"}) {
    ASSERT_TRUE(proxy_->wait_for_log({std::string("reason=") + why}, kLogTimeout)) << why;
  }
  ASSERT_TRUE(proxy_->wait_for_log({"result=ok", "user=alice"}, kLogTimeout));

  const std::string m = scrape();
  for (const auto& c : cases) {
    if (c.reason.empty()) continue;
    EXPECT_EQ(sample(m, "pgmtls_connections_total",
                     {"result=\"" + c.result + "\"", "reason=\"" + c.reason + "\""}),
              1.0)
        << c.reason << "\n"
        << m;
  }
  for (const char* why : {"protocol_error", "ssl_required"}) {
    EXPECT_EQ(sample(m, "pgmtls_connections_total",
                     {"result=\"rejected\"", std::string("reason=\"") + why + "\""}),
              1.0)
        << why;
  }
  EXPECT_EQ(sample(m, "pgmtls_connections_accepted_total"), 10.0);
  EXPECT_EQ(sample(m, "pgmtls_connections_active"), 0.0);
  // One good session: a handshake, a backend start-up and a session observed; bytes both ways.
  EXPECT_EQ(sample(m, "pgmtls_session_duration_seconds_count"), 1.0);
  EXPECT_EQ(sample(m, "pgmtls_backend_startup_duration_seconds_count"), 1.0);
  EXPECT_GE(sample(m, "pgmtls_tls_handshake_duration_seconds_count").value_or(0), 2.0);
  EXPECT_EQ(sample(m, "pgmtls_tls_handshake_duration_seconds_bucket", {"le=\"+Inf\""}),
            sample(m, "pgmtls_tls_handshake_duration_seconds_count"));
  EXPECT_GT(
      sample(m, "pgmtls_relayed_bytes_total", {"direction=\"backend_to_client\""}).value_or(0),
      0.0);
}

TEST_F(MetricsTest, CertificateAndCrlDatesReloadsAndPromtool) {
  ConnectResult live = connect("alice", "alice");
  ASSERT_TRUE(live.ok()) << live.error;
  std::string m = scrape();
  EXPECT_EQ(sample(m, "pgmtls_connections_active"), 1.0);
  EXPECT_EQ(sample(m, "pgmtls_build_info"), 1.0);
  // The test PKI's server certificate is valid for 30 days, its CAs and CRLs for longer / 1 day.
  const double now = static_cast<double>(std::time(nullptr));
  const double server = sample(m, "pgmtls_server_certificate_expiry_timestamp_seconds").value_or(0);
  EXPECT_GT(server, now + 29 * 86400.0);
  EXPECT_LT(server, now + 31 * 86400.0);
  EXPECT_TRUE(sample(m, "pgmtls_ca_certificate_expiry_timestamp_seconds", {"subject=\"CN="}));
  const auto next_update = sample(m, "pgmtls_crl_next_update_timestamp_seconds");
  ASSERT_TRUE(next_update);
  EXPECT_GT(*next_update, now);
  EXPECT_EQ(sample(m, "pgmtls_crl_stale"), 0.0);

  EXPECT_EQ(admin_request(admin_, "POST", "/reload").status, 200);
  write_text_file(pki_->dir() + "/metrics.yaml", "listen: [broken\n");
  EXPECT_EQ(admin_request(admin_, "POST", "/reload").status, 500);
  m = scrape();
  EXPECT_EQ(sample(m, "pgmtls_reloads_total", {"result=\"success\""}), 1.0);
  EXPECT_EQ(sample(m, "pgmtls_reloads_total", {"result=\"failure\""}), 1.0);
  EXPECT_GE(sample(m, "pgmtls_last_reload_success_timestamp_seconds").value_or(0), now - 5);

  const std::string file = pki_->dir() + "/metrics.txt";
  write_text_file(file, m);
  const CommandResult check = run_command({"/bin/sh", "-c", "promtool check metrics < " + file});
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << m;
}

// The reasons that need a particular set-up: a silent client, no matching rule, a backend that is
// down, a backend that refuses pgmtls's password. Each is produced by a real connection.
TEST(MetricsReasonsTest, TimeoutsRulesAndBackendFailuresAreCountedByReason) {
  PostgresOptions options;
  options.data_files["pg_hba.conf"] =
      "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
  PostgresServer postgres(options);
  postgres.exec(
      "SET password_encryption = 'scram-sha-256'; CREATE ROLE alice LOGIN PASSWORD 'right';");
  TestPki pki(0);

  auto scrape_reason = [](PgmtlsProcess& proxy, const std::string& result, const std::string& why) {
    const auto r = admin_request(admin_address(proxy), "GET", "/metrics");
    return sample(r.body, "pgmtls_connections_total",
                  {"result=\"" + result + "\"", "reason=\"" + why + "\""});
  };
  auto start = [&](ProxyConfig c, const std::string& name, const std::string& backend_auth) {
    c.extra_yaml += "admin:\n  listen: 127.0.0.1:0\n";
    std::string yaml = c.to_yaml();
    if (!backend_auth.empty()) yaml.insert(yaml.find("log:\n"), backend_auth);
    return std::make_unique<PgmtlsProcess>(pki.dir() + "/" + name + ".yaml", yaml);
  };
  auto connect = [&](PgmtlsProcess& proxy, const std::string& database = "postgres") {
    return pg_connect(
        tls_conninfo(proxy.port(), pki.root_ca_file(), &pki.client("alice"), "alice", database));
  };

  {
    ProxyConfig c = base_proxy_config(pki, postgres.port());
    c.startup_timeout = "300ms";
    c.extra_yaml = "hba:\n  - { database: postgres, user: all }\n";
    ::setenv("PGMTLS_METRICS_PW", "wrong", 1);
    auto proxy = start(c, "timeout", "    auth: { password_env: PGMTLS_METRICS_PW }\n");
    ::unsetenv("PGMTLS_METRICS_PW");
    RawSocket silent(proxy->port());
    silent.send(ssl_request());  // then nothing: the handshake never comes
    ASSERT_TRUE(proxy->wait_for_log({"reason=handshake_timeout"}, kLogTimeout));
    EXPECT_FALSE(connect(*proxy, "other").ok());
    ASSERT_TRUE(proxy->wait_for_log({"reason=no_hba_entry"}, kLogTimeout));
    EXPECT_FALSE(connect(*proxy).ok());  // PGMTLS_METRICS_PW is wrong
    ASSERT_TRUE(proxy->wait_for_log({"reason=backend_auth_failed"}, kLogTimeout));
    EXPECT_EQ(scrape_reason(*proxy, "rejected", "handshake_timeout"), 1.0);
    EXPECT_EQ(scrape_reason(*proxy, "rejected", "no_hba_entry"), 1.0);
    EXPECT_EQ(scrape_reason(*proxy, "error", "backend_auth_failed"), 1.0);
  }
  {
    // limits: the second session of one certificate is refused with 53300.
    ProxyConfig c = base_proxy_config(pki, postgres.port());
    c.extra_yaml = "limits:\n  per_identity: 1\n";
    ::setenv("PGMTLS_METRICS_PW", "right", 1);
    auto proxy = start(c, "limit", "    auth: { password_env: PGMTLS_METRICS_PW }\n");
    ::unsetenv("PGMTLS_METRICS_PW");
    ConnectResult first = connect(*proxy);
    ASSERT_TRUE(first.ok()) << first.error;
    EXPECT_THAT(connect(*proxy).error, HasSubstr("53300"));
    ASSERT_TRUE(proxy->wait_for_log({"reason=too_many_connections"}, kLogTimeout));
    EXPECT_EQ(scrape_reason(*proxy, "rejected", "too_many_connections"), 1.0);
  }
  {
    // A port that was just bound and is closed now: nothing listens there.
    std::uint16_t closed = 0;
    {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof addr;
      ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
      closed = ntohs(addr.sin_port);
      ::close(fd);
    }
    ProxyConfig c = base_proxy_config(pki, closed);
    auto proxy = start(c, "down", "");
    EXPECT_FALSE(connect(*proxy).ok());
    ASSERT_TRUE(proxy->wait_for_log({"reason=backend_unavailable"}, kLogTimeout));
    EXPECT_EQ(scrape_reason(*proxy, "error", "backend_unavailable"), 1.0);
  }
}

// ---- deploy/: alert rules and the Grafana dashboard

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Every pgmtls_* metric family a text mentions (histogram series named by their family).
std::set<std::string> metric_names(const std::string& text) {
  std::set<std::string> names;
  static const std::regex name(R"(pgmtls_[a-z_]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator();
       ++it) {
    std::string n = it->str();
    for (const char* suffix : {"_bucket", "_count", "_sum"}) {
      if (n.ends_with(suffix) && n.find("duration_seconds") != std::string::npos)
        n.resize(n.size() - std::string(suffix).size());
    }
    names.insert(n);
  }
  return names;
}

TEST_F(MetricsTest, AlertRulesAndDashboardUseOnlyMetricsThatExist) {
  const std::string rules = std::string(PGMTLS_SOURCE_DIR) + "/deploy/prometheus/pgmtls-alerts.yml";
  const CommandResult check = run_command({"/usr/bin/promtool", "check", "rules", rules});
  EXPECT_EQ(check.exit_code, 0) << check.output;

  const std::string dashboard =
      read_file(std::string(PGMTLS_SOURCE_DIR) + "/deploy/grafana/pgmtls-dashboard.json");
  boost::system::error_code ec;
  const auto parsed = boost::json::parse(dashboard, ec);
  ASSERT_FALSE(ec) << "the dashboard is not JSON: " << ec.message();
  EXPECT_FALSE(parsed.as_object().at("panels").as_array().empty());

  const std::set<std::string> exposed = metric_names(scrape());
  std::set<std::string> used = metric_names(read_file(rules));
  used.merge(metric_names(dashboard));
  EXPECT_GE(used.size(), 10u);
  for (const auto& n : used)
    EXPECT_TRUE(exposed.contains(n)) << n << " is not exposed by /metrics";
}

// ---- structured logs

TEST(JsonLogTest, EveryLineParsesAndTheAuditRecordsCarryEveryFieldButNoSecret) {
  constexpr const char* kPassword = "S3cret-pw-9f8e7d";
  PostgresOptions options;
  options.data_files["pg_hba.conf"] =
      "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n";
  PostgresServer postgres(options);
  postgres.exec(std::string("SET password_encryption = 'scram-sha-256'; CREATE ROLE alice LOGIN "
                            "PASSWORD '") +
                kPassword + "';");
  TestPki pki(0);
  auth::pki::CertificateSpec spec;
  spec.common_name = "alice";
  spec.client_auth = true;
  spec.san.dns = {"app.example.com"};
  spec.san.email = {"alice@example.com"};
  spec.san.uri = {"spiffe://example.org/ns/prod/sa/alice"};
  const ClientCertificate& cert = pki.add_client("alice-sans", spec);

  ProxyConfig c = base_proxy_config(pki, postgres.port());
  c.log_format = "json";
  std::string yaml = c.to_yaml();
  yaml.insert(yaml.find("log:\n"), "    auth: { password_env: PGMTLS_TEST_PW }\n");
  ::setenv("PGMTLS_TEST_PW", kPassword, 1);
  PgmtlsProcess proxy(pki.dir() + "/json.yaml", yaml);
  ::unsetenv("PGMTLS_TEST_PW");

  {
    ConnectResult ok = pg_connect(tls_conninfo(proxy.port(), pki.root_ca_file(), &cert, "alice"));
    ASSERT_TRUE(ok.ok()) << ok.error;
    EXPECT_TRUE(query(ok.conn.get(), "SELECT 1").ok());
  }
  EXPECT_FALSE(
      pg_connect(tls_conninfo(proxy.port(), pki.root_ca_file(), &pki.client("unknown-ca"), "alice"))
          .ok());
  ASSERT_TRUE(proxy.wait_for_log({"\"event\":\"connection\"", "\"result\":\"ok\""}, kLogTimeout));
  ASSERT_TRUE(proxy.wait_for_log({"\"reason\":\"unknown_ca\""}, kLogTimeout));

  std::optional<boost::json::object> start, end;
  for (const std::string& line : proxy.log_lines()) {
    EXPECT_EQ(line.find(kPassword), std::string::npos) << line;
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    ASSERT_TRUE(v.is_object()) << line;
    const auto& o = v.as_object();
    EXPECT_TRUE(o.contains("time") && o.contains("level")) << line;
    EXPECT_TRUE(o.contains("message") || o.contains("event")) << line;
    if (o.contains("event") && o.at("event") == "session_start") start = o;
    if (o.contains("event") && o.at("event") == "connection" && o.at("result") == "ok") end = o;
  }
  ASSERT_TRUE(start && end);
  for (const auto* record : {&*start, &*end}) {
    auto str = [record](const char* key) -> std::string {
      const auto* v = record->if_contains(key);
      return v != nullptr && v->is_string() ? std::string(v->as_string()) : "<missing>";
    };
    EXPECT_EQ(str("subject"), "CN=alice");
    EXPECT_EQ(std::stoull(str("serial"), nullptr, 16), cert.serial);
    EXPECT_EQ(str("issuer").substr(0, 3), "CN=");
    EXPECT_EQ(str("fingerprint").size(), 64u);
    EXPECT_EQ(str("sans"),
              "dns:app.example.com,email:alice@example.com,uri:spiffe://example.org/ns/prod/sa/"
              "alice");
    EXPECT_EQ(str("user"), "alice");
    EXPECT_EQ(str("role"), "alice");
    EXPECT_EQ(str("database"), "postgres");
    EXPECT_EQ(str("backend"), "127.0.0.1:" + std::to_string(postgres.port()));
    EXPECT_EQ(str("backend_auth"), "scram-sha-256");
    EXPECT_EQ(str("peer").substr(0, 10), "127.0.0.1:");
  }
  EXPECT_TRUE(end->at("duration_ms").is_int64());
  EXPECT_GT(end->at("bytes_in").as_int64(), 0);
  EXPECT_GT(end->at("bytes_out").as_int64(), 0);
  EXPECT_EQ(start->at("id"), end->at("id"));
}

}  // namespace
}  // namespace pgmtls::integration
