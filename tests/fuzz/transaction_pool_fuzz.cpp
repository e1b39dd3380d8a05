// pool_mode: transaction's view of a session: the client's stream cut by FrontendSplitter, the
// whole messages rewritten by StatementRouter (with protocol::session_feature on every query
// text), the backend's answers fed back through it, and the backend connection switched between
// transactions, all in the order and the read sizes the input chooses.
//
// Input: a sequence of steps, each [op][length: 2 bytes, big-endian][length bytes]. op % 3 == 0:
// client bytes; 1: backend bytes; 2: switch to the other backend connection if the router and
// the splitter say it may be released.
#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "protocol/frontend.h"
#include "protocol/message.h"
#include "protocol/session_features.h"
#include "proxy/statement_router.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;
using protocol::Bytes;

namespace {

constexpr std::size_t kMaxWhole = 1 << 16;

// The connection's bookkeeping agrees with itself: every name on the LRU list once.
void check(const proxy::BackendStatements& conn) {
  FUZZ_CHECK(conn.lru.size() == conn.names.size());
  for (const auto& name : conn.lru) {
    FUZZ_CHECK(conn.names.contains(name));
    FUZZ_CHECK(name.starts_with("pgmtls_"));
  }
}

void client_bytes(protocol::FrontendSplitter& splitter, proxy::StatementRouter& router, Bytes chunk,
                  bool& lost, std::vector<std::uint8_t>& out) {
  using Kind = protocol::FrontendSplitter::Piece::Kind;
  std::size_t at = 0;
  while (at < chunk.size() && !lost) {
    const auto piece = splitter.next(chunk.subspan(at));
    FUZZ_CHECK(piece.used <= chunk.size() - at);
    // Every call but an error takes something, so the loop ends.
    FUZZ_CHECK(piece.used > 0 || piece.kind == Kind::error);
    at += piece.used;
    switch (piece.kind) {
      case Kind::error:
        lost = true;  // the session ends here
        break;
      case Kind::need_more:
        FUZZ_CHECK(at == chunk.size());
        break;
      case Kind::start:
        FUZZ_CHECK(piece.bytes.size() == 5 && !proxy::StatementRouter::rewrites(piece.type));
        router.passthrough(piece.type);
        break;
      case Kind::body:
        FUZZ_CHECK(!piece.bytes.empty());
        break;
      case Kind::whole: {
        FUZZ_CHECK(proxy::StatementRouter::rewrites(piece.type));
        FUZZ_CHECK(splitter.at_boundary());
        const auto parsed = protocol::parse_message(piece.bytes, kMaxWhole);
        FUZZ_CHECK(std::holds_alternative<protocol::Message>(parsed));
        const auto& message = std::get<protocol::Message>(parsed);
        FUZZ_CHECK(message.size == piece.bytes.size());
        if (auto text = protocol::query_text(message)) {
          const auto feature = protocol::session_feature(*text);
          FUZZ_CHECK(feature.empty() || feature.size() < 64);
        }
        const std::size_t before = out.size();
        router.client_message(message, out);
        // What goes to the backend is whole messages.
        for (std::size_t i = before; i < out.size();) {
          FUZZ_CHECK(out.size() - i >= 5);
          i += 1 + protocol::read_u32(&out[i + 1]);
          FUZZ_CHECK(i <= out.size());
        }
        break;
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  proxy::BackendStatements conns[2];
  proxy::StatementRouter router(1, 1 + data[0] % 4);
  protocol::FrontendSplitter splitter(proxy::StatementRouter::rewrites, kMaxWhole);
  int current = 0;
  router.attach(conns[current]);
  bool lost = false;
  std::vector<std::uint8_t> to_backend, to_client;
  for (std::size_t at = 1; at + 3 <= size;) {
    const int op = data[at] % 3;
    const std::size_t length =
        std::min<std::size_t>((std::size_t{data[at + 1]} << 8) | data[at + 2], size - at - 3);
    const Bytes chunk(data + at + 3, length);
    at += 3 + length;
    if (op == 0) {
      client_bytes(splitter, router, chunk, lost, to_backend);
    } else if (op == 1) {
      router.backend_bytes(chunk, to_client);
    } else if (router.settled() && !router.broken() && splitter.at_boundary()) {
      router.detach();
      current = 1 - current;
      router.attach(conns[current]);
    }
    check(conns[0]);
    check(conns[1]);
    to_backend.clear();
    to_client.clear();
  }
  return 0;
}
