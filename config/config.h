// The pgmtls configuration as plain validated structs. Loading never throws: it returns a config
// or every problem found, each as "file:line:col: reason".
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostics.h"
#include "config/hba_file.h"
#include "config/ident_file.h"
#include "config/passfile.h"

namespace pgmtls::config {

// A file path from the config, resolved against the config file's directory.
struct PathSetting {
  std::string path;
  Location where;

  bool empty() const { return path.empty(); }
};

struct ListenAddress {
  std::string host;        // an IP literal (v4 or v6, without brackets)
  std::uint16_t port = 0;  // 0: the kernel picks a free port, the log says which
  Location where;
};

struct TlsConfig {
  PathSetting cert_file;  // server certificate, then any intermediates (PEM)
  PathSetting key_file;
  PathSetting ca_file;   // roots and intermediates trusted for client certificates
  PathSetting crl_file;  // optional
  PathSetting crl_dir;   // optional: every regular file in it is read as PEM CRLs
  std::string min_protocol_version = "TLSv1.2";
  std::string max_protocol_version;  // empty: the newest OpenSSL supports
  std::string ciphers;               // TLS 1.2 cipher list, OpenSSL syntax; empty: a strong default
  std::string ciphersuites;          // TLS 1.3 suites; empty: OpenSSL's default
  std::string groups = "X25519:P-256:P-384";  // key exchange groups, preferred first
  // The most intermediate CA certificates a client's chain may have between its certificate and
  // a trusted CA (OpenSSL's verify depth); a longer chain is refused (chain_too_long).
  int verify_depth = 5;
  // TLS 1.3 session resumption: how long after a full handshake a client may resume with the
  // session ticket it was given; 0 (the default) sends no tickets. At most 7 days (RFC 8446).
  // Off by default, as in PostgreSQL: making a ticket costs OpenSSL 3.0 a second parse of the
  // client certificate (about a fifth of a full handshake), and libpq never resumes.
  std::chrono::milliseconds session_ticket_lifetime{0};
  // Ticket keys shared by several instances (a client may resume on any of them) and kept over
  // reloads: one key per line, 80 bytes as 160 hex digits (openssl rand -hex 80): a 16-byte name,
  // a 32-byte HMAC-SHA-256 key, a 32-byte AES-256 key. The first line's key makes new tickets;
  // every key listed is accepted. Without the file each configuration has its own random keys.
  PathSetting session_ticket_key_file;
  std::vector<std::array<std::uint8_t, 80>> session_ticket_keys;
  Location where;
};

// libpq's sslmode values (`allow` is not offered: it would prefer plaintext).
enum class SslMode { disable, prefer, require, verify_ca, verify_full };
std::string_view to_string(SslMode mode);

// TLS towards a backend, with libpq's names and meanings.
struct BackendTlsConfig {
  SslMode sslmode = SslMode::prefer;
  PathSetting sslrootcert;    // CA bundle; empty with system_roots: the system's store
  bool system_roots = false;  // sslrootcert: system
  PathSetting sslcert;        // pgmtls's own client certificate, for backends using `cert`
  PathSetting sslkey;
  std::string ssl_min_protocol_version = "TLSv1.2";
  bool sslsni = true;
};

// How pgmtls answers a backend's password request for a role. Secrets are read when the config
// is loaded and never appear in a message.
struct CredentialConfig {
  enum class Kind { none, password, passfile, command, aws_iam };
  Kind kind = Kind::none;
  std::string password;                 // password_file / password_env
  std::vector<PassfileEntry> passfile;  // passfile
  // command: argv of a program whose stdout is the password (Cloud SQL, Entra, Vault tokens). It
  // runs with PGMTLS_ROLE, PGMTLS_BACKEND_HOST and PGMTLS_BACKEND_PORT set; its output is reused
  // for `ttl`, and it is killed after `timeout`.
  std::vector<std::string> command;
  std::chrono::milliseconds ttl{std::chrono::minutes(5)};
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
  // aws_iam: an RDS IAM auth token (valid 15 minutes) signed with credentials from the standard
  // AWS chain; reused for `token_reuse`, then signed again. Region empty: from the RDS host name.
  std::string aws_region;
  std::string aws_profile;  // empty: AWS_PROFILE, else "default"
  std::chrono::milliseconds token_reuse{std::chrono::minutes(10)};
  std::string origin;  // e.g. "password_env PGMTLS_PW", for messages
  Location where;
};

// Which server of a host list a session may use, as libpq's target_session_attrs.
enum class TargetSessionAttrs { any, read_write, read_only, primary, standby, prefer_standby };
std::string_view to_string(TargetSessionAttrs attrs);

struct BackendHost {
  std::string host;  // IP literal or name
  std::uint16_t port = 5432;
};

// Backend connection pooling (PgBouncer's names). In session mode a client's backend connection
// outlives the client: reset with server_reset_query and kept, per worker, for the next client
// with the same role, database and start-up parameters. In transaction mode a client holds a
// backend connection only while a transaction (or an extended-protocol pipeline) is open.
enum class PoolMode { none, session, transaction };

std::string_view to_string(PoolMode mode);

struct PoolConfig {
  PoolMode mode = PoolMode::none;
  // session: idle connections kept per worker and key, more are closed. transaction: backend
  // connections per worker and key, idle or busy; a client waits for one when all are busy.
  unsigned pool_size = 20;
  // transaction: how long a client waits for a backend connection before its query fails.
  std::chrono::milliseconds query_wait_timeout{std::chrono::seconds(120)};
  // transaction: pgmtls's prepared statements kept per backend connection (least recently used
  // closed first).
  unsigned max_prepared_statements = 200;
  std::chrono::milliseconds server_idle_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds server_lifetime{std::chrono::hours(1)};
  std::string server_reset_query = "DISCARD ALL";
};

struct BackendConfig {
  std::string name = "default";
  std::string host;  // the first of `hosts`
  std::uint16_t port = 5432;
  // libpq's host list: `host: "a,b"` with `port: "5432,5433"` (or one port for all), tried in
  // order until one accepts the session and matches target_session_attrs.
  std::vector<BackendHost> hosts;
  TargetSessionAttrs target_session_attrs = TargetSessionAttrs::any;
  std::chrono::milliseconds connect_timeout{5000};
  BackendTlsConfig tls;
  CredentialConfig auth;                          // for every role without its own
  std::map<std::string, CredentialConfig> roles;  // per-role credentials
  // A cleartext password (AuthenticationCleartextPassword) is only sent over TLS unless this is
  // set.
  bool allow_cleartext_password_without_tls = false;
  PoolConfig pool;
  Location where;

