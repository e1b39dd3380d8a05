#include "auth/pki.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace pgmtls::auth::pki {
namespace {

template <auto Free>
using Deleter = OpenSslDeleter<Free>;
using Bio = BioPtr;
using Asn1Integer = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Asn1Time = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GeneralName = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using Revoked = std::unique_ptr<X509_REVOKED, Deleter<X509_REVOKED_free>>;

// Throws `what` followed by everything on OpenSSL's error queue.
[[noreturn]] void fail(std::string what) {
  const std::string details = openssl_error_text();
  throw std::runtime_error(details.empty() ? what : what + ": " + details);
}

template <class T>
T* check(T* result, std::string_view what) {
  if (result == nullptr) fail(std::string(what));
  return result;
}

void check(int result, std::string_view what) {
  if (result <= 0) fail(std::string(what));
}

// An ASN1_TIME `offset` away from now; X509_time_adj_ex takes whole days and seconds apart.
void set_time_offset(ASN1_TIME* time, std::chrono::seconds offset) {
  const auto days = std::chrono::duration_cast<std::chrono::days>(offset);
  const long seconds = static_cast<long>((offset - days).count());
  check(X509_time_adj_ex(time, static_cast<int>(days.count()), seconds, nullptr),
        "X509_time_adj_ex");
}

Asn1Time time_from_now(std::chrono::seconds offset) {
  Asn1Time time(check(ASN1_TIME_new(), "ASN1_TIME_new"));
  set_time_offset(time.get(), offset);
  return time;
}

Asn1Integer integer(std::uint64_t value) {
  Asn1Integer result(check(ASN1_INTEGER_new(), "ASN1_INTEGER_new"));
  check(ASN1_INTEGER_set_uint64(result.get(), value), "ASN1_INTEGER_set_uint64");
  return result;
}

// Adds an extension written in OpenSSL's config syntax ("critical,CA:TRUE"). `issuer` is needed
// for authorityKeyIdentifier; for a self-signed certificate it is the certificate itself.
void add_extension(X509* cert, const X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, const_cast<X509*>(issuer), cert, nullptr, nullptr, 0);
  Extension ext(check(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()),
                      std::string("extension ") + OBJ_nid2sn(nid) + "=" + value));
  check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

std::string key_usage_text(const CertificateSpec& spec, const EVP_PKEY& key) {
  unsigned bits = 0;
  if (spec.key_usage) {
    bits = *spec.key_usage;
  } else if (spec.is_ca) {
    bits = key_usage::key_cert_sign | key_usage::crl_sign | key_usage::digital_signature;
  } else {
    bits = key_usage::digital_signature;
    if (EVP_PKEY_get_base_id(&key) == EVP_PKEY_RSA) bits |= key_usage::key_encipherment;
  }
  std::string text = "critical";
  if (bits & key_usage::digital_signature) text += ",digitalSignature";
  if (bits & key_usage::key_encipherment) text += ",keyEncipherment";
  if (bits & key_usage::key_cert_sign) text += ",keyCertSign";
  if (bits & key_usage::crl_sign) text += ",cRLSign";
  return text;
}

// Built from GENERAL_NAMEs rather than config text so that values may contain commas.
void add_subject_alt_names(X509* cert, const SubjectAltNames& san) {
  GeneralNames names(check(sk_GENERAL_NAME_new_null(), "sk_GENERAL_NAME_new_null"));
  auto add = [&](int type, const std::vector<std::string>& values) {
    for (const auto& value : values) {
      GeneralName name(check(a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, value.c_str(), 0),
                             "subjectAltName \"" + value + "\""));
      check(sk_GENERAL_NAME_push(names.get(), name.get()), "sk_GENERAL_NAME_push");
      name.release();
    }
  };
  add(GEN_DNS, san.dns);
  add(GEN_IPADD, san.ip);
  add(GEN_EMAIL, san.email);
  add(GEN_URI, san.uri);
  check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
        "subjectAltName");
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

