// Table-driven tests of the access rules: the shared conf-file lexer, pg_hba.conf parsing with its
// errors, and the policy's decisions.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "auth/policy.h"
#include "config/conf_file.h"
#include "config/hba_file.h"
#include "config/ident_file.h"

namespace pgmtls {
namespace {

namespace fs = std::filesystem;
using config::Diagnostics;

std::string errors_text(const Diagnostics& errors) {
  std::string out;
  for (const auto& e : errors)
    out += e.str() + "\n";
  return out;
}

// A scratch directory for include tests, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pgmtls-rules-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path file = path / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file.string();
  }
};

// ---- conf_file: the lexer ----

TEST(ConfFile, FieldsListsQuotesAndComments) {
  Diagnostics errors;
  const auto lines = config::parse_conf_text(
      "# comment\n"
      "hostssl  db1,db2 \"all\",\"a b\"  10.0.0.0/8  cert  map=m # trailing\n"
      "\n"
      "x a#b c\n"
      "q \"say \"\"hi\"\"\"\n",
      "f.conf", errors, false);
  ASSERT_TRUE(errors.empty()) << errors_text(errors);
  ASSERT_EQ(lines.size(), 3u);
  const auto& f = lines[0].fields;
  ASSERT_EQ(f.size(), 6u);
  ASSERT_EQ(f[1].size(), 2u);
  EXPECT_EQ(f[1][0].text, "db1");
  EXPECT_EQ(f[1][1].text, "db2");
  EXPECT_TRUE(f[2][0].quoted);
  EXPECT_FALSE(f[2][0].is_keyword("all"));
  EXPECT_EQ(f[2][1].text, "a b");
  EXPECT_EQ(lines[0].where.line, 2);
  EXPECT_EQ(lines[0].text, "hostssl  db1,db2 \"all\",\"a b\"  10.0.0.0/8  cert  map=m");
  // An unquoted '#' ends the line even inside a token.
  ASSERT_EQ(lines[1].fields.size(), 2u);
  EXPECT_EQ(lines[1].fields[1][0].text, "a");
  EXPECT_EQ(lines[2].fields[1][0].text, "say \"hi\"");
}

TEST(ConfFile, SpaceAfterACommaContinuesTheList) {
  Diagnostics errors;
  const auto lines = config::parse_conf_text("a b, c d\n", "f", errors, false);
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0].fields.size(), 3u);
  EXPECT_EQ(lines[0].fields[1].size(), 2u);
  EXPECT_EQ(lines[0].fields[2][0].text, "d");
}

TEST(ConfFile, ContinuationLinesKeepTheFirstLineNumber) {
  Diagnostics errors;
  const auto lines = config::parse_conf_text("a \\\n  b \\\n  c\nd e\r\n", "f", errors, false);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].fields.size(), 3u);
  EXPECT_EQ(lines[0].where.line, 1);
  EXPECT_EQ(lines[1].where.line, 4);
  EXPECT_EQ(lines[1].fields[1][0].text, "e");  // CR stripped
}

struct LexError {
  const char* name;
  const char* text;
  const char* error;
};

class ConfFileErrors : public ::testing::TestWithParam<LexError> {};

