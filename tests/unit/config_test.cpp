#include "config/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pgmtls::config {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kConfigDir = std::string(PGMTLS_TEST_DATA_DIR) + "/config";

std::string valid(const std::string& name) {
  return kConfigDir + "/valid/" + name;
}
std::string invalid(const std::string& name) {
  return kConfigDir + "/invalid/" + name;
}
std::string pki(const std::string& name) {
  return (fs::path(kConfigDir) / "pki" / name).lexically_normal().string();
}

std::string all_errors(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors)
    out += e.str() + "\n";
  return out;
}

LoadResult load_valid(const std::string& name) {
  auto r = load_config_file(valid(name));
  EXPECT_TRUE(r.ok()) << name << ":\n" << all_errors(r);
  EXPECT_TRUE(r.errors.empty()) << name;
  return r;
}

TEST(ConfigCorpus, EveryValidFileLoads) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(kConfigDir + "/valid")) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    auto r = load_config_file(entry.path().string());
    EXPECT_TRUE(r.ok()) << entry.path() << ":\n" << all_errors(r);
  }
  EXPECT_GE(count, 4);
}

TEST(ConfigCorpus, EveryInvalidFileFails) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(kConfigDir + "/invalid")) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    auto r = load_config_file(entry.path().string());
    EXPECT_FALSE(r.ok()) << entry.path();
    EXPECT_FALSE(r.config.has_value()) << entry.path();
    ASSERT_FALSE(r.errors.empty()) << entry.path();
    // Every diagnostic names the file it is about.
    for (const auto& e : r.errors)
      EXPECT_FALSE(e.where.file.empty()) << entry.path() << ": " << e.str();
  }
  EXPECT_GE(count, 20);
}

TEST(ConfigValid, MinimalUsesDefaults) {
  const auto r = load_valid("minimal.yaml");
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(c.source, valid("minimal.yaml"));
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 6432);
  EXPECT_EQ(c.listen.where.line, 1);
  EXPECT_EQ(c.listen.where.column, 9);
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.startup_timeout, 10s);
  EXPECT_EQ(c.tls.min_protocol_version, "TLSv1.2");
  EXPECT_EQ(c.tls.max_protocol_version, "");
  EXPECT_EQ(c.tls.ciphers, "");
  EXPECT_EQ(c.tls.groups, "X25519:P-256:P-384");
  EXPECT_EQ(c.tls.session_ticket_lifetime.count(), 0);
  EXPECT_EQ(c.tls.verify_depth, 5);
  EXPECT_TRUE(c.tls.crl_file.empty());
  EXPECT_TRUE(c.tls.crl_dir.empty());
  EXPECT_EQ(c.identity.source, pgmtls::config::IdentitySource::cn);
  EXPECT_EQ(c.map, "");
  EXPECT_TRUE(c.ident_lines.empty());
  EXPECT_EQ(c.backend.name, "default");
  EXPECT_EQ(c.backend.host, "db.internal");
  EXPECT_EQ(c.backend.port, 5432);
  EXPECT_EQ(c.backend.connect_timeout, 5s);
  EXPECT_EQ(c.log.level, "info");
}