Bio memory_bio() {
  return Bio(check(BIO_new(BIO_s_mem()), "BIO_new"));
}

// Writes all of `content` to `fd`, which it closes; false (errno set) on failure.
bool write_and_close(int fd, std::string_view content, mode_t mode) {
  bool ok = ::fchmod(fd, mode) == 0;  // the file may have existed with a wider mode
  while (ok && !content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) content.remove_prefix(static_cast<std::size_t>(n));
  }
  const int saved = errno;
  if (::close(fd) != 0 && ok) return false;
  errno = saved;
  return ok;
}

void write_file(const std::string& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  if (!write_and_close(fd, content, mode)) {
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  }
}

Bio open_for_reading(const std::string& path) {
  return Bio(check(BIO_new_file(path.c_str(), "r"), "cannot open " + path));
}

}  // namespace

std::uint64_t random_serial() {
  std::uint64_t serial = 0;
  while (serial == 0) {
    check(RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial), "RAND_bytes");
    serial &= 0x7fffffffffffffffULL;  // positive, and DER-encodes in at most 8 bytes
  }
  return serial;
}

Key generate_key(KeyType type) {
  ERR_clear_error();
  switch (type) {
    case KeyType::ec_p256:
      return Key(check(EVP_EC_gen("P-256"), "EC P-256 key generation"));
    case KeyType::rsa2048:
      return Key(check(EVP_RSA_gen(2048), "RSA 2048 key generation"));
    case KeyType::rsa3072:
      return Key(check(EVP_RSA_gen(3072), "RSA 3072 key generation"));
    case KeyType::rsa4096:
      return Key(check(EVP_RSA_gen(4096), "RSA 4096 key generation"));
  }
  throw std::invalid_argument("unknown key type");
}

Certificate make_certificate(const CertificateSpec& spec, EVP_PKEY& subject_key,
                             const X509* issuer_cert, EVP_PKEY& issuer_key) {
  ERR_clear_error();
  if (spec.common_name.empty()) throw std::invalid_argument("a certificate needs a common name");
  Certificate cert(check(X509_new(), "X509_new"));
  X509* x = cert.get();
  check(X509_set_version(x, X509_VERSION_3), "X509_set_version");
  check(ASN1_INTEGER_set_uint64(X509_get_serialNumber(x),
                                spec.serial != 0 ? spec.serial : random_serial()),
        "serial number");
  set_time_offset(X509_getm_notBefore(x), spec.not_before);
  set_time_offset(X509_getm_notAfter(x), spec.not_after);

  X509_NAME* subject = X509_get_subject_name(x);
  auto add_name = [&](const char* field, const std::string& value) {
    check(X509_NAME_add_entry_by_txt(subject, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                     0),
          std::string("subject ") + field + "=" + value);
  };
  if (!spec.organization.empty()) add_name("O", spec.organization);
  add_name("CN", spec.common_name);
  const X509* issuer = issuer_cert != nullptr ? issuer_cert : x;
  check(X509_set_issuer_name(x, X509_get_subject_name(issuer)), "X509_set_issuer_name");
  check(X509_set_pubkey(x, &subject_key), "X509_set_pubkey");

  std::string constraints = spec.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
  if (spec.is_ca && spec.path_length)
    constraints += ",pathlen:" + std::to_string(*spec.path_length);
  add_extension(x, issuer, NID_basic_constraints, constraints);
  add_extension(x, issuer, NID_key_usage, key_usage_text(spec, subject_key));
  if (spec.server_auth || spec.client_auth) {
    std::string usage = spec.server_auth ? "serverAuth" : "";
    if (spec.client_auth) usage += usage.empty() ? "clientAuth" : ",clientAuth";
    add_extension(x, issuer, NID_ext_key_usage, usage);
  }
  add_extension(x, issuer, NID_subject_key_identifier, "hash");
  add_extension(x, issuer, NID_authority_key_identifier, "keyid:always");
  if (!spec.san.empty()) add_subject_alt_names(x, spec.san);

  check(X509_sign(x, &issuer_key, EVP_sha256()), "X509_sign");
  return cert;
}

