#include "auth/ident_map.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgmtls::auth {
namespace {

using config::IdentLine;

IdentLine line(std::string map, std::string identity, std::string role, int line_no = 1) {
  return {std::move(map), std::move(identity), std::move(role), {"pg_ident.conf", line_no, 1}};
}

IdentMaps compile_ok(std::vector<IdentLine> lines) {
  auto compiled = IdentMaps::compile(std::move(lines));
  if (auto* errors = std::get_if<config::Diagnostics>(&compiled)) {
    std::string all;
    for (const auto& e : *errors)
      all += e.str() + "\n";
    ADD_FAILURE() << "unexpected compile errors:\n" << all;
    return std::get<IdentMaps>(IdentMaps::compile({}));
  }
  return std::move(std::get<IdentMaps>(compiled));
}

config::Diagnostics compile_errors(std::vector<IdentLine> lines) {
  auto compiled = IdentMaps::compile(std::move(lines));
  if (auto* errors = std::get_if<config::Diagnostics>(&compiled)) return *errors;
  return {};
}

TEST(IdentMaps, ExactLine) {
  const auto maps = compile_ok({line("certmap", "alice", "alice_role")});
  const auto d = maps.check("certmap", "alice", "alice_role");
  EXPECT_TRUE(d.allowed);
  ASSERT_NE(d.line, nullptr);
  EXPECT_EQ(d.line->identity, "alice");
  EXPECT_FALSE(maps.check("certmap", "alice", "alice").allowed);
  EXPECT_FALSE(maps.check("certmap", "alic", "alice_role").allowed);
  EXPECT_FALSE(maps.check("certmap", "alice2", "alice_role").allowed);
  EXPECT_FALSE(maps.check("certmap", "alice", "alice_role2").allowed);
  EXPECT_EQ(maps.check("certmap", "bob", "alice_role").line, nullptr);
}

TEST(IdentMaps, RegexWithBackreference) {
  const auto maps = compile_ok({line("certmap", "/^(.*)@example\\.com$", "\\1")});
  EXPECT_TRUE(maps.check("certmap", "bob@example.com", "bob").allowed);
  EXPECT_FALSE(maps.check("certmap", "bob@example.com", "alice").allowed);
  EXPECT_FALSE(maps.check("certmap", "bob@example.com", "bob@example.com").allowed);
  // `$` anchors the end: a suffix does not sneak in.
  EXPECT_FALSE(maps.check("certmap", "evil@example.com.attacker", "evil").allowed);
  EXPECT_FALSE(maps.check("certmap", "evil@example.com.attacker", "evil@example.com").allowed);
  // `\.` is a literal dot.
  EXPECT_FALSE(maps.check("certmap", "eve@exampleXcom", "eve").allowed);
}

// Anchors match only at the ends of the name, as in PostgreSQL: a CN with a line break must not
// satisfy ^...$ through one of its lines (found by the differential test against PostgreSQL).
TEST(IdentMaps, AnchorsDoNotMatchAtLineBreaks) {
  const auto maps = compile_ok({line("m", "/^([a-z]+)@example\\.com$", "\\1")});
  EXPECT_TRUE(maps.check("m", "bob@example.com", "bob").allowed);
  EXPECT_FALSE(maps.check("m", "mallory\nbob@example.com", "bob").allowed);
  EXPECT_FALSE(maps.check("m", "bob@example.com\nmallory", "bob").allowed);
  EXPECT_FALSE(maps.check("m", "bob@example.com\n", "bob").allowed);
}

TEST(IdentMaps, BackreferenceWithinALongerRole) {
  const auto maps = compile_ok({line("m", "/^svc-([a-z]+)$", "app_\\1_rw")});
  EXPECT_TRUE(maps.check("m", "svc-billing", "app_billing_rw").allowed);
  EXPECT_FALSE(maps.check("m", "svc-billing", "billing").allowed);
  EXPECT_FALSE(maps.check("m", "svc-billing", "app_\\1_rw").allowed);
}

TEST(IdentMaps, RegexSearchIsUnanchored) {
  const auto maps = compile_ok({line("m", "/admin", "postgres")});
  EXPECT_TRUE(maps.check("m", "admin", "postgres").allowed);
  EXPECT_TRUE(maps.check("m", "xadminx", "postgres").allowed);
  EXPECT_TRUE(maps.check("m", "sysadmin", "postgres").allowed);
  EXPECT_FALSE(maps.check("m", "adm in", "postgres").allowed);
}

TEST(IdentMaps, RoleAllAdmitsAnyRole) {
  const auto maps = compile_ok({line("m", "ops", "all")});
  EXPECT_TRUE(maps.check("m", "ops", "postgres").allowed);
  EXPECT_TRUE(maps.check("m", "ops", "anything").allowed);
  EXPECT_FALSE(maps.check("m", "dev", "postgres").allowed);
}

// PostgreSQL marks the role produced by \1 substitution as quoted, so it is compared literally and
// is never the keyword "all" (hba.c, check_ident_usermap). A certificate for all@example.com must
// not get every role.
TEST(IdentMaps, SubstitutedRoleAllIsNotTheKeyword) {
  const auto maps = compile_ok({line("certmap", "/^(.*)@example\\.com$", "\\1")});
  EXPECT_TRUE(maps.check("certmap", "all@example.com", "all").allowed);
  EXPECT_FALSE(maps.check("certmap", "all@example.com", "postgres").allowed);
}

// In pg_ident.conf a quoted "all" is a role name, not the keyword.
TEST(IdentMaps, QuotedAllInIdentFileIsNotTheKeyword) {
  config::Diagnostics errors;
  auto lines = config::parse_ident_text("certmap alice \"all\"\n", "pg_ident.conf", errors);
  ASSERT_TRUE(errors.empty());
  const auto maps = compile_ok(std::move(lines));
  EXPECT_TRUE(maps.check("certmap", "alice", "all").allowed);
  EXPECT_FALSE(maps.check("certmap", "alice", "postgres").allowed);
}

TEST(IdentMaps, RoleAsRegex) {
  const auto maps = compile_ok({line("m", "reporter", "/^ro_")});
  EXPECT_TRUE(maps.check("m", "reporter", "ro_sales").allowed);
  EXPECT_TRUE(maps.check("m", "reporter", "ro_").allowed);
  EXPECT_FALSE(maps.check("m", "reporter", "rw_sales").allowed);
  EXPECT_FALSE(maps.check("m", "reporter", "x_ro_sales").allowed);
  EXPECT_FALSE(maps.check("m", "other", "ro_sales").allowed);
}

TEST(IdentMaps, MatchingIsCaseSensitive) {
  const auto maps = compile_ok({line("m", "Alice", "alice"), line("m", "/^Bob$", "bob")});
  EXPECT_TRUE(maps.check("m", "Alice", "alice").allowed);
  EXPECT_FALSE(maps.check("m", "alice", "alice").allowed);
  EXPECT_FALSE(maps.check("m", "ALICE", "alice").allowed);
  EXPECT_FALSE(maps.check("m", "Alice", "Alice").allowed);
  EXPECT_TRUE(maps.check("m", "Bob", "bob").allowed);
  EXPECT_FALSE(maps.check("m", "bob", "bob").allowed);
}

TEST(IdentMaps, MapsAreKeptApart) {
  const auto maps = compile_ok({line("prod", "alice", "admin", 1), line("dev", "bob", "admin", 2),
                                line("prod", "carol", "reader", 3)});
  EXPECT_TRUE(maps.has_map("prod"));
  EXPECT_TRUE(maps.has_map("dev"));
  EXPECT_FALSE(maps.has_map("staging"));
  EXPECT_TRUE(maps.check("prod", "alice", "admin").allowed);
  EXPECT_FALSE(maps.check("dev", "alice", "admin").allowed);
  EXPECT_TRUE(maps.check("dev", "bob", "admin").allowed);
  EXPECT_FALSE(maps.check("prod", "bob", "admin").allowed);
  const auto d = maps.check("prod", "carol", "reader");
  ASSERT_TRUE(d.allowed);
  ASSERT_NE(d.line, nullptr);
  EXPECT_EQ(d.line->where.line, 3);
}

TEST(IdentMaps, UnknownMapAllowsNothing) {
  const auto maps = compile_ok({line("m", "alice", "alice")});
  const auto d = maps.check("nosuchmap", "alice", "alice");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.line, nullptr);
  const auto empty = compile_ok({});
  EXPECT_FALSE(empty.check("m", "alice", "alice").allowed);
}

