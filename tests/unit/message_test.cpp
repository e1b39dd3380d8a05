#include "protocol/message.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace pgmtls::protocol {
namespace {

using ByteVec = std::vector<std::uint8_t>;

ByteVec message(char type, const ByteVec& payload) {
  const auto length = static_cast<std::uint32_t>(payload.size() + 4);
  ByteVec out{static_cast<std::uint8_t>(type), static_cast<std::uint8_t>(length >> 24),
              static_cast<std::uint8_t>(length >> 16), static_cast<std::uint8_t>(length >> 8),
              static_cast<std::uint8_t>(length)};
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

ByteVec header(char type, std::uint32_t length) {
  return {static_cast<std::uint8_t>(type), static_cast<std::uint8_t>(length >> 24),
          static_cast<std::uint8_t>(length >> 16), static_cast<std::uint8_t>(length >> 8),
          static_cast<std::uint8_t>(length)};
}

ByteVec bytes(std::string_view s) {
  return ByteVec(s.begin(), s.end());
}

TEST(Message, ParsesACompleteMessage) {
  const ByteVec wire = message('Z', {'I'});
  auto parsed = parse_message(wire, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  const auto& m = std::get<Message>(parsed);
  EXPECT_EQ(m.type, 'Z');
  EXPECT_EQ(m.size, 6u);
  ASSERT_EQ(m.payload.size(), 1u);
  EXPECT_EQ(m.payload[0], 'I');
}

TEST(Message, EmptyPayload) {
  const ByteVec wire = header('X', 4);
  auto parsed = parse_message(wire, 0);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  EXPECT_EQ(std::get<Message>(parsed).type, 'X');
  EXPECT_EQ(std::get<Message>(parsed).size, 5u);
  EXPECT_TRUE(std::get<Message>(parsed).payload.empty());
}

TEST(Message, FedOneByteAtATimeNeedsExactlyTheMissingBytes) {
  const ByteVec wire = message('S', bytes(std::string("server_version\0"
                                                      "15.4\0",
                                                      20)));
  for (std::size_t n = 0; n < wire.size(); ++n) {
    auto parsed = parse_message(Bytes(wire.data(), n), 1024);
    ASSERT_TRUE(std::holds_alternative<NeedMore>(parsed)) << "prefix of " << n << " bytes";
    const std::size_t expected = n < 5 ? 5 - n : wire.size() - n;
    EXPECT_EQ(std::get<NeedMore>(parsed).bytes, expected) << "prefix of " << n << " bytes";
  }
  auto parsed = parse_message(wire, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  EXPECT_EQ(std::get<Message>(parsed).size, wire.size());
  EXPECT_EQ(std::get<Message>(parsed).payload.size(), 20u);
}

TEST(Message, TrailingBytesAreNotPartOfTheMessage) {
  ByteVec wire = message('Z', {'T'});
  const ByteVec next = message('Z', {'I'});
  wire.insert(wire.end(), next.begin(), next.end());
  auto parsed = parse_message(wire, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  const auto& m = std::get<Message>(parsed);
  EXPECT_EQ(m.size, 6u);
  ASSERT_EQ(m.payload.size(), 1u);
  EXPECT_EQ(m.payload[0], 'T');
}

TEST(Message, LengthBelowFourIsAnError) {
  for (std::uint32_t length = 0; length < 4; ++length) {
    auto parsed = parse_message(header('R', length), 1024);
    EXPECT_TRUE(std::holds_alternative<ParseError>(parsed)) << "length " << length;
  }
}

TEST(Message, OversizedPayloadIsAnErrorFromTheHeaderAlone) {
  // Only the 5 header bytes: the parser must not ask for 1 GB before refusing.
  auto parsed = parse_message(header('D', 0x40000000), 8192);
  ASSERT_TRUE(std::holds_alternative<ParseError>(parsed));
  EXPECT_FALSE(std::get<ParseError>(parsed).message.empty());

  auto huge = parse_message(header('D', 0xffffffff), 8192);
  EXPECT_TRUE(std::holds_alternative<ParseError>(huge));
}

TEST(Message, PayloadExactlyAtTheLimitIsAccepted) {
  const ByteVec payload(100, 'x');
  const ByteVec wire = message('D', payload);
  auto at_limit = parse_message(wire, 100);
  ASSERT_TRUE(std::holds_alternative<Message>(at_limit));
  EXPECT_EQ(std::get<Message>(at_limit).payload.size(), 100u);

  auto over = parse_message(wire, 99);
  EXPECT_TRUE(std::holds_alternative<ParseError>(over));
  // One byte over the limit is refused before the payload arrives, too.
  auto over_header_only = parse_message(header('D', 104), 99);
  EXPECT_TRUE(std::holds_alternative<ParseError>(over_header_only));
  auto at_limit_header_only = parse_message(header('D', 104), 100);
  ASSERT_TRUE(std::holds_alternative<NeedMore>(at_limit_header_only));
  EXPECT_EQ(std::get<NeedMore>(at_limit_header_only).bytes, 100u);
}

TEST(Message, AuthenticationCode) {
  const ByteVec sasl = message('R', {0, 0, 0, 10, 'S', 'C', 'R', 'A', 'M', 0, 0});
  auto parsed = parse_message(sasl, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  EXPECT_EQ(authentication_code(std::get<Message>(parsed)), auth_code::kSASL);

  const ByteVec ok = message('R', {0, 0, 0, 0});
  parsed = parse_message(ok, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  EXPECT_EQ(authentication_code(std::get<Message>(parsed)), auth_code::kOk);

  const ByteVec big = message('R', {0x01, 0x02, 0x03, 0x04});
  parsed = parse_message(big, 1024);
  ASSERT_TRUE(std::holds_alternative<Message>(parsed));
  EXPECT_EQ(authentication_code(std::get<Message>(parsed)), 0x01020304u);
}

TEST(Message, AuthenticationCodeNeedsAnRMessageWithFourBytes) {
  Message short_r;
  short_r.type = 'R';
  const ByteVec three{0, 0, 0};
  short_r.payload = three;
  EXPECT_EQ(authentication_code(short_r), std::nullopt);

  Message not_r;
  not_r.type = 'E';
  const ByteVec four{0, 0, 0, 0};
  not_r.payload = four;
  EXPECT_EQ(authentication_code(not_r), std::nullopt);
}

TEST(Message, AuthenticationName) {
  EXPECT_EQ(authentication_name(auth_code::kOk), "ok");
  EXPECT_EQ(authentication_name(auth_code::kMD5Password), "MD5 password");
  EXPECT_EQ(authentication_name(auth_code::kSASL), "SASL");
  EXPECT_EQ(authentication_name(99), "unknown method 99");
}

TEST(ErrorFields, ParsesFieldsUpToTheTerminator) {
  const auto payload = bytes(std::string("SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0", 44));
  const auto fields = parse_error_fields(payload);
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields.at('S'), "FATAL");
  EXPECT_EQ(fields.at('V'), "FATAL");
  EXPECT_EQ(fields.at('C'), "28000");
  EXPECT_EQ(fields.at('M'), "no pg_hba.conf entry");
}

TEST(ErrorFields, StopsAtTheTerminatorEvenWithBytesAfterIt) {
  const auto payload = bytes(std::string("C08P01\0\0Mignored\0", 17));
  const auto fields = parse_error_fields(payload);
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields.at('C'), "08P01");
}

TEST(ErrorFields, TruncatedInputYieldsTheFieldsReadSoFar) {
  // The M field has no NUL: it is dropped, the complete ones are kept.
  const auto payload = bytes(std::string("SERROR\0C42601\0Msyntax err", 25));
  const auto fields = parse_error_fields(payload);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields.at('S'), "ERROR");
  EXPECT_EQ(fields.at('C'), "42601");
  EXPECT_EQ(fields.count('M'), 0u);

  EXPECT_TRUE(parse_error_fields({}).empty());
  const ByteVec only_type{'S'};
  EXPECT_TRUE(parse_error_fields(only_type).empty());
}

TEST(ErrorFields, EmptyFieldValue) {
  const auto payload = bytes(std::string("D\0\0", 3));
  const auto fields = parse_error_fields(payload);
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields.at('D'), "");
}

TEST(Message, RandomGarbageNeverCrashesAndResultsAreConsistent) {
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 64);
  for (int round = 0; round < 20000; ++round) {
    ByteVec input(static_cast<std::size_t>(len(rng)));
    for (auto& b : input)
      b = static_cast<std::uint8_t>(byte(rng));
    // Small lengths are frequent enough to reach the Message branch.
    if (input.size() >= 5 && round % 2 == 0) {
      input[1] = input[2] = 0;
      input[3] = 0;
      input[4] = static_cast<std::uint8_t>(input[4] % 70);
    }
    const std::size_t max_payload = static_cast<std::size_t>(round % 80);
    auto parsed = parse_message(input, max_payload);
    if (const auto* m = std::get_if<Message>(&parsed)) {
      ASSERT_LE(m->size, input.size());
      ASSERT_EQ(m->size, m->payload.size() + 5);
      ASSERT_LE(m->payload.size(), max_payload);
      ASSERT_EQ(m->payload.data(), input.data() + 5);
      (void)authentication_code(*m);
      (void)parse_error_fields(m->payload);
    } else if (const auto* need = std::get_if<NeedMore>(&parsed)) {
      ASSERT_GT(need->bytes, 0u);
    }
    (void)parse_error_fields(input);
  }
}

// ---- MessageBoundaries

// A realistic backend stream: a query's result, then ReadyForQuery in a transaction, then an empty
// message ('1' ParseComplete), then a large DataRow, then ReadyForQuery idle.
ByteVec sample_stream(std::vector<std::size_t>& boundaries) {
  ByteVec out;
  auto add = [&](const ByteVec& m) {
    out.insert(out.end(), m.begin(), m.end());
    boundaries.push_back(out.size());
  };
  boundaries.push_back(0);
  add(message('T', bytes(std::string("\0\1a\0", 4) + std::string(18, '\0'))));
  add(message('D', bytes(std::string("\0\1\0\0\0\3abc", 9))));
  add(message('C', bytes(std::string("SELECT 1\0", 9))));
  add(message('Z', {'T'}));
  add(message('1', {}));
  add(message('D', ByteVec(70000, 'x')));
  add(message('Z', {'I'}));
  return out;
}

TEST(MessageBoundaries, FollowsAStreamInChunksOfEverySize) {
  std::vector<std::size_t> boundaries;
  const ByteVec stream = sample_stream(boundaries);
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 7u, 64u, 4096u, 100000u}) {
    MessageBoundaries b('I');
    std::size_t ready_at = 0;
    for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
      const std::size_t n = std::min(chunk, stream.size() - pos);
      EXPECT_EQ(b.follow(Bytes(stream.data() + pos, n)), n);
      const bool expected =
          std::find(boundaries.begin(), boundaries.end(), pos + n) != boundaries.end();
      EXPECT_EQ(b.at_boundary(), expected) << "chunk " << chunk << " at " << pos + n;
      if (b.ready_count() == 1 && ready_at == 0) {
        ready_at = pos + n;
        EXPECT_EQ(b.transaction_status(), 'T');
      }
    }
    EXPECT_TRUE(b.at_boundary());
    EXPECT_EQ(b.ready_count(), 2u);
    EXPECT_EQ(b.transaction_status(), 'I');
    EXPECT_FALSE(b.broken());
  }
}

