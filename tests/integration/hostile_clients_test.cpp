// Hostile clients against pgmtls in front of real PostgreSQL (issue 8). While each hostile load
// runs, a good client keeps connecting (verify-full, a client certificate) and querying through
// libpq; every one of its attempts must succeed, none may take longer than a generous bound, and
// afterwards pgmtls's open descriptors and PostgreSQL's backends return to where they were. Every
// load is bounded in count and time, and targets 127.0.0.1 only.
//
// Each test prints one line, "[ hostile ] <case>: good client ...", with the good client's
// connection count, median and worst latency during the load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "auth/pki.h"
#include "tests/integration/support/fixtures.h"
#include "tests/integration/support/pg_client.h"
#include "tests/integration/support/tls_session_client.h"

namespace pgmtls::integration {
namespace {

using Clock = std::chrono::steady_clock;

// A good client's connection and query may take this long while pgmtls is under attack; they
// take milliseconds on an idle machine, so only a client that was made to wait misses it.
constexpr auto kGoodLatencyBound = 3s;
// pgmtls's startup_timeout in this suite: short, so slow clients are cut within seconds.
constexpr auto kStartupTimeout = 2s;
constexpr unsigned kMaxHandshakes = 100;

std::size_t open_fds(pid_t pid) {
  std::error_code ec;
  std::size_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec)) {
    ++n;
  }
  return n;
}

std::size_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

// Whether pgmtls's RSS says anything about its own allocations: not under a sanitizer, which keeps
// freed memory (ASan's quarantine) or adds its own (TSan's shadow and history). tests/run.sh sets
// PGMTLS_SANITIZED when it drives a sanitizer build of pgmtls from an uninstrumented test binary.
bool rss_is_meaningful() {
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return false;
#endif
#endif
  return std::getenv("PGMTLS_SANITIZED") == nullptr;
}

// Raises this process's descriptor limit to its hard limit (pgmtls, started later, inherits it);
// returns the soft limit now in force.
rlim_t raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

// Connects, queries and disconnects in a loop on its own thread until stopped, timing each round.
class GoodClient {
 public:
  struct Stats {
    std::size_t rounds = 0;
    std::vector<std::string> failures;
    std::chrono::milliseconds median{0};
    std::chrono::milliseconds worst{0};
  };

  explicit GoodClient(std::string conninfo) : conninfo_(std::move(conninfo)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~GoodClient() { stop(); }

  // Waits until at least `rounds` rounds have finished since the client started (bounded);
  // whether they did.
  bool wait_for_rounds(std::size_t rounds, std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return latencies_.size() + failures_.size() >= rounds; });
  }
  std::size_t rounds() {
    std::lock_guard lock(mutex_);
    return latencies_.size() + failures_.size();
  }

  Stats stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    Stats s;
    s.rounds = latencies_.size() + failures_.size();
    s.failures = failures_;
    auto sorted = latencies_;
    std::sort(sorted.begin(), sorted.end());
    if (!sorted.empty()) {
      s.median = sorted[sorted.size() / 2];
      s.worst = sorted.back();
    }
    return s;
  }

 private:
  void loop() {
    while (!stopping_) {
      const auto start = Clock::now();
      std::string failure;
      ConnectResult c = pg_connect(conninfo_, 10s);
      if (!c.ok()) {
        failure = "connect: " + c.error;
      } else {
        const QueryResult r = query(c.conn.get(), "SELECT current_user", {}, 10s);
        if (!r.ok()) failure = "query: " + r.error;
        if (r.ok() && r.value != "alice") failure = "query: got " + r.value.value_or("NULL");
      }
      c.conn.reset();
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      std::lock_guard lock(mutex_);
      if (failure.empty()) {
        latencies_.push_back(took);
      } else {
        failures_.push_back(failure);
      }
      changed_.notify_all();
    }
  }

  std::string conninfo_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::chrono::milliseconds> latencies_;
  std::vector<std::string> failures_;
  std::thread thread_;
};

class HostileClientsTest : public ProxySuite<HostileClientsTest> {
 protected:
  static void SetUpTestSuite() {
    // OpenSSL writes with write(2): a client whose server hung up must not die of SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    fd_limit_ = raise_fd_limit();
    set_up_suite("CREATE ROLE alice LOGIN;");
  }

