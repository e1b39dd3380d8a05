// What sessions share beyond their snapshot: process-wide state owned by the Server, which
// outlives every session. Each member says how it is shared: thread-safe, or touched only on one
// worker's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "proxy/backend_pool.h"
#include "proxy/cancel.h"
#include "proxy/limits.h"
#include "proxy/metrics.h"
#include "proxy/outcome.h"
#include "proxy/peer_cancel.h"
#include "proxy/relay_buffers.h"

namespace pgmtls::proxy {

struct Snapshot;

// Why pgmtls ends a live session itself: the client gets a FATAL ErrorResponse with `sqlstate`
// and `message` (between two messages of the backend's stream); the log line gets `result`,
// `reason` and `detail` (the message when empty).
struct Termination {
  Result result = Result::ok;
  std::string_view reason;  // proxy/outcome.h
  std::string_view sqlstate;
  std::string message;
  std::string detail;
};

// One live session, as the admin endpoint's /sessions shows it.
struct SessionInfo {
  std::uint64_t id = 0;
  std::string client;    // address:port
  std::string identity;  // the certificate's subject DN; empty without one
  std::string user;      // the role requested
  std::string role;      // the role connected as (empty before admission)
  std::string database;
  std::string backend;  // host:port (empty before the backend connection)
  std::string state;    // "startup", "active", "terminating"
  std::chrono::system_clock::time_point started;
  std::uint64_t bytes_in = 0;   // from the client
  std::uint64_t bytes_out = 0;  // to the client
};

// A session as the rest of the process sees it. Called only on the session's worker thread.
class LiveSession {
 public:
  virtual ~LiveSession() = default;
  // Ends the session: at once during start-up; during the relay with a FATAL to the client at
  // the next message boundary, or by closing both sockets if none comes within a few seconds.
  virtual void terminate(Termination why) = 0;
  // After a reload: ends the session if `snapshot`'s CRLs revoke its client certificate and the
  // snapshot says on_revocation: terminate.
  virtual void recheck_certificate(const Snapshot& snapshot) = 0;
  virtual SessionInfo info() const = 0;
  // How readily the connection makes room for a new one at limits.max_handshakes, while nothing
  // about its client is verified yet: 0, it has not even sent a whole first packet; 1, it has
  // been in its TLS handshake for over kSlowHandshake. Nullopt: not to be evicted (its handshake
  // is done, or young enough that it may be a client about to finish it).
  virtual std::optional<int> eviction_tier(std::chrono::steady_clock::time_point now) const = 0;
  // Bytes from the client wait in the socket, not read yet: a connection of tier 0 that is only
  // waiting for its turn on a busy worker, not a silent one.
  virtual bool has_unread_input() = 0;
};

// A TLS handshake still running after this long is slow enough to give way at max_handshakes:
// over loopback or a LAN one takes milliseconds, across continents a few round trips.
inline constexpr std::chrono::seconds kSlowHandshake{1};

struct Runtime {
  Runtime(unsigned workers, unsigned instance_id)
      : sessions(workers),
        handshaking(workers, 0),
        cancel(instance_id),
        peer_tls(boost::asio::ssl::context::tls_client) {
    // Towards peers: encrypted, not verified; a forwarded cancel is authenticated by its MAC.
    peer_tls.set_verify_mode(boost::asio::ssl::verify_none);
    for (unsigned i = 0; i < workers; ++i) {
      metrics.push_back(std::make_unique<WorkerMetrics>());
      relay_buffers.push_back(std::make_unique<RelayBuffers>());
      pools.push_back(std::make_unique<BackendPool>());
    }
  }

  // Live sessions by id, one map per worker, each touched only on its worker's thread.
  std::vector<std::unordered_map<std::uint64_t, std::weak_ptr<LiveSession>>> sessions;
  // Sessions alive in the whole process, in any phase.
  std::atomic<std::size_t> live{0};
  // Admitted sessions by role and identity (limits:), failed handshakes by address; thread-safe.
  SessionLimits limits;
  HandshakeFailures handshake_failures;
  // Connections still in TLS handshake or start-up (limits.max_handshakes), one count per worker,
  // each touched only on its worker's thread: every worker keeps to its share of the limit, so
  // that at the limit it makes room among its own connections (Server::evict_for_new_connection).
  std::vector<unsigned> handshaking;
  // Cancel keys handed to clients; thread-safe.
  CancelTable cancel;
  // Forwarded cancels from peers already accepted (replay protection); thread-safe.
  PeerReplayGuard peer_replays;
  // The TLS context for connections to peers; OpenSSL makes concurrent use safe.
  boost::asio::ssl::context peer_tls;
  // Counters, one set per worker, each written only on its worker's thread.
  std::vector<std::unique_ptr<WorkerMetrics>> metrics;
  // Relay buffers lent to sessions, one pool per worker, each touched only on its thread.
  std::vector<std::unique_ptr<RelayBuffers>> relay_buffers;
  // Idle backend connections (pool_mode: session), one pool per worker, each touched only on its
  // thread.
  std::vector<std::unique_ptr<BackendPool>> pools;
};

}  // namespace pgmtls::proxy