TEST(MessageBoundaries, StopsAtTheFirstBoundaryOfAChunk) {
  std::vector<std::size_t> boundaries;
  const ByteVec stream = sample_stream(boundaries);
  // From every starting offset, a chunk running to the end stops at the next boundary.
  for (std::size_t start = 0; start < stream.size(); start += 13) {
    MessageBoundaries b;
    b.follow(Bytes(stream.data(), start));
    const std::size_t stop = b.follow(Bytes(stream.data() + start, stream.size() - start), true);
    const std::size_t next = *std::lower_bound(boundaries.begin(), boundaries.end(), start);
    EXPECT_EQ(start + stop, next) << "from " << start;
    EXPECT_TRUE(b.at_boundary());
  }
}

TEST(MessageBoundaries, InitialStatusUntilTheFirstReadyForQuery) {
  MessageBoundaries b('I');
  EXPECT_EQ(b.transaction_status(), 'I');
  EXPECT_EQ(b.ready_count(), 0u);
  const ByteVec rfq = message('Z', {'E'});
  b.follow(Bytes(rfq.data(), 5));  // the header alone: the status is not known yet
  EXPECT_EQ(b.transaction_status(), 'I');
  EXPECT_FALSE(b.at_boundary());
  b.follow(Bytes(rfq.data() + 5, 1));
  EXPECT_EQ(b.transaction_status(), 'E');
  EXPECT_TRUE(b.at_boundary());
}