  // The credential for `role`: its own, else the backend's default.
  const CredentialConfig& credential_for(const std::string& role) const {
    auto it = roles.find(role);
    return it != roles.end() ? it->second : auth;
  }
};

// One server name (TLS SNI) with its own server certificate and backend: one pgmtls in front of
// several databases, each with its own host name. A client that sends no server name, or one no
// route lists, gets tls.cert_file and the backend named "default".
struct SniRoute {
  std::string server_name;  // lower case; "*.example.com" matches one more label in front
  PathSetting cert_file;
  PathSetting key_file;
  std::string backend;  // a name under backends:
  Location where;
};

// The identity: section: how rules identify a certificate unless a rule says otherwise.
struct IdentityConfig {
  IdentitySource source = IdentitySource::cn;
  std::optional<std::string> issuer;              // RFC 2253 DN of the leaf's issuer
  std::optional<std::string> issuer_fingerprint;  // SHA-256 of a CA in the chain, lower-case hex
  bool role_from_certificate = false;
};

// Connection limits. 0 means no limit.
struct LimitsConfig {
  unsigned max_client_connections = 0;  // admitted sessions, process-wide
  unsigned per_role = 0;                // admitted sessions per mapped role
  unsigned per_identity = 0;            // admitted sessions per certificate subject DN
  // Connections still in TLS handshake or start-up; beyond this, new ones are closed at once.
  unsigned max_handshakes = 1000;
  // Per source address: this many failed handshakes within `failed_window` block the address for
  // `failed_block` (new connections from it are closed at once). 0 (the default) turns it off:
  // behind a load balancer or NAT every client shares one address.
  unsigned failed_handshakes = 0;
  std::chrono::milliseconds failed_window{std::chrono::seconds(60)};
  std::chrono::milliseconds failed_block{std::chrono::seconds(60)};
};

// TCP keepalives on client and backend sockets (PostgreSQL's tcp_keepalives_*). idle 0: off.
struct KeepaliveConfig {
  std::chrono::milliseconds idle{std::chrono::seconds(60)};
  std::chrono::milliseconds interval{std::chrono::seconds(10)};
  unsigned count = 6;
};

// Cancel requests between pgmtls instances behind one load balancer.
struct PeerConfig {
  unsigned id = 0;
  ListenAddress address;  // the peer's client listener; host may be a DNS name, resolved per use
};
struct CancelConfig {
  unsigned instance_id = 0;  // 0-255, unique among the instances; carried in every cancel key
  std::string peer_secret;   // from peer_secret_file (at least 32 bytes); signs forwarded cancels
  std::vector<PeerConfig> peers;
};

// The admin HTTP endpoint (probes, sessions, reload). Off unless listen is set.
struct AdminConfig {
  std::optional<ListenAddress> listen;
  // HTTPS instead of HTTP when cert_file and key_file are set; with ca_file, clients must present
  // a certificate it verifies (Prometheus' tls_config cert_file/key_file).
  PathSetting cert_file;
  PathSetting key_file;
  PathSetting ca_file;
};

// PROXY protocol (v1 or v2) on the client listener. A connection from one of `trusted_sources`
// (pg_hba address syntax: CIDR, samehost, samenet, all) must begin with a PROXY header, whose
// source address then stands for the client everywhere: rules, limits, logs. Any other
// connection must not send one. Empty: PROXY headers are never accepted.
struct ProxyProtocolConfig {
  std::vector<HbaAddress> trusted_sources;
  Location where;
};

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  bool json = false;           // format: text (key=value lines) or json (one object per line)
};

