// Differential test with PostgreSQL 15 as the oracle: the same client certificates, pg_hba.conf
// and pg_ident.conf go to a real PostgreSQL doing `cert` authentication over SSL and to pgmtls in
// front of a second PostgreSQL that trusts it. For every (certificate, user, database) both must
// admit or both must refuse; admitted, `SELECT current_user` must agree; refused, the FATAL
// messages must agree. No outcome is written down here: PostgreSQL's answer is the expectation.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/pgmtls_process.h"
#include "tests/integration/support/postgres_server.h"
#include "tests/integration/support/test_pki.h"

namespace pgmtls::integration {
namespace {

namespace fs = std::filesystem;
using Lines = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// The configuration, as segments of lines. The flat files are the segments joined in order; the
// "includes" layout puts each segment in its own file and stitches them with PostgreSQL 16's
// include directives (PostgreSQL 15, the oracle, always gets the flat files).

// pg_ident.conf. No PG16-only semantics (`all` or a regex in the role column).
const std::vector<Lines> kIdentSegments = {
    {
        // main file
        "# MAPNAME  SYSTEM-USERNAME               PG-USERNAME",
        "exact      alice                         analyst",
        "exact      carol                         carol",
        "exact      ALICE                         writer",
        "EXACT      alice                         writer",
    },
    {
        // ident_part.conf
        R"(rx         /^(.*)@example\.com$           \1)",
        "rx         /^ali                         writer",
        "rx         /lic                          analyst",
        R"(rx         /^(.*)@example\.com$           app_\1)",
        R"(strict     /^([a-z]+)@example\.com$       \1)",
    },
    {
        // ident.d/dn.conf: DN lines are quoted because their commas would split fields.
        R"(dnmap      "CN=dora,O=Example"           dora)",
        R"(dnmap      "CN=eve,O=Other"              analyst)",
        R"(dnmap      "CN=jürgen,O=Exämple"         analyst)",
        R"(dnmap      "CN=ivan,O=Example\, Inc."    writer)",
        R"(dnmap      "CN=j\C3\BCrgen,O=Ex\C3\A4mple" writer)",
        R"(dnrx       "/^CN=([a-z]+),O=Example$"    \1)",
    },
};

// pg_hba.conf: lines keyed by database name, so a case is (certificate, user, database).
const std::vector<Lines> kHbaSegments = {
    {
        // main file
        "hostssl      db_exact      all          all        cert",
        "hostssl      db_map        all          all        cert map=exact",
        "hostssl      db_regex      all          all        cert map=rx",
        "hostssl      db_strict     all          all        cert map=strict",
        "hostssl      db_dn         all          all        cert clientname=DN map=dnmap",
        "hostssl      db_dn_nomap   all          all        cert clientname=DN",
        "hostssl      db_clientcert all          all        cert clientcert=verify-full",
        "hostssl      db_cont       all          all  \\",
        "             cert map=exact",
    },
    {
        // hba_part.conf
        "hostssl      db_dnrx       all          all        cert clientname=DN map=dnrx",
        "hostssl      db_cn         all          all        cert clientname=CN map=exact",
        "hostssl      db_reject     all          all        reject",
        "hostssl      db_first      alice        all        reject",
        "hostssl      db_first      all          all        cert",
    },
    {
        // main file, after the include
        "hostssl      db_first2     all          all        cert map=exact",
        "hostssl      db_first2     all          all        cert",
        "hostssl      db_v4only     all          10.0.0.0/8 cert",
        "hostnossl    db_nossl      all          all        reject",
        "hostssl      db_nossl      all          all        cert",
        "host         db_host       all          all        reject",
        "hostssl      db_host       all          all        cert",
        "hostssl      replication   all          all        reject",
        R"(hostssl      "replication" all          all        cert)",
        R"(hostssl      "db,comma"    all          all        cert)",
    },
    {
        // hba.d/10-names.conf
        "hostssl      db_l1,db_l2   all          all        cert",
        "hostssl      @dbs.list     all          all        cert",
        "hostssl      sameuser      all          all        cert",
        "hostssl      db_users      alice        all        cert",
        "hostssl      db_users      carol,dora   all        cert",
        "hostssl      db_ufile      @users.list  all        cert",
        R"(hostssl      db_quser      "all"        all        cert)",
    },
    {
        // hba.d/20-addresses.conf (which then includes nested.inc)
        "hostssl      db_addr_all   all  all                        cert",
        "hostssl      db_samehost   all  samehost                   cert",
        "hostssl      db_samenet    all  samenet                    cert",
        "hostssl      db_cidr       all  127.0.0.0/8                cert",
        "hostssl      db_v6         all  ::1/128                    cert",
        "hostssl      db_mask       all  127.0.0.1 255.255.255.255  cert",
        "hostssl      db_mask_miss  all  10.1.2.3  255.255.255.255  cert",
        "hostssl      db_host32     all  127.0.0.1/32               cert",
        "hostssl      db_other32    all  127.0.0.2/32               cert",
        "hostssl      db_zero       all  0.0.0.0/0                  cert",
        "hostssl      db_v6any      all  ::/0                       cert",
        "hostssl      db_v4mapped   all  ::ffff:127.0.0.1/128       cert",
    },
    {
        // hba.d/nested.inc (not *.conf: reached only through the include in 20-addresses.conf)
        "hostnogssenc db_nogss      all          all        reject",
        "hostssl      db_nogss      all          all        cert",
        "hostgssenc   db_gss        all          all        reject",
        "hostssl      db_gss        all          all        cert",
    },
    {
        // present.conf, through include_if_exists
        R"(hostssl      "all"         all          all        cert)",
        R"(hostssl      all           "ALICE"      all        reject)",
        "hostssl      ALL           all          all        reject",
    },
};

// The @file lists the hba lines name.
const std::string kDbsList = "# databases\ndb_f1\ndb_f2\n";
const std::string kUsersList = "eve\n";

const Lines kRoles = {"alice",   "bob",    "carol",   "dora",   "eve",
                      "analyst", "writer", "app_bob", "jürgen", "CN=dora,O=Example"};
const Lines kDatabases = {
    "db_exact",    "db_map",   "db_regex",     "db_dn",         "db_dnrx",    "db_cn",
    "db_reject",   "db_first", "db_first2",    "db_v4only",     "db_nossl",   "db_host",
    "db_l1",       "db_l2",    "db_f1",        "db_f2",         "alice",      "carol",
    "db_users",    "db_ufile", "db_addr_all",  "db_samehost",   "db_samenet", "db_cidr",
    "db_v6",       "db_mask",  "db_mask_miss", "db_nogss",      "db_gss",     "all",
    "db_none",     "DB_EXACT", "db_dn_nomap",  "db_clientcert", "db_cont",    "replication",
    "db,comma",    "db",       "db_host32",    "db_other32",    "db_zero",    "db_v6any",
    "db_v4mapped", "ALL",      "db_strict",    "db_quser",
};

struct Case {
  std::string name;
  std::string cert;  // a TestPki client; empty: no client certificate
  std::string user;
  std::string database;
};

const std::vector<Case> kCases = {
    {"cn_equals_user", "alice", "alice", "db_exact"},
    {"cn_not_user", "alice", "bob", "db_exact"},
    {"cn_vs_user_case", "alice", "ALICE", "db_exact"},
    {"wrong_role_for_cert", "dora", "alice", "db_exact"},
    {"map_exact", "alice", "analyst", "db_map"},
    {"map_exact_no_self", "alice", "alice", "db_map"},
    {"map_regex_backref", "bob", "bob", "db_regex"},
    {"map_regex_backref_other", "bob", "alice", "db_regex"},
    {"map_regex_plain", "alice", "writer", "db_regex"},
    {"map_regex_no_match", "carol", "writer", "db_regex"},
    {"dn_map_exact", "dora", "dora", "db_dn"},
    {"dn_map_exact_other", "eve", "analyst", "db_dn"},
    {"dn_map_cn_only_cert", "alice", "analyst", "db_dn"},
    {"dn_map_regex", "dora", "dora", "db_dnrx"},
    {"dn_map_regex_wrong_org", "eve", "eve", "db_dnrx"},
    {"dn_map_utf8_raw", "jurgen", "analyst", "db_dn"},
    {"dn_map_utf8_hex_escaped", "jurgen", "writer", "db_dn"},
    {"dn_map_escaped_comma", "ivan", "writer", "db_dn"},
    {"dn_no_map_dn_user", "dora", "CN=dora,O=Example", "db_dn_nomap"},
    {"dn_no_map_cn_user", "dora", "dora", "db_dn_nomap"},
    {"cn_utf8", "jurgen", "jürgen", "db_exact"},
    {"clientname_cn_map", "alice", "analyst", "db_cn"},
    {"map_case_sensitive", "alice", "writer", "db_map"},
    {"map_regex_unanchored", "alice", "analyst", "db_regex"},
    {"map_regex_backref_mid", "bob", "app_bob", "db_regex"},
    {"map_name_case_sensitive", "alice", "writer", "db_map"},
    {"anchored_regex", "bob", "bob", "db_strict"},
    {"anchored_regex_newline_before", "nl-before", "bob", "db_strict"},
    {"anchored_regex_newline_after", "nl-after", "bob", "db_strict"},
    {"clientcert_verify_full", "alice", "alice", "db_clientcert"},
    {"line_continuation", "alice", "analyst", "db_cont"},
    {"replication_keyword", "alice", "alice", "replication"},
    {"quoted_comma_database", "alice", "alice", "db,comma"},
    {"quoted_comma_prefix", "alice", "alice", "db"},
    {"no_rule", "alice", "alice", "db_none"},
    {"database_case", "alice", "alice", "DB_EXACT"},
    {"reject_line", "alice", "alice", "db_reject"},
    {"first_line_rejects", "alice", "alice", "db_first"},
    {"first_line_other_user", "carol", "carol", "db_first"},
    {"first_line_cert_fails", "alice", "alice", "db_first2"},
    {"first_line_cert_ok", "alice", "analyst", "db_first2"},
    {"address_10_only", "alice", "alice", "db_v4only"},
    {"hostnossl_skipped", "alice", "alice", "db_nossl"},
    {"host_matches_ssl", "alice", "alice", "db_host"},
    {"db_list_first", "alice", "alice", "db_l1"},
    {"db_list_second", "carol", "carol", "db_l2"},
    {"db_file_first", "alice", "alice", "db_f1"},
    {"db_file_second", "dora", "dora", "db_f2"},
    {"sameuser", "alice", "alice", "alice"},
    {"sameuser_other_db", "alice", "alice", "carol"},
    {"user_name", "alice", "alice", "db_users"},
    {"user_list_first", "carol", "carol", "db_users"},
    {"user_list_second", "dora", "dora", "db_users"},
    {"user_not_listed", "eve", "eve", "db_users"},
    {"user_file", "eve", "eve", "db_ufile"},
    {"user_file_not_listed", "alice", "alice", "db_ufile"},
    {"quoted_all_user", "alice", "alice", "db_quser"},
    {"address_all", "alice", "alice", "db_addr_all"},
    {"address_samehost", "alice", "alice", "db_samehost"},
    {"address_samenet", "alice", "alice", "db_samenet"},
    {"address_cidr_127_8", "alice", "alice", "db_cidr"},
    {"address_v6_loopback", "alice", "alice", "db_v6"},
    {"address_mask_column", "alice", "alice", "db_mask"},
    {"address_mask_column_miss", "alice", "alice", "db_mask_miss"},
    {"address_host32", "alice", "alice", "db_host32"},
    {"address_other32", "alice", "alice", "db_other32"},
    {"address_zero", "alice", "alice", "db_zero"},
    {"address_v6_any", "alice", "alice", "db_v6any"},
    {"address_v4_mapped", "alice", "alice", "db_v4mapped"},
    {"hostnogssenc_matches_ssl", "alice", "alice", "db_nogss"},
    {"hostgssenc_skipped", "alice", "alice", "db_gss"},
    {"quoted_all_database", "alice", "alice", "all"},
    {"all_database_quoted_user", "alice", "ALICE", "db_none"},
    {"uppercase_all_is_a_name", "alice", "alice", "ALL"},
    {"intermediate_chain", "carol", "carol", "db_exact"},
    {"intermediate_chain_map", "carol", "carol", "db_map"},
    {"intermediate_wrong_role", "carol", "alice", "db_exact"},
    {"cert_unknown_ca", "unknown-ca", "alice", "db_exact"},
    {"cert_expired", "expired", "alice", "db_exact"},
    {"cert_not_yet_valid", "not-yet-valid", "alice", "db_exact"},
    {"cert_server_auth_only", "server-auth-only", "alice", "db_exact"},
    {"cert_chain_missing_intermediate", "carol-leaf-only", "carol", "db_exact"},
    {"cert_unknown_ca_reject_line", "unknown-ca", "alice", "db_reject"},
    {"no_cert_cert_line", "", "alice", "db_exact"},
    {"no_cert_reject_line", "", "alice", "db_reject"},
    {"no_cert_no_rule", "", "alice", "db_none"},
    {"no_cert_map_line", "", "analyst", "db_map"},
};

// ---------------------------------------------------------------------------------------------

std::string join(const Lines& lines) {
  std::string text;
  for (const auto& line : lines)
    text += line + "\n";
  return text;
}

std::string flatten(const std::vector<Lines>& segments) {
  std::string text;
  for (const auto& segment : segments)
    text += join(segment);
  return text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string quote_identifier(const std::string& name) {
  std::string quoted = "\"";
  for (const char c : name)
    quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// A directory removed on destruction.
struct TempDir {
  std::string path = make_temp_dir("pgmtls-diff");
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// The flat layout: pg_hba.conf, pg_ident.conf and the @file lists side by side.
void write_flat_layout(const std::string& dir) {
  write_text_file(dir + "/pg_hba.conf", flatten(kHbaSegments));
  write_text_file(dir + "/pg_ident.conf", flatten(kIdentSegments));
  write_text_file(dir + "/dbs.list", kDbsList);
  write_text_file(dir + "/users.list", kUsersList);
}

// The same lines spread over files joined by include, include_if_exists and include_dir, with
// relative paths that resolve against the including file's directory (also for @file).
void write_includes_layout(const std::string& dir) {
  const auto& h = kHbaSegments;
  fs::create_directory(dir + "/hba.d");
  write_text_file(dir + "/pg_hba.conf",
                  join(h[0]) + "include hba_part.conf\n" + join(h[2]) + "include_dir hba.d\n" +
                      "include_if_exists absent.conf\n" + "include_if_exists present.conf\n");
  write_text_file(dir + "/hba_part.conf", join(h[1]));
  write_text_file(dir + "/hba.d/10-names.conf", join(h[3]));
  write_text_file(dir + "/hba.d/20-addresses.conf", join(h[4]) + "include nested.inc\n");
  write_text_file(dir + "/hba.d/nested.inc", join(h[5]));
  // Not *.conf: include_dir must skip it, or every connection would be rejected.
  write_text_file(dir + "/hba.d/00-disabled.conf.off", "hostssl all all all reject\n");
  write_text_file(dir + "/hba.d/dbs.list", kDbsList);
  write_text_file(dir + "/hba.d/users.list", kUsersList);
  write_text_file(dir + "/present.conf", join(h[6]));

  const auto& i = kIdentSegments;
  fs::create_directory(dir + "/ident.d");
  write_text_file(dir + "/pg_ident.conf",
                  join(i[0]) + "include ident_part.conf\ninclude_dir ident.d\n");
  write_text_file(dir + "/ident_part.conf", join(i[1]));
  write_text_file(dir + "/ident.d/dn.conf", join(i[2]));
}

// What a server did with one connection attempt.
struct Outcome {
  bool admitted = false;
  std::string current_user;  // admitted: the query's answer (or its error)
  std::string message;       // refused: the normalised error

  std::string verdict() const {
    return admitted ? "admit as " + current_user : "refuse: " + message;
  }
};

// libpq's verbose error, reduced to what the server said: "FATAL 28000: text" for a FATAL
// response (libpq's "connection to server at ... failed: " prefix and the LOCATION line dropped);
// otherwise the message after that prefix, lines joined.
std::string normalise_error(const std::string& error) {
  const std::string fatal = "FATAL:  ";
  const auto at = error.find(fatal);
  if (at != std::string::npos) {
    const auto begin = at + fatal.size();
    const auto end = error.find('\n', begin);
    return "FATAL " + error.substr(begin, end == std::string::npos ? end : end - begin);
  }
  std::string rest = error;
  const std::string prefix = "connection to server at ";
  if (rest.compare(0, prefix.size(), prefix) == 0) {
    const auto failed = rest.find("failed: ");
    if (failed != std::string::npos) rest = rest.substr(failed + 8);
  }
  for (auto& c : rest)
    if (c == '\n') c = ' ';
  return rest;
}

Outcome attempt(std::uint16_t port, const TestPki& pki, const Case& c) {
  const ClientCertificate* cert = c.cert.empty() ? nullptr : &pki.client(c.cert);
  const ConnectResult connected =
      pg_connect(tls_conninfo(port, pki.root_ca_file(), cert, c.user, c.database));
  Outcome outcome;
  if (!connected.ok()) {
    outcome.message = normalise_error(connected.error);
    return outcome;
  }
  outcome.admitted = true;
  const QueryResult who = query(connected.conn.get(), "SELECT current_user");
  outcome.current_user =
      who.ok() ? who.value.value_or("(null)") : "(query failed: " + who.error + ")";
  return outcome;
}

// Characters in a UTF-8 string (continuation bytes do not count), for the table's columns.
std::size_t display_width(const std::string& text) {
  std::size_t chars = 0;
  for (const char c : text)
    chars += (static_cast<unsigned char>(c) & 0xC0) == 0x80 ? 0 : 1;
  return chars;
}

// Pads to `width` characters.
std::string pad(const std::string& text, std::size_t width) {
  const std::size_t chars = display_width(text);
  return chars >= width ? text : text + std::string(width - chars, ' ');
}

class DifferentialTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pki_ = std::make_unique<TestPki>(0);
      auth::pki::CertificateSpec spec;
      spec.client_auth = true;
      spec.not_after = std::chrono::days(30);
      spec.common_name = "dora";
      spec.organization = "Example";
      pki_->add_client("dora", spec);
      spec.common_name = "eve";
      spec.organization = "Other";
      pki_->add_client("eve", spec);
      spec.common_name = "jürgen";
      spec.organization = "Exämple";
      pki_->add_client("jurgen", spec);
      spec.common_name = "ivan";
      spec.organization = "Example, Inc.";
      pki_->add_client("ivan", spec);
      // Common names with a line break, against a regex anchored with ^ and $.
      spec.organization.clear();
      spec.common_name = "mallory\nbob@example.com";
      pki_->add_client("nl-before", spec);
      spec.common_name = "bob@example.com\nmallory";
      pki_->add_client("nl-after", spec);

      // The oracle reads the flat files from its data directory. Its one extra line, for the
      // superuser over the Unix socket, cannot match a TCP connection.
      PostgresOptions oracle;
      oracle.settings = {"ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key",
                         "ssl_ca_file=root.crt"};
      oracle.data_files = {
          {"pg_hba.conf", "local all postgres trust\n" + flatten(kHbaSegments)},
          {"pg_ident.conf", flatten(kIdentSegments)},
          {"dbs.list", kDbsList},
          {"users.list", kUsersList},
          {"server.crt", read_text(pki_->server_cert_file())},
          {"server.key", read_text(pki_->server_key_file())},
          {"root.crt", read_text(pki_->root_ca_file())},
      };
      // The servers start on this thread: their processes die with the thread that spawned them
      // (PR_SET_PDEATHSIG). Filling them with the same roles and databases runs side by side.
      oracle_ = std::make_unique<PostgresServer>(oracle);
      backend_ = std::make_unique<PostgresServer>();
      const auto fill = [](const PostgresServer* server) {
        std::string sql;
        for (const auto& role : kRoles)
          sql += "CREATE ROLE " + quote_identifier(role) + " LOGIN;";
        server->exec(sql);
        for (const auto& db : kDatabases)
          server->exec("CREATE DATABASE " + quote_identifier(db) + " STRATEGY FILE_COPY");
      };
      auto filled = std::async(std::launch::async, fill, backend_.get());
      fill(oracle_.get());
      filled.get();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void TearDownTestSuite() {
    oracle_.reset();
    backend_.reset();
    pki_.reset();
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // Runs every case against the oracle and against pgmtls configured from `dir`, prints the
  // table and fails on any disagreement.
  void compare(const std::string& scenario, const std::string& dir) {
    ProxyConfig config = base_proxy_config(*pki_, backend_->port());
    config.ident_file = dir + "/pg_ident.conf";
    config.extra_yaml = "hba_file: " + dir + "/pg_hba.conf\n";
    std::unique_ptr<PgmtlsProcess> proxy;
    try {
      proxy = std::make_unique<PgmtlsProcess>(dir + "/pgmtls.yaml", config.to_yaml());
    } catch (const std::exception& e) {
      FAIL() << "pgmtls did not start with the " << scenario << " files: " << e.what()
             << "\npgmtls check says:\n"
             << run_pgmtls_check(dir + "/pgmtls.yaml").output;
    }

    struct Row {
      const Case* c;
      Outcome oracle, proxy;
      bool verdict_match, message_match;
    };
    std::vector<Row> rows;
    for (const auto& c : kCases) {
      Row row{&c, attempt(oracle_->port(), *pki_, c), attempt(proxy->port(), *pki_, c), false,
              false};
      row.verdict_match = row.oracle.admitted == row.proxy.admitted;
      row.message_match = row.verdict_match &&
                          (row.oracle.admitted ? row.oracle.current_user == row.proxy.current_user
                                               : row.oracle.message == row.proxy.message);
      rows.push_back(std::move(row));
    }

    std::ostringstream table;
    int admitted = 0, verdict_mismatches = 0, other_mismatches = 0;
    table << "\n=== differential: " << scenario << " (" << rows.size()
          << " cases; PostgreSQL 15 is the oracle) ===\n";
    const std::string prefix = scenario.substr(0, 4) + "/";
    std::size_t case_w = 4, cert_w = 4, user_w = 4, db_w = 8;
    for (const auto& c : kCases) {
      case_w = std::max(case_w, display_width(prefix + c.name));
      cert_w = std::max(cert_w, display_width(c.cert));
      user_w = std::max(user_w, display_width(c.user));
      db_w = std::max(db_w, display_width(c.database));
    }
    table << "| " << pad("case", case_w) << " | " << pad("cert", cert_w) << " | "
          << pad("user", user_w) << " | " << pad("database", db_w) << " | " << pad("PostgreSQL", 40)
          << " | " << pad("pgmtls", 20) << " | result |\n";
    for (const auto& row : rows) {
      const Case& c = *row.c;
      admitted += row.oracle.admitted ? 1 : 0;
      std::string proxy_column;
      if (!row.verdict_match) {
        proxy_column = row.proxy.verdict();
      } else if (row.oracle.admitted) {
        proxy_column = row.proxy.verdict();
      } else {
        proxy_column = row.message_match ? "refuse (same message)" : row.proxy.verdict();
      }
      std::string result = "match";
      if (!row.verdict_match) {
        result = "MISMATCH (verdict)";
        ++verdict_mismatches;
      } else if (!row.message_match) {
        result = row.oracle.admitted ? "MISMATCH (current_user)" : "MISMATCH (message)";
        ++other_mismatches;
      }
      table << "| " << pad(prefix + c.name, case_w) << " | "
            << pad(c.cert.empty() ? "-" : c.cert, cert_w) << " | " << pad(c.user, user_w) << " | "
            << pad(c.database, db_w) << " | " << pad(row.oracle.verdict(), 40) << " | "
            << pad(proxy_column, 20) << " | " << result << " |\n";
    }
    table << "=== " << scenario << ": " << admitted << " admitted and " << rows.size() - admitted
          << " refused by PostgreSQL; " << verdict_mismatches << " verdict mismatches, "
          << other_mismatches << " message/current_user mismatches ===\n";
    std::cout << table.str() << std::flush;

    // A broken setup would make both sides refuse everything alike.
    EXPECT_GT(admitted, 0) << "PostgreSQL admitted no case: the oracle is misconfigured";
    EXPECT_LT(admitted, static_cast<int>(rows.size()))
        << "PostgreSQL refused no case: the oracle is misconfigured";
    // Admit/refuse first, so that every disagreement of either kind is listed.
    for (const auto& row : rows) {
      EXPECT_TRUE(row.verdict_match) << scenario << "/" << row.c->name << ": PostgreSQL "
                                     << row.oracle.verdict() << "; pgmtls " << row.proxy.verdict();
    }
    for (const auto& row : rows) {
      if (!row.verdict_match) continue;
      EXPECT_TRUE(row.message_match)
          << scenario << "/" << row.c->name << ":\n  PostgreSQL: " << row.oracle.verdict()
          << "\n  pgmtls:     " << row.proxy.verdict();
    }
    EXPECT_TRUE(proxy->running()) << "pgmtls died during the " << scenario << " cases";
    // pgmtls's own account of each disagreement (its log names user and database).
    const auto logged = [](const std::string& line, const std::string& key,
                           const std::string& value) {
      return line.find(key + "=" + value + " ") != std::string::npos ||
             line.find(key + "=\"" + value + "\" ") != std::string::npos;
    };
    for (const auto& row : rows) {
      if (row.message_match) continue;
      std::cerr << "pgmtls log for " << scenario << "/" << row.c->name << ":\n";
      for (const auto& line : proxy->log_lines()) {
        if (logged(line, "user", row.c->user) && logged(line, "database", row.c->database)) {
          std::cerr << "  " << line << "\n";
        }
      }
    }
  }

  static inline std::unique_ptr<TestPki> pki_;
  static inline std::unique_ptr<PostgresServer> oracle_;
  static inline std::unique_ptr<PostgresServer> backend_;
  static inline std::string setup_error_;
};

TEST_F(DifferentialTest, SameFilesAsPostgres) {
  TempDir dir;
  write_flat_layout(dir.path);
  compare("flat", dir.path);
}

// pgmtls gets the lines through PostgreSQL 16's include directives; PostgreSQL 15 (which has
// none) keeps the flat files with the same lines in the same order, so its answers do not change.
TEST_F(DifferentialTest, IncludeDirectivesMatchFlattenedFiles) {
  TempDir dir;
  write_includes_layout(dir.path);
  compare("includes", dir.path);
}

}  // namespace
}  // namespace pgmtls::integration