TEST_P(ConfFileErrors, AreReportedWithTheLine) {
  Diagnostics errors;
  config::parse_conf_text(std::string("ok line\n") + GetParam().text, "f.conf", errors, false);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.line, 2);
  EXPECT_NE(errors[0].message.find(GetParam().error), std::string::npos) << errors[0].message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfFileErrors,
    ::testing::Values(LexError{"unterminated", "a \"b\n", "unterminated quoted string"},
                      LexError{"trailing_comma", "a b,\n", "ends with a comma"},
                      LexError{"include_not_allowed", "include x.conf\n", "not allowed"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ConfFile, IncludeDirectivesResolveAgainstTheIncludingFile) {
  TempDir dir;
  dir.write("sub/inner.conf", "inner 1\n");
  dir.write("sub/d/10-b.conf", "dir b\n");
  dir.write("sub/d/05-a.conf", "dir a\n");
  dir.write("sub/d/.hidden.conf", "hidden\n");
  dir.write("sub/d/notes.txt", "not conf\n");
  dir.write("sub/middle.conf", "include inner.conf\ninclude_dir d\n");
  const std::string main = dir.write("main.conf",
                                     "first\n"
                                     "include sub/middle.conf\n"
                                     "include_if_exists sub/missing.conf\n"
                                     "last\n");
  Diagnostics errors;
  const auto lines = config::read_conf_file(main, {}, "ident_file", errors);
  ASSERT_TRUE(errors.empty()) << errors_text(errors);
  std::vector<std::string> firsts;
  for (const auto& l : lines)
    firsts.push_back(l.fields[0][0].text);
  EXPECT_EQ(firsts, (std::vector<std::string>{"first", "inner", "dir", "dir", "last"}));
  EXPECT_EQ(lines[2].fields[1][0].text, "a");  // sorted by name
  EXPECT_EQ(lines[1].where.file, (dir.path / "sub/inner.conf").string());
}

TEST(ConfFile, IncludeLoopIsAnErrorNotARecursion) {
  TempDir dir;
  const std::string a = dir.write("a.conf", "include b.conf\n");
  dir.write("b.conf", "include a.conf\n");
  Diagnostics errors;
  config::read_conf_file(a, {}, "hba_file", errors);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].message.find("nested includes"), std::string::npos) << errors[0].message;
}

TEST(ConfFile, MissingIncludeIsReportedAtTheIncludeLine) {
  TempDir dir;
  const std::string a = dir.write("a.conf", "x y\ninclude nope.conf\n");
  Diagnostics errors;
  config::read_conf_file(a, {}, "hba_file", errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.file, a);
  EXPECT_EQ(errors[0].where.line, 2);
  EXPECT_NE(errors[0].message.find("nope.conf"), std::string::npos);
}

TEST(ConfFile, AtFilesExpandRelativeAndNested) {
  TempDir dir;
  dir.write("lists/dbs", "db1, db2\n# comment\ndb3 @more\n");
  dir.write("lists/more", "db4\n");
  Diagnostics errors;
  config::ConfField field{{"@lists/dbs", false, 1}, {"db0", false, 12}};
  const auto expanded =
      config::expand_at_files(field, {(dir.path / "pg_hba.conf").string(), 1, 1}, errors);
  ASSERT_TRUE(errors.empty()) << errors_text(errors);
  std::vector<std::string> names;
  for (const auto& t : expanded)
    names.push_back(t.text);
  EXPECT_EQ(names, (std::vector<std::string>{"db1", "db2", "db3", "db4", "db0"}));
}

// ---- hba_file ----

std::vector<config::HbaRule> parse_hba(const std::string& text, Diagnostics& errors) {
  return config::parse_hba_text(text, "pg_hba.conf", errors);
}

TEST(HbaFile, ParsesEveryColumn) {
  Diagnostics errors;
  const auto rules = parse_hba(
      "hostssl  db1,\"all\"  alice,/^svc-  192.168.0.0/16  cert  map=m clientname=DN "
      "issuer=\"CN=CA,O=Example\" issuer_fingerprint=" +
          std::string(32, 'A') + std::string(32, 'b') +
          " role_from_certificate=1\n"
          "host all all 10.1.2.3 255.255.0.0 reject\n"
          "hostnogssenc replication all ::1/128 cert clientcert=verify-full\n",
      errors);
  ASSERT_TRUE(errors.empty()) << errors_text(errors);
  ASSERT_EQ(rules.size(), 3u);
  const auto& r = rules[0];
  EXPECT_EQ(r.type, config::HbaConnType::hostssl);
  ASSERT_EQ(r.databases.size(), 2u);
  EXPECT_TRUE(r.databases[1].quoted);
  EXPECT_TRUE(r.users[1].is_regex());
  EXPECT_EQ(r.address.kind, config::HbaAddress::Kind::cidr);
  EXPECT_EQ(r.address.mask[1], 0xff);
  EXPECT_EQ(r.address.mask[2], 0x00);
  EXPECT_EQ(r.map, "m");
  EXPECT_EQ(r.identity, config::IdentitySource::dn);
  EXPECT_EQ(r.issuer, "CN=CA,O=Example");
  EXPECT_EQ(r.issuer_fingerprint, std::string(32, 'a') + std::string(32, 'b'));
  EXPECT_EQ(r.role_from_certificate, true);
  EXPECT_EQ(rules[1].method, config::HbaMethod::reject);
  EXPECT_EQ(rules[1].address.addr[2], 0);  // host bits masked off
  EXPECT_EQ(rules[1].address.text, "10.1.2.3 255.255.0.0");
  EXPECT_TRUE(rules[2].address.v6);
}