TEST(ConfigValid, RelativePathsResolveAgainstTheConfigFile) {
  const auto r = load_valid("minimal.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->tls.cert_file.path, pki("server.crt"));
  EXPECT_EQ(r.config->tls.key_file.path, pki("server.key"));
  EXPECT_EQ(r.config->tls.ca_file.path, pki("ca.crt"));
  EXPECT_EQ(r.config->tls.cert_file.where.file, valid("minimal.yaml"));
  EXPECT_EQ(r.config->tls.cert_file.where.line, 3);
  EXPECT_EQ(r.config->tls.cert_file.where.column, 14);
  EXPECT_EQ(r.config->tls.key_file.where.line, 4);
}

TEST(ConfigValid, FullSetsEverything) {
  const auto r = load_valid("full.yaml");
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(c.listen.host, "0.0.0.0");
  EXPECT_EQ(c.listen.port, 7000);
  EXPECT_EQ(c.workers, 4u);
  EXPECT_EQ(c.startup_timeout, 2500ms);
  EXPECT_EQ(c.tls.crl_file.path, pki("ca.crl"));
  EXPECT_EQ(c.tls.min_protocol_version, "TLSv1.3");
  EXPECT_EQ(c.tls.max_protocol_version, "TLSv1.3");
  EXPECT_EQ(c.tls.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384");
  EXPECT_EQ(c.tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(c.tls.groups, "P-256");
  EXPECT_EQ(c.identity.source, pgmtls::config::IdentitySource::cn);
  EXPECT_EQ(c.map, "certmap");
  ASSERT_EQ(c.ident_lines.size(), 3u);
  EXPECT_EQ(c.ident_lines[0].map, "certmap");
  EXPECT_EQ(c.ident_lines[0].identity, "alice");
  EXPECT_EQ(c.ident_lines[0].role, "alice");
  EXPECT_EQ(c.ident_lines[1].identity, "/^(.*)@example\\.com$");
  EXPECT_EQ(c.ident_lines[1].role, "\\1");
  EXPECT_EQ(c.ident_lines[1].where.file, valid("full.yaml"));
  EXPECT_EQ(c.ident_lines[1].where.line, 22);
  EXPECT_EQ(c.ident_lines[2].map, "readonly");
  EXPECT_EQ(c.ident_lines[2].identity, "/^reader-");
  EXPECT_EQ(c.ident_lines[2].role, "ro_user");
  EXPECT_EQ(c.backend.name, "primary");
  EXPECT_EQ(c.backend.host, "10.0.0.5");
  EXPECT_EQ(c.backend.port, 6543);
  EXPECT_EQ(c.backend.connect_timeout, 2s);
  EXPECT_EQ(c.log.level, "debug");
}

TEST(ConfigValid, Ipv6ListenAddress) {
  const auto r = load_valid("ipv6.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->listen.host, "::1");
  EXPECT_EQ(r.config->listen.port, 6432);
  EXPECT_EQ(r.config->workers, 0u);
  EXPECT_EQ(r.config->startup_timeout, 60s);
  EXPECT_EQ(r.config->backend.host, "::1");
}

TEST(ConfigValid, IdentFileAndPortZero) {
  const auto r = load_valid("ident_file.yaml");
  ASSERT_TRUE(r.config);
  const Config& c = *r.config;
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 0);
  EXPECT_EQ(c.map, "readonly");
  EXPECT_EQ(c.log.level, "off");
  ASSERT_EQ(c.ident_lines.size(), 4u);
  const std::string ident =
      (fs::path(kConfigDir) / "ident" / "pg_ident.conf").lexically_normal().string();
  EXPECT_EQ(c.ident_lines[1].where.file, ident);
  EXPECT_EQ(c.ident_lines[1].where.line, 3);
  EXPECT_EQ(c.ident_lines[1].identity, "/^(.*)@example\\.com$");
  EXPECT_EQ(c.ident_lines[3].map, "readonly");
}

// The first diagnostic of each invalid file: exactly, or (when it holds an absolute path or an
// OS/yaml-cpp message) by its "file:line:col: " prefix and a key phrase.
struct InvalidCase {
  const char* file;
  int line;
  int column;
  const char* message;  // the whole message when `exact`, else a phrase it contains
  bool exact;
};

class ConfigInvalid : public testing::TestWithParam<InvalidCase> {};

TEST_P(ConfigInvalid, FirstDiagnostic) {
  const InvalidCase& c = GetParam();
  const std::string path = invalid(c.file);
  const auto r = load_config_file(path);
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.config.has_value());
  ASSERT_FALSE(r.errors.empty());
  const std::string first = r.errors.front().str();
  std::string prefix = path;
  if (c.line > 0) prefix += ":" + std::to_string(c.line);
  if (c.column > 0) prefix += ":" + std::to_string(c.column);
  prefix += ": ";
  if (c.exact) {
    EXPECT_EQ(first, prefix + c.message) << all_errors(r);
  } else {
    EXPECT_EQ(first.rfind(prefix, 0), 0u) << "expected prefix " << prefix << "\n" << all_errors(r);
    EXPECT_NE(first.find(c.message), std::string::npos) << "expected \"" << c.message << "\" in\n"
                                                        << all_errors(r);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Corpus, ConfigInvalid,
    testing::Values(
        InvalidCase{
            "unknown_top_level_key.yaml", 9, 1,
            // The list grows with every top-level setting; its start is what matters.
            "unknown key \"listen_port\" (expected one of: listen, workers, startup_timeout, ",
            false},
        InvalidCase{"unknown_tls_key.yaml", 6, 3,
                    "unknown key \"tls.ssl_ca_file\" (expected one of", false},
        InvalidCase{"duplicate_key.yaml", 7, 1, "duplicate key \"workers\"", true},
        InvalidCase{"missing_cert_file.yaml", 3, 14, "cannot read tls.cert_file \"", false},
        InvalidCase{"missing_ca_file.yaml", 3, 3, "tls.ca_file is required", true},
        InvalidCase{"listen_bad_ip.yaml", 1, 9,
                    "invalid listen address \"300.1.2.3:6432\": \"300.1.2.3\" is not an IPv4 "
                    "address (write IPv6 as [addr]:port)",
                    true},
        InvalidCase{"listen_bad_port.yaml", 1, 9,
                    "invalid listen address \"127.0.0.1:65536\": port must be a number from 0 to "
                    "65535",
                    true},
        InvalidCase{"listen_missing_port.yaml", 1, 9,
                    "invalid listen address \"127.0.0.1\": expected host:port", true},
        InvalidCase{"workers_not_a_number.yaml", 2, 10,
                    "workers must be a whole number from 0 to 1024, not \"many\"", true},
        InvalidCase{"bad_duration.yaml", 2, 18,
                    "startup_timeout must be a positive duration such as 10s, 500ms or 2m, not "
                    "\"10 seconds\"",
                    true},
        InvalidCase{"bad_min_protocol_version.yaml", 6, 25,
                    "tls.min_protocol_version must be TLSv1.2 or TLSv1.3, not \"TLSv1.1\"", true},
        InvalidCase{"ticket_lifetime_too_long.yaml", 6, 28,
                    "tls.session_ticket_lifetime must be at most 168h (7 days, RFC 8446)", true},
        InvalidCase{"ticket_lifetime_fraction.yaml", 6, 28,
                    "tls.session_ticket_lifetime must be whole seconds", true},
        InvalidCase{"ident_file_and_maps.yaml", 8, 3, "give either ident_file or maps, not both",
                    true},
        InvalidCase{"map_not_defined.yaml", 6, 6, "map \"nosuchmap\" is not defined in maps", true},
        InvalidCase{"map_entry_missing_role.yaml", 10, 7,
                    "a map entry needs both identity and role", true},
        InvalidCase{"unsupported_identity_source.yaml", 7, 11,
                    "identity.source \"subject_serial\" is not supported (expected cn, dn, "
                    "san_dns, san_email, san_uri or fingerprint)",
                    true},
        InvalidCase{"bad_log_level.yaml", 10, 10,
                    "log.level must be one of trace, debug, info, warn, error, critical, off; not "
                    "\"verbose\"",
                    true},
        InvalidCase{"two_backends.yaml", 7, 3,
                    "with several backends, one must be named \"default\"", false},
        InvalidCase{"backend_sslmode_allow.yaml", 9, 14,
                    "backends.default.sslmode must be disable, prefer, require, verify-ca or "
                    "verify-full, not \"allow\"",
                    true},
        InvalidCase{"backend_verify_full_without_root.yaml", 8, 5,
                    "backends.default.sslmode verify-full needs sslrootcert", false},
        InvalidCase{"hba_file_device.yaml", 6, 11, "hba_file \"/dev/zero\" is not a regular file",
                    true},
        InvalidCase{"invalid_yaml.yaml", 4, 12, "invalid YAML: ", false},
        InvalidCase{"empty.yaml", 0, 0, "the config is empty", true}),
    [](const testing::TestParamInfo<InvalidCase>& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      return name;
    });

// The ident file's own errors point into the ident file, not the YAML.
TEST(ConfigInvalidExtra, IdentFileErrorPointsIntoTheIdentFile) {
  const auto r = load_config_file(invalid("ident_file_bad_line.yaml"));
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  const std::string ident =
      (fs::path(kConfigDir) / "ident" / "two_fields.conf").lexically_normal().string();
  EXPECT_EQ(r.errors[0].where.file, ident);
  EXPECT_EQ(r.errors[0].where.line, 2);
  EXPECT_NE(r.errors[0].message.find("exactly 3 fields"), std::string::npos);
}

TEST(ConfigInvalidExtra, MissingCertFileNamesTheResolvedPath) {
  const auto r = load_config_file(invalid("missing_cert_file.yaml"));
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_NE(r.errors[0].message.find(pki("does-not-exist.crt")), std::string::npos)
      << r.errors[0].str();
  EXPECT_NE(r.errors[0].message.find("No such file or directory"), std::string::npos);
}

TEST(ConfigInvalidExtra, InvalidYamlHasALineNumber) {
  const auto r = load_config_file(invalid("invalid_yaml.yaml"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].where.line, 4);
  EXPECT_GT(r.errors[0].where.column, 0);
}

TEST(ConfigInvalidExtra, MissingConfigFile) {
  const auto r = load_config_file(kConfigDir + "/no-such-config.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), kConfigDir +
                                   "/no-such-config.yaml: cannot read config: No such "
                                   "file or directory");
}

TEST(ConfigText, AllErrorsAreCollectedInOrder) {
  const auto r = load_config_text(
      "listen: nowhere\n"
      "workers: -1\n"
      "bogus: 1\n",
      "t.yaml", kConfigDir + "/valid");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 5u) << all_errors(r);
  EXPECT_EQ(r.errors[0].str().rfind("t.yaml:1:9: invalid listen address", 0), 0u);
  EXPECT_EQ(r.errors[1].str().rfind("t.yaml:2:10: workers must be", 0), 0u);
  EXPECT_EQ(r.errors[2].str().rfind("t.yaml:3:1: unknown key \"bogus\"", 0), 0u);
  EXPECT_EQ(r.errors[3].str(), "t.yaml:1:1: tls is required");
  EXPECT_EQ(r.errors[4].str(), "t.yaml:1:1: backends is required");
}

TEST(ConfigText, RootMustBeAMapping) {
  const auto r = load_config_text("- a\n- b\n", "t.yaml", "");
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].str(), "t.yaml:1:1: the config must be a mapping");
}

