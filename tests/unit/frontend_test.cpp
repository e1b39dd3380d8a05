// Client messages as pool_mode: transaction reads and writes them, and the splitter that cuts a
// client's stream into them, fed in every way a TCP stream can cut it.
#include "protocol/frontend.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/builders.h"

namespace pgmtls::protocol {
namespace {

using Buffer = std::vector<std::uint8_t>;
using Kind = FrontendSplitter::Piece::Kind;

Message as_message(const Buffer& bytes) {
  return {static_cast<char>(bytes[0]), Bytes(bytes).subspan(5), bytes.size()};
}
Buffer raw(char type, std::string_view payload) {
  Buffer out{static_cast<std::uint8_t>(type)};
  const auto length = static_cast<std::uint32_t>(payload.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<std::uint8_t>(length >> shift));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}
bool parse_and_query(char type) {
  return type == frontend_type::kParse || type == frontend_type::kQuery;
}

TEST(FrontendFields, ParseRoundTrips) {
  static constexpr std::uint8_t kOneInt[] = {0, 1, 0, 0, 0, 23};
  Buffer m;
  append_parse(m, "s1", "SELECT $1", Bytes(kOneInt, sizeof kOneInt));
  const auto f = parse_fields(as_message(m));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->statement, "s1");
  EXPECT_EQ(f->query, "SELECT $1");
  EXPECT_EQ(Buffer(f->parameter_types.begin(), f->parameter_types.end()),
            Buffer(kOneInt, kOneInt + sizeof kOneInt));
}

TEST(FrontendFields, MalformedMessagesHaveNoFields) {
  // No NUL after the name; a parameter count that promises more OIDs than there are.
  EXPECT_FALSE(parse_fields(as_message(raw('P', "s1"))));
  EXPECT_FALSE(parse_fields(as_message(raw('P', std::string("s\0q\0\0\2\0\0\0\1", 10)))));
  EXPECT_FALSE(parse_fields(as_message(raw('B', std::string("\0\0", 2)))));
  EXPECT_FALSE(bind_fields(as_message(raw('B', std::string("portal\0", 7)))));
  EXPECT_FALSE(target_fields(as_message(raw('D', std::string("X\0", 2)))));
  EXPECT_FALSE(target_fields(as_message(raw('C', std::string("Sname\0trailing", 14)))));
  EXPECT_FALSE(target_fields(as_message(raw('C', ""))));
  EXPECT_FALSE(query_text(as_message(raw('Q', "SELECT 1"))));
}

TEST(FrontendFields, BindKeepsWhatFollowsTheNames) {
  Buffer m;
  static constexpr std::uint8_t kRest[] = {0, 0, 0, 1, 0, 0, 0, 2, 'h', 'i', 0, 0};
  append_bind(m, "p", "s", Bytes(kRest, sizeof kRest));
  const auto f = bind_fields(as_message(m));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->portal, "p");
  EXPECT_EQ(f->statement, "s");
  EXPECT_EQ(Buffer(f->rest.begin(), f->rest.end()), Buffer(kRest, kRest + sizeof kRest));
  Buffer d;
  append_target(d, frontend_type::kDescribe, 'S', "s9");
  const auto t = target_fields(as_message(d));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, 'S');
  EXPECT_EQ(t->name, "s9");
}

// Feeds `stream` in reads of `step` bytes; returns the messages seen, whole ones as "W<type>"
// and streamed ones as "S<type><body length>".
std::vector<std::string> split(const Buffer& stream, std::size_t step, bool* boundary = nullptr) {
  FrontendSplitter splitter(parse_and_query, 1 << 20);
  std::vector<std::string> seen;
  std::size_t body = 0;
  char streamed = 0;
  const auto flush_streamed = [&] {
    if (streamed != 0) seen.push_back(std::string("S") + streamed + std::to_string(body));
    streamed = 0;
    body = 0;
  };
  for (std::size_t at = 0; at < stream.size(); at += step) {
    const Bytes read(stream.data() + at, std::min(step, stream.size() - at));
    std::size_t used = 0;
    while (used < read.size()) {
      const auto piece = splitter.next(read.subspan(used));
      EXPECT_GT(piece.used, 0u);
      used += piece.used;
      switch (piece.kind) {
        case Kind::whole:
          flush_streamed();
          EXPECT_EQ(piece.bytes.size(), 1 + read_u32(piece.bytes.data() + 1));
          seen.push_back(std::string("W") + piece.type);
          break;
        case Kind::start:
          flush_streamed();
          EXPECT_EQ(piece.bytes.size(), 5u);
          streamed = piece.type;
          break;
        case Kind::body:
          body += piece.bytes.size();
          break;
        case Kind::need_more:
          break;
        case Kind::error:
          ADD_FAILURE() << "error";
          return seen;
      }
    }
  }
  flush_streamed();
  if (boundary) *boundary = splitter.at_boundary();
  return seen;
}