Credential self_signed(const CertificateSpec& spec) {
  Credential result{generate_key(spec.key_type), nullptr};
  result.cert = make_certificate(spec, *result.key, nullptr, *result.key);
  return result;
}

Credential issue(const CertificateSpec& spec, const Credential& issuer) {
  Credential result{generate_key(spec.key_type), nullptr};
  result.cert = make_certificate(spec, *result.key, issuer.cert.get(), *issuer.key);
  return result;
}

Crl make_crl(const CrlSpec& spec, const Credential& issuer) {
  auto add_entry = [](X509_CRL* c, std::uint64_t serial, const ASN1_TIME* when,
                      std::optional<int> reason) {
    Revoked entry(check(X509_REVOKED_new(), "X509_REVOKED_new"));
    check(X509_REVOKED_set_serialNumber(entry.get(), integer(serial).get()), "revoked serial");
    check(X509_REVOKED_set_revocationDate(entry.get(), const_cast<ASN1_TIME*>(when)),
          "revocation date");
    if (reason) {
      std::unique_ptr<ASN1_ENUMERATED, Deleter<ASN1_ENUMERATED_free>> code(
          check(ASN1_ENUMERATED_new(), "ASN1_ENUMERATED_new"));
      check(ASN1_ENUMERATED_set(code.get(), *reason), "ASN1_ENUMERATED_set");
      check(X509_REVOKED_add1_ext_i2d(entry.get(), NID_crl_reason, code.get(), 0, 0), "reasonCode");
    }
    check(X509_CRL_add0_revoked(c, entry.get()), "X509_CRL_add0_revoked");
    entry.release();
  };
  ERR_clear_error();
  Crl crl(check(X509_CRL_new(), "X509_CRL_new"));
  X509_CRL* c = crl.get();
  check(X509_CRL_set_version(c, X509_CRL_VERSION_2), "X509_CRL_set_version");
  check(X509_CRL_set_issuer_name(c, X509_get_subject_name(issuer.cert.get())), "CRL issuer");
  const Asn1Time last_update = time_from_now(spec.last_update);
  check(X509_CRL_set1_lastUpdate(c, last_update.get()), "CRL lastUpdate");
  check(X509_CRL_set1_nextUpdate(c, time_from_now(spec.next_update).get()), "CRL nextUpdate");
  for (const std::uint64_t serial : spec.revoked_serials)
    add_entry(c, serial, last_update.get(), std::nullopt);
  for (const RevokedEntry& revoked : spec.revoked) {
    Asn1Time when(check(ASN1_TIME_set(nullptr, revoked.revoked_at), "revocation date"));
    add_entry(c, revoked.serial, when.get(), revoked.reason);
  }
  check(X509_CRL_sort(c), "X509_CRL_sort");
  check(X509_CRL_add1_ext_i2d(c, NID_crl_number, integer(spec.crl_number).get(), 0, 0),
        "CRL number");
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer.cert.get(), nullptr, nullptr, c, 0);
  Extension aki(
      check(X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"),
            "CRL authorityKeyIdentifier"));
  check(X509_CRL_add_ext(c, aki.get(), -1), "X509_CRL_add_ext");
  check(X509_CRL_sign(c, issuer.key.get(), EVP_sha256()), "X509_CRL_sign");
  return crl;
}

std::uint64_t serial_of(const X509& cert) {
  std::uint64_t value = 0;
  check(ASN1_INTEGER_get_uint64(&value, X509_get0_serialNumber(&cert)), "serial number");
  return value;
}

std::string to_pem(const X509& cert) {
  Bio bio = memory_bio();
  check(PEM_write_bio_X509(bio.get(), &cert), "PEM_write_bio_X509");
  return bio_text(bio.get());
}

std::string to_pem(const X509_CRL& crl) {
  Bio bio = memory_bio();
  check(PEM_write_bio_X509_CRL(bio.get(), &crl), "PEM_write_bio_X509_CRL");
  return bio_text(bio.get());
}