struct HbaError {
  const char* name;
  const char* line;
  const char* diagnostic;  // the whole "file:line:col: message", or its start
};

class HbaFileErrors : public ::testing::TestWithParam<HbaError> {};

TEST_P(HbaFileErrors, NameTheTokenAndSayWhy) {
  Diagnostics errors;
  const auto rules =
      parse_hba(std::string("hostssl all all all cert\n") + GetParam().line + "\n", errors);
  EXPECT_EQ(rules.size(), 1u) << "the bad line must be skipped, the good one kept";
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].str().rfind(GetParam().diagnostic, 0), 0u) << errors[0].str();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HbaFileErrors,
    ::testing::Values(
        HbaError{"local", "local all all cert", "pg_hba.conf:2:1: \"local\" rules are for"},
        HbaError{"bad_type", "hostsll all all all cert",
                 "pg_hba.conf:2:1: invalid connection type \"hostsll\""},
        HbaError{"md5", "host all all all md5",
                 "pg_hba.conf:2:18: authentication method \"md5\" is not supported"},
        HbaError{"trust", "host all all all trust", "pg_hba.conf:2:18: authentication method"},
        HbaError{"group", "host all +admins all cert",
                 "pg_hba.conf:2:10: group membership (\"+admins\") is not supported"},
        HbaError{"samerole", "host samerole all all cert",
                 "pg_hba.conf:2:6: \"samerole\" is not supported"},
        HbaError{"hostname", "host all all db.example.com cert",
                 "pg_hba.conf:2:14: invalid IP address \"db.example.com\""},
        HbaError{"bad_prefix", "host all all 10.0.0.0/33 cert",
                 "pg_hba.conf:2:14: invalid CIDR mask"},
        HbaError{"noncontiguous_mask", "host all all 10.0.0.0 255.0.255.0 cert",
                 "pg_hba.conf:2:23: invalid IP mask \"255.0.255.0\""},
        HbaError{"missing_mask", "host all all 10.0.0.1 cert",
                 "pg_hba.conf:2:14: end-of-line before authentication method"},
        HbaError{"short", "hostssl all all", "pg_hba.conf:2:1: end-of-line before IP address"},
        HbaError{"unknown_option", "host all all all cert color=blue",
                 "pg_hba.conf:2:23: unknown authentication option \"color\""},
        HbaError{"option_format", "host all all all cert map",
                 "pg_hba.conf:2:23: authentication option not in name=value format"},
        HbaError{"option_on_reject", "host all all all reject map=m",
                 "pg_hba.conf:2:25: authentication option \"map\" is only valid for the cert"},
        HbaError{"verify_ca", "host all all all cert clientcert=verify-ca",
                 "pg_hba.conf:2:23: clientcert only accepts \"verify-full\""},
        HbaError{"bad_clientname", "host all all all cert clientname=UID",
                 "pg_hba.conf:2:23: invalid clientname \"UID\""},
        HbaError{"bad_fingerprint", "host all all all cert issuer_fingerprint=abcd",
                 "pg_hba.conf:2:23: issuer_fingerprint must be a SHA-256 fingerprint"},
        HbaError{"empty_name", "host \"\" all all cert", "pg_hba.conf:2:6: empty database name"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- policy ----

auth::CertificateIdentity cert_named(const std::string& cn) {
  auth::CertificateIdentity id;
  id.cn = cn;
  id.subject_dn = "CN=" + cn + ",O=Example";
  id.issuer_dn = "CN=Root,O=Example";
  id.sha256_fingerprint = std::string(64, 'f');
  id.ca_fingerprints = {std::string(64, 'c')};
  return id;
}

class PolicyTest : public ::testing::Test {
 protected:
  void compile(const std::string& hba, const std::string& ident = "",
               auth::PolicyDefaults defaults = {}) {
    Diagnostics errors;
    auto rules = config::parse_hba_text(hba, "pg_hba.conf", errors);
    auto lines = config::parse_ident_text(ident, "pg_ident.conf", errors);
    ASSERT_TRUE(errors.empty()) << errors_text(errors);
    auto compiled = auth::Policy::compile(std::move(rules), std::move(lines), defaults);
    ASSERT_TRUE(std::holds_alternative<auth::Policy>(compiled))
        << errors_text(std::get<Diagnostics>(compiled));
    policy_ = std::move(std::get<auth::Policy>(compiled));
  }

  auth::Verdict decide(
      const std::string& user, const std::string& database, const auth::CertificateIdentity* cert,
      const std::string& address = "127.0.0.1",
      auth::AccessRequest::Replication replication = auth::AccessRequest::Replication::none) {
    auth::AccessRequest request;
    request.address = boost::asio::ip::make_address(address);
    request.user = user;
    request.database = database;
    request.replication = replication;
    return policy_.evaluate(request, cert, &trace_);
  }

  auth::Policy policy_;
  std::vector<std::string> trace_;
};

TEST_F(PolicyTest, FirstMatchingRuleDecides) {
  compile(
      "hostssl all bob all reject\n"
      "hostssl all all all cert\n");
  const auto alice = cert_named("alice");
  const auto bob = cert_named("bob");
  EXPECT_TRUE(decide("alice", "db", &alice).admitted());
  const auto v = decide("bob", "db", &bob);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::rejected);
  EXPECT_EQ(v.client_message,
            "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"bob\", database "
            "\"db\", SSL encryption");
  EXPECT_EQ(v.rule->where.line, 1);
}

TEST_F(PolicyTest, NoMatchingRuleUsesPostgresWording) {
  compile("hostssl app all all cert\n");
  const auto alice = cert_named("alice");
  const auto v = decide("alice", "other", &alice);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::no_rule);
  EXPECT_EQ(v.client_message,
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"alice\", database \"other\", "
            "SSL encryption");
  ASSERT_EQ(trace_.size(), 2u);
  EXPECT_NE(trace_[0].find("database \"other\" is not in app"), std::string::npos) << trace_[0];
}

