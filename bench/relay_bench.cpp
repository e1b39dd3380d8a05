// What the relay and the metrics add per chunk and per session, measured on the code pgmtls runs:
// following message boundaries through a 16 KiB chunk of DataRows, the per-worker byte counter
// (metrics on) or not (metrics off), and the counters and histograms a session updates once.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "protocol/message.h"
#include "proxy/metrics.h"

namespace {

using namespace pgmtls;

// 16 KiB of 100-byte DataRow messages: what one relay read carries during a large SELECT.
std::vector<std::uint8_t> datarow_chunk() {
  std::vector<std::uint8_t> chunk;
  while (chunk.size() + 100 <= 16 * 1024) {
    chunk.push_back('D');
    const std::uint32_t length = 99;
    for (int shift = 24; shift >= 0; shift -= 8)
      chunk.push_back(static_cast<std::uint8_t>(length >> shift));
    chunk.insert(chunk.end(), 95, 'x');
  }
  return chunk;
}

// state.range(0): 1 with metrics, 0 without.
void BM_RelayChunk(benchmark::State& state) {
  const auto chunk = datarow_chunk();
  protocol::MessageBoundaries boundaries;
  proxy::WorkerMetrics metrics;
  const bool with_metrics = state.range(0) != 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(boundaries.follow(protocol::Bytes(chunk.data(), chunk.size())));
    if (with_metrics) metrics.bytes_to_clients.add(chunk.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * chunk.size()));
  state.SetLabel(with_metrics ? "metrics on" : "metrics off");
}
BENCHMARK(BM_RelayChunk)->Arg(0)->Arg(1);

// What a session adds to the metrics once: its outcome, a TLS handshake, a backend start-up and a
// session duration.
void BM_SessionMetrics(benchmark::State& state) {
  proxy::WorkerMetrics metrics;
  for (auto _ : state) {
    metrics.tls_handshake.observe(std::chrono::microseconds(850));
    metrics.backend_startup.observe(std::chrono::milliseconds(3));
    metrics.session_duration.observe(std::chrono::seconds(42));
    metrics.count_outcome(proxy::Result::ok, proxy::reason::kClientClosed);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_SessionMetrics);

}  // namespace