std::string private_key_to_pem(const EVP_PKEY& key) {
  Bio bio = memory_bio();
  check(PEM_write_bio_PKCS8PrivateKey(bio.get(), &key, nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PKCS8PrivateKey");
  return bio_text(bio.get());
}

std::string private_key_to_der(const EVP_PKEY& key) {
  Bio bio = memory_bio();
  check(i2d_PKCS8PrivateKey_bio(bio.get(), &key, nullptr, nullptr, 0, nullptr, nullptr),
        "i2d_PKCS8PrivateKey_bio");
  return bio_text(bio.get());
}

std::string to_pkcs12(const Credential& credential, const std::vector<const X509*>& chain,
                      const std::string& friendly_name, const std::string& password) {
  ERR_clear_error();
  auto free_stack = [](STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); };
  std::unique_ptr<STACK_OF(X509), decltype(free_stack)> cas(
      check(sk_X509_new_null(), "sk_X509_new_null"), free_stack);
  for (const X509* cert : chain) {
    X509* copy = check(X509_dup(cert), "X509_dup");
    if (sk_X509_push(cas.get(), copy) <= 0) {
      X509_free(copy);
      fail("sk_X509_push");
    }
  }
  // 0 for the algorithms, iterations and MAC iterations: OpenSSL 3's defaults (PBES2 with
  // AES-256-CBC and PBKDF2, HMAC-SHA-256), not the legacy RC2/3DES ones.
  std::unique_ptr<PKCS12, Deleter<PKCS12_free>> p12(
      check(PKCS12_create(password.c_str(), friendly_name.c_str(), credential.key.get(),
                          credential.cert.get(), cas.get(), 0, 0, 0, 0, 0),
            "PKCS12_create"));
  Bio bio = memory_bio();
  check(i2d_PKCS12_bio(bio.get(), p12.get()), "i2d_PKCS12_bio");
  return bio_text(bio.get());
}

void write_certificates(const std::string& path, const std::vector<const X509*>& chain) {
  std::string pem;
  for (const X509* cert : chain)
    pem += to_pem(*cert);
  write_file(path, pem, 0644);
}

void write_private_key(const std::string& path, const EVP_PKEY& key) {
  write_file(path, private_key_to_pem(key), 0600);
}

void write_crl(const std::string& path, const X509_CRL& crl) {
  write_file(path, to_pem(crl), 0644);
}

Certificate read_certificate(const std::string& path) {
  ERR_clear_error();
  Bio bio = open_for_reading(path);
  return Certificate(check(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                           "no PEM certificate in " + path));
}

Key read_private_key(const std::string& path) {
  ERR_clear_error();
  Bio bio = open_for_reading(path);
  return Key(check(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                   "no PEM private key in " + path));
}

void write_file_atomically(const std::string& path, const std::string& content, unsigned mode) {
  std::string temp = path + ".XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) throw std::runtime_error("cannot create " + temp + ": " + std::strerror(errno));
  if (!write_and_close(fd, content, static_cast<mode_t>(mode)) ||
      ::rename(temp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(saved));
  }
}

std::vector<Certificate> read_certificates(const std::string& path) {
  ERR_clear_error();
  std::vector<Certificate> out;
  {
    Bio bio = open_for_reading(path);
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))
      out.emplace_back(cert);
  }
  if (out.empty()) {
    Bio bio = open_for_reading(path);
    if (X509* cert = d2i_X509_bio(bio.get(), nullptr)) out.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the PEM input, or not DER
  return out;
}

Crl read_crl_if_any(const std::string& path) {
  ERR_clear_error();
  Crl crl;
  {
    Bio bio = open_for_reading(path);
    crl.reset(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!crl) {
    Bio bio = open_for_reading(path);
    crl.reset(d2i_X509_CRL_bio(bio.get(), nullptr));
  }
  ERR_clear_error();
  return crl;
}

}  // namespace pgmtls::auth::pki