struct MatchCase {
  const char* name;
  const char* rule;
  const char* user;
  const char* database;
  const char* address;
  bool matches;
};

class RuleMatching : public PolicyTest, public ::testing::WithParamInterface<MatchCase> {};

TEST_P(RuleMatching, DecidesOrFallsThrough) {
  // Every case's rule admits by CN; the fallback rule rejects, so "matches" is visible.
  compile(std::string(GetParam().rule) + "\nhost all all all reject\n");
  const auto cert = cert_named(GetParam().user);
  const auto v = decide(GetParam().user, GetParam().database, &cert, GetParam().address);
  EXPECT_EQ(v.admitted(), GetParam().matches) << v.detail;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RuleMatching,
    ::testing::Values(
        MatchCase{"hostssl", "hostssl all all all cert", "a", "d", "127.0.0.1", true},
        MatchCase{"hostnossl_never", "hostnossl all all all cert", "a", "d", "127.0.0.1", false},
        MatchCase{"hostgssenc_never", "hostgssenc all all all cert", "a", "d", "127.0.0.1", false},
        MatchCase{"hostnogssenc", "hostnogssenc all all all cert", "a", "d", "127.0.0.1", true},
        MatchCase{"db_name", "host d all all cert", "a", "d", "127.0.0.1", true},
        MatchCase{"db_case", "host D all all cert", "a", "d", "127.0.0.1", false},
        MatchCase{"db_list", "host x,d all all cert", "a", "d", "127.0.0.1", true},
        MatchCase{"db_sameuser", "host sameuser all all cert", "a", "a", "127.0.0.1", true},
        MatchCase{"db_sameuser_other", "host sameuser all all cert", "a", "d", "127.0.0.1", false},
        MatchCase{"db_quoted_all", "host \"all\" all all cert", "a", "d", "127.0.0.1", false},
        MatchCase{"db_quoted_all_named", "host \"all\" all all cert", "a", "all", "127.0.0.1",
                  true},
        MatchCase{"db_replication_not_normal", "host replication all all cert", "a", "d",
                  "127.0.0.1", false},
        MatchCase{"db_regex", "host /^app_ all all cert", "a", "app_x", "127.0.0.1", true},
        MatchCase{"user_list", "host all b,a all cert", "a", "d", "127.0.0.1", true},
        MatchCase{"user_regex", "host all /^svc- all cert", "svc-x", "d", "127.0.0.1", true},
        MatchCase{"user_regex_miss", "host all /^svc- all cert", "a", "d", "127.0.0.1", false},
        MatchCase{"cidr", "host all all 127.0.0.0/8 cert", "a", "d", "127.0.0.1", true},
        MatchCase{"cidr_miss", "host all all 10.0.0.0/8 cert", "a", "d", "127.0.0.1", false},
        MatchCase{"mask_column", "host all all 127.0.0.1 255.255.255.255 cert", "a", "d",
                  "127.0.0.1", true},
        MatchCase{"v6_rule_v4_client", "host all all ::1/128 cert", "a", "d", "127.0.0.1", false},
        MatchCase{"v6", "host all all ::1/128 cert", "a", "d", "::1", true},
        MatchCase{"v4_mapped_client", "host all all 127.0.0.1/32 cert", "a", "d",
                  "::ffff:127.0.0.1", true},
        MatchCase{"samehost", "host all all samehost cert", "a", "d", "127.0.0.1", true},
        MatchCase{"samehost_miss", "host all all samehost cert", "a", "d", "192.0.2.1", false},
        MatchCase{"samenet", "host all all samenet cert", "a", "d", "127.0.0.2", true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(PolicyTest, PhysicalReplicationMatchesOnlyTheReplicationKeyword) {
  compile("host all all all cert\nhost replication all all reject\n");
  const auto a = cert_named("a");
  const auto v = decide("a", "x", &a, "127.0.0.1", auth::AccessRequest::Replication::physical);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::rejected);
  EXPECT_EQ(v.client_message,
            "pg_hba.conf rejects replication connection for host \"127.0.0.1\", user \"a\", SSL "
            "encryption");
  // A logical replication connection is a normal one.
  EXPECT_TRUE(
      decide("a", "x", &a, "127.0.0.1", auth::AccessRequest::Replication::logical).admitted());
}

TEST_F(PolicyTest, CertRuleWithoutCertificate) {
  compile("host all all all cert\n");
  const auto v = decide("a", "d", nullptr);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::no_certificate);
  EXPECT_EQ(v.client_message, "connection requires a valid client certificate");
}

TEST_F(PolicyTest, WithoutMapTheIdentityMustEqualTheRoleExactly) {
  compile("host all all all cert\n");
  const auto alice = cert_named("alice");
  EXPECT_TRUE(decide("alice", "d", &alice).admitted());
  const auto v = decide("Alice", "d", &alice);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::map_denied);
  EXPECT_EQ(v.client_message, "certificate authentication failed for user \"Alice\"");
}