TEST(ConfigText, ZeroDurationIsRefused) {
  const auto r = load_config_text("startup_timeout: 0\n", "t.yaml", "");
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].str().rfind("t.yaml:1:18: startup_timeout must be a positive duration", 0),
            0u)
      << all_errors(r);
}

// The smallest config that loads (from tests/data/config/valid), up to the backend's settings.
constexpr const char* kMinimalUpToBackend =
    "listen: 127.0.0.1:1\n"
    "tls:\n"
    "  cert_file: ../pki/server.crt\n"
    "  key_file: ../pki/server.key\n"
    "  ca_file: ../pki/ca.crt\n"
    "backends:\n"
    "  default:\n";

// The minimal config with one more tls: key.
auto with_tls_key(const std::string& key, const std::string& value) {
  std::string text = std::string(kMinimalUpToBackend) + "    host: h\n";
  text.insert(text.find("backends:"), "  " + key + ": " + value + "\n");
  return load_config_text(text, "t.yaml", kConfigDir + "/valid");
}

TEST(ConfigText, VerifyDepth) {
  auto with = [](const std::string& value) { return with_tls_key("verify_depth", value); };
  const auto two = with("2");
  ASSERT_TRUE(two.ok()) << all_errors(two);
  EXPECT_EQ(two.config->tls.verify_depth, 2);
  EXPECT_TRUE(with("0").ok());
  EXPECT_NE(all_errors(with("101")).find("tls.verify_depth must be a whole number from 0 to 100"),
            std::string::npos)
      << all_errors(with("101"));
  EXPECT_FALSE(with("-1").ok());
}