  void SetUp() override {
    ProxyConfig c = config();
    c.startup_timeout = "2s";
    c.ca_file = pki_->open_roots_file();  // for AChainLongerThanTheVerifyDepthIsRefused
    c.extra_yaml = "limits:\n  max_handshakes: " + std::to_string(kMaxHandshakes) + "\n";
    launch(c.to_yaml());
    // One session first: pgmtls logs "listening" before its workers and signal handling are set
    // up (and open their descriptors), and serves a connection only after. Once PostgreSQL has
    // seen that session's backend go, pgmtls has closed both its sockets.
    {
      ConnectResult warm = pg_connect(good_conninfo(), 20s);
      ASSERT_TRUE(warm.ok()) << warm.error;
      ASSERT_TRUE(query(warm.conn.get(), "SELECT 1").ok());
    }
    ASSERT_TRUE(wait_for_no_backends()) << "the first session's backend is still there";
    fds_before_ = open_fds(proxy_->pid());
    rss_before_ = rss_kib(proxy_->pid());
  }

  void TearDown() override {
    if (proxy_) EXPECT_TRUE(proxy_->running()) << "pgmtls died";
    ProxySuite<HostileClientsTest>::TearDown();
  }

  std::string good_conninfo() const {
    return tls_conninfo(proxy_port(), pki_->root_ca_file(), &pki_->client("alice"), "alice");
  }
  std::uint16_t proxy_port() const { return proxy_->port(); }

  // Starts the good client, runs `load`, stops the client and checks what it saw; then waits for
  // pgmtls's descriptors to come back to the baseline and PostgreSQL to hold no session of ours.
  template <typename Load>
  void under_load(const std::string& name, Load&& load) {
    GoodClient good(good_conninfo());
    good.wait_for_rounds(1);
    const std::size_t before_load = good.rounds();
    load();
    // At least one round that ran (in part) during the load, however short the load was.
    const bool overlapped = good.wait_for_rounds(before_load + 1);
    const GoodClient::Stats stats = good.stop();
    std::cout << "[ hostile ] " << name << ": good client " << stats.rounds << " connections, "
              << stats.failures.size() << " failed, median " << stats.median.count()
              << " ms, worst " << stats.worst.count() << " ms; pgmtls RSS " << rss_before_ << " -> "
              << rss_kib(proxy_->pid()) << " KiB, fds " << fds_before_ << " -> "
              << open_fds(proxy_->pid()) << std::endl;
    EXPECT_THAT(stats.failures, ::testing::IsEmpty());
    EXPECT_TRUE(overlapped) << "the good client made no progress during or after the load";
    EXPECT_LE(stats.worst, kGoodLatencyBound);
    EXPECT_TRUE(wait_for_baseline_fds(fds_before_))
        << "pgmtls holds " << open_fds(proxy_->pid()) << " descriptors, " << fds_before_
        << " before the load";
    EXPECT_TRUE(wait_for_no_backends()) << "PostgreSQL still has sessions for alice";
    ASSERT_TRUE(proxy_->running()) << "pgmtls died";
  }

