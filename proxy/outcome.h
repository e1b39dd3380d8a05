// How a connection ended: one stable vocabulary of reasons, used by the log line (reason=...),
// by the SQLSTATE a refused client receives, and by tests.
#pragma once

#include <string>
#include <string_view>

namespace pgmtls::proxy {

enum class Result { ok, rejected, error };

std::string_view to_string(Result result);

// Reasons pgmtls itself decides. Certificate verification failures use the names from
// auth::verify_reason (unknown_ca, revoked, expired, not_yet_valid, bad_purpose, ...).
namespace reason {
inline constexpr std::string_view kClientClosed = "client_closed";      // session ended by client
inline constexpr std::string_view kBackendClosed = "backend_closed";    // session ended by backend
inline constexpr std::string_view kClientGone = "client_disconnected";  // left during start-up
inline constexpr std::string_view kSslRequired = "ssl_required";
inline constexpr std::string_view kProtocolError = "protocol_error";
inline constexpr std::string_view kCancelForwarded = "cancel_forwarded";  // sent to the backend
inline constexpr std::string_view kCancelUnknown = "cancel_unknown";      // no such key: ignored
inline constexpr std::string_view kCancelFailed = "cancel_failed";        // the backend unreachable
inline constexpr std::string_view kCancelRejected = "cancel_rejected";    // a bad peer packet
inline constexpr std::string_view kTlsError = "tls_error";
inline constexpr std::string_view kHandshakeTimeout = "handshake_timeout";
inline constexpr std::string_view kNoCert = "no_cert";
inline constexpr std::string_view kNoIdentity = "no_identity";
inline constexpr std::string_view kMapDenied = "map_denied";
inline constexpr std::string_view kNoHbaEntry = "no_hba_entry";         // no rule matched
inline constexpr std::string_view kHbaReject = "hba_reject";            // a reject rule matched
inline constexpr std::string_view kIssuerMismatch = "issuer_mismatch";  // pinned issuer differs
inline constexpr std::string_view kBackendUnavailable = "backend_unavailable";
inline constexpr std::string_view kBackendAuthFailed = "backend_auth_failed";
inline constexpr std::string_view kBackendTlsFailed = "backend_tls_failed";
inline constexpr std::string_view kBackendError = "backend_error";  // backend refused start-up
inline constexpr std::string_view kBackendProtocolError = "backend_protocol_error";
inline constexpr std::string_view kServerShutdown = "server_shutdown";  // SIGTERM/SIGINT
inline constexpr std::string_view kIdleTimeout = "idle_timeout";
inline constexpr std::string_view kTooManyConnections = "too_many_connections";  // 53300
inline constexpr std::string_view kTooManyHandshakes = "too_many_handshakes";    // closed at accept
// Closed before its TLS handshake completed to make room for a new connection (max_handshakes).
inline constexpr std::string_view kEvicted = "evicted";
inline constexpr std::string_view kRateLimited = "rate_limited";  // address blocked, at accept
// A PROXY protocol header missing, malformed, or sent from an address not trusted to send one.
inline constexpr std::string_view kProxyProtocolError = "proxy_protocol_error";
// pool_mode: transaction: no backend connection became free within query_wait_timeout.
inline constexpr std::string_view kQueryWaitTimeout = "query_wait_timeout";

// Every reason above and every certificate reason of auth::verify_reason: the values of the
// metrics' `reason` label (anything else is counted as "other"). Add new reasons here.
inline constexpr std::string_view kAll[] = {
    kClientClosed, kBackendClosed, kClientGone, kSslRequired, kProtocolError, kCancelForwarded,
    kCancelUnknown, kCancelFailed, kCancelRejected, kTlsError, kHandshakeTimeout, kNoCert,
    kNoIdentity, kMapDenied, kNoHbaEntry, kHbaReject, kIssuerMismatch, kBackendUnavailable,
    kBackendAuthFailed, kBackendTlsFailed, kBackendError, kBackendProtocolError, kServerShutdown,
    kIdleTimeout, kTooManyConnections, kTooManyHandshakes, kEvicted, kRateLimited,
    kQueryWaitTimeout, kProxyProtocolError,
    // auth::verify_reason
    "unknown_ca", "revoked", "expired", "not_yet_valid", "bad_purpose", "crl_unavailable",
    "crl_invalid", "bad_signature", "chain_too_long", "invalid_certificate"};
}  // namespace reason

// SQLSTATEs pgmtls sends (PostgreSQL's errcodes).
namespace sqlstate {
inline constexpr std::string_view kInvalidAuthorization = "28000";
inline constexpr std::string_view kProtocolViolation = "08P01";
inline constexpr std::string_view kConnectionFailure = "08006";
inline constexpr std::string_view kAdminShutdown = "57P01";
inline constexpr std::string_view kCannotConnectNow = "57P03";  // a backend's, never pgmtls's
inline constexpr std::string_view kIdleSessionTimeout = "57P05";
inline constexpr std::string_view kTooManyConnections = "53300";
}  // namespace sqlstate

struct Outcome {
  Result result = Result::ok;
  std::string_view reason;
  std::string detail;  // for the log only, never sent to the client
};

}  // namespace pgmtls::proxy