TEST(ConfigText, SessionTicketLifetime) {
  auto with = [](const std::string& value) {
    return with_tls_key("session_ticket_lifetime", value);
  };
  const auto minutes = with("10m");
  ASSERT_TRUE(minutes.ok()) << all_errors(minutes);
  EXPECT_EQ(minutes.config->tls.session_ticket_lifetime, 10min);
  const auto most = with("168h");
  ASSERT_TRUE(most.ok()) << all_errors(most);
  const auto off = with("off");
  ASSERT_TRUE(off.ok()) << all_errors(off);
  EXPECT_EQ(off.config->tls.session_ticket_lifetime.count(), 0);
  EXPECT_NE(all_errors(with("-1s")).find("tls.session_ticket_lifetime must be a duration"),
            std::string::npos);
}

TEST(ConfigText, BackendPortRange) {
  const auto base = std::string(kMinimalUpToBackend) + "    host: h\n";
  const auto ok = load_config_text(base + "    port: 65535\n", "t.yaml", kConfigDir + "/valid");
  ASSERT_TRUE(ok.ok()) << all_errors(ok);
  EXPECT_EQ(ok.config->backend.port, 65535);
  const auto zero = load_config_text(base + "    port: 0\n", "t.yaml", kConfigDir + "/valid");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.errors[0].str().rfind("t.yaml:9:11: backends.default.port must be", 0), 0u)
      << all_errors(zero);
  const auto big = load_config_text(base + "    port: 70000\n", "t.yaml", kConfigDir + "/valid");
  EXPECT_FALSE(big.ok());
}

