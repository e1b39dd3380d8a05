// The process: N workers, each one thread with its own io_context and SO_REUSEPORT listener.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/runtime.h"
#include "proxy/snapshot.h"

namespace pgmtls::proxy {

class Server {
 public:
  explicit Server(std::shared_ptr<const Snapshot> snapshot);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds one listener per worker on the configured address. With port 0 the first listener's
  // port is used for all. Returns false and sets `error` if the address cannot be bound.
  bool bind(std::string& error);

  // The bound address, "host:port".
  std::string local_address() const;
  unsigned worker_count() const { return static_cast<unsigned>(workers_.size()); }

  // Serves until SIGTERM or SIGINT; returns the process exit code.
  int run();

  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(); }

 private:
  struct Worker {
    unsigned index = 0;
    boost::asio::io_context io{1};
    boost::asio::ip::tcp::acceptor acceptor{io};
    std::thread thread;
    std::uint64_t next_session = 0;
  };

  void start_accepting(Worker& worker);

  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  Runtime runtime_;  // before workers_: outlives the sessions they run
  std::vector<std::unique_ptr<Worker>> workers_;
  boost::asio::ip::tcp::endpoint bound_;
};

}  // namespace pgmtls::proxy
