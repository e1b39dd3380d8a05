#include "proxy/target_session.h"

#include <gtest/gtest.h>

namespace pgmtls::proxy {
namespace {

using A = config::TargetSessionAttrs;

TEST(TargetSessionAttrs, AsLibpqDefinesThem) {
  struct Case {
    A wanted;
    bool standby, read_only, matches;
  };
  // A standby is always read-only; a primary may have default_transaction_read_only on.
  const Case cases[] = {
      {A::any, false, false, true},
      {A::any, true, true, true},
      {A::read_write, false, false, true},
      {A::read_write, false, true, false},
      {A::read_write, true, true, false},
      {A::read_only, false, false, false},
      {A::read_only, false, true, true},
      {A::read_only, true, true, true},
      {A::primary, false, false, true},
      {A::primary, false, true, true},
      {A::primary, true, true, false},
      {A::standby, true, true, true},
      {A::standby, false, false, false},
      {A::prefer_standby, true, true, true},
      {A::prefer_standby, false, true, false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(session_attrs_mismatch(c.wanted, c.standby, c.read_only).empty(), c.matches)
        << to_string(c.wanted) << " standby=" << c.standby << " read_only=" << c.read_only;
  }
}

TEST(TargetSessionAttrs, UnreportedValuesMatchOnlyAny) {
  EXPECT_EQ(session_attrs_mismatch(A::any, std::nullopt, std::nullopt), "");
  for (A wanted : {A::read_write, A::read_only, A::primary, A::standby}) {
    EXPECT_NE(session_attrs_mismatch(wanted, std::nullopt, std::nullopt).find("PostgreSQL 14"),
              std::string::npos);
  }
  EXPECT_EQ(session_attrs_mismatch(A::primary, false, std::nullopt), "");
}

}  // namespace
}  // namespace pgmtls::proxy
