#include "config/ident_file.h"

#include <gtest/gtest.h>

#include <string>

namespace pgmtls::config {
namespace {

TEST(IdentFile, CommentsAndBlankLinesAreSkipped) {
  Diagnostics errors;
  const auto lines = parse_ident_text(
      "# MAPNAME SYSTEM-USERNAME PG-USERNAME\n"
      "\n"
      "   \t  \n"
      "certmap alice alice   # trailing comment\n"
      "  certmap\tbob\tbob_role\n"
      "#certmap mallory postgres\n",
      "pg_ident.conf", errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].map, "certmap");
  EXPECT_EQ(lines[0].identity, "alice");
  EXPECT_EQ(lines[0].role, "alice");
  EXPECT_EQ(lines[0].where.file, "pg_ident.conf");
  EXPECT_EQ(lines[0].where.line, 4);
  EXPECT_EQ(lines[0].where.column, 1);
  EXPECT_EQ(lines[1].map, "certmap");
  EXPECT_EQ(lines[1].identity, "bob");
  EXPECT_EQ(lines[1].role, "bob_role");
  EXPECT_EQ(lines[1].where.line, 5);
  EXPECT_EQ(lines[1].where.column, 3);
}

TEST(IdentFile, CrLfLineEndings) {
  Diagnostics errors;
  const auto lines = parse_ident_text("m a b\r\nm c d\r\n", "f", errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].role, "b");
  EXPECT_EQ(lines[1].identity, "c");
  EXPECT_EQ(lines[1].role, "d");
  EXPECT_EQ(lines[1].where.line, 2);
}

TEST(IdentFile, QuotedFieldsKeepSpacesAndHashes) {
  Diagnostics errors;
  const auto lines = parse_ident_text(
      "certmap \"CN=Alice Smith,O=Example # Corp\" alice\n"
      "certmap \"say \"\"hi\"\"\" \"role with space\"\n",
      "pg_ident.conf", errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].identity, "CN=Alice Smith,O=Example # Corp");
  EXPECT_EQ(lines[0].role, "alice");
  EXPECT_EQ(lines[1].identity, "say \"hi\"");
  EXPECT_EQ(lines[1].role, "role with space");
}

TEST(IdentFile, QuotedRegexLine) {
  Diagnostics errors;
  const auto lines =
      parse_ident_text("certmap \"/^(.*)@example\\.com$\" \\1\n", "pg_ident.conf", errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].identity, "/^(.*)@example\\.com$");
  EXPECT_EQ(lines[0].role, "\\1");
}

TEST(IdentFile, WrongFieldCountIsReportedWithItsLine) {
  Diagnostics errors;
  const auto lines = parse_ident_text(
      "certmap alice alice\n"
      "# comment\n"
      "  certmap bob\n"
      "certmap carol carol extra\n"
      "certmap dave dave\n",
      "pg_ident.conf", errors);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].where.line, 3);
  EXPECT_EQ(errors[0].where.column, 3);
  EXPECT_EQ(errors[0].str().rfind("pg_ident.conf:3:3: ", 0), 0u) << errors[0].str();
  EXPECT_NE(errors[0].message.find("exactly 3 fields"), std::string::npos);
  EXPECT_NE(errors[0].message.find("found 2"), std::string::npos);
  EXPECT_EQ(errors[1].where.line, 4);
  EXPECT_NE(errors[1].message.find("found 4"), std::string::npos);
  // Lines in error are skipped, the others are kept.
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].identity, "alice");
  EXPECT_EQ(lines[1].identity, "dave");
  EXPECT_EQ(lines[1].where.line, 5);
}

TEST(IdentFile, UnterminatedQuoteIsAnError) {
  Diagnostics errors;
  const auto lines = parse_ident_text(
      "certmap ok ok\n"
      "certmap \"alice alice\n",
      "pg_ident.conf", errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.file, "pg_ident.conf");
  EXPECT_EQ(errors[0].where.line, 2);
  EXPECT_NE(errors[0].message.find("unterminated"), std::string::npos);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].identity, "ok");
}

TEST(IdentFile, LastLineWithoutNewline) {
  Diagnostics errors;
  const auto lines = parse_ident_text("m a b\nm c d", "f", errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].role, "d");
}

TEST(IdentFile, EmptyText) {
  Diagnostics errors;
  EXPECT_TRUE(parse_ident_text("", "f", errors).empty());
  EXPECT_TRUE(errors.empty());
}

TEST(IdentFile, LoadFromCorpus) {
  Diagnostics errors;
  const std::string path = std::string(PGMTLS_TEST_DATA_DIR) + "/config/ident/pg_ident.conf";
  const auto lines = load_ident_file(path, {"pgmtls.yaml", 7, 13}, errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1].identity, "/^(.*)@example\\.com$");
  EXPECT_EQ(lines[1].role, "\\1");
  EXPECT_EQ(lines[1].where.file, path);
  EXPECT_EQ(lines[1].where.line, 3);
  EXPECT_EQ(lines[3].map, "readonly");
  EXPECT_EQ(lines[3].where.line, 6);
}

TEST(IdentFile, UnreadableFileIsReportedWhereItIsReferenced) {
  Diagnostics errors;
  const auto lines = load_ident_file(std::string(PGMTLS_TEST_DATA_DIR) + "/config/ident/nope.conf",
                                     {"pgmtls.yaml", 7, 13}, errors);
  EXPECT_TRUE(lines.empty());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].str().rfind("pgmtls.yaml:7:13: cannot read ident_file \"", 0), 0u)
      << errors[0].str();
}

}  // namespace
}  // namespace pgmtls::config