TEST(FrontendSplitter, EveryWayOfCuttingTheStreamGivesTheSameMessages) {
  Buffer stream;
  static constexpr std::uint8_t kNoTypes[] = {0, 0};
  append_parse(stream, "s", "SELECT 1", Bytes(kNoTypes, 2));
  const Buffer copy = raw('d', std::string(3000, 'x'));
  stream.insert(stream.end(), copy.begin(), copy.end());
  const Buffer q = query_message("SELECT 2");
  stream.insert(stream.end(), q.begin(), q.end());
  append_sync(stream);
  const std::vector<std::string> expected{"WP", "Sd3000", "WQ", "SS0"};
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{4}, std::size_t{5},
                           std::size_t{7}, std::size_t{64}, stream.size()}) {
    bool boundary = false;
    EXPECT_EQ(split(stream, step, &boundary), expected) << "reads of " << step;
    EXPECT_TRUE(boundary) << "reads of " << step;
  }
}

TEST(FrontendSplitter, AWholeMessageInOneReadIsHandedOutFromTheRead) {
  FrontendSplitter splitter(parse_and_query, 1 << 20);
  const Buffer q = query_message("SELECT 1");
  const auto piece = splitter.next(q);
  ASSERT_EQ(piece.kind, Kind::whole);
  EXPECT_EQ(piece.bytes.data(), q.data());  // no copy
  EXPECT_EQ(piece.used, q.size());
  EXPECT_TRUE(splitter.at_boundary());
}

TEST(FrontendSplitter, NotAtABoundaryInsideAMessage) {
  FrontendSplitter splitter(parse_and_query, 1 << 20);
  const Buffer q = query_message("SELECT 1");
  EXPECT_EQ(splitter.next(Bytes(q).first(3)).kind, Kind::need_more);
  EXPECT_FALSE(splitter.at_boundary());
  EXPECT_EQ(splitter.next(Bytes(q).subspan(3, 4)).kind, Kind::need_more);
  EXPECT_FALSE(splitter.at_boundary());
  EXPECT_EQ(splitter.next(Bytes(q).subspan(7)).kind, Kind::whole);
  EXPECT_TRUE(splitter.at_boundary());
  const Buffer copy = raw('d', "abc");
  EXPECT_EQ(splitter.next(Bytes(copy).first(6)).kind, Kind::start);
  EXPECT_FALSE(splitter.at_boundary());
  EXPECT_EQ(splitter.next(Bytes(copy).subspan(5)).kind, Kind::body);
  EXPECT_TRUE(splitter.at_boundary());
}

TEST(FrontendSplitter, ImpossibleLengthsLoseTheStream) {
  for (const std::uint32_t length : {0u, 3u}) {
    for (const bool split_header : {false, true}) {
      FrontendSplitter splitter(parse_and_query, 1 << 20);
      const Buffer bad{'d', 0, 0, 0, static_cast<std::uint8_t>(length)};
      FrontendSplitter::Piece piece;
      if (split_header) {
        EXPECT_EQ(splitter.next(Bytes(bad).first(2)).kind, Kind::need_more);
        piece = splitter.next(Bytes(bad).subspan(2));
      } else {
        piece = splitter.next(bad);
      }
      EXPECT_EQ(piece.kind, Kind::error) << length;
    }
  }
}

TEST(FrontendSplitter, AWholeMessageAboveTheLimitIsAnErrorAStreamedOneIsNot) {
  FrontendSplitter splitter(parse_and_query, 1024);
  const Buffer big_query{'Q', 0, 0, 4, 0};  // 1024 bytes of payload and length: above the limit
  EXPECT_EQ(splitter.next(big_query).kind, Kind::error);
  FrontendSplitter streaming(parse_and_query, 1024);
  const Buffer huge_copy{'d', 0x7f, 0xff, 0xff, 0xff};
  const auto piece = streaming.next(huge_copy);
  EXPECT_EQ(piece.kind, Kind::start);
  const Buffer some(100, 'x');
  EXPECT_EQ(streaming.next(some).kind, Kind::body);
  EXPECT_FALSE(streaming.at_boundary());
}

}  // namespace
}  // namespace pgmtls::protocol