TEST(ConfigText, CancelPeersAndLifecycleSettings) {
  const auto base = std::string(kMinimalUpToBackend) + "    host: h\n";
  const std::string dir = kConfigDir + "/valid";
  const std::string secret = ::testing::TempDir() + "/pgmtls-peer-secret";
  {
    std::ofstream(secret) << std::string(40, 'k') << "\n";
    std::ofstream(secret + ".short") << "short\n";
  }
  const auto ok = load_config_text(
      base + "cancel:\n  instance_id: 3\n  peer_secret_file: " + secret +
          "\n  peers:\n    - { id: 4, address: \"10.0.0.4:6432\" }\n"
          "    - { id: 5, address: \"pgmtls-5.pgmtls-peers.db.svc:6432\" }\n"
          "idle_timeout: 0\nshutdown_timeout: 5s\non_revocation: terminate\nwatch_interval: off\n",
      "t.yaml", dir);
  ASSERT_TRUE(ok.ok()) << all_errors(ok);
  EXPECT_EQ(ok.config->cancel.instance_id, 3u);
  EXPECT_EQ(ok.config->cancel.peer_secret, std::string(40, 'k'));
  ASSERT_EQ(ok.config->cancel.peers.size(), 2u);
  EXPECT_EQ(ok.config->cancel.peers[0].address.port, 6432);
  EXPECT_EQ(ok.config->cancel.peers[1].address.host, "pgmtls-5.pgmtls-peers.db.svc");
  EXPECT_EQ(ok.config->on_revocation, CertificateEventAction::terminate);
  EXPECT_EQ(ok.config->watch_interval.count(), 0);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"cancel:\n  peers:\n    - { id: 4, address: \"10.0.0.4:6432\" }\n",
       "cancel.peers needs cancel.peer_secret_file"},
      {"cancel:\n  peer_secret_file: " + secret + ".short\n", "must hold at least 32 bytes"},
      {"cancel:\n  instance_id: 256\n", "cancel.instance_id must be a whole number from 0 to 255"},
      {"cancel:\n  instance_id: 4\n  peer_secret_file: " + secret +
           "\n  peers:\n    - { id: 4, address: \"10.0.0.4:6432\" }\n",
       "this instance's own cancel.instance_id"},
      {"cancel:\n  peer_secret_file: " + secret +
           "\n  peers:\n    - { id: 1, address: \"10.0.0.4:6432\" }\n    - { id: 1, address: "
           "\"10.0.0.5:6432\" }\n",
       "lists id 1 twice"},
      {"cancel:\n  peer_secret_file: " + secret + "\n  peers:\n    - { id: 1, address: host }\n",
       "invalid cancel.peers[].address \"host\": expected host:port"},
      {"cancel:\n  peer_secret_file: " + secret +
           "\n  peers:\n    - { id: 1, address: \"bad_name!:1\" }\n",
       "is not an IPv4 address or a host name"},
      {"on_expiry: sometimes\n", "on_expiry must be keep or terminate"},
      {"idle_timeout: -1s\n", "idle_timeout must be a duration"},
      {"log:\n  format: xml\n", "log.format must be text or json"},
      {"admin:\n  listen: nowhere\n", "invalid admin.listen address"},
      {"limits:\n  max_handshakes: 0\n", "limits.max_handshakes must be a whole number from 1"},
      {"limits:\n  failed_handshakes: { max: 3, window: never }\n",
       "limits.failed_handshakes.window must be a positive duration"},
      {"tcp_keepalives:\n  count: 0\n", "tcp_keepalives.count must be a whole number from 1"},
  };
  for (const auto& [yaml, message] : bad) {
    const auto r = load_config_text(base + yaml, "t.yaml", dir);
    EXPECT_FALSE(r.ok()) << yaml;
    EXPECT_NE(all_errors(r).find(message), std::string::npos) << yaml << "\n" << all_errors(r);
  }
}