TEST_F(PolicyTest, MapsExactRegexAndSubstitution) {
  compile("host all all all cert map=m\n",
          "m alice analyst\n"
          "m /^(.*)@example\\.com$ \\1\n");
  const auto alice = cert_named("alice");
  const auto bob = cert_named("bob@example.com");
  EXPECT_TRUE(decide("analyst", "d", &alice).admitted());
  EXPECT_FALSE(decide("alice", "d", &alice).admitted());
  const auto v = decide("bob", "d", &bob);
  ASSERT_TRUE(v.admitted());
  EXPECT_EQ(v.ident_line->where.line, 2);
  const auto refused = decide("root", "d", &alice);
  EXPECT_NE(refused.detail.find("pg_ident.conf:1:1 maps \"alice\" to role \"analyst\""),
            std::string::npos)
      << refused.detail;
}

TEST_F(PolicyTest, DnIdentity) {
  compile("host all all all cert clientname=DN map=m\n", "m \"CN=alice,O=Example\" alice\n");
  const auto alice = cert_named("alice");
  EXPECT_TRUE(decide("alice", "d", &alice).admitted());
}

TEST_F(PolicyTest, SanSourcesAdmitWhenAnyNameMaps) {
  compile(
      "host uri all all cert clientname=SAN_URI map=m\n"
      "host dns all all cert clientname=SAN_DNS map=m\n"
      "host mail all all cert clientname=SAN_EMAIL map=m\n"
      "host fp all all cert clientname=FINGERPRINT map=m\n",
      "m spiffe://example.org/sa/reports reports\n"
      "m /^([a-z]+)\\.svc$ \\1\n"
      "m ops@example.com ops\n"
      "m " +
          std::string(64, 'f') + " pinned\n");
  auto cert = cert_named("x");
  cert.san_uri = {"spiffe://example.org/sa/other", "spiffe://example.org/sa/reports"};
  cert.san_dns = {"a.b.c", "billing.svc"};
  cert.san_email = {"ops@example.com"};
  EXPECT_TRUE(decide("reports", "uri", &cert).admitted());
  EXPECT_TRUE(decide("billing", "dns", &cert).admitted());
  EXPECT_TRUE(decide("ops", "mail", &cert).admitted());
  EXPECT_TRUE(decide("pinned", "fp", &cert).admitted());
  EXPECT_FALSE(decide("ops", "uri", &cert).admitted());
  auto bare = cert_named("x");
  EXPECT_EQ(decide("reports", "uri", &bare).kind, auth::Verdict::Kind::no_identity);
}

