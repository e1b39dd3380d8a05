#include "protocol/session_features.h"

#include <gtest/gtest.h>

namespace pgmtls::protocol {
namespace {

TEST(SessionFeatures, RefusesCommandsThatOutliveTheTransaction) {
  EXPECT_EQ(session_feature("SET search_path = app"), "SET");
  EXPECT_EQ(session_feature("  set SESSION statement_timeout to 5"), "SET");
  EXPECT_EQ(session_feature("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"),
            "SET SESSION CHARACTERISTICS");
  EXPECT_EQ(session_feature("RESET ALL"), "RESET");
  EXPECT_EQ(session_feature("LISTEN jobs"), "LISTEN");
  EXPECT_EQ(session_feature("PREPARE q AS SELECT 1"), "PREPARE");
  EXPECT_EQ(session_feature("DEALLOCATE ALL"), "DEALLOCATE");
  EXPECT_EQ(session_feature("DISCARD ALL"), "DISCARD");
  EXPECT_EQ(session_feature("DECLARE c CURSOR WITH HOLD FOR SELECT 1"), "DECLARE ... WITH HOLD");
  EXPECT_EQ(session_feature("CREATE TEMP TABLE t (a int)"), "CREATE TEMPORARY TABLE");
  EXPECT_EQ(session_feature("create local temporary table t (a int)"), "CREATE TEMPORARY TABLE");
  EXPECT_EQ(session_feature("LOAD 'auto_explain'"), "LOAD");
}

TEST(SessionFeatures, AcceptsTransactionScopedForms) {
  for (const char* sql :
       {"SET LOCAL search_path = app", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET CONSTRAINTS ALL DEFERRED", "PREPARE TRANSACTION 'x'",
        "CREATE TEMP TABLE t (a int) ON COMMIT DROP", "DECLARE c CURSOR FOR SELECT 1", "SELECT 1",
        "UNLISTEN *", "", "BEGIN; SELECT 1; COMMIT", "CREATE TABLE settings (a int)"}) {
    EXPECT_EQ(session_feature(sql), "") << sql;
  }
}

TEST(SessionFeatures, LooksAtEveryStatementButNotInsideQuotesOrComments) {
  EXPECT_EQ(session_feature("SELECT 1; SET x = 1"), "SET");
  EXPECT_EQ(session_feature("SELECT 'a; SET x = 1'"), "");
  EXPECT_EQ(session_feature("SELECT E'it\\'s; SET x = 1'"), "");
  EXPECT_EQ(session_feature("SELECT 'it''s; LISTEN a'"), "");
  EXPECT_EQ(session_feature("SELECT \"a;\"\"SET\" FROM t"), "");
  EXPECT_EQ(session_feature("SELECT $$; SET x = 1$$"), "");
  EXPECT_EQ(session_feature("SELECT $tag$ $$; SET $tag$"), "");
  EXPECT_EQ(session_feature("SELECT $1; SET x = 1"), "SET");
  EXPECT_EQ(session_feature("-- SET x = 1\nSELECT 1"), "");
  EXPECT_EQ(session_feature("/* a /* nested */ SET x */ SELECT 1"), "");
  EXPECT_EQ(session_feature("/* comment */ SET x = 1"), "SET");
  // Unterminated quotes and comments end the text; nothing is read past the end.
  EXPECT_EQ(session_feature("SELECT 'open"), "");
  EXPECT_EQ(session_feature("/* open"), "");
  EXPECT_EQ(session_feature("SELECT $x$ open"), "");
}

}  // namespace
}  // namespace pgmtls::protocol