TEST(MessageBoundaries, CountsTheRequestsOfAFrontendStream) {
  MessageBoundaries b;
  ByteVec stream;
  for (const ByteVec& m :
       {message('Q', bytes(std::string("SELECT 1\0", 9))), message('P', ByteVec(20, 0)),
        message('B', ByteVec(12, 0)), message('E', ByteVec(9, 0)), message('S', {}),
        message('F', ByteVec(10, 0)), message('d', bytes("QQQQSSSS")), message('X', {})}) {
    stream.insert(stream.end(), m.begin(), m.end());
  }
  for (std::uint8_t byte : stream)
    b.follow(Bytes(&byte, 1));
  EXPECT_EQ(b.requests(), 3u);  // Q, S, F; not the bytes inside CopyData
  EXPECT_TRUE(b.at_boundary());
  EXPECT_EQ(b.last_type(), 'X');
}

TEST(MessageBoundaries, LastTypeIsTheLastHeaderNotBytesThatLookLikeOne) {
  MessageBoundaries b;
  EXPECT_EQ(b.last_type(), 0);
  // A Query whose text ends in what a Terminate message looks like.
  const ByteVec q = message('Q', bytes(std::string("X\0\0\0\4", 5)));
  b.follow(Bytes(q.data(), q.size()));
  EXPECT_TRUE(b.at_boundary());
  EXPECT_EQ(b.last_type(), 'Q');
  const ByteVec x = message('X', {});
  b.follow(Bytes(x.data(), 3));  // a header not yet complete
  EXPECT_EQ(b.last_type(), 'Q');
  b.follow(Bytes(x.data() + 3, 2));
  EXPECT_EQ(b.last_type(), 'X');
}

TEST(MessageBoundaries, ALengthBelowFourBreaksTrackingForGood) {
  MessageBoundaries b;
  const ByteVec bad = header('D', 3);
  b.follow(Bytes(bad.data(), bad.size()));
  EXPECT_TRUE(b.broken());
  EXPECT_FALSE(b.at_boundary());
  const ByteVec good = message('Z', {'I'});
  EXPECT_EQ(b.follow(Bytes(good.data(), good.size()), true), good.size());
  EXPECT_FALSE(b.at_boundary());
}

}  // namespace
}  // namespace pgmtls::protocol
