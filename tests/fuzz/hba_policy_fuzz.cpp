// pg_hba.conf and pg_ident.conf text through the whole access decision: parse_hba_text (with its
// column parsers), parse_ident_text, auth::Policy::compile (regular expressions for /names and
// map lines) and Policy::evaluate for a few requests and a synthetic certificate identity.
// Input: hba text, NUL, ident text. Inputs that would read other files (include directives,
// @file tokens) are skipped.
#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <variant>

#include "auth/identity.h"
#include "auth/policy.h"
#include "config/hba_file.h"
#include "config/ident_file.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;

namespace {

auth::CertificateIdentity make_identity(const std::vector<config::IdentLine>& ident) {
  auth::CertificateIdentity cert;
  cert.cn = "alice";
  // A plain identity from the maps makes admitting lines reachable.
  for (const auto& line : ident) {
    if (!line.identity.starts_with('/')) {
      cert.cn = line.identity;
      break;
    }
  }
  cert.subject_dn = "CN=" + cert.cn + ",O=Example\\, Inc.,C=US";
  cert.issuer_dn = "CN=Example Root CA,O=Example";
  cert.serial = "1A2B3C";
  cert.sha256_fingerprint = std::string(64, 'a');
  cert.san_dns = {cert.cn + ".example.com", "db.example.com"};
  cert.san_email = {cert.cn + "@example.com"};
  cert.san_uri = {"spiffe://example.com/ns/prod/sa/" + cert.cn};
  cert.ca_fingerprints = {std::string(64, 'b')};
  return cert;
}

void exercise(const auth::Policy& policy, const auth::AccessRequest& request,
              const auth::CertificateIdentity& cert) {
  std::vector<std::string> trace;
  const auto verdict = policy.evaluate(request, &cert, &trace);
  FUZZ_CHECK(!auth::to_string(verdict.kind).empty());
  if (verdict.admitted()) {
    FUZZ_CHECK(verdict.rule != nullptr);
    FUZZ_CHECK(!verdict.role.empty());
  } else {
    FUZZ_CHECK(!verdict.client_message.empty());
  }
  const auto anonymous = policy.evaluate(request, nullptr);
  FUZZ_CHECK(!anonymous.admitted());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_text(data, size), 2);
  if (fuzz::reads_files(parts[0], true) || fuzz::reads_files(parts[1], false)) return 0;

  config::Diagnostics errors;
  auto rules = config::parse_hba_text(parts[0], "pg_hba.conf", errors);
  auto ident = config::parse_ident_text(parts[1], "pg_ident.conf", errors);
  fuzz::render(errors);
  for (const auto& rule : rules) {
    FUZZ_CHECK(!rule.databases.empty() && !rule.users.empty());
    for (const auto& name : rule.databases)
      FUZZ_CHECK(!name.text.empty());
  }

  // Requests: fixed ones, and ones naming the rules' own databases and users.
  std::vector<auth::AccessRequest> requests;
  // As the StartupMessage parser guarantees: a user name, and a database (the user by default).
  auto add = [&](const char* address, std::string user, std::string database,
                 auth::AccessRequest::Replication replication) {
    if (user.empty()) return;
    if (database.empty()) database = user;
    auth::AccessRequest request;
    request.address = boost::asio::ip::make_address(address);
    request.user = std::move(user);
    request.database = std::move(database);
    request.replication = replication;
    requests.push_back(std::move(request));
  };
  using Replication = auth::AccessRequest::Replication;
  add("10.1.2.3", "alice", "app", Replication::none);
  add("::ffff:192.168.0.7", "postgres", "postgres", Replication::logical);
  add("2001:db8::1", "replicator", "replication", Replication::physical);
  for (std::size_t i = 0; i < rules.size() && i < 4; ++i) {
    add("127.0.0.1", rules[i].users.front().text, rules[i].databases.front().text,
        Replication::none);
  }
  for (std::size_t i = 0; i < ident.size() && i < 2; ++i)
    add("10.0.0.1", ident[i].role, "app", Replication::none);

  const auto cert = make_identity(ident);
  const std::string implicit_map = ident.empty() ? std::string() : ident.front().map;
  auth::PolicyDefaults defaults;
  defaults.identity = static_cast<config::IdentitySource>(size % 6);
  defaults.role_from_certificate = size % 2 == 0;

  auto compiled = auth::Policy::compile(std::move(rules), std::move(ident), defaults, implicit_map);
  if (auto* errs = std::get_if<config::Diagnostics>(&compiled)) {
    fuzz::render(*errs);
    return 0;
  }
  const auto& policy = std::get<auth::Policy>(compiled);
  // Matching never throws: a regex past Boost's complexity limit fails closed.
  for (const auto& request : requests)
    exercise(policy, request, cert);
  return 0;
}