TEST_F(PolicyTest, IssuerPinning) {
  compile(
      "host dn all all cert issuer=\"CN=Root,O=Example\"\n"
      "host other all all cert issuer=\"CN=Other\"\n"
      "host fp all all cert issuer_fingerprint=" +
      std::string(64, 'c') +
      "\n"
      "host fp2 all all cert issuer_fingerprint=" +
      std::string(64, 'd') + "\n");
  const auto a = cert_named("a");
  EXPECT_TRUE(decide("a", "dn", &a).admitted());
  EXPECT_EQ(decide("a", "other", &a).kind, auth::Verdict::Kind::issuer_mismatch);
  EXPECT_TRUE(decide("a", "fp", &a).admitted());
  const auto v = decide("a", "fp2", &a);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::issuer_mismatch);
  EXPECT_EQ(v.client_message, "certificate authentication failed for user \"a\"");
}

TEST_F(PolicyTest, RoleFromCertificate) {
  compile(
      "host one all all cert map=m role_from_certificate=1\n"
      "host two all all cert map=m2 role_from_certificate=1\n"
      "host any all all cert map=m3 role_from_certificate=1\n",
      "m alice analyst\n"
      "m2 alice ro\nm2 alice rw\n"
      "m3 alice all\nm3 alice solo\n");
  const auto alice = cert_named("alice");
  auto v = decide("ubuntu", "one", &alice);
  ASSERT_TRUE(v.admitted()) << v.detail;
  EXPECT_TRUE(v.role_substituted);
  EXPECT_EQ(v.role, "analyst");
  EXPECT_FALSE(decide("ubuntu", "two", &alice).admitted());  // two candidates
  // An `all` line admits any requested role directly; it is not a concrete candidate.
  v = decide("ubuntu", "any", &alice);
  EXPECT_TRUE(v.admitted());
  EXPECT_FALSE(v.role_substituted);
}

