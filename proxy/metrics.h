// Prometheus metrics. Hot-path counters live per worker (WorkerMetrics): each is written by its
// own worker only, with relaxed atomic loads and stores on a cache line no other worker writes,
// so counting costs a few instructions and never contends; a scrape sums the workers. Rare
// process-wide events (reloads, IAM tokens) use ordinary atomics. The exposition is rendered with
// prometheus-cpp's text serializer from MetricFamily values built at scrape time.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/outcome.h"

namespace pgmtls::proxy {

struct Snapshot;

// A counter with one writer (its worker) and any number of readers (the scrape).
class WorkerCounter {
 public:
  void add([[maybe_unused]] std::uint64_t n = 1) {
#ifndef PGMTLS_NO_METRICS  // bench/ only: what counting costs end to end
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
#endif
  }
  std::uint64_t get() const {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A histogram with fixed upper bounds (seconds), one writer.
class WorkerHistogram {
 public:
  static constexpr std::size_t kMaxBuckets = 16;
  explicit WorkerHistogram(std::span<const double> bounds) : bounds_(bounds) {}
  void observe(std::chrono::steady_clock::duration d);

  std::span<const double> bounds() const { return bounds_; }
  // Observations at or below bounds()[i]; index bounds().size() counts the rest (+Inf).
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].get(); }
  std::uint64_t count() const { return count_.get(); }
  double sum_seconds() const { return static_cast<double>(sum_ns_.get()) / 1e9; }

 private:
  std::span<const double> bounds_;
  std::array<WorkerCounter, kMaxBuckets + 1> buckets_;
  WorkerCounter count_;
  WorkerCounter sum_ns_;
};

inline constexpr double kLatencyBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10};
inline constexpr double kSessionBounds[] = {0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 14400, 86400};

inline constexpr std::size_t kReasonSlots = std::size(reason::kAll) + 1;  // + "other"

struct alignas(64) WorkerMetrics {
  WorkerCounter accepted;
  std::array<WorkerCounter, 3 * kReasonSlots> outcomes;  // [result][reason]
  WorkerCounter bytes_from_clients;
  WorkerCounter bytes_to_clients;
  WorkerHistogram tls_handshake{kLatencyBounds};
  WorkerCounter tls_resumed;  // handshakes that resumed a session from a ticket
  WorkerHistogram backend_startup{kLatencyBounds};
  WorkerHistogram session_duration{kSessionBounds};

  void count_outcome(Result result, std::string_view why);
};

// Process-wide counters for rare events; any thread.
struct ProcessMetrics {
  std::atomic<std::uint64_t> reloads_ok{0};
  std::atomic<std::uint64_t> reloads_failed{0};
  std::atomic<std::int64_t> last_reload_ok_unix{0};  // start-up counts as the first load
  std::atomic<std::uint64_t> iam_tokens_signed{0};
  std::atomic<std::uint64_t> aws_credential_failures{0};
};
ProcessMetrics& process_metrics();

// The Prometheus text exposition of everything: the workers' counters summed, `active`
// sessions, the process counters, and what `snapshot` says about certificates and CRLs.
std::string render_metrics(std::span<const WorkerMetrics* const> workers, std::size_t active,
                           const Snapshot& snapshot);

}  // namespace pgmtls::proxy
