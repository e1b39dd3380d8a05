#include "proxy/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <ctime>
#include <sstream>

#include "proxy/snapshot.h"

#ifndef PGMTLS_VERSION
#define PGMTLS_VERSION "unknown"
#endif

namespace pgmtls::proxy {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr Result kResults[] = {Result::ok, Result::rejected, Result::error};

std::size_t reason_index(std::string_view why) {
  for (std::size_t i = 0; i < std::size(reason::kAll); ++i) {
    if (reason::kAll[i] == why) return i;
  }
  return std::size(reason::kAll);  // "other"
}

std::string_view reason_name(std::size_t index) {
  return index < std::size(reason::kAll) ? reason::kAll[index] : "other";
}

ClientMetric sample(double value, MetricType type, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

MetricFamily family(std::string name, std::string help, MetricType type,
                    std::vector<ClientMetric> metrics) {
  return MetricFamily{std::move(name), std::move(help), type, std::move(metrics)};
}

MetricFamily single(std::string name, std::string help, MetricType type, double value) {
  return family(std::move(name), std::move(help), type, {sample(value, type)});
}

MetricFamily histogram(std::string name, std::string help,
                       std::span<const WorkerMetrics* const> workers,
                       const WorkerHistogram WorkerMetrics::*member) {
  const auto bounds = ((*workers.front()).*member).bounds();
  ClientMetric m;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    for (const WorkerMetrics* w : workers)
      cumulative += (w->*member).bucket(i);
    m.histogram.bucket.push_back(
        {cumulative, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity()});
  }
  for (const WorkerMetrics* w : workers) {
    m.histogram.sample_count += (w->*member).count();
    m.histogram.sample_sum += (w->*member).sum_seconds();
  }
  return family(std::move(name), std::move(help), MetricType::Histogram, {std::move(m)});
}

template <typename Get>
double sum(std::span<const WorkerMetrics* const> workers, Get get) {
  std::uint64_t total = 0;
  for (const WorkerMetrics* w : workers)
    total += get(*w);
  return static_cast<double>(total);
}

}  // namespace

void WorkerHistogram::observe([[maybe_unused]] std::chrono::steady_clock::duration d) {
#ifndef PGMTLS_NO_METRICS
  const double seconds = std::chrono::duration<double>(d).count();
  std::size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i])
    ++i;
  buckets_[i].add();
  count_.add();
  sum_ns_.add(static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count())));
#endif
}

void WorkerMetrics::count_outcome(Result result, std::string_view why) {
  outcomes[static_cast<std::size_t>(result) * kReasonSlots + reason_index(why)].add();
}

ProcessMetrics& process_metrics() {
  static ProcessMetrics metrics;
  return metrics;
}

