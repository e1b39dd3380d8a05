// Cost of the codec steps every connection pays: parsing a StartupMessage, building an
// ErrorResponse, framing a stream of backend messages.
#include <benchmark/benchmark.h>

#include "protocol/builders.h"
#include "protocol/initial_packet.h"
#include "protocol/message.h"

namespace {

using namespace pgmtls::protocol;

void BM_ParseStartupMessage(benchmark::State& state) {
  const auto packet = startup_message({{"user", "reporting"},
                                       {"database", "analytics"},
                                       {"application_name", "psql"},
                                       {"client_encoding", "UTF8"},
                                       {"options", "-c search_path=app"}});
  for (auto _ : state) {
    auto parsed = parse_initial_packet(packet);
    benchmark::DoNotOptimize(parsed);
  }
}
BENCHMARK(BM_ParseStartupMessage);

void BM_BuildErrorResponse(benchmark::State& state) {
  for (auto _ : state) {
    auto bytes = error_response({.severity = "FATAL",
                                 .sqlstate = "28000",
                                 .message = "certificate authentication failed for user \"x\"",
                                 .detail = {},
                                 .hint = {}});
    benchmark::DoNotOptimize(bytes);
  }
}
BENCHMARK(BM_BuildErrorResponse);

void BM_FrameMessages(benchmark::State& state) {
  // 64 DataRow-sized messages back to back.
  std::vector<std::uint8_t> stream;
  for (int i = 0; i < 64; ++i) {
    const std::uint8_t header[] = {'D', 0, 0, 0, 104};
    stream.insert(stream.end(), std::begin(header), std::end(header));
    stream.insert(stream.end(), 100, 'x');
  }
  for (auto _ : state) {
    std::size_t pos = 0;
    std::size_t count = 0;
    while (pos < stream.size()) {
      auto parsed = parse_message(Bytes(stream).subspan(pos), 1 << 20);
      pos += std::get<Message>(parsed).size;
      ++count;
    }
    benchmark::DoNotOptimize(count);
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_FrameMessages);

}  // namespace
