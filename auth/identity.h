// Everything pgmtls uses from a client certificate, extracted once into a plain struct.
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

namespace pgmtls::auth {

struct CertificateIdentity {
  std::string cn;                  // the subject's first commonName, as PostgreSQL uses
  std::string subject_dn;          // RFC 2253, exactly as PostgreSQL's clientname=DN (non-ASCII
                                   // bytes escaped as \XX)
  std::string issuer_dn;           // RFC 2253, the same way
  std::string serial;              // upper-case hex, as `openssl x509 -serial` prints it
  std::string sha256_fingerprint;  // lower-case hex, no separators
  std::vector<std::string> san_dns;
  std::vector<std::string> san_email;
  std::vector<std::string> san_uri;
  std::vector<std::string> san_ip;  // text form (inet_ntop), for display
  // SHA-256 (lower-case hex) of every CA certificate in the verified chain, issuer first; filled by
  // the session from auth::verified_ca_fingerprints, empty until then.
  std::vector<std::string> ca_fingerprints;
};

// Extracts the identity; nullopt (and `error` set) when the certificate cannot carry one safely,
// e.g. a commonName with an embedded NUL or that is not valid UTF-8.
std::optional<CertificateIdentity> extract_identity(X509* cert, std::string& error);

// A name as RFC 2253 text, exactly as PostgreSQL's clientname=DN writes it.
std::string name_rfc2253(const X509_NAME* name);

// A serial number (a certificate's, a CRL entry's) in upper-case hex, as `openssl x509 -serial`
// prints it; empty if unreadable.
std::string serial_hex(const ASN1_INTEGER* serial);

// SHA-256 of a certificate's DER encoding, lower-case hex.
std::string sha256_fingerprint(X509* cert);

}  // namespace pgmtls::auth
