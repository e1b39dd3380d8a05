#include "auth/identity.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "auth/openssl_ptr.h"

namespace pgmtls::auth {

namespace {

// An ASN.1 string as UTF-8; false if it holds an embedded NUL or cannot be converted.
bool asn1_utf8(const ASN1_STRING* str, std::string& out) {
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, str);
  if (len < 0) return false;
  out.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return out.find('\0') == std::string::npos;
}

std::string hex(const unsigned char* data, std::size_t len) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (std::size_t i = 0; i < len; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string name_rfc2253(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || name == nullptr) return {};
  // Exactly PostgreSQL's clientname=DN string: RFC 2253 order and escaping, which writes bytes
  // above 0x7f as \XX (so "CN=jürgen" is "CN=j\C3\BCrgen"); the differential test checks it.
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string serial_hex(const ASN1_INTEGER* serial) {
  std::string out;
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr)) {
    if (char* text = BN_bn2hex(bn)) {
      out = text;
      OPENSSL_free(text);
      if (out == "0") out = "00";  // whole bytes, as `openssl x509 -serial` prints
    }
    BN_free(bn);
  }
  return out;
}

std::string sha256_fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) return {};
  return hex(md, md_len);
}

std::optional<CertificateIdentity> extract_identity(X509* cert, std::string& error) {
  CertificateIdentity id;
  const X509_NAME* subject = X509_get_subject_name(cert);
  id.subject_dn = name_rfc2253(subject);
  id.issuer_dn = name_rfc2253(X509_get_issuer_name(cert));

  const int cn_index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (cn_index >= 0) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, cn_index);
    if (!asn1_utf8(X509_NAME_ENTRY_get_data(entry), id.cn)) {
      error = "the certificate's common name contains an embedded NUL or invalid characters";
      return std::nullopt;
    }
  }

  id.serial = serial_hex(X509_get0_serialNumber(cert));

  id.sha256_fingerprint = sha256_fingerprint(cert);

  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      std::string value;
      // A SAN with an embedded NUL is skipped: it could otherwise match a shorter name.
      switch (gn->type) {
        case GEN_DNS:
          if (asn1_utf8(gn->d.dNSName, value)) id.san_dns.push_back(std::move(value));
          break;
        case GEN_EMAIL:
          if (asn1_utf8(gn->d.rfc822Name, value)) id.san_email.push_back(std::move(value));
          break;
        case GEN_URI:
          if (asn1_utf8(gn->d.uniformResourceIdentifier, value)) {
            id.san_uri.push_back(std::move(value));
          }
          break;
        case GEN_IPADD: {
          const ASN1_OCTET_STRING* ip = gn->d.iPAddress;
          char text[INET6_ADDRSTRLEN] = {};
          const int family = ip->length == 4 ? AF_INET : ip->length == 16 ? AF_INET6 : 0;
          if (family != 0 && ::inet_ntop(family, ip->data, text, sizeof text) != nullptr) {
            id.san_ip.emplace_back(text);
          }
          break;
        }
        default:
          break;
      }
    }
    GENERAL_NAMES_free(names);
  }
  return id;
}

}  // namespace pgmtls::auth