  // No event says a descriptor was closed: poll /proc, bounded.
  bool wait_for_baseline_fds(std::size_t baseline, std::chrono::milliseconds timeout = 10s) {
    const auto until = Clock::now() + timeout;
    while (open_fds(proxy_->pid()) > baseline) {
      if (Clock::now() > until) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  static bool wait_for_no_backends(std::chrono::milliseconds timeout = 10s) {
    const auto until = Clock::now() + timeout;
    for (;;) {
      const auto n =
          postgres_->exec("SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice'");
      if (n == "0") return true;
      if (Clock::now() > until) return false;
      std::this_thread::sleep_for(20ms);
    }
  }

  std::size_t fds_before_ = 0;
  std::size_t rss_before_ = 0;
  static inline rlim_t fd_limit_ = 1024;
};

// How long pgmtls took to close a connection, or nullopt if it did not within `limit`.
std::optional<std::chrono::milliseconds> time_to_close(RawSocket& s, Clock::time_point since,
                                                       std::chrono::milliseconds limit) {
  const RawSocket::Read r = s.read_until_closed(limit);
  if (!r.closed()) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
}

TEST_F(HostileClientsTest, ThousandsOfSilentConnectionsDoNotLockOutGoodClients) {
  // Connections that never send a byte: far more than max_handshakes. Each new one takes the
  // place of the oldest that has not finished a TLS handshake, so the good client, whose
  // handshakes finish, always gets in.
  const std::size_t count = std::min<std::size_t>(2000, (fd_limit_ - 200) / 3);
  const std::size_t mark = proxy_->log_mark();
  std::size_t fds_during = 0;
  under_load("silent connections", [&] {
    std::vector<std::unique_ptr<RawSocket>> silent;
    for (std::size_t i = 0; i < count; ++i)
      silent.push_back(std::make_unique<RawSocket>(proxy_port()));
    fds_during = open_fds(proxy_->pid());
    std::this_thread::sleep_for(kStartupTimeout / 2);  // the good client works meanwhile
  });
  std::cout << "[ hostile ] " << count << " silent connections; pgmtls held " << fds_during
            << " descriptors with them open" << std::endl;
  // Each connection is a socket (and a session still in start-up holds nothing else).
  EXPECT_LE(fds_during, fds_before_ + kMaxHandshakes + 20);
  EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=evicted"}, kLogTimeout, mark));
}

TEST_F(HostileClientsTest, SlowLorisIsCutAtTheStartupTimeout) {
  // One byte a second: during the SSLRequest, during the TLS handshake, and (with a good
  // certificate) during the StartupMessage.
  const std::string hello = tls_client_hello();
  const std::string startup = startup_message("alice", "postgres");
  TlsSessionClient tls_client(pki_->root_ca_file(), pki_->client("alice"));
  constexpr int kEach = 10;
  std::vector<std::string> problems;
  std::mutex problems_mutex;
  under_load("slow-loris", [&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < kEach; ++i) {
      threads.emplace_back([&] {
        TlsConnection c = tls_client.handshake(proxy_port());
        const auto start = Clock::now();
        std::string problem;
        if (!c.ok()) {
          problem = "handshake failed: " + c.error();
        } else {
          bool closed = false;
          for (std::size_t at = 0; at < startup.size() && !closed; ++at) {
            c.write(startup.substr(at, 1));
            closed = c.closed_within(1s);  // the wait is the pace
            if (Clock::now() - start > kStartupTimeout + 5s) break;
          }
          const auto took = Clock::now() - start;
          if (!closed) {
            problem =
                "StartupMessage: still open after " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(took).count()) +
                " s";
          } else if (took > kStartupTimeout + 2s) {
            problem = "StartupMessage: closed only after " +
                      std::to_string(
                          std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) +
                      " ms";
          }
        }
        std::lock_guard lock(problems_mutex);
        if (!problem.empty()) problems.push_back(problem);
      });
    }
    for (int i = 0; i < 2 * kEach; ++i) {
      threads.emplace_back([&, i] {
        const bool in_tls = i % 2 == 1;
        RawSocket s(proxy_port());
        const auto start = Clock::now();
        std::string bytes = ssl_request();
        if (in_tls) {
          s.send(bytes);
          if (s.read_exactly(1, 5s).data != "S") {
            std::lock_guard lock(problems_mutex);
            problems.push_back("SSLRequest not answered");
            return;
          }
          bytes = hello;
        }
        // A byte, then wait a second for pgmtls to close the connection: the wait is the pace.
        for (std::size_t at = 0; at < bytes.size(); ++at) {
          if (!s.send(bytes.substr(at, 1))) break;
          if (s.read_exactly(1, 1s).end != RawSocket::End::timeout) break;
          if (Clock::now() - start > kStartupTimeout + 5s) break;
        }
        const auto closed = time_to_close(s, start, 1s);
        std::lock_guard lock(problems_mutex);
        if (!closed) {
          problems.push_back(
              std::string(in_tls ? "TLS handshake" : "SSLRequest") + ": still open after " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count()) +
              " s");
        } else if (*closed > kStartupTimeout + 2s) {
          problems.push_back("closed only after " + std::to_string(closed->count()) + " ms");
        }
      });
    }
    for (auto& t : threads)
      t.join();
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

TEST_F(HostileClientsTest, AbsurdLengthFieldsAreRefusedAtOnce) {
  const std::uint32_t lengths[] = {0, 3, 10001, 0x7fffffff};
  TlsSessionClient tls_client(pki_->root_ca_file(), pki_->client("alice"));
  std::vector<std::string> problems;
  under_load("length fields 0, 3, 10001, 2^31-1", [&] {
    for (int round = 0; round < 5; ++round) {
      for (const std::uint32_t length : lengths) {
        const std::string packet = be32(length) + be32(196608) + std::string(8, 'x');
        // Before TLS, as the first packet.
        RawSocket s(proxy_port());
        s.send(packet);
        if (!time_to_close(s, Clock::now(), 1s)) {
          problems.push_back("plaintext length " + std::to_string(length) + ": not closed");
        }
        // Inside TLS, as the StartupMessage.
        TlsConnection c = tls_client.handshake(proxy_port());
        if (!c.ok()) {
          problems.push_back("handshake failed: " + c.error());
          continue;
        }
        c.write(packet);
        if (!c.closed_within(1s)) {
          problems.push_back("in TLS, length " + std::to_string(length) + ": not closed at once");
        }
      }
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

TEST_F(HostileClientsTest, GarbageInsteadOfTlsRecordsIsRefusedAtOnce) {
  std::string garbage(64 * 1024, '\0');
  for (std::size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::vector<std::string> problems;
  under_load("garbage instead of TLS", [&] {
    for (int round = 0; round < 20; ++round) {
      RawSocket s(proxy_port());
      s.send(ssl_request());
      if (s.read_exactly(1, 5s).data != "S") {
        problems.push_back("SSLRequest not answered");
        continue;
      }
      const auto start = Clock::now();
      s.send(garbage);
      if (!time_to_close(s, start, 1s)) problems.push_back("garbage: not closed at once");
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

TEST_F(HostileClientsTest, RenegotiationIsRefused) {
  // TLS 1.2 (1.3 has no renegotiation): a client that asks for one after the handshake does not
  // get it, and its connection does not outlive the start-up timeout.
  TlsSessionClient tls12(pki_->root_ca_file(), pki_->client("alice"), TLS1_2_VERSION);
  std::vector<std::string> problems;
  under_load("TLS renegotiation", [&] {
    for (int round = 0; round < 10; ++round) {
      TlsConnection c = tls12.handshake(proxy_port());
      if (!c.ok()) {
        problems.push_back("handshake failed: " + c.error());
        continue;
      }
      if (SSL_version(c.ssl()) != TLS1_2_VERSION) {
        problems.push_back("not TLS 1.2");
        continue;
      }
      if (SSL_renegotiate(c.ssl()) == 1 && SSL_do_handshake(c.ssl()) == 1 &&
          SSL_renegotiate_pending(c.ssl()) == 0) {
        problems.push_back("the renegotiation completed");
      }
      if (!c.closed_within(kStartupTimeout + 2s)) {
        problems.push_back("connection not closed after the refused renegotiation");
      }
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

TEST_F(HostileClientsTest, AHugeClientCertificateIsRefused) {
  // About 200 KB of subjectAltNames: twice what OpenSSL accepts in a Certificate message.
  auth::pki::CertificateSpec spec{.common_name = "alice", .client_auth = true};
  for (int i = 0; i < 5000; ++i)
    spec.san.dns.push_back("host-" + std::to_string(i) + ".a-rather-long-domain.example.com");
  const ClientCertificate& huge = pki_->add_client("huge", spec);
  TlsSessionClient client(pki_->root_ca_file(), huge);
  const std::size_t mark = proxy_->log_mark();
  std::vector<std::string> problems;
  std::size_t rss_peak = 0;
  under_load("huge client certificate", [&] {
    for (int round = 0; round < 20; ++round) {
      TlsConnection c = client.handshake(proxy_port());
      if (!c.closed_within(10s)) problems.push_back("accepted and kept open");
      rss_peak = std::max(rss_peak, rss_kib(proxy_->pid()));
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
  EXPECT_TRUE(proxy_->wait_for_log({"result=rejected", "reason=tls_error"}, kLogTimeout, mark));
  if (rss_is_meaningful()) {
    EXPECT_LE(rss_peak, rss_before_ + 64 * 1024) << "pgmtls grew by more than 64 MiB";
  }
}

TEST_F(HostileClientsTest, AChainLongerThanTheVerifyDepthIsRefused) {
  // tls.verify_depth is 5 by default: at most five intermediate CAs between a client certificate
  // and the trusted root.
  const ClientCertificate& within = pki_->add_chain_client("chain5", "alice", 5);
  const ClientCertificate& beyond = pki_->add_chain_client("chain12", "alice", 12);
  {
    const auto admitted =
        pg_connect(tls_conninfo(proxy_port(), pki_->root_ca_file(), &within, "alice"), 10s);
    ASSERT_TRUE(admitted.ok()) << "a chain of 5 intermediates: " << admitted.error;
  }
  const std::size_t mark = proxy_->log_mark();
  std::vector<std::string> problems;
  under_load("chain longer than verify_depth", [&] {
    for (int round = 0; round < 10; ++round) {
      const auto refused =
          pg_connect(tls_conninfo(proxy_port(), pki_->root_ca_file(), &beyond, "alice"), 10s);
      if (refused.ok()) problems.push_back("a chain of 12 intermediates was admitted");
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
  EXPECT_TRUE(
      proxy_->wait_for_log({"result=rejected", "reason=chain_too_long"}, kLogTimeout, mark));
}

TEST_F(HostileClientsTest, ADisconnectAtEveryStepOfTheStartupLeavesNothingBehind) {
  const std::string hello = tls_client_hello();
  const std::string startup = startup_message("alice", "postgres");
  TlsSessionClient tls_client(pki_->root_ca_file(), pki_->client("alice"));
  std::vector<std::string> problems;
  under_load("disconnect at every step", [&] {
    for (int round = 0; round < 3; ++round) {
      for (int step = 0; step < 6; ++step) {  // before TLS
        RawSocket s(proxy_port());
        if (step >= 1) s.send(ssl_request().substr(0, step == 1 ? 4 : 8));
        if (step >= 3 && s.read_exactly(1, 5s).data != "S") problems.push_back("no 'S'");
        if (step >= 4) s.send(hello.substr(0, step == 4 ? hello.size() / 2 : hello.size()));
        if (step >= 5) s.read_exactly(5, 5s);  // the start of the server's flight
      }
      for (int step = 0; step < 5; ++step) {  // inside TLS
        TlsConnection c = tls_client.handshake(proxy_port());
        if (!c.ok()) {
          problems.push_back("handshake failed: " + c.error());
          continue;
        }
        if (step == 1) c.write(startup.substr(0, startup.size() / 2));
        if (step >= 2) c.write(startup);
        if (step >= 3) {
          // Up to ReadyForQuery ('Z' with its 5-byte body is the last message).
          std::string seen;
          char buf[1024];
          while (seen.find(std::string("Z\0\0\0\5I", 6)) == std::string::npos) {
            const int n = SSL_read(c.ssl(), buf, sizeof buf);
            if (n <= 0) break;
            seen.append(buf, static_cast<std::size_t>(n));
          }
          if (seen.find(std::string("Z\0\0\0\5I", 6)) == std::string::npos) {
            problems.push_back("no ReadyForQuery");
            continue;
          }
        }
        if (step == 4) {
          // Half a Query message, then gone.
          const std::string sql = "SELECT pg_sleep(0)";
          std::string q = "Q" + be32(static_cast<std::uint32_t>(4 + sql.size() + 1)) + sql;
          q.push_back('\0');
          c.write(q.substr(0, q.size() / 2));
        }
      }
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
}

// A bounded soak: rounds of churn, each good clients connecting, querying and leaving in parallel
// with clients whose certificates pgmtls refuses (expired, unknown CA). After every round pgmtls
// holds its baseline descriptors again; past the first two rounds (which fill the allocator's
// arenas and OpenSSL's caches) its RSS must stay flat. PGMTLS_SOAK_ROUNDS (default 6) runs it
// longer.
TEST_F(HostileClientsTest, ChurnWithBadCertificatesDoesNotGrowMemoryOrDescriptors) {
  const char* env = std::getenv("PGMTLS_SOAK_ROUNDS");
  const int rounds = env != nullptr && std::atoi(env) >= 3 ? std::atoi(env) : 6;
  constexpr int kThreads = 4;
  constexpr int kGoodPerThread = 50;
  constexpr int kBadPerThread = 10;
  std::vector<std::size_t> rss;
  std::vector<std::string> problems;
  std::mutex problems_mutex;
  under_load("soak, " + std::to_string(rounds) + " rounds", [&] {
    for (int round = 0; round < rounds; ++round) {
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          const std::string bad_names[] = {"expired", "unknown-ca"};
          for (int i = 0; i < kGoodPerThread + kBadPerThread; ++i) {
            const bool bad = i % 6 == 5;
            const std::string name = bad ? bad_names[(t + i) % 2] : "alice";
            ConnectResult c = pg_connect(
                tls_conninfo(proxy_port(), pki_->root_ca_file(), &pki_->client(name), "alice"),
                10s);
            std::string problem;
            if (bad && c.ok()) problem = name + ": admitted";
            if (!bad && !c.ok()) problem = "alice: " + c.error;
            if (!bad && c.ok() && !query(c.conn.get(), "SELECT 1", {}, 10s).ok()) {
              problem = "alice: query failed";
            }
            if (!problem.empty()) {
              std::lock_guard lock(problems_mutex);
              problems.push_back(problem);
            }
          }
        });
      }
      for (auto& t : threads)
        t.join();
      if (!wait_for_baseline_fds(fds_before_)) problems.push_back("descriptors not released");
      rss.push_back(rss_kib(proxy_->pid()));
    }
  });
  EXPECT_THAT(problems, ::testing::IsEmpty());
  std::string trace;
  for (const std::size_t kib : rss)
    trace += " " + std::to_string(kib);
  std::cout << "[ hostile ] soak: pgmtls RSS after each round (KiB):" << trace << std::endl;
  ASSERT_GE(rss.size(), 3u);
  if (rss_is_meaningful())
    EXPECT_LE(rss.back(), rss[1] + 512) << "RSS grew from round 2 on:" << trace;
}

}  // namespace
}  // namespace pgmtls::integration