// Found by the fuzzer: an empty capture is not a role to connect as.
TEST_F(PolicyTest, RoleFromCertificateIgnoresAnEmptySubstitution) {
  compile("host all all all cert map=m role_from_certificate=1\n", "m /^()alice$ \\1\n");
  const auto alice = cert_named("alice");
  const auto v = decide("ubuntu", "d", &alice);
  EXPECT_EQ(v.kind, auth::Verdict::Kind::map_denied);
  EXPECT_TRUE(v.role.empty());
}

TEST_F(PolicyTest, DefaultsApplyUnlessARuleSaysOtherwise) {
  auth::PolicyDefaults defaults;
  defaults.identity = config::IdentitySource::dn;
  compile("host a all all cert map=m\nhost b all all cert map=m clientname=CN\n",
          "m \"CN=alice,O=Example\" alice\nm alice alice\n", defaults);
  const auto alice = cert_named("alice");
  EXPECT_EQ(decide("alice", "a", &alice).identity, "CN=alice,O=Example");
  EXPECT_EQ(decide("alice", "b", &alice).identity, "alice");
}

TEST(Policy, ImplicitRuleWithoutHbaRules) {
  Diagnostics errors;
  auto lines = config::parse_ident_text("m alice bob\n", "pg_ident.conf", errors);
  auto compiled = auth::Policy::compile({}, std::move(lines), {}, "m");
  ASSERT_TRUE(std::holds_alternative<auth::Policy>(compiled));
  const auto& policy = std::get<auth::Policy>(compiled);
  EXPECT_TRUE(policy.implicit());
  auth::AccessRequest request;
  request.address = boost::asio::ip::make_address("10.9.8.7");
  request.user = "bob";
  request.database = "x";
  const auto alice = cert_named("alice");
  EXPECT_TRUE(policy.evaluate(request, &alice).admitted());
  request.user = "alice";
  EXPECT_FALSE(policy.evaluate(request, &alice).admitted());
}

// Found by the fuzzer: a backtracking pattern makes Boost give up with an exception; matching
// must fail closed instead of ending the session with an exception.
TEST_F(PolicyTest, CatastrophicRegexFailsClosed) {
  compile("host /^(.*)*x$ all all cert\nhost all all all cert map=m\n", "m /^(.*)*x$ r\n");
  const auto cert = cert_named(std::string(40, 'a'));
  auth::Verdict v;
  EXPECT_NO_THROW(v = decide("r", std::string(40, 'a'), &cert));
  EXPECT_EQ(v.kind, auth::Verdict::Kind::map_denied);
}

TEST(ConfFile, DevicesAreNotRead) {
  TempDir dir;
  const std::string a = dir.write("a.conf", "include /dev/zero\n");
  Diagnostics errors;
  config::read_conf_file(a, {}, "hba_file", errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("not a regular file"), std::string::npos) << errors[0].message;
}

TEST(Policy, InvalidRegexInARuleIsACompileError) {
  Diagnostics errors;
  auto rules = config::parse_hba_text("host /( all all cert\n", "pg_hba.conf", errors);
  ASSERT_TRUE(errors.empty());
  auto compiled = auth::Policy::compile(std::move(rules), {}, {});
  ASSERT_TRUE(std::holds_alternative<Diagnostics>(compiled));
  EXPECT_EQ(std::get<Diagnostics>(compiled)[0].where.line, 1);
}

}  // namespace
}  // namespace pgmtls
