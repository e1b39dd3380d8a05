#include "proxy/server.h"

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <utility>

#include "proxy/session.h"

namespace pgmtls::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// Session ids carry the worker in their low bits so a log line tells which thread served it.
constexpr unsigned kWorkerBits = 10;
// Terminated sessions get this long to send their FATAL and close before the process stops
// anyway (a little more than the sessions' own grace period).
constexpr auto kTerminateWait = std::chrono::seconds(6);
constexpr auto kDrainPoll = std::chrono::milliseconds(50);

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

unsigned worker_count_for(const Snapshot& snapshot) {
  const unsigned n = snapshot.config.workers;
  return n != 0 ? n : std::max(1u, std::thread::hardware_concurrency());
}

// What the watched files look like now: path, inode, size and modification time of each, and of
// each entry of a watched directory. Any change, including a file replaced by rename, shows.
std::string files_signature(const std::vector<std::string>& paths) {
  std::string out;
  auto add = [&out](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      out += path + " missing\n";
      return false;
    }
    out += path + " " + std::to_string(st.st_ino) + " " + std::to_string(st.st_size) + " " +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "\n";
    return S_ISDIR(st.st_mode);
  };
  for (const auto& path : paths) {
    if (!add(path)) continue;
    std::error_code ec;
    std::vector<std::string> entries;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec))
      entries.push_back(entry.path().string());
    std::sort(entries.begin(), entries.end());
    for (const auto& entry : entries)
      add(entry);
  }
  return out;
}

}  // namespace

Server::Server(std::shared_ptr<const Snapshot> snapshot, Loader loader)
    : snapshot_(snapshot),
      loader_(std::move(loader)),
      runtime_(worker_count_for(*snapshot), snapshot->config.cancel.instance_id) {
  process_metrics().last_reload_ok_unix = std::time(nullptr);
  const unsigned n = worker_count_for(*snapshot);
  for (unsigned i = 0; i < n; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->index = i;
    workers_.push_back(std::move(worker));
  }
}

Server::~Server() {
  for (auto& w : workers_)
    w->io.stop();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // Pooled backend connections go before the loops their sockets belong to.
  for (auto& pool : runtime_.pools)
    pool->clear();
}

bool Server::bind(std::string& error) {
  const auto& listen = snapshot_.load()->config.listen;
  error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(listen.host, ec), listen.port);
  if (ec) {
    error = "invalid listen address " + listen.host + ": " + ec.message();
    return false;
  }
  for (auto& w : workers_) {
    auto& acceptor = w->acceptor;
    auto fail = [&](const char* step) {
      error = std::string("cannot ") + step + " " + listen.host + ":" +
              std::to_string(endpoint.port()) + ": " + ec.message();
      return false;
    };
    acceptor.open(endpoint.protocol(), ec);
    if (ec) return fail("open a socket for");
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      ec.assign(errno, boost::system::system_category());
      return fail("set SO_REUSEPORT on");
    }
    acceptor.bind(endpoint, ec);
    if (ec) return fail("bind");
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("listen on");
    // With port 0 the kernel chose; every other worker joins that port.
    endpoint = acceptor.local_endpoint(ec);
  }
  bound_ = endpoint;

  if (const auto& admin = snapshot_.load()->config.admin.listen) {
    AdminServer::Hooks hooks;
    hooks.ready = [this] { return ready_.load(); };
    hooks.reload = [this](std::string& error) { return reload(&error); };
    hooks.sessions = [this](std::function<void(std::vector<SessionInfo>)> done) {
      collect_sessions(std::move(done));
    };
    hooks.metrics = [this] {
      std::vector<const WorkerMetrics*> workers;
      for (const auto& m : runtime_.metrics)
        workers.push_back(m.get());
      return render_metrics(workers, runtime_.live.load(), *snapshot_.load());
    };
    admin_ = std::make_unique<AdminServer>(main_io_, std::move(hooks));
    const auto& admin_config = snapshot_.load()->config.admin;
    if (!admin_config.cert_file.empty() && !admin_->use_tls(admin_config, error)) return false;
    if (!admin_->bind(*admin, error)) return false;
  }
  return true;
}

