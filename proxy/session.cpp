#include "proxy/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <span>
#include <vector>

#include "auth/identity.h"
#include "auth/policy.h"
#include "auth/scram.h"
#include "auth/tls_context.h"
#include "auth/verify_reason.h"
#include "protocol/builders.h"
#include "protocol/frontend.h"
#include "protocol/initial_packet.h"
#include "protocol/message.h"
#include "protocol/proxy_header.h"
#include "proxy/backend_pool.h"
#include "proxy/logging.h"
#include "proxy/outcome.h"
#include "proxy/relay_buffers.h"
#include "proxy/runtime.h"
#include "proxy/target_session.h"
#include "proxy/tls_stream.h"

namespace pgmtls::proxy {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// During start-up the backend sends a handful of short messages; anything larger is a broken or
// hostile backend.
constexpr std::size_t kMaxBackendStartupMessage = 1 << 20;
// A terminated session whose backend stream reaches no message boundary within this long (a
// stalled backend, a client not reading) is closed without the FATAL message.
constexpr auto kTerminateGrace = std::chrono::seconds(5);
// The first byte of a TLS handshake record: a ClientHello sent without an SSLRequest.
constexpr std::uint8_t kTlsHandshakeRecord = 0x16;
// pool_mode: transaction holds Parse, Bind, Describe, Close and Query messages whole to rewrite
// them; a larger one ends the session.
constexpr std::size_t kMaxWholeMessage = 64u << 20;

// TCP keepalives (tcp_keepalives: in the config) on a client or backend socket.
void set_keepalives(tcp::socket& socket, const config::KeepaliveConfig& k) {
  if (k.idle.count() <= 0) return;
  const int fd = socket.native_handle();
  const int on = 1;
  const int idle = static_cast<int>(std::max<long long>(1, k.idle.count() / 1000));
  const int interval = static_cast<int>(std::max<long long>(1, k.interval.count() / 1000));
  const int count = static_cast<int>(k.count);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

class Session final : public LiveSession, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<const Snapshot> snapshot, std::uint64_t id,
          Runtime& runtime, unsigned worker)
      : runtime_(runtime),
        worker_(worker),
        metrics_(*runtime.metrics[worker]),
        client_(std::move(socket)),
        backend_(client_.get_executor()),
        deadline_(client_.get_executor()),
        host_timer_(client_.get_executor()),
        idle_timer_(client_.get_executor()),
        expiry_timer_(client_.get_executor()),
        snap_(std::move(snapshot)),
        id_(id),
        started_(std::chrono::steady_clock::now()),
        wait_timer_(client_.get_executor()) {
    error_code ec;
    const auto ep = client_.remote_endpoint(ec);
    peer_ = ec ? std::string("unknown") : endpoint_text(ep);
    if (!ec) peer_address_ = ep.address();
    ++runtime_.handshaking[worker_];
  }

  asio::awaitable<void> run() {
    Registration registration(*this);
    arm_deadline();
    bool ready = co_await startup();
    end_handshake();
    if (terminating_) {
      // Ended during start-up (shutdown): whatever I/O error that caused is not the story.
      set_outcome(terminating_->result, terminating_->reason, terminating_->message);
      ready = false;
    }
    if (ready) {
      deadline_.cancel();
      co_await relay();
    }
    // The key cancels nothing once the end is logged (whoever saw that line, a test or an
    // operator, must find it gone), nor once the backend connection may serve another client.
    forget_cancel_key();
    if (keep_backend_) co_await return_backend_to_pool();
    // pool_mode: transaction: a connection held with no reader (taken during start-up) is done.
    if (held_ && !reader_running_) finish_backend(true);
    close_sockets();
    log_outcome();
  }