TEST(ConfigText, BackendHostLists) {
  const auto base = std::string(kMinimalUpToBackend);
  const std::string dir = kConfigDir + "/valid";
  const auto pairs = load_config_text(
      base +
          "    host: \"a, b,c\"\n    port: \"5432,5433, 5434\"\n    target_session_attrs: "
          "read-write\n",
      "t.yaml", dir);
  ASSERT_TRUE(pairs.ok()) << all_errors(pairs);
  const auto& b = pairs.config->backend;
  ASSERT_EQ(b.hosts.size(), 3u);
  EXPECT_EQ(b.hosts[1].host, "b");
  EXPECT_EQ(b.hosts[2].port, 5434);
  EXPECT_EQ(b.host, "a");
  EXPECT_EQ(b.port, 5432);
  EXPECT_EQ(b.target_session_attrs, TargetSessionAttrs::read_write);
  const auto one_port = load_config_text(base + "    host: a,b\n    port: 6000\n", "t.yaml", dir);
  ASSERT_TRUE(one_port.ok()) << all_errors(one_port);
  EXPECT_EQ(one_port.config->backend.hosts[1].port, 6000);
  for (const auto& [yaml, message] : std::vector<std::pair<std::string, std::string>>{
           {"    host: a,b,c\n    port: \"1,2\"\n", "lists 2 ports for 3 hosts"},
           {"    host: \"a,,b\"\n", "has an empty entry"},
           {"    host: a\n    port: \"1,x\"\n", "must be a port number"},
           {"    host: a\n    target_session_attrs: master\n", "must be any, read-write"}}) {
    const auto r = load_config_text(base + yaml, "t.yaml", dir);
    EXPECT_FALSE(r.ok()) << yaml;
    EXPECT_NE(all_errors(r).find(message), std::string::npos) << all_errors(r);
  }
}

