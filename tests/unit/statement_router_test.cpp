// The router as pool_mode: transaction will drive it: client messages in, backend bytes through,
// checked against what PostgreSQL answers in the protocol (one ParseComplete per Parse, one
// CloseComplete per Close, nothing after an error until ReadyForQuery).
#include "proxy/statement_router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/builders.h"
#include "protocol/frontend.h"

namespace pgmtls::proxy {
namespace {

using Buffer = std::vector<std::uint8_t>;

protocol::Message as_message(const Buffer& bytes) {
  return {static_cast<char>(bytes[0]), protocol::Bytes(bytes).subspan(5), bytes.size()};
}

Buffer parse(std::string_view name, std::string_view query) {
  Buffer out;
  static constexpr std::uint8_t kNoTypes[] = {0, 0};
  protocol::append_parse(out, name, query, protocol::Bytes(kNoTypes, 2));
  return out;
}
Buffer bind(std::string_view statement) {
  Buffer out;
  protocol::append_bind(out, "", statement);
  return out;
}
Buffer sync() {
  Buffer out;
  protocol::append_sync(out);
  return out;
}
Buffer backend(std::string_view types) {  // bodiless backend messages, and Z as idle
  Buffer out;
  for (char t : types) {
    if (t == 'Z') {
      auto z = protocol::ready_for_query('I');
      out.insert(out.end(), z.begin(), z.end());
    } else {
      out.insert(out.end(), {static_cast<std::uint8_t>(t), 0, 0, 0, 4});
    }
  }
  return out;
}

// The type bytes of a stream of whole messages.
std::string types(const Buffer& bytes) {
  std::string t;
  for (std::size_t i = 0; i + 5 <= bytes.size();) {
    t.push_back(static_cast<char>(bytes[i]));
    i += 1 + protocol::read_u32(&bytes[i + 1]);
  }
  return t;
}

struct StatementRouterTest : ::testing::Test {
  BackendStatements conn_a, conn_b;
  StatementRouter router{1, 2};