std::string Server::admin_address() const {
  return admin_ ? admin_->local_address() : std::string();
}

void Server::collect_sessions(std::function<void(std::vector<SessionInfo>)> done) {
  struct Gathered {
    std::mutex mutex;
    std::vector<SessionInfo> sessions;
  };
  auto gathered = std::make_shared<Gathered>();
  for_each_session(
      [gathered](LiveSession& session) {
        SessionInfo info = session.info();
        std::lock_guard lock(gathered->mutex);
        gathered->sessions.push_back(std::move(info));
      },
      [gathered, done = std::move(done)](std::size_t) {
        std::lock_guard lock(gathered->mutex);
        done(std::move(gathered->sessions));
      });
}

std::string Server::local_address() const {
  const auto addr = bound_.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
         std::to_string(bound_.port());
}

void Server::start_accepting(Worker& worker) {
  asio::co_spawn(
      worker.io,
      [this, &worker]() -> asio::awaitable<void> {
        constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
        for (;;) {
          auto [ec, socket] = co_await worker.acceptor.async_accept(use_tuple);
          if (ec == asio::error::operation_aborted || !worker.acceptor.is_open()) co_return;
          if (ec) {
            spdlog::warn("accept on worker {} failed: {}", worker.index, ec.message());
            if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
                ec.value() == ENFILE || ec.value() == ENOMEM) {
              // Out of file descriptors or memory: back off instead of spinning on the error.
              asio::steady_timer pause(worker.io, std::chrono::milliseconds(100));
              co_await pause.async_wait(use_tuple);
            }
            continue;
          }
          WorkerMetrics& metrics = *runtime_.metrics[worker.index];
          metrics.accepted.add();
          auto snapshot = snapshot_.load();
          // Refused before any TLS work: an address that failed too many handshakes, or too
          // many connections still handshaking. Counted, not logged one by one (a flood would
          // flood the log); HandshakeFailures logs when it starts a block.
          error_code peer_ec;
          const auto peer = socket.remote_endpoint(peer_ec);
          std::string_view refused;
          if (!peer_ec && runtime_.handshake_failures.blocked(peer.address(),
                                                              std::chrono::steady_clock::now())) {
            refused = reason::kRateLimited;
          } else if (runtime_.handshaking[worker.index] >= handshake_share(*snapshot) &&
                     !evict_for_new_connection(worker.index)) {
            refused = reason::kTooManyHandshakes;
          }
          if (!refused.empty()) {
            metrics.count_outcome(Result::rejected, refused);
            error_code ignored;
            socket.close(ignored);
            continue;
          }
          const std::uint64_t id = (++worker.next_session << kWorkerBits) | worker.index;
          start_session(std::move(socket), std::move(snapshot), id, runtime_, worker.index);
        }
      },
      asio::detached);
}

unsigned Server::handshake_share(const Snapshot& snapshot) const {
  const auto workers = static_cast<unsigned>(workers_.size());
  return std::max(1u, (snapshot.config.limits.max_handshakes + workers - 1) / workers);
}

bool Server::evict_for_new_connection(unsigned worker) {
  // The lowest tier first, and in it the oldest (session ids grow with every accept on a worker).
  // A tier-0 connection whose first bytes have arrived unread is passed over; that costs a system
  // call, so it is asked only of a connection that would otherwise become the victim.
  const auto now = std::chrono::steady_clock::now();
  std::shared_ptr<LiveSession> victim;
  std::pair<int, std::uint64_t> victim_rank;
  for (auto& [id, weak] : runtime_.sessions[worker]) {
    auto session = weak.lock();
    if (!session) continue;
    const auto tier = session->eviction_tier(now);
    if (!tier) continue;
    const std::pair<int, std::uint64_t> rank{*tier, id};
    if (victim && rank >= victim_rank) continue;
    if (*tier == 0 && session->has_unread_input()) continue;
    victim = std::move(session);
    victim_rank = rank;
  }
  if (!victim) return false;
  victim->terminate({Result::rejected, reason::kEvicted, sqlstate::kTooManyConnections,
                     "sorry, too many clients already",
                     "closed before its TLS handshake completed, to make room for a new "
                     "connection (limits.max_handshakes)"});
  return true;
}