std::string render_metrics(std::span<const WorkerMetrics* const> workers, std::size_t active,
                           const Snapshot& snapshot) {
  std::vector<MetricFamily> families;
  const ProcessMetrics& process = process_metrics();

  families.push_back(family("pgmtls_build_info", "pgmtls's version; always 1", MetricType::Gauge,
                            {sample(1, MetricType::Gauge, {{"version", PGMTLS_VERSION}})}));
  families.push_back(single("pgmtls_connections_accepted_total",
                            "Client connections accepted (TCP)", MetricType::Counter,
                            sum(workers, [](const WorkerMetrics& w) { return w.accepted.get(); })));
  families.push_back(single("pgmtls_connections_active",
                            "Client connections open now, in any phase", MetricType::Gauge,
                            static_cast<double>(active)));

  std::vector<ClientMetric> outcomes;
  for (Result result : kResults) {
    for (std::size_t r = 0; r < kReasonSlots; ++r) {
      const std::size_t index = static_cast<std::size_t>(result) * kReasonSlots + r;
      const double n =
          sum(workers, [index](const WorkerMetrics& w) { return w.outcomes[index].get(); });
      if (n == 0) continue;
      outcomes.push_back(sample(
          n, MetricType::Counter,
          {{"result", std::string(to_string(result))}, {"reason", std::string(reason_name(r))}}));
    }
  }
  families.push_back(family("pgmtls_connections_total",
                            "Client connections ended, by result (ok, rejected, error) and reason "
                            "(the log line's reason=)",
                            MetricType::Counter, std::move(outcomes)));

  families.push_back(histogram("pgmtls_tls_handshake_duration_seconds",
                               "Client TLS handshakes that completed, by duration", workers,
                               &WorkerMetrics::tls_handshake));
  families.push_back(single(
      "pgmtls_tls_resumptions_total",
      "Client TLS handshakes that resumed a session from a ticket (counted in the histogram too)",
      MetricType::Counter,
      sum(workers, [](const WorkerMetrics& w) { return w.tls_resumed.get(); })));
  families.push_back(histogram(
      "pgmtls_backend_startup_duration_seconds",
      "Backend connect, TLS and authentication up to ReadyForQuery, for sessions that got there",
      workers, &WorkerMetrics::backend_startup));
  families.push_back(histogram("pgmtls_session_duration_seconds",
                               "Sessions that reached the relay, by total duration", workers,
                               &WorkerMetrics::session_duration));
  families.push_back(family(
      "pgmtls_relayed_bytes_total", "Bytes relayed, by direction", MetricType::Counter,
      {sample(sum(workers, [](const WorkerMetrics& w) { return w.bytes_from_clients.get(); }),
              MetricType::Counter, {{"direction", "client_to_backend"}}),
       sample(sum(workers, [](const WorkerMetrics& w) { return w.bytes_to_clients.get(); }),
              MetricType::Counter, {{"direction", "backend_to_client"}})}));

  families.push_back(family("pgmtls_reloads_total", "Configuration reloads, by result",
                            MetricType::Counter,
                            {sample(static_cast<double>(process.reloads_ok.load()),
                                    MetricType::Counter, {{"result", "success"}}),
                             sample(static_cast<double>(process.reloads_failed.load()),
                                    MetricType::Counter, {{"result", "failure"}})}));
  families.push_back(single("pgmtls_last_reload_success_timestamp_seconds",
                            "When the configuration in force was loaded (unix time)",
                            MetricType::Gauge,
                            static_cast<double>(process.last_reload_ok_unix.load())));

  families.push_back(family("pgmtls_server_certificate_expiry_timestamp_seconds",
                            "notAfter of the server certificate (unix time)", MetricType::Gauge,
                            {sample(static_cast<double>(snapshot.server_not_after),
                                    MetricType::Gauge, {{"subject", snapshot.server_subject}})}));
  std::vector<ClientMetric> cas;
  for (const auto& ca : snapshot.cas) {
    cas.push_back(
        sample(static_cast<double>(ca.not_after), MetricType::Gauge, {{"subject", ca.subject}}));
  }
  families.push_back(family("pgmtls_ca_certificate_expiry_timestamp_seconds",
                            "notAfter of each CA trusted for client certificates (unix time)",
                            MetricType::Gauge, std::move(cas)));
  std::vector<ClientMetric> next_updates, stale;
  const std::time_t now = std::time(nullptr);
  for (const auto& crl : snapshot.crls) {
    next_updates.push_back(
        sample(static_cast<double>(crl.next_update), MetricType::Gauge, {{"issuer", crl.issuer}}));
    stale.push_back(sample(crl.next_update != 0 && crl.next_update < now ? 1 : 0, MetricType::Gauge,
                           {{"issuer", crl.issuer}}));
  }
  families.push_back(family("pgmtls_crl_next_update_timestamp_seconds",
                            "nextUpdate of each loaded CRL (unix time; 0: none)", MetricType::Gauge,
                            std::move(next_updates)));
  families.push_back(family("pgmtls_crl_stale",
                            "1 when a loaded CRL is past its nextUpdate (clients whose chain it "
                            "covers are refused until a new one is loaded)",
                            MetricType::Gauge, std::move(stale)));

  families.push_back(single("pgmtls_iam_tokens_signed_total",
                            "RDS IAM authentication tokens signed", MetricType::Counter,
                            static_cast<double>(process.iam_tokens_signed.load())));
  families.push_back(single("pgmtls_aws_credential_failures_total",
                            "Times the AWS credential chain gave no credentials or failed to "
                            "refresh them",
                            MetricType::Counter,
                            static_cast<double>(process.aws_credential_failures.load())));

  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace pgmtls::proxy