TEST(ConfigText, BackendPool) {
  const auto base = std::string(kMinimalUpToBackend) + "    host: h\n";
  const std::string dir = kConfigDir + "/valid";
  const auto off = load_config_text(base, "t.yaml", dir);
  ASSERT_TRUE(off.ok()) << all_errors(off);
  EXPECT_EQ(off.config->backend.pool.mode, PoolMode::none);
  const auto on = load_config_text(base +
                                       "    pool_mode: session\n    pool_size: 5\n"
                                       "    server_idle_timeout: 30s\n    server_lifetime: 10m\n"
                                       "    server_reset_query: \"RESET ALL\"\n",
                                   "t.yaml", dir);
  ASSERT_TRUE(on.ok()) << all_errors(on);
  const auto& pool = on.config->backend.pool;
  EXPECT_EQ(pool.mode, PoolMode::session);
  EXPECT_EQ(pool.pool_size, 5u);
  EXPECT_EQ(pool.server_idle_timeout, 30s);
  EXPECT_EQ(pool.server_lifetime, 10min);
  EXPECT_EQ(pool.server_reset_query, "RESET ALL");
  const auto transaction =
      load_config_text(base +
                           "    pool_mode: transaction\n    query_wait_timeout: 5s\n"
                           "    max_prepared_statements: 50\n",
                       "t.yaml", dir);
  ASSERT_TRUE(transaction.ok()) << all_errors(transaction);
  EXPECT_EQ(transaction.config->backend.pool.mode, PoolMode::transaction);
  EXPECT_EQ(transaction.config->backend.pool.query_wait_timeout, 5s);
  EXPECT_EQ(transaction.config->backend.pool.max_prepared_statements, 50u);
  for (const auto& [yaml, message] : std::vector<std::pair<std::string, std::string>>{
           {"    pool_mode: statement\n", "pool_mode must be none, session or transaction"},
           {"    pool_mode: transaction\n    query_wait_timeout: 0\n",
            "query_wait_timeout must be a positive duration"},
           {"    pool_mode: transaction\n    max_prepared_statements: 0\n",
            "max_prepared_statements"},
           {"    pool_mode: transaction\n    target_session_attrs: read-write\n",
            "pool_mode transaction needs target_session_attrs any"},
           {"    pool_mode: session\n    pool_size: 0\n", "pool_size"},
           {"    pool_mode: session\n    target_session_attrs: read-write\n",
            "pool_mode session needs target_session_attrs any"}}) {
    const auto r = load_config_text(base + yaml, "t.yaml", dir);
    EXPECT_FALSE(r.ok()) << yaml;
    EXPECT_NE(all_errors(r).find(message), std::string::npos) << all_errors(r);
  }
}

TEST(ParseDuration, UnitsAndPlainSeconds) {
  EXPECT_EQ(parse_duration("10"), 10s);
  EXPECT_EQ(parse_duration("10s"), 10s);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("2min"), 2min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("0"), 0ms);
}

TEST(ParseDuration, Rejects) {
  EXPECT_EQ(parse_duration(""), std::nullopt);
  EXPECT_EQ(parse_duration("s"), std::nullopt);
  EXPECT_EQ(parse_duration("-5s"), std::nullopt);
  EXPECT_EQ(parse_duration("1.5s"), std::nullopt);
  EXPECT_EQ(parse_duration("10 s"), std::nullopt);
  EXPECT_EQ(parse_duration("10d"), std::nullopt);
  EXPECT_EQ(parse_duration("10S"), std::nullopt);
  EXPECT_EQ(parse_duration(" 10s"), std::nullopt);
  EXPECT_EQ(parse_duration("9999999999"), std::nullopt);  // no overflow into nonsense
}

