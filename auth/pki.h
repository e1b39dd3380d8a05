// A small PKI for tests and the `pgmtls pki` command: keys, CA and leaf certificates, CRLs, PEM
// files. Not used on the data path; every function returns a value or throws std::runtime_error
// carrying OpenSSL's error text.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "auth/openssl_ptr.h"

namespace pgmtls::auth::pki {

using Key = EvpPkeyPtr;
using Certificate = X509Ptr;
using Crl = X509CrlPtr;

enum class KeyType { ec_p256, rsa2048, rsa3072, rsa4096 };

// keyUsage bits, named as in RFC 5280.
namespace key_usage {
inline constexpr unsigned digital_signature = 1u << 0;
inline constexpr unsigned key_encipherment = 1u << 1;
inline constexpr unsigned key_cert_sign = 1u << 2;
inline constexpr unsigned crl_sign = 1u << 3;
}  // namespace key_usage

struct SubjectAltNames {
  std::vector<std::string> dns;
  std::vector<std::string> ip;  // IPv4 or IPv6 literals
  std::vector<std::string> email;
  std::vector<std::string> uri;

  bool empty() const { return dns.empty() && ip.empty() && email.empty() && uri.empty(); }
};

struct CertificateSpec {
  std::string common_name;
  std::string organization;  // empty: no O= in the subject
  std::uint64_t serial = 0;  // 0: a random 63-bit serial
  // Validity as offsets from now; negative values lie in the past, which is how tests build
  // expired and not-yet-valid certificates.
  std::chrono::seconds not_before = -std::chrono::hours(1);
  std::chrono::seconds not_after = std::chrono::days(365);
  bool is_ca = false;
  std::optional<int> path_length;  // CAs only; absent: unlimited
  // Absent: keyCertSign|cRLSign for a CA, digitalSignature (+keyEncipherment for RSA) for a leaf.
  std::optional<unsigned> key_usage;
  bool server_auth = false;  // extendedKeyUsage; neither set: no extendedKeyUsage extension
  bool client_auth = false;
  SubjectAltNames san;
  KeyType key_type = KeyType::ec_p256;  // used by issue() and self_signed()
};

// A certificate together with its private key.
struct Credential {
  Key key;
  Certificate cert;
};

Key generate_key(KeyType type = KeyType::ec_p256);

// A random positive serial of 63 bits: unpredictable, and it fits a std::uint64_t.
std::uint64_t random_serial();

// Builds and signs a certificate for `subject_key`. With `issuer_cert` null the certificate is
// self-signed and `issuer_key` must be the subject's own key.
Certificate make_certificate(const CertificateSpec& spec, EVP_PKEY& subject_key,
                             const X509* issuer_cert, EVP_PKEY& issuer_key);

// Generates a key (spec.key_type) and a self-signed certificate for it.
Credential self_signed(const CertificateSpec& spec);
// Generates a key (spec.key_type) and a certificate for it signed by `issuer`.
Credential issue(const CertificateSpec& spec, const Credential& issuer);

// A CRL entry: RFC 5280's CRLReason codes (CRL_REASON_*), or no reasonCode extension.
struct RevokedEntry {
  std::uint64_t serial = 0;
  std::time_t revoked_at = 0;
  std::optional<int> reason;
};

struct CrlSpec {
  std::vector<std::uint64_t> revoked_serials;  // revoked at last_update, without a reason
  std::vector<RevokedEntry> revoked;
  std::chrono::seconds last_update = -std::chrono::hours(1);  // offsets from now
  std::chrono::seconds next_update = std::chrono::days(7);    // in the past: a stale CRL
  std::uint64_t crl_number = 1;
};

Crl make_crl(const CrlSpec& spec, const Credential& issuer);

std::uint64_t serial_of(const X509& cert);

std::string to_pem(const X509& cert);
std::string to_pem(const X509_CRL& crl);
std::string private_key_to_pem(const EVP_PKEY& key);  // unencrypted PKCS#8
std::string private_key_to_der(const EVP_PKEY& key);  // unencrypted PKCS#8, DER (pgJDBC's .pk8)
// A PKCS#12 bundle of the key, its certificate and `chain` (OpenSSL 3's defaults: AES-256-CBC
// with PBKDF2, an HMAC-SHA-256 MAC), which Java 8u301+ and .NET read.
std::string to_pkcs12(const Credential& credential, const std::vector<const X509*>& chain,
                      const std::string& friendly_name, const std::string& password);

// Writes the certificates in order (leaf first, then intermediates).
void write_certificates(const std::string& path, const std::vector<const X509*>& chain);
void write_private_key(const std::string& path, const EVP_PKEY& key);  // mode 0600
void write_crl(const std::string& path, const X509_CRL& crl);
// Writes `content` to a temporary file beside `path` with `mode`, then renames it over `path`:
// a reader sees the old file or the new one, never half of one.
void write_file_atomically(const std::string& path, const std::string& content, unsigned mode);

Certificate read_certificate(const std::string& path);  // the first certificate in a PEM file
Key read_private_key(const std::string& path);
// Every certificate in a file: PEM (any number) or a single DER certificate. Empty: none.
std::vector<Certificate> read_certificates(const std::string& path);
// The CRL in a file, PEM or DER; null if the file holds none.
Crl read_crl_if_any(const std::string& path);

}  // namespace pgmtls::auth::pki
