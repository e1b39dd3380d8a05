// The small certificate authority behind `pgmtls pki`: a directory holding the CA's certificate
// and key, a database of what it issued and revoked, and its CRL.
//
//   DIR/ca.crt   the CA certificate (clients' sslrootcert, pgmtls's tls.ca_file)
//   DIR/ca.key   its private key, mode 0600
//   DIR/ca.db    one line per issued certificate, plus the last CRL number
//   DIR/crl.pem  the current CRL (pgmtls's tls.crl_file, PostgreSQL's ssl_crl_file)
//
// Every change takes an exclusive lock on ca.db and replaces files atomically, so scripts may run
// several commands at once. Errors throw std::runtime_error with a message for the user.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/pki.h"

namespace pgmtls::auth::pki {

struct CaRecord {
  std::uint64_t serial = 0;
  std::time_t not_after = 0;
  std::string subject;  // RFC 2253
  std::optional<std::time_t> revoked_at;
  std::optional<int> reason;  // CRL_REASON_*, with revoked_at
};

// ca.db's content. Text, one record per line, so that it diffs and greps well:
//   # comment
//   crl_number 3
//   V 1B5B0C4E9F2A6CF6 20271206103000Z - - CN=app_user
//   R 2A0F1E9C77B3D410 20271206103000Z 20261206120000Z keyCompromise CN=old,O=Example
// status (V valid, R revoked), serial (hex), notAfter, revocation time or -, reason or -, subject.
struct CaDatabase {
  std::uint64_t crl_number = 0;  // of the last CRL written
  std::vector<CaRecord> records;

  // Throws std::runtime_error naming the line of the first malformed one.
  static CaDatabase parse(std::string_view text);
  std::string serialize() const;

  CaRecord* find(std::uint64_t serial);
};

// RFC 5280's reason names (keyCompromise, superseded, ...), as `openssl ca -crl_reason` takes
// them; nullopt for an unknown name. "unspecified" is a name too.
std::optional<int> crl_reason_from_name(std::string_view name);
std::string_view crl_reason_name(int reason);

// `t` in UTC, formatted by strftime(3) `format`.
std::string utc_time(std::time_t t, const char* format);
// Times as YYYYMMDDHHMMSSZ (UTC), as in ASN.1 GeneralizedTime.
std::string generalized_time(std::time_t t);
std::optional<std::time_t> parse_generalized_time(std::string_view text);

class CaDirectory {
 public:
  // Creates DIR (mode 0700 if missing) with a new self-signed CA, an empty database and an empty
  // CRL. Refuses to overwrite an existing ca.key.
  static CaDirectory create(const std::string& dir, const CertificateSpec& spec,
                            std::chrono::seconds crl_validity);
  // Opens an existing CA directory (ca.crt and ca.key must match).
  static CaDirectory open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const Credential& ca() const { return ca_; }
  std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }

  // Issues a certificate with a serial the database has not seen, and records it. Refuses a
  // certificate that would outlive the CA.
  Credential issue(CertificateSpec spec);
  // Marks a serial this CA issued as revoked, then writes a new CRL (`crl_validity`). Returns the
  // record. Throws for an unknown serial; revoking twice keeps the first time and reason.
  CaRecord revoke(std::uint64_t serial, std::optional<int> reason,
                  std::chrono::seconds crl_validity);
  // Writes DIR/crl.pem afresh (next CRL number, nextUpdate now + crl_validity). Returns the CRL.
  Crl write_crl(std::chrono::seconds crl_validity);

  CaDatabase database() const;

 private:
  CaDirectory(std::string dir, Credential ca) : dir_(std::move(dir)), ca_(std::move(ca)) {}
  Crl write_crl_locked(CaDatabase& db, std::chrono::seconds crl_validity);

  std::string dir_;
  Credential ca_;
};

}  // namespace pgmtls::auth::pki