TEST(ParseListenAddress, Accepts) {
  std::string error;
  auto a = parse_listen_address("127.0.0.1:6432", error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 6432);

  a = parse_listen_address("[::1]:6432", error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 6432);

  a = parse_listen_address("[::]:0", error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->host, "::");
  EXPECT_EQ(a->port, 0);

  a = parse_listen_address("0.0.0.0:65535", error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->port, 65535);
}

TEST(ParseListenAddress, Rejects) {
  for (const char* text :
       {"", ":6432", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+1",
        "127.0.0.1:64x", "localhost:6432", "::1:6432", "[::1]", "[::1]6432",
        "[::1]:", "[127.0.0.1]:6432", "[::1:6432", "[]:6432", "1.2.3:6432", "256.0.0.1:1"}) {
    std::string error;
    EXPECT_FALSE(parse_listen_address(text, error).has_value()) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(Diagnostics, Formatting) {
  EXPECT_EQ((Diagnostic{{"a.yaml", 3, 7}, "boom"}).str(), "a.yaml:3:7: boom");
  EXPECT_EQ((Diagnostic{{"a.yaml", 3, 0}, "boom"}).str(), "a.yaml:3: boom");
  EXPECT_EQ((Diagnostic{{"a.yaml", 0, 0}, "boom"}).str(), "a.yaml: boom");
  EXPECT_EQ((Diagnostic{{"", 0, 0}, "boom"}).str(), "<config>: boom");
}

}  // namespace
}  // namespace pgmtls::config

namespace pgmtls::config {
namespace {

// The annotated examples in deploy/examples are documentation; they must stay loadable.
std::string example(const std::string& name) {
  return (fs::path(PGMTLS_TEST_DATA_DIR) / ".." / ".." / "deploy" / "examples" / name)
      .lexically_normal()
      .string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

TEST(DeployExamples, AnnotatedYamlLoadsWithItsInlineRules) {
  std::string yaml = read_text(example("pgmtls.yaml"));
  ASSERT_FALSE(yaml.empty());
  // The example names a passfile (which must be private) and an environment variable.
  const std::string passfile = (fs::temp_directory_path() / "pgmtls-example-pgpass").string();
  std::ofstream(passfile) << "*:*:*:*:example\n";
  fs::permissions(passfile, fs::perms::owner_read | fs::perms::owner_write);
  ::setenv("PGMTLS_REPORTING_PASSWORD", "example", 1);
  for (const auto& [from, to] : {std::pair{"/etc/pgmtls/server.crt", pki("server.crt")},
                                 {"/etc/pgmtls/server.key", pki("server.key")},
                                 {"/etc/pgmtls/clients-ca.crt", pki("ca.crt")},
                                 {"/etc/pgmtls/backend-ca.crt", pki("ca.crt")},
                                 {"/etc/pgmtls/pgpass", passfile}}) {
    const auto at = yaml.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    yaml.replace(at, std::string(from).size(), to);
  }
  const auto r = load_config_text(yaml, "pgmtls.yaml", "");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.config->hba_rules.size(), 3u);
  EXPECT_EQ(r.config->ident_lines.size(), 4u);
  EXPECT_EQ(r.config->backend.tls.sslmode, SslMode::verify_full);
  EXPECT_EQ(r.config->backend.credential_for("reporting").origin,
            "password_env PGMTLS_REPORTING_PASSWORD");
  fs::remove(passfile);
}

TEST(DeployExamples, HbaAndIdentFilesParse) {
  Diagnostics errors;
  const auto rules = load_hba_file(example("pg_hba.conf"), {}, errors);
  const auto lines = load_ident_file(example("pg_ident.conf"), {}, errors);
  for (const auto& e : errors)
    ADD_FAILURE() << e.str();
  EXPECT_EQ(rules.size(), 4u);
  EXPECT_EQ(lines.size(), 5u);
}

}  // namespace
}  // namespace pgmtls::config
