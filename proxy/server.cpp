#include "proxy/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>

#include "proxy/session.h"

namespace pgmtls::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// Session ids carry the worker in their low bits so a log line tells which thread served it.
constexpr unsigned kWorkerBits = 10;

}  // namespace

Server::Server(std::shared_ptr<const Snapshot> snapshot) : snapshot_(std::move(snapshot)) {
  unsigned n = snapshot_.load()->config.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
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
  return true;
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
          const std::uint64_t id = (++worker.next_session << kWorkerBits) | worker.index;
          start_session(std::move(socket), snapshot_.load(), id, runtime_, worker.index);
        }
      },
      asio::detached);
}

int Server::run() {
  asio::io_context signals_io(1);
  asio::signal_set signals(signals_io, SIGTERM, SIGINT, SIGHUP);
  std::function<void()> wait_signal;
  bool stopping = false;
  wait_signal = [&] {
    signals.async_wait([&](const error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        spdlog::warn("SIGHUP received: configuration reload is not implemented yet; ignored");
        wait_signal();
        return;
      }
      spdlog::info("{} received: shutting down", signo == SIGTERM ? "SIGTERM" : "SIGINT");
      stopping = true;
      for (auto& w : workers_) {
        asio::post(w->io, [&w] {
          error_code ignored;
          w->acceptor.close(ignored);
          w->io.stop();
        });
      }
    });
  };
  wait_signal();

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
  while (!stopping && signals_io.run_one() > 0) {
  }
  for (auto& w : workers_)
    w->thread.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace pgmtls::proxy