// What happens to a live session whose client certificate becomes revoked (by a reloaded CRL) or
// expires while it is connected.
enum class CertificateEventAction { keep, terminate };

struct Config {
  std::string source;  // the config file's path, for messages
  ListenAddress listen;
  unsigned workers = 0;  // 0: one per core
  std::chrono::milliseconds startup_timeout{10000};
  // SIGTERM: sessions get this long to finish before they are ended with 57P01.
  std::chrono::milliseconds shutdown_timeout{30000};
  // A session idle outside a transaction this long is ended with 57P05; 0: never.
  std::chrono::milliseconds idle_timeout{0};
  CertificateEventAction on_revocation = CertificateEventAction::keep;
  CertificateEventAction on_expiry = CertificateEventAction::keep;
  // Poll the files below for changes this often and reload when one changed; 0: only on SIGHUP.
  std::chrono::milliseconds watch_interval{0};
  // Every file and directory the config named (the config file itself included), for watching.
  // Files pulled in by include directives and @file inside hba/ident files are not listed.
  std::vector<std::string> files;
  TlsConfig tls;
  IdentityConfig identity;
  // Access rules from hba_file: or hba:, first match decides. Empty: one implicit rule,
  // `hostssl all all all cert map=<map>`.
  std::vector<HbaRule> hba_rules;
  std::string hba_origin;  // "hba_file PATH" or "hba", for messages; empty without rules
  // The implicit rule's ident map. Empty: the identity must equal the requested role
  // (PostgreSQL's `cert` method without map=). Only valid without hba rules.
  std::string map;
  Location map_where;
  std::vector<IdentLine> ident_lines;       // from ident_file: or maps:, all maps
  BackendConfig backend;                    // the only one, or the one named "default"
  std::vector<BackendConfig> sni_backends;  // the others, each reached through an sni: route
  std::vector<SniRoute> sni;
  LimitsConfig limits;
  KeepaliveConfig tcp_keepalives;
  CancelConfig cancel;
  AdminConfig admin;
  ProxyProtocolConfig proxy_protocol;
  LogConfig log;
};

struct LoadResult {
  std::optional<Config> config;
  Diagnostics errors;

  bool ok() const { return config.has_value() && errors.empty(); }
};

// Loads a YAML config file; relative paths in it are resolved against its directory.
LoadResult load_config_file(const std::string& path);
// Loads YAML text; `name` names it in diagnostics, `base_dir` resolves relative paths.
LoadResult load_config_text(std::string_view yaml, const std::string& name,
                            const std::string& base_dir);

std::string_view to_string(CertificateEventAction action);

// "10s", "250ms", "2m", "1h" or a plain number of seconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// "host:port" or "[v6]:port" with an IP literal host.
std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string& error);
// host:port where host may also be a DNS name when `allow_names` (resolved when used).
std::optional<ListenAddress> parse_host_port(std::string_view text, bool allow_names,
                                             std::string& error);

}  // namespace pgmtls::config