TEST(IdentMaps, EveryLineIsTriedAndTheFirstAdmittingLineIsReported) {
  const auto maps = compile_ok({
      line("m", "/^(.*)$", "\\1", 1),   // identity matches, role differs for "admin"
      line("m", "alice", "reader", 2),  // exact, other role
      line("m", "/^ali", "admin", 3),   // admits admin
      line("m", "alice", "admin", 4),   // would also admit admin, later
  });
  auto d = maps.check("m", "alice", "admin");
  ASSERT_TRUE(d.allowed);
  ASSERT_NE(d.line, nullptr);
  EXPECT_EQ(d.line->where.line, 3);
  d = maps.check("m", "alice", "reader");
  ASSERT_TRUE(d.allowed);
  EXPECT_EQ(d.line->where.line, 2);
  d = maps.check("m", "alice", "alice");
  ASSERT_TRUE(d.allowed);
  EXPECT_EQ(d.line->where.line, 1);
  EXPECT_FALSE(maps.check("m", "alice", "postgres").allowed);
}

TEST(IdentMaps, InvalidRegexIsReportedAtItsLine) {
  const auto errors =
      compile_errors({line("m", "alice", "alice", 1), {"m", "/^(unclosed", "x", {"f.conf", 7, 9}}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.file, "f.conf");
  EXPECT_EQ(errors[0].where.line, 7);
  EXPECT_EQ(errors[0].where.column, 9);
  EXPECT_NE(errors[0].message.find("invalid regular expression"), std::string::npos);
  EXPECT_NE(errors[0].message.find("^(unclosed"), std::string::npos);
}

TEST(IdentMaps, InvalidRoleRegexIsReported) {
  const auto errors = compile_errors({{"m", "alice", "/[", {"f.conf", 2, 1}}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.line, 2);
}

TEST(IdentMaps, BackreferenceWithoutCaptureGroupIsReported) {
  const auto errors = compile_errors({{"m", "/^.*@example\\.com$", "\\1", {"f.conf", 4, 1}}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.line, 4);
  EXPECT_NE(errors[0].message.find("no subexpressions"), std::string::npos);
}

TEST(IdentMaps, AllErrorsAreCollected) {
  const auto errors = compile_errors({{"m", "/(", "a", {"f.conf", 1, 1}},
                                      {"m", "ok", "ok", {"f.conf", 2, 1}},
                                      {"m", "/x", "\\1", {"f.conf", 3, 1}}});
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].where.line, 1);
  EXPECT_EQ(errors[1].where.line, 3);
}

}  // namespace
}  // namespace pgmtls::auth