  std::string send(const std::vector<Buffer>& messages) {
    Buffer out;
    for (const auto& m : messages)
      router.client_message(as_message(m), out);
    sent.insert(sent.end(), out.begin(), out.end());
    return types(out);
  }
  std::string answer(std::string_view backend_types) {
    Buffer out;
    router.backend_bytes(backend(backend_types), out);
    return types(out);
  }
  Buffer sent;
};

TEST_F(StatementRouterTest, NamedStatementFollowsTheClientToAnotherConnection) {
  router.attach(conn_a);
  EXPECT_EQ(send({parse("s1", "SELECT 1"), sync()}), "PS");
  EXPECT_EQ(answer("1Z"), "1Z");
  EXPECT_TRUE(router.settled());
  router.detach();
  router.attach(conn_b);
  // conn_b has never seen it: a Parse goes first, and its ParseComplete stays with pgmtls.
  EXPECT_EQ(send({bind("s1"), sync()}), "PBS");
  EXPECT_EQ(answer("12Z"), "2Z");
  // Now it has it: the Bind goes alone, renamed.
  EXPECT_EQ(send({bind("s1"), sync()}), "BS");
  static constexpr std::uint8_t kNoTypes[] = {0, 0};
  const auto name = StatementRouter::server_name("SELECT 1", protocol::Bytes(kNoTypes, 2));
  EXPECT_NE(std::string(sent.begin(), sent.end()).find(name), std::string::npos);
  EXPECT_EQ(std::string(sent.begin(), sent.end()).find("s1"), std::string::npos);
}

TEST_F(StatementRouterTest, ParseOfAStatementTheConnectionHasBecomesACloseAnsweredAsParseComplete) {
  router.attach(conn_a);
  send({parse("s1", "SELECT 1"), sync()});
  answer("1Z");
  EXPECT_EQ(send({parse("s2", "SELECT 1"), sync()}), "CS");
  EXPECT_EQ(answer("3Z"), "1Z");
}

TEST_F(StatementRouterTest, AnErrorForgetsTheParsesOfItsSegment) {
  router.attach(conn_a);
  send({bind("unknown"), parse("s1", "SELECT 1"), sync()});
  EXPECT_EQ(answer("EZ"), "EZ");  // the Bind failed; the Parse was skipped
  EXPECT_TRUE(router.settled());
  // So s1 does not exist, for the backend or the client: its Bind goes as the client sent it,
  // for PostgreSQL to answer that there is no such statement.
  EXPECT_EQ(send({bind("s1"), sync()}), "BS");
  EXPECT_NE(std::string(sent.begin(), sent.end()).rfind("s1"), std::string::npos);
}

TEST_F(StatementRouterTest, ANameInUseIsTheClientsErrorOnceItsParseSucceeded) {
  router.attach(conn_a);
  send({parse("s1", "SELECT 1"), sync()});
  answer("1Z");
  // PostgreSQL's 42P05 in place of the answer to a Bind that fails at the backend.
  EXPECT_EQ(send({parse("s1", "SELECT 2"), sync()}), "BS");
  auto missing = protocol::error_response({.severity = "ERROR",
                                           .sqlstate = "26000",
                                           .message = "prepared statement "
                                                      "\"pgmtls_unprepared\" does not exist"});
  Buffer out;
  router.backend_bytes(missing, out);
  router.backend_bytes(backend("Z"), out);
  const std::string text(out.begin(), out.end());
  EXPECT_NE(text.find("42P05"), std::string::npos);
  EXPECT_NE(text.find("prepared statement \"s1\" already exists"), std::string::npos);
  // s1 is still the first statement.
  const std::size_t mark = sent.size();
  EXPECT_EQ(send({bind("s1"), sync()}), "BS");
  static constexpr std::uint8_t kNoTypes[] = {0, 0};
  const std::string bound(sent.begin() + static_cast<std::ptrdiff_t>(mark), sent.end());
  EXPECT_NE(bound.find(StatementRouter::server_name("SELECT 1", protocol::Bytes(kNoTypes, 2))),
            std::string::npos);
}

TEST_F(StatementRouterTest, AFailedParseLeavesTheNameFree) {
  router.attach(conn_a);
  send({parse("s1", "SELEC 1"), sync()});
  EXPECT_EQ(answer("EZ"), "EZ");
  EXPECT_EQ(send({parse("s1", "SELECT 1"), sync()}), "PS");
  EXPECT_EQ(answer("1Z"), "1Z");
  // A Parse skipped after an earlier error of its segment did not happen either.
  send({bind("unknown"), parse("s2", "SELECT 2"), sync()});
  EXPECT_EQ(answer("EZ"), "EZ");
  EXPECT_EQ(send({parse("s2", "SELECT 2"), sync()}), "PS");
}

TEST_F(StatementRouterTest, LeastRecentlyUsedStatementsAreClosedBeyondTheLimit) {
  router.attach(conn_a);
  send({parse("a", "SELECT 1"), parse("b", "SELECT 2"), sync()});
  answer("11Z");
  // A third statement on a connection that holds two (the limit): the oldest is closed first.
  EXPECT_EQ(send({parse("c", "SELECT 3"), sync()}), "CPS");
  EXPECT_EQ(answer("31Z"), "1Z");
  EXPECT_EQ(conn_a.names.size(), 2u);
}

TEST_F(StatementRouterTest, RefusedCommandGetsPgmtlsErrorInPlaceOfTheBackends) {
  router.attach(conn_a);
  auto q = protocol::query_message("SET search_path = x");
  EXPECT_EQ(send({q}), "BS");
  auto error = protocol::error_response({.severity = "ERROR",
                                         .sqlstate = "26000",
                                         .message = "prepared statement \"pgmtls_unprepared\" "
                                                    "does not exist"});
  Buffer out;
  router.backend_bytes(error, out);
  router.backend_bytes(backend("Z"), out);
  EXPECT_EQ(types(out), "EZ");
  const std::string text(out.begin(), out.end());
  EXPECT_NE(text.find("SET is not supported with pool_mode: transaction"), std::string::npos);
  EXPECT_NE(text.find("0A000"), std::string::npos);
  EXPECT_TRUE(router.settled());
}

TEST_F(StatementRouterTest, BackendBytesSplitAnywhereGiveTheSameResult) {
  router.attach(conn_a);
  send({parse("s1", "SELECT 1"), sync()});
  router.detach();
  router.attach(conn_b);
  send({bind("s1"), sync()});
  const Buffer all = backend("12Z");
  Buffer out;
  for (std::uint8_t byte : all)
    router.backend_bytes(protocol::Bytes(&byte, 1), out);
  EXPECT_EQ(types(out), "2Z");
  EXPECT_TRUE(router.settled());
}

TEST_F(StatementRouterTest, AnswersThatMatchNothingSentBreakTheRouter) {
  router.attach(conn_a);
  Buffer out;
  router.backend_bytes(backend("1"), out);
  EXPECT_TRUE(router.broken());
}

}  // namespace
}  // namespace pgmtls::proxy
