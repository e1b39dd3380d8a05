// The `pgmtls pki` CA database's text format: round trips, and every malformed line named.
#include "auth/ca_database.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>

namespace pgmtls::auth::pki {
namespace {

using ::testing::HasSubstr;

TEST(CaDatabaseTest, RoundTrips) {
  CaDatabase db;
  db.crl_number = 7;
  db.records.push_back(
      {0x1B5B0C4E9F2A6CF6ULL, 1827907200, "CN=app_user", std::nullopt, std::nullopt});
  db.records.push_back({0x2AULL, 1827907200, "CN=old user,O=Example\\, Inc.", 1796371200,
                        CRL_REASON_KEY_COMPROMISE});
  db.records.push_back({0x3ULL, 1827907200, "CN=x", 1796371200, std::nullopt});
  const std::string text = db.serialize();
  EXPECT_THAT(text, HasSubstr("crl_number 7\n"));
  EXPECT_THAT(text, HasSubstr("V 1B5B0C4E9F2A6CF6 20271204080000Z - - CN=app_user\n"));
  EXPECT_THAT(text, HasSubstr("R 000000000000002A 20271204080000Z 20261204080000Z keyCompromise "
                              "CN=old user,O=Example\\, Inc.\n"));
  const CaDatabase back = CaDatabase::parse(text);
  EXPECT_EQ(back.crl_number, 7u);
  ASSERT_EQ(back.records.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.records[i].serial, db.records[i].serial);
    EXPECT_EQ(back.records[i].not_after, db.records[i].not_after);
    EXPECT_EQ(back.records[i].subject, db.records[i].subject);
    EXPECT_EQ(back.records[i].revoked_at, db.records[i].revoked_at);
    EXPECT_EQ(back.records[i].reason, db.records[i].reason);
  }
}

TEST(CaDatabaseTest, MalformedLinesAreNamed) {
  auto error_of = [](const std::string& text) {
    try {
      CaDatabase::parse(text);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("parsed");
  };
  EXPECT_EQ(error_of("# c\n\ncrl_number x\n"), "line 3: crl_number must be followed by a number");
  EXPECT_THAT(error_of("X 1 20300101000000Z - - CN=a\n"), HasSubstr("line 1: a record starts"));
  EXPECT_THAT(error_of("V 12345678901234567 20300101000000Z - - CN=a\n"),
              HasSubstr("hexadecimal, at most 16 digits"));
  EXPECT_THAT(error_of("V 1 20301301000000Z - - CN=a\n"), HasSubstr("notAfter"));
  EXPECT_THAT(error_of("V 1 2030010100000Z - - CN=a\n"), HasSubstr("notAfter"));
  EXPECT_THAT(error_of("R 1 20300101000000Z - - CN=a\n"), HasSubstr("revocation time"));
  EXPECT_THAT(error_of("R 1 20300101000000Z 20300101000000Z bored CN=a\n"),
              HasSubstr("unknown revocation reason \"bored\""));
  EXPECT_THAT(error_of("V 1 20300101000000Z 20300101000000Z - CN=a\n"),
              HasSubstr("a valid record has -"));
  EXPECT_THAT(error_of("V 1 20300101000000Z - -\n"), HasSubstr("subject is missing"));
  EXPECT_THAT(error_of("V 1 20300101000000Z - - CN=a\nV 01 20300101000000Z - - CN=b\n"),
              HasSubstr("line 2: serial 0000000000000001 listed twice"));
}

TEST(CaDatabaseTest, ReasonNamesAreRfc5280s) {
  EXPECT_EQ(crl_reason_from_name("superseded"), CRL_REASON_SUPERSEDED);
  EXPECT_EQ(crl_reason_from_name("aACompromise"), CRL_REASON_AA_COMPROMISE);
  EXPECT_EQ(crl_reason_from_name("unspecified"), CRL_REASON_UNSPECIFIED);
  EXPECT_EQ(crl_reason_from_name(""), std::nullopt);  // the unused code 7 has no name
  EXPECT_EQ(crl_reason_from_name("KeyCompromise"), std::nullopt);
  EXPECT_EQ(crl_reason_name(CRL_REASON_CESSATION_OF_OPERATION), "cessationOfOperation");
}

TEST(CaDatabaseTest, GeneralizedTimeIsStrict) {
  EXPECT_EQ(generalized_time(0), "19700101000000Z");
  EXPECT_EQ(parse_generalized_time("20240229235959Z"), 1709251199);
  EXPECT_EQ(parse_generalized_time("20230229000000Z"), std::nullopt);  // no 29 February
  EXPECT_EQ(parse_generalized_time("2024022923595Z9"), std::nullopt);
  EXPECT_EQ(parse_generalized_time("20240229235959"), std::nullopt);
  EXPECT_EQ(parse_generalized_time("+0240229235959Z"), std::nullopt);
}

}  // namespace
}  // namespace pgmtls::auth::pki