  void terminate(Termination why) override {
    if (terminating_ || relay_ended_) return;
    terminating_ = std::move(why);
    if (!in_relay_) {
      // Start-up is aborted at once; run() records the termination as the outcome.
      error_code ignored;
      client_.cancel(ignored);
      backend_.cancel(ignored);
      wait_timer_.cancel();
      return;
    }
    deadline_.expires_after(kTerminateGrace);
    deadline_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->end_relay(reason::kBackendClosed);
    });
    // Between two backend messages and not writing to the client: the FATAL can go now.
    // Otherwise backend_to_client sends it at the next boundary.
    if (!writing_to_client_ && backend_messages_.at_boundary()) {
      asio::co_spawn(
          client_.get_executor(),
          [self = shared_from_this()]() -> asio::awaitable<void> {
            // A relay write that started meanwhile sends it at its next boundary instead.
            if (!self->writing_to_client_) co_await self->send_fatal();
          },
          asio::detached);
    }
  }

  SessionInfo info() const override {
    SessionInfo i;
    i.id = id_;
    i.client = peer_;
    i.identity = identity_ ? identity_->subject_dn : "";
    i.user = startup_.parameters.empty() ? "" : startup_.user();
    i.role = role_;
    i.database = startup_.parameters.empty() ? "" : startup_.database();
    i.backend = backend_name_;
    i.state = terminating_ ? "terminating" : (in_relay_ ? "active" : "startup");
    i.started = started_wall_;
    i.bytes_in = bytes_from_client_;
    i.bytes_out = bytes_to_client_;
    return i;
  }

  std::optional<int> eviction_tier(std::chrono::steady_clock::time_point now) const override {
    if (!handshaking_ || terminating_ || stage_ == Stage::verified) return std::nullopt;
    if (stage_ == Stage::silent) return 0;
    if (now - handshake_started_ >= kSlowHandshake) return 1;
    return std::nullopt;
  }

  bool has_unread_input() override {
    error_code ec;
    return client_.available(ec) > 0;
  }

  void recheck_certificate(const Snapshot& snapshot) override {
    if (!in_relay_ || terminating_ || relay_ended_ ||
        snapshot.config.on_revocation != config::CertificateEventAction::terminate) {
      return;
    }
    X509* leaf = SSL_get0_peer_certificate(tls_->native_handle());
    if (leaf == nullptr) return;
    std::vector<X509*> untrusted;
    if (STACK_OF(X509)* sent = SSL_get_peer_cert_chain(tls_->native_handle())) {
      for (int i = 0; i < sk_X509_num(sent); ++i)
        untrusted.push_back(sk_X509_value(sent, i));
    }
    std::vector<auth::X509Ptr> chain;
    std::string why;
    const long result = auth::verify_client_certificate(snapshot.client_tls->native_handle(), leaf,
                                                        untrusted, chain, why);
    if (result == X509_V_ERR_CERT_REVOKED) {
      terminate({Result::rejected, auth::verify_reason(result), sqlstate::kInvalidAuthorization,
                 "terminating connection because the client certificate has been revoked",
                 "after reload: " + why});
    }
  }

 private:
  static std::string endpoint_text(const tcp::endpoint& ep) {
    const auto addr = ep.address();
    return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
           std::to_string(ep.port());
  }

  // The session's entry in its worker's table of live sessions, for as long as run() runs.
  class Registration {
   public:
    explicit Registration(Session& s) : s_(s) {
      s_.runtime_.sessions[s_.worker_][s_.id_] = s_.weak_from_this();
      s_.runtime_.live.fetch_add(1, std::memory_order_relaxed);
    }
    ~Registration() {
      s_.end_handshake();
      s_.forget_cancel_key();
      s_.runtime_.sessions[s_.worker_].erase(s_.id_);
      s_.runtime_.live.fetch_sub(1, std::memory_order_relaxed);
    }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    Session& s_;
  };

  void forget_cancel_key() {
    if (cancel_key_) runtime_.cancel.remove(*cancel_key_);
    cancel_key_.reset();
  }

  // Leaves the count of connections in start-up (limits.max_handshakes); once.
  void end_handshake() {
    if (handshaking_) --runtime_.handshaking[worker_];
    handshaking_ = false;
  }

  // The phases up to a backend ready for queries; each returns false once the outcome is decided.
  // Results are awaited into a local, never inside an if condition: GCC 12 miscompiles a co_await
  // in a condition (the coroutine frame is corrupt when it resumes; see docs/ARCHITECTURE.md).
  asio::awaitable<bool> startup() {
    bool ok = co_await negotiate();
    if (ok) ok = co_await read_startup();
    if (ok) ok = co_await authorize();
    if (ok) ok = co_await connect_any_backend();
    co_return ok;
  }

  // The backend's hosts in order (and, for prefer-standby, a second pass accepting any), until one
  // completes the start-up and matches target_session_attrs, as libpq does: the next host is
  // tried only after this one could not be reached (name, connect, connect_timeout), answered
  // 57P03 (cannot connect now: starting up, shutting down, a standby without hot_standby), or is
  // not what target_session_attrs wants. Any other failure (TLS, authentication, an error of the
  // server's) ends the search there, as a wrong password would with libpq. A failure reaches the
  // client only from the host that ends the search; the log line lists every host's.
  asio::awaitable<bool> connect_any_backend() {
    using A = config::TargetSessionAttrs;
    const auto& backend = this->backend();
    std::vector<config::BackendHost> hosts = backend.hosts;
    if (hosts.empty()) hosts.push_back({backend.host, backend.port});
    if (session_pooling()) {
      const bool reused = co_await reuse_pooled_backend();
      if (reused) co_return true;
    }
    if (transaction_pooling() && !reconnecting_) co_return co_await transaction_startup();
    std::vector<A> passes{backend.target_session_attrs};
    if (backend.target_session_attrs == A::prefer_standby) passes = {A::standby, A::any};
    std::string tried;
    bool ok = false;
    for (std::size_t pass = 0; pass < passes.size() && !ok; ++pass) {
      for (std::size_t i = 0; i < hosts.size(); ++i) {
        const bool last = pass + 1 == passes.size() && i + 1 == hosts.size();
        more_hosts_ = !last;
        wanted_attrs_ = passes[pass];
        backend_host_ = hosts[i];
        arm_host_timer();
        ok = co_await connect_backend();
        if (ok) ok = co_await backend_startup();
        disarm_host_timer();
        if (ok) break;
        // The client's own failures (gone, deadline, terminated) end the search.
        if (deadline_expired_ || terminating_ || outcome_.reason == reason::kClientGone) break;
        if (hosts.size() > 1 || passes.size() > 1) {
          tried += (tried.empty() ? "" : "; ") + backend_name_ + ": " + outcome_.detail;
        }
        if (last) break;
        if (!try_next_host_) {
          tried += " (not trying the other hosts after this failure, as libpq)";
          pass = passes.size();
          break;
        }
        reset_backend();
      }
    }
    more_hosts_ = false;
    if (!ok && !tried.empty() && !deadline_expired_ && !terminating_) {
      outcome_.detail = "no usable backend host: " + tried;
    }
    co_return ok;
  }

  // libpq's connect_timeout: one deadline per host for connecting, TLS and authentication up to
  // ReadyForQuery. On expiry the backend socket is closed, which fails whatever waits on it.
  void arm_host_timer() {
    try_next_host_ = false;
    host_timed_out_ = false;
    const std::uint64_t attempt = ++host_attempt_;
    host_timer_.expires_after(backend().connect_timeout);
    host_timer_.async_wait([weak = weak_from_this(), attempt](error_code ec) {
      auto self = weak.lock();
      // A timer that expired while its attempt was ending must not touch the next one.
      if (ec || !self || self->host_attempt_ != attempt) return;
      self->host_timed_out_ = true;
      error_code ignored;
      self->backend_.close(ignored);
    });
  }
  void disarm_host_timer() {
    ++host_attempt_;
    host_timer_.cancel();
  }

  // A failure on this host is only logged: the next host is tried.
  bool trying_next_host() const { return more_hosts_ && try_next_host_; }

  // Forgets a backend connection that was not used, before the next host.
  void reset_backend() {
    error_code ignored;
    backend_tls_.reset();
    backend_.close(ignored);
    backend_buf_.clear();
    scram_.reset();
    scram_verified_ = false;
    credential_sent_ = false;
    backend_auth_.clear();
    backend_key_.reset();
    key_at_ = 0;
    in_hot_standby_.reset();
    default_read_only_.reset();
  }

  // ---- the start-up deadline (TLS handshake + StartupMessage + backend start-up) ----

  void arm_deadline() {
    deadline_.expires_after(snap_->config.startup_timeout);
    deadline_.async_wait([weak = weak_from_this()](error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->deadline_expired_ = true;
        error_code ignored;
        self->client_.cancel(ignored);
        self->backend_.cancel(ignored);
      }
    });
  }

  // Classifies an I/O error during start-up into the outcome. Returns false for chaining.
  bool startup_io_failed(const error_code& ec, std::string_view phase) {
    if (deadline_expired_) {
      set_outcome(Result::rejected, reason::kHandshakeTimeout,
                  "startup_timeout expired during " + std::string(phase));
    } else if (ec == asio::error::eof || ec == asio::error::connection_reset ||
               ec == asio::ssl::error::stream_truncated) {
      set_outcome(Result::rejected, reason::kClientGone,
                  "client disconnected during " + std::string(phase));
    } else {
      set_outcome(Result::error, reason::kClientGone, std::string(phase) + ": " + ec.message());
    }
    return false;
  }

  void set_outcome(Result result, std::string_view why, std::string detail) {
    outcome_.result = result;
    outcome_.reason = why;
    outcome_.detail = std::move(detail);
  }

  // ---- writing to the client, in plaintext before TLS and encrypted after ----

  asio::awaitable<error_code> write_client(const std::vector<std::uint8_t>& bytes) {
    error_code ec;
    if (tls_) {
      std::tie(ec, std::ignore) = co_await asio::async_write(*tls_, asio::buffer(bytes), use_tuple);
    } else {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(client_, asio::buffer(bytes), use_tuple);
    }
    co_return ec;
  }

  // Sends a FATAL ErrorResponse (best effort) and records why. Returns false for chaining.
  asio::awaitable<bool> refuse(std::string_view why, std::string_view sqlstate,
                               const std::string& message, std::string detail,
                               std::string_view hint = {}) {
    set_outcome(Result::rejected, why, detail.empty() ? message : std::move(detail));
    // A cancel connection gets no answer, as from PostgreSQL; a failure after which another
    // backend host is tried is only logged.
    if (cancelling_ || trying_next_host()) co_return false;
    co_await write_client(protocol::error_response({.severity = "FATAL",
                                                    .sqlstate = sqlstate,
                                                    .message = message,
                                                    .detail = {},
                                                    .hint = hint}));
    co_return false;
  }

  // The backend this session goes to: chosen by the server name the client sent (sni: routes)
  // once its TLS handshake is done; before that (cancels, peers), the default.
  const Snapshot::Route& route() const { return route_ ? *route_ : snap_->routes.front(); }
  const config::BackendConfig& backend() const { return *route().backend; }

  // ---- phase 1: the initial packets, up to a finished TLS handshake ----

  template <typename Stream>
  asio::awaitable<std::variant<error_code, protocol::ParseError, protocol::InitialPacket>>
  read_initial_packet(Stream& stream) {
    std::array<std::uint8_t, 4> head{};
    auto [ec, n] = co_await asio::async_read(stream, asio::buffer(head), use_tuple);
    if (ec) co_return ec;
    auto parsed = protocol::parse_initial_packet(head);
    if (auto* err = std::get_if<protocol::ParseError>(&parsed)) co_return *err;
    const std::size_t more = std::get<protocol::NeedMore>(parsed).bytes;
    std::vector<std::uint8_t> packet(head.size() + more);
    std::copy(head.begin(), head.end(), packet.begin());
    std::tie(ec, n) = co_await asio::async_read(
        stream, asio::buffer(packet.data() + head.size(), more), use_tuple);
    if (ec) co_return ec;
    parsed = protocol::parse_initial_packet(packet);
    if (auto* err = std::get_if<protocol::ParseError>(&parsed)) co_return *err;
    co_return std::move(std::get<protocol::InitialPacket>(parsed));
  }

  // Up to `buffer.size()` bytes the client has sent, left unread: at least one, once the socket
  // is readable. Zero bytes: the client closed.
  asio::awaitable<std::tuple<error_code, std::size_t>> peek(std::span<std::uint8_t> buffer) {
    for (;;) {
      auto [ec] = co_await client_.async_wait(tcp::socket::wait_read, use_tuple);
      if (ec) co_return std::make_tuple(ec, std::size_t{0});
      const ssize_t n =
          ::recv(client_.native_handle(), buffer.data(), buffer.size(), MSG_PEEK | MSG_DONTWAIT);
      if (n >= 0) co_return std::make_tuple(error_code{}, static_cast<std::size_t>(n));
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        co_return std::make_tuple(error_code(errno, asio::error::get_system_category()),
                                  std::size_t{0});
      }
    }
  }

  // A PROXY protocol header from a trusted load balancer: read exactly, and its source address
  // becomes the client's for everything after (rules, limits, logs).
  asio::awaitable<bool> read_proxy_header() {
    std::vector<std::uint8_t> header(protocol::kProxyHeaderProbe);
    std::size_t have = 0;
    for (;;) {
      auto [ec, n] = co_await asio::async_read(
          client_, asio::buffer(header.data() + have, header.size() - have), use_tuple);
      if (ec) co_return startup_io_failed(ec, "the PROXY protocol header");
      have = header.size();
      auto parsed = protocol::parse_proxy_header(header);
      if (auto* err = std::get_if<protocol::ParseError>(&parsed)) {
        set_outcome(
            Result::rejected, reason::kProxyProtocolError,
            err->message + " (from " + peer_ + ", a proxy_protocol.trusted_sources address)");
        co_return false;
      }
      if (auto* need = std::get_if<protocol::NeedMore>(&parsed)) {
        header.resize(have + need->bytes);
        continue;
      }
      const auto& proxied = std::get<protocol::ProxyHeader>(parsed);
      if (proxied.local) co_return true;  // the balancer's own check: its address stands
      via_ = peer_;
      error_code ignored;
      peer_address_ = asio::ip::make_address(proxied.source_text(), ignored);
      const auto source =
          peer_address_->is_v6() ? "[" + proxied.source_text() + "]" : proxied.source_text();
      peer_ = source + ":" + std::to_string(proxied.source_port);
      if (runtime_.handshake_failures.blocked(*peer_address_, std::chrono::steady_clock::now())) {
        set_outcome(Result::rejected, reason::kRateLimited,
                    "the client address is blocked (limits.failed_handshakes)");
        co_return false;
      }
      co_return true;
    }
  }

  bool proxy_protocol_trusted() const {
    if (!peer_address_) return false;
    for (const auto& source : snap_->config.proxy_protocol.trusted_sources) {
      if (auth::address_matches(source, *peer_address_)) return true;
    }
    return false;
  }

  asio::awaitable<bool> negotiate() {
    if (proxy_protocol_trusted()) {
      const bool ok = co_await read_proxy_header();
      if (!ok) co_return false;
    }
    bool gssenc_answered = false;
    for (;;) {
      // A TLS handshake record first: direct TLS. A PROXY header from anyone else: refused.
      std::array<std::uint8_t, protocol::kProxyHeaderProbe> first{};
      auto [peek_ec, peeked] = co_await peek(first);
      if (peek_ec || peeked == 0) {
        co_return startup_io_failed(peek_ec ? peek_ec : asio::error::eof, "the initial packet");
      }
      if (first[0] == kTlsHandshakeRecord) co_return co_await tls_handshake(true);
      if (peeked == first.size() && protocol::looks_like_proxy_header(first)) {
        set_outcome(Result::rejected, reason::kProxyProtocolError,
                    "PROXY protocol header from " + peer_ +
                        ", which is not in proxy_protocol.trusted_sources");
        co_return false;
      }
      auto read = co_await read_initial_packet(client_);
      if (auto* ec = std::get_if<error_code>(&read)) {
        co_return startup_io_failed(*ec, "the initial packet");
      }
      if (auto* err = std::get_if<protocol::ParseError>(&read)) {
        co_return co_await refuse(reason::kProtocolError, sqlstate::kProtocolViolation,
                                  err->message, {});
      }
      auto& packet = std::get<protocol::InitialPacket>(read);
      switch (packet.kind) {
        case protocol::InitialPacketKind::GSSENCRequest: {
          if (gssenc_answered) {
            co_return co_await refuse(reason::kProtocolError, sqlstate::kProtocolViolation,
                                      "GSSENCRequest sent twice", {});
          }
          gssenc_answered = true;
          auto [ec, n] = co_await asio::async_write(
              client_, asio::buffer(&protocol::kEncryptionRefused, 1), use_tuple);
          if (ec) co_return startup_io_failed(ec, "GSSENCRequest");
          continue;
        }
        case protocol::InitialPacketKind::CancelRequest: {
          const bool forwarded = co_await forward_cancel(packet.cancel);
          co_return forwarded;
        }
        case protocol::InitialPacketKind::PeerCancelRequest: {
          const bool forwarded = co_await peer_cancel(packet.peer_cancel);
          co_return forwarded;
        }
        case protocol::InitialPacketKind::StartupMessage:
          startup_ = std::move(packet.startup);
          co_return co_await refuse(reason::kSslRequired, sqlstate::kInvalidAuthorization,
                                    "SSL connection is required",
                                    "plaintext StartupMessage for user \"" + startup_.user() + "\"",
                                    "Connect with sslmode=verify-full and a client certificate.");
        case protocol::InitialPacketKind::SSLRequest:
          co_return co_await tls_handshake(false);
      }
    }
  }

  // ---- a CancelRequest: forwarded to the backend of the session whose key it carries ----

  // Always false: a cancel connection ends here, whatever happened.
  asio::awaitable<bool> forward_cancel(const protocol::CancelRequest& request,
                                       bool from_peer = false) {
    using namespace asio::experimental::awaitable_operators;
    cancelling_ = true;
    const unsigned owner = instance_of(request.process_id);
    if (owner != runtime_.cancel.instance_id()) {
      // Another instance's key. Forwarded once: what came from a peer never goes further.
      const auto& peers = snap_->config.cancel.peers;
      const auto peer =
          std::find_if(peers.begin(), peers.end(),
                       [owner](const config::PeerConfig& p) { return p.id == owner; });
      if (from_peer || peer == peers.end()) {
        set_outcome(Result::ok, reason::kCancelUnknown,
                    "the key belongs to instance " + std::to_string(owner) +
                        (from_peer ? ", not this one" : ", which is not a configured peer"));
        co_return false;
      }
      co_await forward_to_peer(*peer, request);
      co_return false;
    }
    const auto target = runtime_.cancel.find({request.process_id, request.secret_key});
    if (!target) {
      // As PostgreSQL does: silence. (A guessed key learns nothing either way.)
      set_outcome(Result::ok, reason::kCancelUnknown, "no live session has this cancel key");
      co_return false;
    }
    if (target->backend_pid == 0) {
      // pool_mode: transaction between transactions: nothing runs, so nothing to cancel.
      set_outcome(Result::ok, reason::kCancelUnknown,
                  "session " + std::to_string(target->session_id) +
                      " holds no backend connection (between transactions)");
      co_return false;
    }
    snap_ = target->snapshot;
    backend_name_ = endpoint_text(target->backend);
    backend_host_ = {target->host, target->backend.port()};
    error_code ec = co_await connect_backend_socket({target->backend});
    bool ok = !ec;
    if (ok && target->tls) ok = co_await negotiate_backend_tls();
    if (ok) {
      ec = co_await write_backend(
          protocol::cancel_request(target->backend_pid, target->backend_secret));
      ok = !ec;
    }
    const std::string which =
        "session " + std::to_string(target->session_id) + " on " + backend_name_;
    if (ok) {
      set_outcome(
          Result::ok, reason::kCancelForwarded,
          "for " + which +
              (backend_tls_ ? std::string(" over ") + SSL_get_version(backend_tls_->native_handle())
                            : std::string(" in plaintext")));
    } else {
      set_outcome(Result::error, reason::kCancelFailed,
                  "for " + which + ": " + (ec ? ec.message() : outcome_.detail));
    }
    co_return false;
  }

  // Sends `request` to the peer instance that owns its key, signed, inside TLS.
  asio::awaitable<void> forward_to_peer(const config::PeerConfig& peer,
                                        const protocol::CancelRequest& request) {
    using namespace asio::experimental::awaitable_operators;
    const std::string where = "peer " + std::to_string(peer.id) + " at " + peer.address.host + ":" +
                              std::to_string(peer.address.port);
    backend_name_ = where;
    // A name (a Kubernetes headless service's, say) is resolved for every cancel: peers move.
    auto [ec, endpoints] = co_await resolve(peer.address.host, peer.address.port);
    if (!ec) ec = co_await connect_backend_socket(endpoints);
    std::uint8_t answer = 0;
    if (!ec) {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(backend_, asio::buffer(protocol::ssl_request()), use_tuple);
    }
    if (!ec) {
      std::tie(ec, std::ignore) =
          co_await asio::async_read(backend_, asio::buffer(&answer, 1), use_tuple);
    }
    if (!ec && answer != 'S') ec = asio::error::operation_not_supported;
    if (!ec) {
      backend_tls_.emplace(backend_, runtime_.peer_tls);
      std::tie(ec) =
          co_await backend_tls_->async_handshake(asio::ssl::stream_base::client, use_tuple);
    }
    if (!ec) {
      ec = co_await write_backend(make_peer_cancel(snap_->config.cancel.peer_secret, request,
                                                   runtime_.cancel.instance_id(),
                                                   std::chrono::system_clock::now()));
    }
    if (ec) {
      set_outcome(Result::error, reason::kCancelFailed, "to " + where + ": " + ec.message());
    } else {
      set_outcome(Result::ok, reason::kCancelForwarded, "to " + where);
    }
  }

  // A cancel another instance forwarded: checked, then handled as our own, never passed on.
  asio::awaitable<bool> peer_cancel(const protocol::PeerCancelRequest& packet) {
    cancelling_ = true;
    const std::string why =
        verify_peer_cancel(packet, snap_->config.cancel.peer_secret, runtime_.peer_replays,
                           std::chrono::system_clock::now());
    if (!why.empty()) {
      set_outcome(Result::rejected, reason::kCancelRejected,
                  "peer cancel claiming to come from instance " + std::to_string(packet.sender) +
                      " dropped: " + why);
      co_return false;
    }
    const bool forwarded = co_await forward_cancel(packet.key, true);
    if (outcome_.reason == reason::kCancelForwarded) {
      outcome_.detail += " (from peer " + std::to_string(packet.sender) + ")";
    }
    co_return forwarded;
  }

  // After an SSLRequest, or `direct`: the client's first bytes are its ClientHello (PostgreSQL
  // 17's sslnegotiation=direct), which must offer ALPN "postgresql".
  asio::awaitable<bool> tls_handshake(bool direct) {
    error_code ec;
    if (!direct) {
      // Bytes already waiting after the SSLRequest were sent before our answer, so they cannot
      // be a TLS ClientHello the client chose to send: refuse rather than let anything read them
      // as part of the handshake (CVE-2021-23214).
      if (client_.available(ec) > 0) {
        co_return co_await refuse(reason::kProtocolError, sqlstate::kProtocolViolation,
                                  "received unencrypted data after SSL request",
                                  "received unencrypted data after SSL request");
      }
      std::tie(ec, std::ignore) =
          co_await asio::async_write(client_, asio::buffer(&protocol::kSSLAccepted, 1), use_tuple);
      if (ec) co_return startup_io_failed(ec, "SSLRequest");
    }

    stage_ = Stage::handshaking;
    handshake_started_ = std::chrono::steady_clock::now();
    tls_.emplace(client_, *snap_->client_tls);
    auth::record_verify_failure(tls_->native_handle(), &verify_failure_);
    if (direct) auth::mark_direct_tls(tls_->native_handle(), &direct_tls_);
    std::tie(ec) = co_await tls_->async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (!ec) {
      stage_ = Stage::verified;
      route_ = &snap_->route_for(tls_->native_handle(), sni_index_);
      metrics_.tls_handshake.observe(std::chrono::steady_clock::now() - handshake_started_);
      if (SSL_session_reused(tls_->native_handle()) == 1) metrics_.tls_resumed.add();
      co_return true;
    }

    const long verify = SSL_get_verify_result(tls_->native_handle());
    tls_.reset();  // a failed handshake leaves nothing to say over TLS
    if (deadline_expired_) co_return startup_io_failed(ec, "the TLS handshake");
    if (!direct_tls_.refused.empty()) {
      set_outcome(Result::rejected, reason::kTlsError,
                  "direct TLS refused: " + direct_tls_.refused);
      co_return false;
    }
    if (verify != X509_V_OK) {
      set_outcome(
          Result::rejected, auth::verify_reason(verify),
          std::string("client certificate rejected: ") + X509_verify_cert_error_string(verify));
      co_return false;
    }
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      co_return startup_io_failed(ec, "the TLS handshake");
    }
    set_outcome(Result::rejected, reason::kTlsError, "TLS handshake failed: " + ec.message());
    co_return false;
  }

  // ---- phase 2: the StartupMessage inside TLS ----

  asio::awaitable<bool> read_startup() {
    for (;;) {
      auto read = co_await read_initial_packet(*tls_);
      if (auto* ec = std::get_if<error_code>(&read)) {
        co_return startup_io_failed(*ec, "the StartupMessage");
      }
      if (auto* err = std::get_if<protocol::ParseError>(&read)) {
        co_return co_await refuse(reason::kProtocolError, sqlstate::kProtocolViolation,
                                  err->message, {});
      }
      auto& packet = std::get<protocol::InitialPacket>(read);
      if (packet.kind == protocol::InitialPacketKind::CancelRequest) {
        // libpq 17 sends its CancelRequest inside TLS.
        const bool forwarded = co_await forward_cancel(packet.cancel);
        co_return forwarded;
      }
      if (packet.kind == protocol::InitialPacketKind::PeerCancelRequest) {
        const bool forwarded = co_await peer_cancel(packet.peer_cancel);
        co_return forwarded;
      }
      if (packet.kind != protocol::InitialPacketKind::StartupMessage) {
        co_return co_await refuse(reason::kProtocolError, sqlstate::kProtocolViolation,
                                  "unexpected " + std::string(protocol::to_string(packet.kind)) +
                                      " inside an encrypted connection",
                                  {});
      }
      startup_ = std::move(packet.startup);
      break;
    }
    // A client asking for a newer minor version or protocol options learns what 3.0 supports.
    auto options = startup_.protocol_options();
    if (startup_.minor_version > 0 || !options.empty()) {
      const auto ec = co_await write_client(protocol::negotiate_protocol_version(0, options));
      if (ec) co_return startup_io_failed(ec, "NegotiateProtocolVersion");
    }
    co_return true;
  }

  // ---- phase 3: the access policy (hba rules, certificate identity, ident maps) ----

  static std::string_view reason_for(auth::Verdict::Kind kind) {
    switch (kind) {
      case auth::Verdict::Kind::admit:
        return reason::kClientClosed;
      case auth::Verdict::Kind::no_rule:
        return reason::kNoHbaEntry;
      case auth::Verdict::Kind::rejected:
        return reason::kHbaReject;
      case auth::Verdict::Kind::no_certificate:
        return reason::kNoCert;
      case auth::Verdict::Kind::no_identity:
        return reason::kNoIdentity;
      case auth::Verdict::Kind::issuer_mismatch:
        return reason::kIssuerMismatch;
      case auth::Verdict::Kind::map_denied:
        return reason::kMapDenied;
    }
    return reason::kMapDenied;
  }

  static auth::AccessRequest::Replication replication_mode(const std::string* value) {
    using R = auth::AccessRequest::Replication;
    if (value == nullptr) return R::none;
    if (*value == "database") return R::logical;
    for (const char* yes : {"true", "on", "yes", "1"}) {
      if (*value == yes) return R::physical;
    }
    return R::none;
  }

  asio::awaitable<bool> authorize() {
    auth::AccessRequest request;
    error_code ec;
    request.address = peer_address_ ? *peer_address_ : client_.remote_endpoint(ec).address();
    request.user = startup_.user();
    request.database = startup_.database();
    request.replication = replication_mode(startup_.find("replication"));

    X509* cert = SSL_get0_peer_certificate(tls_->native_handle());
    if (cert != nullptr) {
      std::string error;
      identity_ = auth::extract_identity(cert, error);
      if (!identity_) {
        co_return co_await refuse(
            reason::kNoIdentity, sqlstate::kInvalidAuthorization,
            "certificate authentication failed for user \"" + request.user + "\"", error);
      }
      identity_->ca_fingerprints = auth::verified_ca_fingerprints(tls_->native_handle());
    }

    const auth::Verdict verdict =
        snap_->policy.evaluate(request, identity_ ? &*identity_ : nullptr);
    if (verdict.rule != nullptr && !snap_->policy.implicit()) rule_ = verdict.rule->where.str();
    if (!verdict.admitted()) {
      co_return co_await refuse(reason_for(verdict.kind), sqlstate::kInvalidAuthorization,
                                verdict.client_message, verdict.detail);
    }
    role_ = verdict.role;
    if (verdict.role_substituted) admit_detail_ = verdict.detail;
    std::string refusal;
    limit_ticket_ = runtime_.limits.acquire(snap_->config.limits, role_,
                                            identity_ ? identity_->subject_dn : "", refusal);
    if (!limit_ticket_) {
      co_return co_await refuse(reason::kTooManyConnections, sqlstate::kTooManyConnections, refusal,
                                {});
    }
    co_return true;
  }

  // ---- phase 4: the backend ----

  asio::awaitable<bool> connect_backend() {
    using namespace asio::experimental::awaitable_operators;
    const auto& backend = this->backend();
    const auto& [host, port] = backend_host_;
    backend_name_ = host + ":" + std::to_string(port);
    backend_started_ = std::chrono::steady_clock::now();

    auto [ec, endpoints] = co_await resolve(host, port);
    if (ec) {
      try_next_host_ = true;
      co_return co_await backend_unavailable("cannot resolve " + host + ": " + ec.message());
    }

    ec = co_await connect_backend_socket(endpoints);
    try_next_host_ = true;  // not reached: the next host may be
    if (ec == asio::error::timed_out) {
      if (deadline_expired_) co_return startup_io_failed({}, "the backend connection");
      co_return co_await backend_unavailable("connect to " + backend_name_ + " timed out after " +
                                             std::to_string(backend.connect_timeout.count()) +
                                             " ms");
    }
    if (ec) {
      if (deadline_expired_) co_return startup_io_failed(ec, "the backend connection");
      co_return co_await backend_unavailable("connect to " + backend_name_ + ": " + ec.message());
    }
    try_next_host_ = false;
    backend_endpoint_ = backend_.remote_endpoint(ec);
    backend_.set_option(tcp::no_delay(true), ec);
    set_keepalives(backend_, snap_->config.tcp_keepalives);
    const bool ok = co_await negotiate_backend_tls();
    co_return ok;
  }

  // An IP literal as it is, a name through the system's resolver (every address it returns).
  asio::awaitable<std::tuple<error_code, std::vector<tcp::endpoint>>> resolve(
      const std::string& host, std::uint16_t port) {
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
      endpoints.emplace_back(address, port);
      co_return std::make_tuple(ec, std::move(endpoints));
    }
    tcp::resolver resolver(client_.get_executor());
    auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), use_tuple);
    for (const auto& r : results)
      endpoints.push_back(r.endpoint());
    co_return std::make_tuple(rec, std::move(endpoints));
  }

  // backend_ connected to the first of `endpoints` that answers, within the backend's
  // connect_timeout (timed_out otherwise). Sessions, cancels and peer cancels all connect so.
  asio::awaitable<error_code> connect_backend_socket(const std::vector<tcp::endpoint>& endpoints) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(client_.get_executor(), backend().connect_timeout);
    auto result = co_await (asio::async_connect(backend_, endpoints, use_tuple) ||
                            timer.async_wait(use_tuple));
    if (result.index() == 1) co_return asio::error::timed_out;
    co_return std::get<0>(std::get<0>(result));
  }

  asio::awaitable<bool> backend_unavailable(std::string detail,
                                            std::string_view why = reason::kBackendUnavailable) {
    if (host_timed_out_) {
      // Whatever failed, it failed because the host took longer than connect_timeout.
      try_next_host_ = true;
      why = reason::kBackendUnavailable;
      detail = "connect_timeout (" + std::to_string(backend().connect_timeout.count()) +
               " ms) expired on " + backend_name_ + " (" + detail + ")";
    }
    co_await refuse(why, sqlstate::kConnectionFailure, "could not connect to the database server",
                    std::move(detail));
    outcome_.result = Result::error;
    co_return false;
  }

  // SSLRequest and, when the backend agrees, the TLS handshake, as libpq does for `sslmode`.
  asio::awaitable<bool> negotiate_backend_tls() {
    const auto& backend = this->backend();
    const auto mode = backend.tls.sslmode;
    if (mode == config::SslMode::disable) co_return true;
    const auto request = protocol::ssl_request();
    auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(request), use_tuple);
    if (ec) co_return co_await backend_unavailable("sending SSLRequest: " + ec.message());
    std::uint8_t answer = 0;
    std::tie(ec, n) = co_await asio::async_read(backend_, asio::buffer(&answer, 1), use_tuple);
    if (ec) {
      if (deadline_expired_) co_return startup_io_failed(ec, "the backend's SSLRequest");
      co_return co_await backend_unavailable("backend closed the connection after SSLRequest: " +
                                             ec.message());
    }
    if (answer == 'N') {
      if (mode == config::SslMode::prefer) co_return true;
      co_return co_await backend_unavailable(
          "the backend does not accept TLS, and sslmode is " + std::string(config::to_string(mode)),
          reason::kBackendTlsFailed);
    }
    if (answer != 'S') {
      co_return co_await backend_protocol_error("unexpected answer to SSLRequest");
    }
    // Bytes already waiting were not encrypted; reading them as TLS would let a
    // man-in-the-middle inject them (CVE-2021-23222).
    if (backend_.available(ec) > 0) {
      co_return co_await backend_protocol_error("received unencrypted data after SSL response");
    }
    backend_tls_.emplace(backend_, *route().backend_tls);
    if (!auth::configure_backend_ssl(backend_tls_->native_handle(), backend.tls,
                                     backend_host_.host)) {
      co_return co_await backend_unavailable(
          "cannot set up TLS for host " + backend_host_.host + ": " + auth::openssl_error_text(),
          reason::kBackendTlsFailed);
    }
    std::tie(ec) =
        co_await backend_tls_->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (ec) {
      if (deadline_expired_) co_return startup_io_failed(ec, "the backend's TLS handshake");
      const long verify = SSL_get_verify_result(backend_tls_->native_handle());
      std::string detail = "TLS handshake with the backend failed: ";
      detail += verify != X509_V_OK ? std::string("server certificate rejected: ") +
                                          X509_verify_cert_error_string(verify)
                                    : ec.message();
      co_return co_await backend_unavailable(std::move(detail), reason::kBackendTlsFailed);
    }
    co_return true;
  }

  // Start-up I/O towards the backend, over TLS when it was negotiated.
  asio::awaitable<error_code> write_backend(const std::vector<std::uint8_t>& bytes) {
    error_code ec;
    if (backend_tls_) {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(*backend_tls_, asio::buffer(bytes), use_tuple);
    } else {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(backend_, asio::buffer(bytes), use_tuple);
    }
    co_return ec;
  }

  asio::awaitable<std::tuple<error_code, std::size_t>> read_backend_some(asio::mutable_buffer b) {
    if (backend_tls_) co_return co_await backend_tls_->async_read_some(b, use_tuple);
    co_return co_await backend_.async_read_some(b, use_tuple);
  }

  // Remembers the ParameterStatus values target_session_attrs looks at.
  void note_parameter(const protocol::Message& msg) {
    const std::string_view payload(reinterpret_cast<const char*>(msg.payload.data()),
                                   msg.payload.size());
    const auto nul = payload.find('\0');
    if (nul == std::string_view::npos) return;
    const auto name = payload.substr(0, nul);
    auto value = payload.substr(nul + 1);
    value = value.substr(0, value.find('\0'));
    if (name == "in_hot_standby") in_hot_standby_ = value == "on";
    if (name == "default_transaction_read_only") default_read_only_ = value == "on";
  }

  // The next whole message of the backend at backend_buf_[parsed_upto], read as needed (start-up
  // and a pooled connection's reset, before any relay); parsed_upto moves past it. Its payload
  // points into backend_buf_ until the next call.
  asio::awaitable<std::variant<error_code, protocol::ParseError, protocol::Message>>
  next_backend_message(std::size_t& parsed_upto) {
    for (;;) {
      auto parsed = protocol::parse_message(protocol::Bytes(backend_buf_).subspan(parsed_upto),
                                            kMaxBackendStartupMessage);
      if (auto* err = std::get_if<protocol::ParseError>(&parsed)) co_return *err;
      if (auto* msg = std::get_if<protocol::Message>(&parsed)) {
        parsed_upto += msg->size;
        co_return *msg;
      }
      const std::size_t need = std::get<protocol::NeedMore>(parsed).bytes;
      backend_buf_.erase(backend_buf_.begin(), backend_buf_.begin() + parsed_upto);
      parsed_upto = 0;
      const std::size_t have = backend_buf_.size();
      backend_buf_.resize(have + std::max(need, RelayBuffers::kSize));
      auto [ec, n] = co_await read_backend_some(
          asio::buffer(backend_buf_.data() + have, backend_buf_.size() - have));
      backend_buf_.resize(have + (ec ? 0 : n));
      if (ec) co_return ec;
    }
  }

  // The client's start-up parameters that go on to the backend besides user and database (the
  // protocol options, _pq_.*, were answered by pgmtls).
  std::vector<std::pair<std::string, std::string>> forwarded_parameters() const {
    std::vector<std::pair<std::string, std::string>> params;
    for (const auto& [name, value] : startup_.parameters) {
      if (name == "user" || name == "database" || name.starts_with("_pq_.")) continue;
      params.emplace_back(name, value);
    }
    return params;
  }

  // Sends our StartupMessage and forwards the backend's answer up to ReadyForQuery.
  asio::awaitable<bool> backend_startup() {
    std::vector<std::pair<std::string, std::string>> params{{"user", role_},
                                                            {"database", startup_.database()}};
    for (auto& param : forwarded_parameters())
      params.push_back(std::move(param));
    auto ec = co_await write_backend(protocol::startup_message(params));
    if (ec) co_return co_await backend_unavailable("sending StartupMessage: " + ec.message());

    std::vector<std::uint8_t> to_client;
    std::size_t parsed_upto = 0;
    for (;;) {
      auto next = co_await next_backend_message(parsed_upto);
      if (auto* err = std::get_if<protocol::ParseError>(&next)) {
        co_return co_await backend_protocol_error(err->message);
      }
      if (auto* read_error = std::get_if<error_code>(&next)) {
        if (deadline_expired_) co_return startup_io_failed(*read_error, "the backend start-up");
        co_return co_await backend_unavailable("backend closed during start-up: " +
                                               read_error->message());
      }
      const auto msg = std::get<protocol::Message>(next);
      const auto* raw = backend_buf_.data() + parsed_upto - msg.size;
      switch (msg.type) {
        case protocol::backend_type::kAuthentication: {
          const auto code = protocol::authentication_code(msg);
          if (!code) co_return co_await backend_protocol_error("short Authentication message");
          if (*code == protocol::auth_code::kOk) {
            if (scram_ && !scram_verified_) {
              co_return co_await backend_auth_failed(
                  "the backend ended SCRAM authentication without proving it knows the password");
            }
            if (backend_auth_.empty()) backend_auth_ = "trust";
            to_client.insert(to_client.end(), raw, raw + msg.size);
            break;
          }
          const bool answered = co_await answer_authentication(*code, msg);
          if (!answered) co_return false;
          break;
        }
        case protocol::backend_type::kErrorResponse: {
          auto fields = protocol::parse_error_fields(msg.payload);
          if (credential_sent_ && fields['C'].starts_with("28")) {
            // The backend refused pgmtls's own credential: the client, who proved itself with a
            // certificate, learns that pgmtls could not log in, not about a password it never had.
            co_return co_await backend_auth_failed(
                "the backend refused pgmtls's credential for role \"" + role_ +
                "\": " + fields['C'] + " " + fields['M']);
          }
          // The backend's own refusal (unknown database, too many connections, ...) goes to the
          // client verbatim, so it reads exactly what PostgreSQL said. "Cannot connect now"
          // (starting up, shutting down, a standby without hot_standby) sends libpq, and pgmtls,
          // to the next host.
          // Mid-session (pool_mode: transaction), the client has had its start-up answer.
          if (reconnecting_) to_client.clear();
          to_client.insert(to_client.end(), raw, raw + msg.size);
          set_outcome(Result::rejected, reason::kBackendError,
                      "backend refused: " + fields['C'] + " " + fields['M']);
          try_next_host_ = fields['C'] == sqlstate::kCannotConnectNow;
          if (!trying_next_host()) co_await write_client(to_client);
          co_return false;
        }
        case protocol::backend_type::kBackendKeyData: {
          // Kept from the client, which gets a key of pgmtls's own at ReadyForQuery.
          backend_key_ = protocol::backend_key(msg);
          if (!backend_key_) co_return co_await backend_protocol_error("malformed BackendKeyData");
          key_at_ = to_client.size();
          break;
        }
        case protocol::backend_type::kParameterStatus:
          note_parameter(msg);
          to_client.insert(to_client.end(), raw, raw + msg.size);
          break;
        case protocol::backend_type::kNoticeResponse:
        case protocol::backend_type::kNegotiateProtocolVersion:
          to_client.insert(to_client.end(), raw, raw + msg.size);
          break;
        case protocol::backend_type::kReadyForQuery: {
          const std::string mismatch =
              session_attrs_mismatch(wanted_attrs_, in_hot_standby_, default_read_only_);
          if (!mismatch.empty()) {
            try_next_host_ = true;
            co_await write_backend(protocol::terminate_message());
            co_return co_await backend_unavailable(
                "target_session_attrs=" + std::string(config::to_string(wanted_attrs_)) + " and " +
                mismatch);
          }
          if (reconnecting_) {
            // pool_mode: transaction: a connection for the pool, not the client's start-up.
            startup_reply_ = std::move(to_client);  // everything so far but BackendKeyData
            backend_created_ = std::chrono::steady_clock::now();
            backend_uses_ = 0;
            backend_buf_.clear();
            backend_buf_.shrink_to_fit();
            metrics_.backend_startup.observe(backend_created_ - backend_started_);
            co_return true;
          }
          if (session_pooling()) {
            startup_reply_ = to_client;  // everything so far but BackendKeyData
            backend_created_ = std::chrono::steady_clock::now();
          }
          if (backend_key_) {
            cancel_key_ = runtime_.cancel.add(cancel_target());
            const auto ours = protocol::backend_key_data(cancel_key_->pid, cancel_key_->secret);
            to_client.insert(to_client.begin() + static_cast<std::ptrdiff_t>(key_at_), ours.begin(),
                             ours.end());
          }
          to_client.insert(to_client.end(), raw, raw + msg.size);
          // Anything after ReadyForQuery belongs to the session; relay it as is.
          to_client.insert(to_client.end(), backend_buf_.begin() + parsed_upto, backend_buf_.end());
          backend_buf_.clear();
          backend_buf_.shrink_to_fit();
          metrics_.backend_startup.observe(std::chrono::steady_clock::now() - backend_started_);
          const auto wec = co_await write_client(to_client);
          if (wec) co_return startup_io_failed(wec, "forwarding the backend's start-up");
          bytes_to_client_ += to_client.size();
          co_return true;
        }
        default:
          co_return co_await backend_protocol_error(std::string("unexpected message type '") +
                                                    msg.type + "' during start-up");
      }
    }
  }

  asio::awaitable<bool> backend_auth_failed(std::string detail) {
    co_await refuse(reason::kBackendAuthFailed, sqlstate::kInvalidAuthorization,
                    "pgmtls cannot authenticate to the database server", std::move(detail));
    outcome_.result = Result::error;
    co_return false;
  }

  // Answers one authentication request of the backend with the role's credential.
  asio::awaitable<bool> answer_authentication(std::uint32_t code, const protocol::Message& msg) {
    namespace ac = protocol::auth_code;
    const auto& backend = this->backend();
    std::vector<std::uint8_t> reply;
    if (code == ac::kSASLContinue || code == ac::kSASLFinal) {
      if (!scram_)
        co_return co_await backend_protocol_error("SASL message outside a SASL exchange");
      const auto data = protocol::authentication_data(msg);
      const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
      if (code == ac::kSASLFinal) {
        scram_verified_ = scram_->verify_server_final(text);
        if (!scram_verified_) co_return co_await backend_auth_failed(scram_->error());
        co_return true;
      }
      auto final_message = scram_->client_final(text);
      if (!final_message) co_return co_await backend_auth_failed(scram_->error());
      reply = protocol::sasl_response(*final_message);
    } else if (code == ac::kCleartextPassword || code == ac::kMD5Password || code == ac::kSASL) {
      auto credential = co_await route().credentials->password_for(
          role_, startup_.database(), backend_host_.host, backend_host_.port);
      const auto& password = credential.password;
      if (!password) {
        co_return co_await backend_auth_failed(
            "the backend asked for " + protocol::authentication_name(code) +
            " authentication for role \"" + role_ + "\", but " +
            (credential.error.empty() ? "no credential is configured for it (backends." +
                                            backend.name + ".auth or .roles)"
                                      : credential.error));
      }
      if (code == ac::kCleartextPassword) {
        if (!backend_tls_ && !backend.allow_cleartext_password_without_tls) {
          co_return co_await backend_auth_failed(
              "the backend asked for a cleartext password over a connection without TLS; pgmtls "
              "does not send it (use sslmode require or stronger, or set "
              "allow_cleartext_password_without_tls)");
        }
        reply = protocol::password_message(*password);
        backend_auth_ =
            backend.credential_for(role_).kind == config::CredentialConfig::Kind::aws_iam
                ? "aws_iam"
                : "password";
      } else if (code == ac::kMD5Password) {
        const auto salt = protocol::authentication_data(msg);
        if (salt.size() != 4) co_return co_await backend_protocol_error("bad MD5 salt");
        reply = protocol::password_message(auth::md5_password(role_, *password, salt.data()));
        backend_auth_ = "md5";
      } else {
        auto mechanisms = protocol::sasl_mechanisms(msg);
        if (!mechanisms) co_return co_await backend_protocol_error("malformed AuthenticationSASL");
        auto offered = [&](std::string_view name) {
          return std::find(mechanisms->begin(), mechanisms->end(), name) != mechanisms->end();
        };
        using Binding = auth::ScramClient::ChannelBinding;
        std::string mechanism;
        Binding binding = Binding::none;
        std::vector<std::uint8_t> cb_data;
        if (backend_tls_ && offered("SCRAM-SHA-256-PLUS")) {
          mechanism = "SCRAM-SHA-256-PLUS";
          binding = Binding::tls_server_end_point;
          cb_data =
              auth::tls_server_end_point(SSL_get0_peer_certificate(backend_tls_->native_handle()));
          if (cb_data.empty()) {
            co_return co_await backend_auth_failed(
                "cannot compute channel binding data from the backend's certificate");
          }
        } else if (offered("SCRAM-SHA-256")) {
          mechanism = "SCRAM-SHA-256";
          binding = backend_tls_ ? Binding::unsupported : Binding::none;
        } else {
          std::string names;
          for (const auto& m : *mechanisms)
            names += (names.empty() ? "" : ", ") + m;
          co_return co_await backend_auth_failed(
              "the backend offers no supported SASL mechanism (" + names + ")");
        }
        scram_.emplace(*password, binding, std::move(cb_data));
        backend_auth_ = mechanism == "SCRAM-SHA-256" ? "scram-sha-256" : "scram-sha-256-plus";
        reply = protocol::sasl_initial_response(mechanism, scram_->client_first());
      }
    } else {
      co_return co_await backend_auth_failed(
          "the backend asked for " + protocol::authentication_name(code) +
          " authentication, which pgmtls does not support (use scram-sha-256, md5, password or "
          "cert for pgmtls's role on the backend)");
    }
    credential_sent_ = true;
    const auto ec = co_await write_backend(reply);
    if (ec)
      co_return co_await backend_unavailable("backend closed during authentication: " +
                                             ec.message());
    co_return true;
  }

  asio::awaitable<bool> backend_protocol_error(const std::string& what) {
    co_await refuse(reason::kBackendProtocolError, sqlstate::kConnectionFailure,
                    "invalid response from the database server", "backend: " + what);
    outcome_.result = Result::error;
    co_return false;
  }

  // ---- phase 5: relay until either side closes ----

  asio::awaitable<void> relay() {
    using namespace asio::experimental::awaitable_operators;
    set_outcome(Result::ok, reason::kClientClosed, admit_detail_);
    in_relay_ = true;
    log_session_start();
    last_activity_ = std::chrono::steady_clock::now();
    if (snap_->config.idle_timeout.count() > 0) {
      asio::co_spawn(client_.get_executor(), watch_idle(shared_from_this()), asio::detached);
    }
    if (snap_->config.on_expiry == config::CertificateEventAction::terminate) watch_expiry();
    if (transaction_pooling()) {
      // The connection that answered the start-up, if any, is free until the first request.
      if (held_) release_backend();
      co_await transaction_client_to_backend();
      co_return;
    }
    // Whichever direction ends first closes both sockets, which ends the other at once.
    if (backend_tls_) {
      co_await (client_to_backend(*backend_tls_) && backend_to_client(*backend_tls_));
    } else {
      co_await (client_to_backend(backend_) && backend_to_client(backend_));
    }
  }

  // Each direction borrows a relay buffer only while bytes flow: after a read that did not fill
  // it, the buffer goes back and the direction waits, holding nothing, until `socket` is readable
  // (or OpenSSL already holds bytes of `tls`). A full read means more is probably waiting: read
  // again at once.
  asio::awaitable<error_code> await_readable(RelayBuffers::Lease& buf, bool full,
                                             tcp::socket& socket, const TlsStream* tls) {
    if (full && buf) co_return error_code{};
    buf.reset();
    error_code ec;
    if (tls == nullptr || SSL_has_pending(tls->native_handle()) == 0) {
      std::tie(ec) = co_await socket.async_wait(tcp::socket::wait_read, use_tuple);
    }
    if (!ec) buf = runtime_.relay_buffers[worker_]->take();
    co_return ec;
  }

  const TlsStream* backend_tls_stream() const { return backend_tls_ ? &*backend_tls_ : nullptr; }

  template <typename BackendStream>
  asio::awaitable<void> client_to_backend(BackendStream& backend) {
    RelayBuffers::Lease buf;
    std::size_t n = 0;
    for (;;) {
      error_code ec = co_await await_readable(buf, n == RelayBuffers::kSize, client_, &*tls_);
      if (ec) break;
      std::tie(ec, n) =
          co_await tls_->async_read_some(asio::buffer(buf.data(), RelayBuffers::kSize), use_tuple);
      if (ec) break;
      bytes_from_client_ += n;
      metrics_.bytes_from_clients.add(n);
      last_activity_ = std::chrono::steady_clock::now();
      client_messages_.follow(protocol::Bytes(buf.data(), n));
      // With pooling, the client's Terminate ends its session, not the backend's.
      const bool terminated = session_pooling() && client_messages_.at_boundary() &&
                              client_messages_.last_type() == 'X' && n >= 5 &&
                              buf.data()[n - 5] == 'X';
      if (terminated) n -= 5;
      if (n > 0) {
        std::tie(ec, std::ignore) =
            co_await asio::async_write(backend, asio::buffer(buf.data(), n), use_tuple);
        if (ec) break;
      }
      if (terminated) break;
    }
    end_relay(reason::kClientClosed);
  }

  template <typename BackendStream>
  asio::awaitable<void> backend_to_client(BackendStream& backend) {
    RelayBuffers::Lease buf;
    std::size_t n = 0;
    for (;;) {
      error_code ec =
          co_await await_readable(buf, n == RelayBuffers::kSize, backend_, backend_tls_stream());
      if (fatal_sent_) co_return;
      if (ec) break;
      backend_reading_ = true;
      std::tie(ec, n) = co_await backend.async_read_some(
          asio::buffer(buf.data(), RelayBuffers::kSize), use_tuple);
      backend_reading_ = false;
      // Once the FATAL is on its way, its sender ends the relay.
      if (fatal_sent_) co_return;
      if (ec) break;
      last_activity_ = std::chrono::steady_clock::now();
      // Terminating: forward up to the first message boundary, then the FATAL.
      const std::size_t forward =
          backend_messages_.follow(protocol::Bytes(buf.data(), n), terminating_.has_value());
      if (forward > 0) {
        writing_to_client_ = true;
        std::tie(ec, std::ignore) =
            co_await asio::async_write(*tls_, asio::buffer(buf.data(), forward), use_tuple);
        writing_to_client_ = false;
        if (ec) break;
        bytes_to_client_ += forward;
        metrics_.bytes_to_clients.add(forward);
      }
      if (terminating_ && backend_messages_.at_boundary()) {
        co_await send_fatal();
        co_return;
      }
    }
    end_relay(reason::kBackendClosed);
  }

  // The termination's FATAL ErrorResponse, between two backend messages; then the relay ends.
  asio::awaitable<void> send_fatal() {
    if (fatal_sent_ || relay_ended_) co_return;
    fatal_sent_ = true;
    writing_to_client_ = true;
    const auto message = protocol::error_response({.severity = "FATAL",
                                                   .sqlstate = terminating_->sqlstate,
                                                   .message = terminating_->message,
                                                   .detail = {},
                                                   .hint = {}});
    auto [ec, n] = co_await asio::async_write(*tls_, asio::buffer(message), use_tuple);
    writing_to_client_ = false;
    if (!ec) bytes_to_client_ += n;
    end_relay(reason::kBackendClosed);
  }

  // Idle: no bytes either way, both streams between messages, every request answered and the
  // last ReadyForQuery outside a transaction (PostgreSQL's idle_session_timeout).
  bool idle() const {
    return client_messages_.at_boundary() && backend_messages_.at_boundary() &&
           backend_messages_.ready_count() == client_messages_.requests() &&
           backend_messages_.transaction_status() == 'I';
  }

  asio::awaitable<void> watch_idle(std::shared_ptr<Session> self) {
    const auto limit = snap_->config.idle_timeout;
    auto wake = last_activity_ + limit;
    for (;;) {
      idle_timer_.expires_at(wake);
      auto [ec] = co_await idle_timer_.async_wait(use_tuple);
      if (ec || relay_ended_ || terminating_) co_return;
      const auto now = std::chrono::steady_clock::now();
      if (now >= last_activity_ + limit && idle()) {
        terminate({Result::ok,
                   reason::kIdleTimeout,
                   sqlstate::kIdleSessionTimeout,
                   "terminating connection due to idle-session timeout",
                   {}});
        co_return;
      }
      wake = std::max(last_activity_ + limit, now + limit);
    }
  }

  // on_expiry: terminate. The timer holds only a weak reference.
  void watch_expiry() {
    X509* leaf = SSL_get0_peer_certificate(tls_->native_handle());
    int days = 0, seconds = 0;
    if (leaf == nullptr || ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(leaf)) != 1)
      return;
    expiry_timer_.expires_after(std::chrono::hours(24) * days + std::chrono::seconds(seconds));
    expiry_timer_.async_wait([weak = weak_from_this()](error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->terminate({Result::rejected,
                       "expired",
                       sqlstate::kInvalidAuthorization,
                       "terminating connection because the client certificate has expired",
                       {}});
    });
  }

  void end_relay(std::string_view side) {
    if (!relay_ended_) {
      relay_ended_ = true;
      if (terminating_) {
        set_outcome(terminating_->result, terminating_->reason,
                    terminating_->detail.empty() ? terminating_->message : terminating_->detail);
        if (!fatal_sent_) outcome_.detail += " (closed without a message: no message boundary)";
      } else {
        outcome_.reason = side;
      }
      if (side == reason::kClientClosed && backend_reusable()) {
        // The client left between two requests: close only its side, and end backend_to_client's
        // wait for readability (nothing of OpenSSL's is in flight then).
        keep_backend_ = true;
        error_code ignored;
        backend_.cancel(ignored);
      }
      close_sockets();
    }
  }

  void close_sockets() {
    error_code ignored;
    // As PostgreSQL ends a TLS session; not to a client that is gone or failed at the TLS level.
    if (tls_ && outcome_.reason != reason::kClientClosed &&
        outcome_.reason != reason::kClientGone && outcome_.reason != reason::kTlsError) {
      tls_->close_notify();
    }
    client_.shutdown(tcp::socket::shutdown_both, ignored);
    client_.close(ignored);
    if (reader_running_) {
      // pool_mode: transaction: the reader decides what becomes of the connection it holds.
      backend_.cancel(ignored);
    } else if (!keep_backend_) {
      backend_.close(ignored);
    }
    wait_timer_.cancel();
    deadline_.cancel();
    idle_timer_.cancel();
    expiry_timer_.cancel();
  }

  // ---- pool_mode: session ----

  bool session_pooling() const { return backend().pool.mode == config::PoolMode::session; }

  // Which pooled connections this session may use: the same snapshot (so the same backend,
  // credentials and TLS settings), role, database and start-up parameters.
  std::string pool_key() const {
    auto params = forwarded_parameters();
    std::sort(params.begin(), params.end());
    std::string key = std::to_string(reinterpret_cast<std::uintptr_t>(snap_.get()));
    key += '\0' + backend().name + '\0' + role_ + '\0' + startup_.database();
    for (const auto& [name, value] : params) {
      key += '\0' + name + '\0' + value;
    }
    return key;
  }

  // An idle pooled connection for this session, if one is there: the client gets the backend's
  // start-up answer as it was, with a key of pgmtls's own and ReadyForQuery.
  asio::awaitable<bool> reuse_pooled_backend() {
    auto conn = runtime_.pools[worker_]->take(pool_key(), backend().pool);
    if (!conn) co_return false;
    adopt(*conn);
    cancel_key_ = runtime_.cancel.add(cancel_target());
    co_return co_await send_startup_reply();
  }

  // Takes over a pooled connection.
  void adopt(PooledBackend& conn) {
    backend_ = std::move(conn.socket);
    if (conn.tls) {
      backend_tls_.emplace(std::move(*conn.tls));
      backend_tls_->rebind(backend_);
    }
    backend_host_ = conn.host;
    backend_name_ = conn.host.host + ":" + std::to_string(conn.host.port);
    backend_endpoint_ = conn.endpoint;
    backend_auth_ = conn.auth;
    backend_key_ = conn.backend_key;
    backend_created_ = conn.created;
    backend_uses_ = conn.uses + 1;
    startup_reply_ = std::move(conn.startup_reply);
    slot_ = std::move(conn.slot);
    statements_ = std::move(conn.statements);
  }

  // The backend connection as a cancel key's target; none (backend_pid 0) when none is held.
  CancelTarget cancel_target() const {
    CancelTarget target{
        backend_endpoint_, backend_host_.host, 0, 0, backend_tls_.has_value(), snap_, id_};
    if (backend_key_ && (!transaction_pooling() || held_)) {
      std::tie(target.backend_pid, target.backend_secret) = *backend_key_;
    }
    return target;
  }

  // The start-up answer (startup_reply_) with a key of pgmtls's own and ReadyForQuery 'I'.
  asio::awaitable<bool> send_startup_reply() {
    std::vector<std::uint8_t> to_client = startup_reply_;
    const auto ours = protocol::backend_key_data(cancel_key_->pid, cancel_key_->secret);
    to_client.insert(to_client.end(), ours.begin(), ours.end());
    const auto ready = protocol::ready_for_query('I');
    to_client.insert(to_client.end(), ready.begin(), ready.end());
    const auto ec = co_await write_client(to_client);
    if (ec) co_return startup_io_failed(ec, "forwarding the pooled backend's start-up");
    bytes_to_client_ += to_client.size();
    co_return true;
  }

  // Whether the backend connection can serve another client once this one has left: pooling is
  // on, nobody is ending the session, and both streams rest between messages with every request
  // answered outside a transaction.
  bool backend_reusable() const {
    return session_pooling() && !terminating_ && !backend_reading_ && !backend_messages_.broken() &&
           backend_key_ && idle();
  }

  // Resets the backend's session (server_reset_query) and hands the connection to the worker's
  // pool; on any failure it is closed instead.
  asio::awaitable<void> return_backend_to_pool() {
    keep_backend_ = false;
    const auto& pool = backend().pool;
    if (std::chrono::steady_clock::now() - backend_created_ >= pool.server_lifetime) co_return;
    error_code ec;
    const auto endpoint = backend_.remote_endpoint(ec);
    if (ec) co_return;
    arm_host_timer();
    const bool reset = co_await reset_backend_session(pool.server_reset_query);
    disarm_host_timer();
    if (!reset || host_timed_out_) co_return;
    backend_endpoint_ = endpoint;
    runtime_.pools[worker_]->put(pool_key(), pooled_backend(), pool);
  }

  // The backend connection, its TLS and what is known about it, moved out for the pool.
  std::shared_ptr<PooledBackend> pooled_backend() {
    auto conn = std::make_shared<PooledBackend>(std::move(backend_));
    if (backend_tls_) {
      conn->tls.emplace(std::move(*backend_tls_));
      conn->tls->rebind(conn->socket);
      backend_tls_.reset();
    }
    conn->snapshot = snap_;
    conn->startup_reply = std::move(startup_reply_);
    conn->backend_key = backend_key_.value_or(std::pair<std::uint32_t, std::uint32_t>{0, 0});
    conn->endpoint = backend_endpoint_;
    conn->host = backend_host_;
    conn->auth = backend_auth_;
    conn->created = backend_created_;
    conn->uses = backend_uses_;
    conn->slot = std::move(slot_);
    conn->statements = std::move(statements_);
    statements_ = {};
    return conn;
  }

  // server_reset_query as a simple query; true when it ends with ReadyForQuery 'I' and nothing
  // but CommandComplete, ParameterStatus and notices before it.
  asio::awaitable<bool> reset_backend_session(const std::string& sql) {
    if (sql.empty()) co_return true;
    const auto ec = co_await write_backend(protocol::query_message(sql));
    if (ec) co_return false;
    backend_buf_.clear();
    std::size_t parsed_upto = 0;
    for (;;) {
      auto next = co_await next_backend_message(parsed_upto);
      const auto* msg = std::get_if<protocol::Message>(&next);
      if (msg == nullptr) co_return false;
      if (msg->type == protocol::backend_type::kReadyForQuery) {
        const bool clean = msg->payload.size() == 1 && msg->payload[0] == 'I' &&
                           parsed_upto == backend_buf_.size();
        backend_buf_.clear();
        backend_buf_.shrink_to_fit();
        co_return clean;
      }
      if (msg->type != 'C' && msg->type != protocol::backend_type::kParameterStatus &&
          msg->type != protocol::backend_type::kNoticeResponse) {
        co_return false;  // an ErrorResponse, or anything a reset does not send
      }
    }
  }

  // ---- pool_mode: transaction ----
  //
  // The session holds a backend connection only from a client's request to the ReadyForQuery
  // 'I' that ends its transaction; then the connection goes back to the worker's pool (or to a
  // waiting session) with its prepared statements, which StatementRouter tracks. The client
  // loop cuts the client's stream into messages (FrontendSplitter), takes a connection when a
  // message starts and none is held, and writes what the router makes of the messages. A reader
  // coroutine, one per held connection, relays the backend's answers through the router and
  // releases the connection once everything is answered; it alone decides what becomes of the
  // connection, so nothing moves a socket it is reading.

  bool transaction_pooling() const { return backend().pool.mode == config::PoolMode::transaction; }

  // Whole messages pgmtls must see in full to rewrite, or to end the session at (Terminate).
  static bool whole_in_transaction_mode(char type) {
    return StatementRouter::rewrites(type) || type == protocol::frontend_type::kTerminate;
  }

  // The start-up: answered from the pool's first connection for the key when one is open, so a
  // new client costs no backend connection; otherwise a connection is taken or made for it.
  asio::awaitable<bool> transaction_startup() {
    const auto& pool = backend().pool;
    pool_key_ = pool_key();
    router_.emplace(id_, pool.max_prepared_statements);
    if (const auto* reply = runtime_.pools[worker_]->startup_reply(pool_key_)) {
      startup_reply_ = *reply;
      backend_key_.reset();
    } else {
      const bool ok = co_await acquire_backend();
      if (!ok) co_return false;
    }
    cancel_key_ = runtime_.cancel.add(cancel_target());
    co_return co_await send_startup_reply();
  }

  // A backend connection for the session's next transaction: an idle one, a new one while the
  // key has fewer than pool_size, or the first one another session gives back, within
  // query_wait_timeout. False once the outcome is decided (the client was told).
  asio::awaitable<bool> acquire_backend() {
    auto& pool = *runtime_.pools[worker_];
    const auto& config = backend().pool;
    const auto until = std::chrono::steady_clock::now() + config.query_wait_timeout;
    for (;;) {
      if (auto conn = pool.take(pool_key_, config)) {
        adopt(*conn);
        break;
      }
      if (pool.open(pool_key_) < config.pool_size) {
        slot_ = pool.open_slot(pool_key_, snap_);
        reconnecting_ = true;
        const bool ok = co_await connect_any_backend();
        reconnecting_ = false;
        if (!ok) {
          reset_backend();
          slot_.reset();
          co_return false;
        }
        pool.remember_startup_reply(pool_key_, startup_reply_);
        break;
      }
      BackendPool::Waiter waiter{&wait_timer_, nullptr, false};
      pool.wait(pool_key_, &waiter);
      wait_timer_.expires_at(until);
      co_await wait_timer_.async_wait(use_tuple);
      pool.unwait(pool_key_, &waiter);  // unless it was woken by the pool
      if (waiter.handed) {
        adopt(*waiter.handed);
        break;
      }
      if (terminating_ || relay_ended_) co_return false;
      if (!waiter.slot_freed && std::chrono::steady_clock::now() >= until) {
        co_await refuse(reason::kQueryWaitTimeout, sqlstate::kTooManyConnections,
                        "no backend connection became free within query_wait_timeout",
                        "query_wait_timeout (" + std::to_string(config.query_wait_timeout.count()) +
                            " ms) expired with all " + std::to_string(config.pool_size) +
                            " backend connections of this pool busy");
        co_return false;
      }
    }
    held_ = true;
    ++backend_checkouts_;
    router_->attach(statements_);
    if (cancel_key_) runtime_.cancel.retarget(*cancel_key_, cancel_target());
    if (in_relay_) {
      reader_running_ = true;
      asio::co_spawn(client_.get_executor(), transaction_backend_to_client(shared_from_this()),
                     asio::detached);
    }
    co_return true;
  }

  // Everything the held connection was asked is answered, outside a transaction, and the
  // client's last message ended a request: the connection can serve another session.
  bool can_release() const {
    using namespace protocol::frontend_type;
    if (!held_ || client_busy_ || backend_reading_ || !splitter_.at_boundary()) return false;
    if (!router_->settled() || router_->broken()) return false;
    const char last = client_messages_.last_type();
    if (last != 0 && last != kSync && last != kQuery && last != kFunctionCall &&
        last != kCopyDone && last != kCopyFail) {
      return false;
    }
    return idle();
  }

  // The held connection goes back to the pool (or the first waiting session).
  void release_backend() {
    router_->detach();
    held_ = false;
    if (cancel_key_) runtime_.cancel.retarget(*cancel_key_, cancel_target());
    const auto& config = backend().pool;
    if (std::chrono::steady_clock::now() - backend_created_ >= config.server_lifetime) {
      drop_backend();
      return;
    }
    runtime_.pools[worker_]->release(pool_key_, pooled_backend(), config);
  }

  // The held connection is closed: its state is unknown (the client left inside a transaction,
  // an I/O error, answers that no longer match).
  void drop_backend() {
    if (router_ && router_->attached()) router_->detach();
    held_ = false;
    if (cancel_key_) runtime_.cancel.retarget(*cancel_key_, cancel_target());
    if (backend_.is_open()) {
      auto conn = pooled_backend();
      close_pooled(*conn);
    }
    reset_backend();
    slot_.reset();
    statements_ = {};
  }

  void finish_backend(bool usable) {
    if (usable && can_release()) {
      release_backend();
    } else {
      drop_backend();
    }
  }

  asio::awaitable<void> transaction_client_to_backend() {
    RelayBuffers::Lease buf;
    std::size_t n = 0;
    std::string_view side = reason::kClientClosed;
    for (;;) {
      error_code ec = co_await await_readable(buf, n == RelayBuffers::kSize, client_, &*tls_);
      if (ec) break;
      std::tie(ec, n) =
          co_await tls_->async_read_some(asio::buffer(buf.data(), RelayBuffers::kSize), use_tuple);
      if (ec) break;
      bytes_from_client_ += n;
      metrics_.bytes_from_clients.add(n);
      last_activity_ = std::chrono::steady_clock::now();
      client_messages_.follow(protocol::Bytes(buf.data(), n));
      client_busy_ = true;
      bool ok = co_await route_client_bytes(protocol::Bytes(buf.data(), n));
      if (!ok) side = outcome_.reason;  // route_client_bytes decided the outcome
      if (ok && !to_backend_.empty() && !relay_ended_) {
        writing_to_backend_ = true;
        ec = co_await write_backend(to_backend_);
        writing_to_backend_ = false;
        ok = !ec;
      }
      to_backend_.clear();
      if (to_backend_.capacity() > 4 * RelayBuffers::kSize) to_backend_ = {};
      client_busy_ = false;
      if (!ok || client_terminated_ || relay_ended_) break;
      // Nothing was sent that needs an answer (a Sync alone, say): the reader, waiting, is told.
      if (can_release() && backend_waiting_) {
        error_code ignored;
        backend_.cancel(ignored);
      }
    }
    end_relay(side);
  }

  // Hands a read of the client to the router, taking a connection when a message starts and
  // none is held. False when the session must end (the client was told why, if it can be).
  asio::awaitable<bool> route_client_bytes(protocol::Bytes chunk) {
    using Kind = protocol::FrontendSplitter::Piece::Kind;
    std::size_t at = 0;
    while (at < chunk.size()) {
      const auto piece = splitter_.next(chunk.subspan(at));
      at += piece.used;
      switch (piece.kind) {
        case Kind::need_more:
          break;
        case Kind::error: {
          const std::string why = "invalid message length, or a message above " +
                                  std::to_string(kMaxWholeMessage >> 20) +
                                  " MiB that pool_mode transaction must hold whole";
          // While the backend's reader writes to the client, the error is only logged.
          if (reader_running_) {
            set_outcome(Result::rejected, reason::kProtocolError, why);
          } else {
            co_await refuse(reason::kProtocolError, sqlstate::kProtocolViolation, why, {});
          }
          co_return false;
        }
        case Kind::whole:
        case Kind::start: {
          if (piece.type == protocol::frontend_type::kTerminate) {
            client_terminated_ = true;
            co_return true;
          }
          if (!held_) {
            const bool ok = co_await acquire_backend();
            if (!ok) co_return false;
          }
          if (piece.kind == Kind::start) {
            router_->passthrough(piece.type);
            to_backend_.insert(to_backend_.end(), piece.bytes.begin(), piece.bytes.end());
            break;
          }
          auto parsed = protocol::parse_message(piece.bytes, kMaxWholeMessage);
          router_->client_message(std::get<protocol::Message>(parsed), to_backend_);
          break;
        }
        case Kind::body:
          to_backend_.insert(to_backend_.end(), piece.bytes.begin(), piece.bytes.end());
          break;
      }
    }
    co_return true;
  }

  // One per held connection: the backend's answers through the router to the client, until the
  // connection can be released, the relay ends, or the backend fails.
  asio::awaitable<void> transaction_backend_to_client(std::shared_ptr<Session> self) {
    RelayBuffers::Lease buf;
    std::size_t n = 0;
    bool usable = true;
    for (;;) {
      // After a full read more is probably waiting, unless the backend has said all it will.
      backend_waiting_ = true;
      error_code ec = co_await await_readable(buf, n == RelayBuffers::kSize && !idle(), backend_,
                                              backend_tls_stream());
      backend_waiting_ = false;
      n = 0;
      if (relay_ended_) break;
      if (ec == asio::error::operation_aborted) {
        // The client loop saw the connection become releasable.
        if (can_release()) break;
        continue;
      }
      if (!ec) {
        backend_reading_ = true;
        std::tie(ec, n) = co_await read_backend_some(asio::buffer(buf.data(), RelayBuffers::kSize));
        backend_reading_ = false;
      }
      if (ec || relay_ended_) {
        usable = false;
        if (!relay_ended_) end_relay(reason::kBackendClosed);
        break;
      }
      last_activity_ = std::chrono::steady_clock::now();
      to_client_.clear();
      router_->backend_bytes(protocol::Bytes(buf.data(), n), to_client_);
      if (router_->broken()) {
        usable = false;
        set_outcome(Result::error, reason::kBackendProtocolError,
                    "the backend's answers do not match the requests sent");
        end_relay(reason::kBackendClosed);
        break;
      }
      const std::size_t forward =
          backend_messages_.follow(protocol::Bytes(to_client_), terminating_.has_value());
      if (forward > 0) {
        writing_to_client_ = true;
        std::tie(ec, std::ignore) =
            co_await asio::async_write(*tls_, asio::buffer(to_client_.data(), forward), use_tuple);
        writing_to_client_ = false;
        if (ec) {
          end_relay(reason::kClientClosed);
          break;
        }
        bytes_to_client_ += forward;
        metrics_.bytes_to_clients.add(forward);
      }
      if (to_client_.capacity() > 4 * RelayBuffers::kSize) to_client_ = {};
      if (terminating_ && backend_messages_.at_boundary()) {
        co_await send_fatal();
        break;
      }
      if (relay_ended_ || can_release()) break;
    }
    reader_running_ = false;
    finish_backend(usable);
    // The session may be over, and its connection closed with it: nothing else of this
    // session's touches the socket now.
    if (relay_ended_ && !keep_backend_) {
      error_code ignored;
      backend_.close(ignored);
    }
  }

  // Who connected: the certificate's audit fields, the same in the start and the end record.
  std::vector<LogField> identity_fields() const {
    std::string sans;
    if (identity_) {
      for (const auto& [kind, values] :
           {std::pair{"dns:", &identity_->san_dns}, std::pair{"email:", &identity_->san_email},
            std::pair{"uri:", &identity_->san_uri}}) {
        for (const auto& v : *values)
          sans += (sans.empty() ? "" : ",") + std::string(kind) + v;
      }
    }
    return {{"subject", identity_ ? identity_->subject_dn : ""},
            {"serial", identity_ ? identity_->serial : ""},
            {"issuer", identity_ ? identity_->issuer_dn : ""},
            {"fingerprint", identity_ ? identity_->sha256_fingerprint : ""},
            {"sans", sans}};
  }

  // Where it went: requested user and database, the deciding rule, the role and the backend.
  void append_session_fields(std::vector<LogField>& f) {
    f.emplace_back("user", startup_.user());
    f.emplace_back("database", startup_.parameters.empty() ? "" : startup_.database());
    f.emplace_back("rule", rule_);
    f.emplace_back("role", role_);
    // The sni: route the client's server name chose (none: the default backend).
    if (sni_index_ >= 0) {
      f.emplace_back("server_name",
                     snap_->config.sni[static_cast<std::size_t>(sni_index_)].server_name);
    }
    f.emplace_back("backend", backend_name_);
    f.emplace_back("backend_tls",
                   backend_tls_ ? SSL_get_version(backend_tls_->native_handle()) : "");
    f.emplace_back("backend_auth", backend_auth_);
    // Clients the backend connection has served, this one included (pool_mode: session).
    f.emplace_back("backend_uses", backend_uses_);
    // Backend connections taken for this client's transactions (pool_mode: transaction).
    if (transaction_pooling()) f.emplace_back("backend_checkouts", backend_checkouts_);
    // The client resumed a TLS 1.3 session from a ticket instead of a full handshake.
    if (tls_ && SSL_session_reused(tls_->native_handle()) == 1) {
      f.emplace_back("tls_resumed", "true");
    }
  }

  // The audit record of an admitted session, once the backend is ready.
  void log_session_start() {
    if (!spdlog::should_log(spdlog::level::info)) return;
    std::vector<LogField> f{{"id", id_}, {"peer", peer_}};
    if (!via_.empty()) f.emplace_back("via", via_);
    for (auto& field : identity_fields())
      f.push_back(std::move(field));
    append_session_fields(f);
    log_event(spdlog::level::info, "session_start", f);
  }

  // The record every connection ends with, whatever happened.
  void log_outcome() {
    if (outcome_.result != Result::ok && is_handshake_failure(outcome_.reason) && peer_address_ &&
        runtime_.handshake_failures.record(*peer_address_, snap_->config.limits,
                                           std::chrono::steady_clock::now())) {
      const auto& limits = snap_->config.limits;
      spdlog::warn(
          "blocking {} for {} ms: {} failed handshakes within {} ms (limits.failed_handshakes)",
          peer_address_->to_string(), limits.failed_block.count(), limits.failed_handshakes,
          limits.failed_window.count());
    }
    const auto duration = std::chrono::steady_clock::now() - started_;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
    metrics_.count_outcome(outcome_.result, outcome_.reason);
    if (in_relay_) metrics_.session_duration.observe(duration);
    // A client that leaves during start-up (a load balancer's TLS health check, say) is no
    // operator's concern: PostgreSQL logs nothing for it either. Nor is each connection evicted
    // at max_handshakes: in a flood there would be thousands. Both are counted all the same.
    const auto level =
        outcome_.result == Result::ok ||
                (outcome_.result == Result::rejected &&
                 (outcome_.reason == reason::kClientGone || outcome_.reason == reason::kEvicted))
            ? spdlog::level::info
            : (outcome_.result == Result::rejected ? spdlog::level::warn : spdlog::level::err);
    if (!spdlog::should_log(level)) return;  // the line is not even built
    std::vector<LogField> f{{"id", id_},
                            {"peer", peer_},
                            {"result", std::string(to_string(outcome_.result))},
                            {"reason", std::string(outcome_.reason)}};
    if (!via_.empty()) f.insert(f.begin() + 2, {"via", via_});
    for (auto& field : identity_fields())
      f.push_back(std::move(field));
    append_session_fields(f);
    f.emplace_back("duration_ms", static_cast<std::int64_t>(elapsed));
    f.emplace_back("bytes_in", bytes_from_client_);
    f.emplace_back("bytes_out", bytes_to_client_);
    f.emplace_back("detail", outcome_.detail);
    log_event(level, "connection", f);
  }

  Runtime& runtime_;
  unsigned worker_;
  WorkerMetrics& metrics_;  // this worker's counters
  tcp::socket client_;
  std::optional<TlsStream> tls_;
  tcp::socket backend_;
  std::optional<TlsStream> backend_tls_;  // after backend_: destroyed first
  std::optional<auth::ScramClient> scram_;
  bool scram_verified_ = false;
  bool credential_sent_ = false;   // a password or SCRAM message went to the backend
  std::string backend_auth_;       // how pgmtls authenticated to the backend, for the log
  asio::steady_timer deadline_;    // start-up deadline, then the termination grace period
  asio::steady_timer host_timer_;  // connect_timeout of the backend host being tried
  asio::steady_timer idle_timer_;
  asio::steady_timer expiry_timer_;
  bool deadline_expired_ = false;
  bool in_relay_ = false;
  bool relay_ended_ = false;
  // Ending the session from outside (LiveSession::terminate).
  std::optional<Termination> terminating_;
  bool fatal_sent_ = false;
  bool writing_to_client_ = false;  // a relay write to the client is in flight
  protocol::MessageBoundaries client_messages_;
  protocol::MessageBoundaries backend_messages_{'I'};  // start-up ended with ReadyForQuery idle
  std::chrono::steady_clock::time_point last_activity_;
  std::shared_ptr<const Snapshot> snap_;
  std::uint64_t id_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::system_clock::time_point started_wall_ = std::chrono::system_clock::now();
  std::chrono::steady_clock::time_point backend_started_;
  std::string peer_;
  std::string backend_name_;
  std::string rule_;          // the hba rule that decided (file:line), if any
  std::string role_;          // the role pgmtls connects as, once admitted
  std::string admit_detail_;  // how the role was chosen when not as requested
  protocol::StartupMessage startup_;
  std::optional<auth::CertificateIdentity> identity_;
  std::vector<std::uint8_t> backend_buf_;
  // The backend's cancel key, where its BackendKeyData was in the start-up messages, and the key
  // pgmtls gave the client instead (registered in Runtime::cancel while the session lives).
  std::optional<std::pair<std::uint32_t, std::uint32_t>> backend_key_;
  std::size_t key_at_ = 0;
  std::optional<CancelKey> cancel_key_;
  bool cancelling_ = false;  // this connection is a CancelRequest
  // The backend host being tried, whether others remain after it, what it must be, and what it
  // reported about itself.
  config::BackendHost backend_host_;
  bool more_hosts_ = false;
  // pool_mode: session: the backend's start-up answer, when and how often the connection served.
  std::vector<std::uint8_t> startup_reply_;
  std::chrono::steady_clock::time_point backend_created_;
  std::uint64_t backend_uses_ = 1;
  bool backend_reading_ = false;  // backend_to_client is inside a read
  bool keep_backend_ = false;     // the relay ended with the backend reusable
  bool try_next_host_ = false;    // the failure on this host is one libpq tries the next host after
  bool host_timed_out_ = false;   // connect_timeout expired on this host
  std::uint64_t host_attempt_ = 0;
  config::TargetSessionAttrs wanted_attrs_ = config::TargetSessionAttrs::any;
  std::optional<bool> in_hot_standby_;
  std::optional<bool> default_read_only_;
  // pool_mode: transaction: the pool key, the router, the client's stream cut into messages,
  // what goes to either side, the connection held (its slot and statements) and who uses it.
  std::string pool_key_;
  std::optional<StatementRouter> router_;
  protocol::FrontendSplitter splitter_{&whole_in_transaction_mode, kMaxWholeMessage};
  std::vector<std::uint8_t> to_backend_;
  std::vector<std::uint8_t> to_client_;
  tcp::endpoint backend_endpoint_;
  PoolSlot slot_;
  BackendStatements statements_;
  asio::steady_timer wait_timer_;  // waiting for a connection of the pool
  bool held_ = false;
  bool reconnecting_ = false;     // connecting for the pool: nothing of it goes to the client
  bool reader_running_ = false;   // transaction_backend_to_client owns the held connection
  bool backend_waiting_ = false;  // ... and waits for the backend to be readable
  bool client_busy_ = false;      // the client loop is routing or writing a read
  bool writing_to_backend_ = false;
  bool client_terminated_ = false;  // the client sent Terminate
  std::uint64_t backend_checkouts_ = 0;
  bool handshaking_ = true;  // counted in Runtime::handshaking
  // How far start-up got, for eviction_tier: no whole first packet yet, in the TLS handshake
  // (since handshake_started_), or past it (the client certificate verified).
  enum class Stage { silent, handshaking, verified } stage_ = Stage::silent;
  std::chrono::steady_clock::time_point handshake_started_;
  // The client's address: the socket's, or a trusted PROXY header's source (then `via_` holds
  // the load balancer's address and port).
  std::optional<asio::ip::address> peer_address_;
  std::string via_;
  const Snapshot::Route* route_ = nullptr;
  int sni_index_ = -1;  // the config.sni route the client's server name matched
  auth::DirectTls direct_tls_;
  SessionLimits::Ticket limit_ticket_;  // a slot under limits: while admitted
  std::string verify_failure_;
  Outcome outcome_{Result::error, reason::kClientGone, {}};
  std::uint64_t bytes_from_client_ = 0;
  std::uint64_t bytes_to_client_ = 0;
};

}  // namespace

void start_session(tcp::socket socket, std::shared_ptr<const Snapshot> snapshot,
                   std::uint64_t session_id, Runtime& runtime, unsigned worker) {
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  set_keepalives(socket, snapshot->config.tcp_keepalives);
  auto executor = socket.get_executor();
  auto session = std::make_shared<Session>(std::move(socket), std::move(snapshot), session_id,
                                           runtime, worker);
  asio::co_spawn(executor, session->run(), [session](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("session ended by an unexpected exception: {}", e.what());
    }
  });
}

}  // namespace pgmtls::proxy
