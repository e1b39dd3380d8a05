#include "auth/scram.h"

#include <gtest/gtest.h>

namespace pgmtls::auth {
namespace {

using Binding = ScramClient::ChannelBinding;

// RFC 7677 section 3: user "user", password "pencil".
constexpr const char* kClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr const char* kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kWithoutProof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

TEST(Scram, Rfc7677ExampleExchange) {
  ScramClient scram("pencil", Binding::none, {}, kClientNonce, "user");
  EXPECT_EQ(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  auto final_message = scram.client_final(kServerFirst);
  ASSERT_TRUE(final_message) << scram.error();
  EXPECT_EQ(*final_message,
            std::string(kWithoutProof) + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  EXPECT_TRUE(scram.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
      << scram.error();
}

// As PostgreSQL is spoken: an empty SCRAM user name (values computed independently with Python's
// hashlib and hmac from the RFC's salt, nonces and password).
TEST(Scram, EmptyUserNameAsLibpqSendsIt) {
  ScramClient scram("pencil", Binding::none, {}, kClientNonce);
  EXPECT_EQ(scram.client_first(), "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
  auto final_message = scram.client_final(kServerFirst);
  ASSERT_TRUE(final_message) << scram.error();
  EXPECT_EQ(*final_message,
            std::string(kWithoutProof) + ",p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k=");
  EXPECT_TRUE(scram.verify_server_final("v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg="));
}

TEST(Scram, WrongServerSignatureIsRefused) {
  ScramClient scram("pencil", Binding::none, {}, kClientNonce, "user");
  ASSERT_TRUE(scram.client_final(kServerFirst));
  // The signature for another password: a server that does not know the verifier.
  EXPECT_FALSE(scram.verify_server_final("v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg="));
  EXPECT_NE(scram.error().find("does not know the password"), std::string::npos);
}

TEST(Scram, ServerErrorAttributeIsReported) {
  ScramClient scram("pencil", Binding::none, {}, kClientNonce);
  ASSERT_TRUE(scram.client_final(kServerFirst));
  EXPECT_FALSE(scram.verify_server_final("e=invalid-proof"));
  EXPECT_NE(scram.error().find("invalid-proof"), std::string::npos);
}

TEST(Scram, ServerFinalBeforeServerFirstIsRefused) {
  ScramClient scram("pencil", Binding::none, {}, kClientNonce);
  EXPECT_FALSE(scram.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
}

struct BadServerFirst {
  const char* name;
  const char* message;
  const char* error;
};

class ScramBadServerFirst : public ::testing::TestWithParam<BadServerFirst> {};

TEST_P(ScramBadServerFirst, IsRefused) {
  ScramClient scram("pencil", Binding::none, {}, kClientNonce);
  EXPECT_FALSE(scram.client_final(GetParam().message));
  EXPECT_NE(scram.error().find(GetParam().error), std::string::npos) << scram.error();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ScramBadServerFirst,
    ::testing::Values(
        BadServerFirst{"empty", "", "malformed"},
        BadServerFirst{"no_salt", "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", "malformed"},
        BadServerFirst{"foreign_nonce", "r=somebodyelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                       "nonce"},
        BadServerFirst{"same_nonce", "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                       "nonce"},
        BadServerFirst{"bad_salt", "r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096", "salt"},
        BadServerFirst{"zero_iterations", "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
                       "out of range"},
        BadServerFirst{"huge_iterations",
                       "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4000000000",
                       "out of range"},
        BadServerFirst{"mandatory_extension",
                       "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                       "extension"},
        BadServerFirst{"garbage", "\x01\x02\x03", "malformed"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Scram, ChannelBindingGoesIntoTheGs2Header) {
  ScramClient plus("pencil", Binding::tls_server_end_point, {0xde, 0xad}, kClientNonce);
  EXPECT_EQ(plus.client_first(), "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO");
  auto final_message = plus.client_final(kServerFirst);
  ASSERT_TRUE(final_message);
  // c= is base64("p=tls-server-end-point,," + 0xde 0xad).
  EXPECT_EQ(final_message->rfind("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws3q0=,", 0), 0u)
      << *final_message;

  ScramClient y("pencil", Binding::unsupported, {}, kClientNonce);
  EXPECT_EQ(y.client_first(), "y,,n=,r=rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(y.client_final(kServerFirst)->rfind("c=eSws,", 0), 0u);
}

TEST(Scram, UserNameIsEscaped) {
  ScramClient scram("pw", Binding::none, {}, "abc", "a,b=c");
  EXPECT_EQ(scram.client_first(), "n,,n=a=2Cb=3Dc,r=abc");
}

TEST(Md5Password, MatchesPostgresFormula) {
  const std::uint8_t salt[4] = {1, 2, 3, 4};
  // md5(md5("s3cret" + "alice") hex + salt), computed with Python's hashlib.
  EXPECT_EQ(md5_password("alice", "s3cret", salt), "md5b79948bbeb35dee03ab8fe15a839030b");
}

TEST(Base64, RoundTripsAndRejectsGarbage) {
  for (std::string text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const std::string encoded =
        base64_encode(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(std::string(decoded->begin(), decoded->end()), text);
  }
  EXPECT_EQ(base64_encode(reinterpret_cast<const std::uint8_t*>("foobar"), 6), "Zm9vYmFy");
  EXPECT_FALSE(base64_decode("abc"));
  EXPECT_FALSE(base64_decode("ab!="));
}

}  // namespace
}  // namespace pgmtls::auth