void Server::for_each_session(std::function<void(LiveSession&)> fn,
                              std::function<void(std::size_t)> done) {
  struct Progress {
    std::atomic<std::size_t> workers_left;
    std::atomic<std::size_t> visited{0};
  };
  auto progress = std::make_shared<Progress>();
  progress->workers_left = workers_.size();
  for (auto& w : workers_) {
    asio::post(w->io, [this, &w, fn, done, progress] {
      std::vector<std::shared_ptr<LiveSession>> live;
      for (auto& [id, weak] : runtime_.sessions[w->index]) {
        if (auto session = weak.lock()) live.push_back(std::move(session));
      }
      for (auto& session : live)
        fn(*session);
      progress->visited += live.size();
      if (progress->workers_left.fetch_sub(1) == 1 && done) done(progress->visited.load());
    });
  }
}

void Server::terminate_all(std::string_view why) {
  for_each_session([why](LiveSession& session) {
    session.terminate({Result::ok, reason::kServerShutdown, sqlstate::kAdminShutdown,
                       "terminating connection due to administrator command", std::string(why)});
  });
}

bool Server::reload(std::string* error_out) {
  std::lock_guard lock(reload_mutex_);
  const auto start = std::chrono::steady_clock::now();
  std::string errors;
  std::shared_ptr<const Snapshot> next;
  try {
    next = loader_(errors);
  } catch (const std::exception& e) {
    errors = e.what();
  }
  if (!next) {
    ++process_metrics().reloads_failed;
    spdlog::error("reload failed; the previous configuration stays in force: {}", errors);
    if (error_out != nullptr) *error_out = errors;
    return false;
  }
  const auto current = snapshot_.load();
  const auto& was = current->config;
  const auto& now = next->config;
  if (was.listen.host != now.listen.host || was.listen.port != now.listen.port) {
    spdlog::warn("reload: listen changed to {}:{}; it takes effect only after a restart",
                 now.listen.host, now.listen.port);
  }
  if (was.cancel.instance_id != now.cancel.instance_id) {
    spdlog::warn("reload: cancel.instance_id changed to {}; it takes effect only after a restart",
                 now.cancel.instance_id);
  }
  if (was.workers != now.workers) {
    spdlog::warn("reload: workers changed to {}; it takes effect only after a restart",
                 now.workers);
  }
  if (was.log.level != now.log.level) spdlog::set_level(spdlog::level::from_str(now.log.level));
  snapshot_.store(next);
  ++process_metrics().reloads_ok;
  process_metrics().last_reload_ok_unix = std::time(nullptr);
  spdlog::info(
      "configuration reloaded from {} in {:.1f} ms: new sessions use it, {} live sessions keep "
      "theirs",
      now.source, milliseconds_since(start), runtime_.live.load());
  if (now.on_revocation == config::CertificateEventAction::terminate) {
    const auto recheck_start = std::chrono::steady_clock::now();
    for_each_session([next](LiveSession& session) { session.recheck_certificate(*next); },
                     [recheck_start](std::size_t sessions) {
                       spdlog::info(
                           "on_revocation: re-checked the certificates of {} live sessions in "
                           "{:.1f} ms",
                           sessions, milliseconds_since(recheck_start));
                     });
  }
  return true;
}

int Server::run() {
  auto& main_io = main_io_;
  asio::signal_set signals(main_io, SIGTERM, SIGINT, SIGHUP);
  asio::steady_timer shutdown_timer(main_io);
  asio::steady_timer watch_timer(main_io);
  enum class Phase { serving, draining, terminating } phase = Phase::serving;
  std::chrono::steady_clock::time_point phase_deadline;

  auto stop_accepting = [this] {
    for (auto& w : workers_) {
      asio::post(w->io, [&w] {
        error_code ignored;
        w->acceptor.close(ignored);
      });
    }
  };
  auto finish = [&] {
    if (admin_) admin_->stop();
    for (auto& w : workers_)
      w->io.stop();
    main_io.stop();
  };
  // Polls until every session has ended; at the deadline, a drain turns into termination, and a
  // termination into a stop.
  std::function<void()> poll_shutdown = [&] {
    if (runtime_.live.load() == 0) {
      finish();
      return;
    }
    if (std::chrono::steady_clock::now() >= phase_deadline) {
      if (phase == Phase::draining) {
        spdlog::warn("shutdown_timeout passed: ending {} sessions with 57P01",
                     runtime_.live.load());
        terminate_all("shutdown_timeout passed during a drain");
        phase = Phase::terminating;
        phase_deadline = std::chrono::steady_clock::now() + kTerminateWait;
      } else {
        spdlog::warn("{} sessions did not end in time; stopping anyway", runtime_.live.load());
        finish();
        return;
      }
    }
    shutdown_timer.expires_after(kDrainPoll);
    shutdown_timer.async_wait([&](const error_code& ec) {
      if (!ec) poll_shutdown();
    });
  };
  auto begin_shutdown = [&](bool fast) {
    ready_ = false;  // the readiness probe answers 503 from now on
    watch_timer.cancel();
    if (phase == Phase::serving) stop_accepting();
    if (fast || phase == Phase::draining) {
      if (phase != Phase::terminating) {
        spdlog::info("fast shutdown: ending {} sessions with 57P01", runtime_.live.load());
        terminate_all("fast shutdown");
        phase = Phase::terminating;
        phase_deadline = std::chrono::steady_clock::now() + kTerminateWait;
      }
    } else {
      const auto timeout = snapshot_.load()->config.shutdown_timeout;
      spdlog::info("draining: no new connections; {} sessions have {} ms to finish",
                   runtime_.live.load(), timeout.count());
      phase = Phase::draining;
      phase_deadline = std::chrono::steady_clock::now() + timeout;
    }
    shutdown_timer.cancel();
    poll_shutdown();
  };

  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        spdlog::info("SIGHUP received: reloading the configuration");
        if (phase == Phase::serving) reload();
      } else {
        spdlog::info("{} received", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        // SIGINT, or SIGTERM a second time: fast.
        begin_shutdown(signo == SIGINT);
      }
      wait_signal();
    });
  };
  wait_signal();

  // watch_interval: reload when a file the config names changes.
  std::string signature = files_signature(snapshot_.load()->config.files);
  std::function<void()> watch = [&] {
    const auto interval = snapshot_.load()->config.watch_interval;
    if (interval.count() <= 0 || phase != Phase::serving) return;
    watch_timer.expires_after(interval);
    watch_timer.async_wait([&](const error_code& ec) {
      if (ec || phase != Phase::serving) return;
      std::string now = files_signature(snapshot_.load()->config.files);
      if (now != signature) {
        spdlog::info("a watched file changed: reloading the configuration");
        reload();
        // Whether or not it worked, wait for the next change before trying again.
        signature = files_signature(snapshot_.load()->config.files);
      }
      watch();
    });
  };
  watch();

  if (admin_) {
    admin_->start();
    const bool https = !snapshot_.load()->config.admin.cert_file.empty();
    spdlog::info("admin endpoint on {}://{}", https ? "https" : "http", admin_->local_address());
  }
  ready_ = true;
  for (auto& w : workers_) {
    start_accepting(*w);
    w->thread = std::thread([&w] {
      try {
        w->io.run();
      } catch (const std::exception& e) {
        spdlog::critical("worker {} stopped by an unexpected exception: {}", w->index, e.what());
        std::abort();
      }
    });
  }
  main_io.run();
  for (auto& w : workers_)
    w->thread.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace pgmtls::proxy
