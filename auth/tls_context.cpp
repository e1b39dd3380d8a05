#include "auth/tls_context.h"

#include <arpa/inet.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "auth/identity.h"

namespace pgmtls::auth {

namespace {

// TLS 1.2 suites when tls.ciphers is not set: forward secrecy and AEAD only.
constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The ALPN protocol name PostgreSQL 17 registers.
constexpr unsigned char kAlpnPostgresql[] = {'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};

int protocol_version(const std::string& name) {
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return 0;
}

int direct_tls_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

DirectTls* direct_tls_of(SSL* ssl) {
  return static_cast<DirectTls*>(SSL_get_ex_data(ssl, direct_tls_index()));
}

// PostgreSQL 17's rule: "postgresql" is selected when offered. A direct TLS connection must
// offer it (the ClientHello is all the server knows of the client); after an SSLRequest it is
// optional, so a client offering only other protocols is served without ALPN there.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == sizeof kAlpnPostgresql && std::memcmp(in + i + 1, kAlpnPostgresql, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  if (DirectTls* direct = direct_tls_of(ssl)) {
    direct->refused = "the client offered ALPN protocols, but not \"postgresql\"";
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// Runs first on every ClientHello: a direct TLS one without the ALPN extension is refused before
// any certificate work (the ALPN callback is not even called without the extension).
int check_client_hello(SSL* ssl, int* alert, void*) {
  DirectTls* direct = direct_tls_of(ssl);
  if (direct == nullptr) return SSL_CLIENT_HELLO_SUCCESS;
  const unsigned char* ext = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &len) == 1) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  direct->refused = "the client offered no ALPN (direct TLS needs \"postgresql\")";
  *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
  return SSL_CLIENT_HELLO_ERROR;
}

// Adds every CRL in a PEM file to the store; returns how many, or -1 after reporting an error.
int add_crls(X509_STORE* store, const std::string& path, const config::Location& where,
             config::Diagnostics& errors) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    errors.push_back({where, "cannot open CRL file \"" + path + "\": " + openssl_error_text()});
    return -1;
  }
  int count = 0;
  while (X509_CRL* raw = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    X509CrlPtr crl(raw);
    if (X509_STORE_add_crl(store, crl.get()) != 1) {
      errors.push_back({where, "cannot add CRL from \"" + path + "\": " + openssl_error_text()});
      return -1;
    }
    ++count;
  }
  // The loop ends on "no start line" at end of file; anything else is a broken file.
  const unsigned long last = ERR_peek_last_error();
  if (count > 0 && ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
    return count;
  }
  errors.push_back({where, "\"" + path + "\" holds no readable PEM CRL" +
                               (last != 0 ? ": " + openssl_error_text() : std::string())});
  ERR_clear_error();
  return -1;
}

int verify_detail_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// "depth N subject \"DN\": reason" for the certificate verification just failed on.
std::string describe_verify_failure(X509_STORE_CTX* store) {
  std::string subject;
  if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
    subject = name_rfc2253(X509_get_subject_name(cert));
  }
  const int error = X509_STORE_CTX_get_error(store);
  return "depth " + std::to_string(X509_STORE_CTX_get_error_depth(store)) + " subject \"" +
         subject + "\": " + X509_verify_cert_error_string(error);
}

// OpenSSL's verification callback: keeps OpenSSL's verdict and notes the first failure.
int note_verify_failure(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok == 1) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* out = ssl != nullptr
                  ? static_cast<std::string*>(SSL_get_ex_data(ssl, verify_detail_index()))
                  : nullptr;
  if (out != nullptr && out->empty()) *out = describe_verify_failure(store);
  return 0;
}

// ---- TLS 1.3 session resumption ----
//
// Tickets are encrypted and authenticated with keys OpenSSL makes for each SSL_CTX, or with the
// keys of tls.session_ticket_key_file, which several instances share and which outlive reloads.
// A ticket records, in its authenticated application data, a digest of the trust configuration
// (every CA certificate and CRL) it was verified against: one is only ever accepted where that
// configuration is the same, so a new CRL or CA bundle ends every ticket made before it, on every
// instance, and a revocation takes effect for resumed clients too. What can change while one
// configuration lives is time, so the ticket also carries when the certificate was verified, when
// the first certificate of its verified chain expires and the SHA-256 of the chain's CA
// certificates (the issuer rules need them, and a resumed session has no verified chain). A ticket
// is honoured only while all of that still holds and every CRL is still current; otherwise the
// client gets a full handshake and a full verification.

// Ticket data: version (1 byte), verified and expires (Unix seconds, 8 bytes big-endian each), the
// trust digest (32 bytes), then the CA fingerprints as 64 hex digits each.
constexpr unsigned char kTicketDataVersion = 2;
constexpr std::size_t kTrustDigest = 32;
constexpr std::size_t kTicketHeader = 17 + kTrustDigest;
constexpr std::size_t kFingerprintHex = 64;

struct TicketKey {
  std::array<unsigned char, 16> name{};
  std::array<unsigned char, 32> hmac{};
  std::array<unsigned char, 32> aes{};
};

struct TicketPolicy {
  std::time_t lifetime = 0;          // seconds since the full handshake
  std::time_t crls_valid_until = 0;  // the earliest nextUpdate of the loaded CRLs; 0: none
  std::array<unsigned char, kTrustDigest> trust_digest{};
  std::vector<TicketKey> keys;  // from session_ticket_key_file, the first one current; or none
};

int ticket_policy_index() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<TicketPolicy*>(ptr);
      });
  return index;
}

void put_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint64_t get_be64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | p[i];
  return v;
}

// Called as each ticket is made: after a full handshake, from its verified chain. A resumed
// session's new ticket keeps the data of the ticket it came from (OpenSSL copies it).
int make_ticket(SSL* ssl, void*) {
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
  if (chain == nullptr || sk_X509_num(chain) == 0 || SSL_session_reused(ssl)) return 1;
  std::time_t expires = 0;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    const std::time_t t = unix_time(X509_get0_notAfter(sk_X509_value(chain, i))).value_or(0);
    if (i == 0 || t < expires) expires = t;
  }
  const auto* policy = static_cast<const TicketPolicy*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_policy_index()));
  if (policy == nullptr) return 0;
  std::string data(1, static_cast<char>(kTicketDataVersion));
  put_be64(data, static_cast<std::uint64_t>(std::time(nullptr)));
  put_be64(data, static_cast<std::uint64_t>(expires));
  data.append(reinterpret_cast<const char*>(policy->trust_digest.data()), kTrustDigest);
  for (const std::string& fingerprint : verified_ca_fingerprints(ssl)) {
    if (fingerprint.size() != kFingerprintHex) return 0;
    data += fingerprint;
  }
  return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), data.data(), data.size());
}

struct TicketData {
  std::time_t verified = 0;
  std::time_t expires = 0;
  std::array<unsigned char, kTrustDigest> trust_digest{};
  std::vector<std::string> ca_fingerprints;  // lower-case hex
};

std::optional<TicketData> read_ticket_data(SSL_SESSION* session) {
  void* raw = nullptr;
  std::size_t len = 0;
  if (session == nullptr || SSL_SESSION_get0_ticket_appdata(session, &raw, &len) != 1 ||
      len < kTicketHeader || (len - kTicketHeader) % kFingerprintHex != 0) {
    return std::nullopt;
  }
  const auto* p = static_cast<const unsigned char*>(raw);
  if (p[0] != kTicketDataVersion) return std::nullopt;
  TicketData out;
  out.verified = static_cast<std::time_t>(get_be64(p + 1));
  out.expires = static_cast<std::time_t>(get_be64(p + 9));
  std::copy(p + 17, p + 17 + kTrustDigest, out.trust_digest.begin());
  for (std::size_t at = kTicketHeader; at < len; at += kFingerprintHex)
    out.ca_fingerprints.emplace_back(reinterpret_cast<const char*>(p + at), kFingerprintHex);
  return out;
}

// Called with each ticket a client offers: resume only a TLS 1.3 session with a verified client
// certificate whose verification is still as good as new.
SSL_TICKET_RETURN accept_ticket(SSL* ssl, SSL_SESSION* session, const unsigned char*, size_t,
                                SSL_TICKET_STATUS status, void*) {
  if (status == SSL_TICKET_FATAL_ERR_MALLOC || status == SSL_TICKET_FATAL_ERR_OTHER) {
    return SSL_TICKET_RETURN_ABORT;
  }
  if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW) {
    return SSL_TICKET_RETURN_IGNORE_RENEW;  // none, or not ours (an older configuration's)
  }
  const auto* policy = static_cast<const TicketPolicy*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_policy_index()));
  const auto data = read_ticket_data(session);
  const std::time_t now = std::time(nullptr);
  const bool good = policy != nullptr && data &&
                    SSL_SESSION_get_protocol_version(session) == TLS1_3_VERSION &&
                    SSL_SESSION_get0_peer(session) != nullptr && now >= data->verified &&
                    now - data->verified < policy->lifetime && now < data->expires &&
                    (policy->crls_valid_until == 0 || now < policy->crls_valid_until) &&
                    data->trust_digest == policy->trust_digest;
  if (!good) return SSL_TICKET_RETURN_IGNORE_RENEW;
  return status == SSL_TICKET_SUCCESS_RENEW ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
}

// Encrypts new tickets with the first configured key and decrypts tickets made with any of them
// (OpenSSL's ticket format: AES-256-CBC, HMAC-SHA-256). A ticket under an older key is renewed.
int ticket_key_callback(SSL* ssl, unsigned char key_name[16], unsigned char iv[16],
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  const auto* policy = static_cast<const TicketPolicy*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_policy_index()));
  if (policy == nullptr || policy->keys.empty()) return -1;
  const TicketKey* key = nullptr;
  if (encrypt == 1) {
    key = &policy->keys.front();
    std::memcpy(key_name, key->name.data(), key->name.size());
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
  } else {
    for (const auto& k : policy->keys) {
      if (std::memcmp(key_name, k.name.data(), k.name.size()) == 0) key = &k;
    }
    if (key == nullptr) return 0;  // another key set's ticket: a full handshake
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(
          OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac.data()), key->hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  const int ok = encrypt == 1
                     ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv)
                     : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes.data(), iv);
  if (ok != 1) return -1;
  return encrypt == 1 || key == &policy->keys.front() ? 1 : 2;
}

// SHA-256 over the sorted SHA-256 digests of every CA certificate and CRL in the store: equal on
// every instance with the same files, whatever their order.
std::array<unsigned char, kTrustDigest> trust_digest(X509_STORE* store) {
  std::vector<std::array<unsigned char, kTrustDigest>> digests;
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    X509_OBJECT* object = sk_X509_OBJECT_value(objects, i);
    std::array<unsigned char, kTrustDigest> d{};
    unsigned int len = 0;
    if (X509* cert = X509_OBJECT_get0_X509(object)) {
      X509_digest(cert, EVP_sha256(), d.data(), &len);
    } else if (X509_CRL* crl = X509_OBJECT_get0_X509_CRL(object)) {
      X509_CRL_digest(crl, EVP_sha256(), d.data(), &len);
    }
    digests.push_back(d);
  }
  std::sort(digests.begin(), digests.end());
  std::array<unsigned char, kTrustDigest> out{};
  EVP_Digest(digests.data(), digests.size() * kTrustDigest, out.data(), nullptr, EVP_sha256(),
             nullptr);
  return out;
}

}  // namespace

std::vector<std::string> verified_ca_fingerprints(SSL* ssl) {
  // The ticket's data: the one the client resumed with, or the one this handshake made.
  if (auto data = read_ticket_data(SSL_get0_session(ssl))) return std::move(data->ca_fingerprints);
  if (SSL_session_reused(ssl)) return {};
  std::vector<std::string> out;
  if (STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl)) {
    for (int i = 1; i < sk_X509_num(chain); ++i)
      out.push_back(sha256_fingerprint(sk_X509_value(chain, i)));
  }
  return out;
}

void SniTable::add(std::string server_name, SSL_CTX* ctx) {
  entries_.emplace_back(std::move(server_name), ctx);
}

int SniTable::find(const char* server_name) const {
  if (server_name == nullptr || *server_name == '\0') return -1;
  std::string name(server_name);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == name) return static_cast<int>(i);
  }
  const std::size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return -1;
  const std::string wildcard = "*" + name.substr(dot);
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first == wildcard) return static_cast<int>(i);
  }
  return -1;
}

namespace {

int switch_context_by_name(SSL* ssl, int*, void* arg) {
  const auto* table = static_cast<const SniTable*>(arg);
  const int index = table->find(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
  if (index >= 0 && SSL_set_SSL_CTX(ssl, table->context(index)) == nullptr) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

void SniTable::install(SSL_CTX* default_ctx) const {
  SSL_CTX_set_tlsext_servername_callback(default_ctx, switch_context_by_name);
  SSL_CTX_set_tlsext_servername_arg(default_ctx, const_cast<SniTable*>(this));
}

void mark_direct_tls(SSL* ssl, DirectTls* state) {
  SSL_set_ex_data(ssl, direct_tls_index(), state);
}

void record_verify_failure(SSL* ssl, std::string* out) {
  SSL_set_ex_data(ssl, verify_detail_index(), out);
}

std::optional<ServerTlsContext> build_server_tls_context(const config::TlsConfig& tls,
                                                         config::Diagnostics& errors) {
  ERR_clear_error();
  const std::size_t errors_before = errors.size();
  auto fail = [&](const config::Location& where, const std::string& message) {
    errors.push_back({where, message});
    ERR_clear_error();
  };

  ServerTlsContext out;
  out.ctx.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = out.ctx.get();
  if (ctx == nullptr) {
    fail(tls.where, "cannot create a TLS context: " + openssl_error_text());
    return std::nullopt;
  }

  SSL_CTX_set_min_proto_version(ctx, protocol_version(tls.min_protocol_version));
  if (!tls.max_protocol_version.empty()) {
    SSL_CTX_set_max_proto_version(ctx, protocol_version(tls.max_protocol_version));
    if (protocol_version(tls.max_protocol_version) < protocol_version(tls.min_protocol_version)) {
      fail(tls.where, "tls.max_protocol_version is older than tls.min_protocol_version");
    }
  }
  // No renegotiation, no compression, no server-side session cache, no early data.
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  const std::string ciphers = tls.ciphers.empty() ? kDefaultTls12Ciphers : tls.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    fail(tls.where, "tls.ciphers \"" + ciphers + "\" selects no usable cipher");
  }
  if (!tls.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, tls.ciphersuites.c_str()) != 1) {
    fail(tls.where, "tls.ciphersuites \"" + tls.ciphersuites + "\" selects no usable suite");
  }
  if (SSL_CTX_set1_groups_list(ctx, tls.groups.c_str()) != 1) {
    fail(tls.where, "tls.groups \"" + tls.groups + "\" names an unknown group");
  }

  // Server certificate chain and key.
  const bool have_cert = SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.path.c_str()) == 1;
  if (!have_cert) {
    fail(tls.cert_file.where, "cannot load certificate chain from \"" + tls.cert_file.path +
                                  "\": " + openssl_error_text());
  }
  const bool have_key =
      SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.path.c_str(), SSL_FILETYPE_PEM) == 1;
  if (!have_key) {
    const std::string why = openssl_error_text();
    if (why.find("key values mismatch") != std::string::npos) {
      fail(tls.key_file.where, "tls.key_file \"" + tls.key_file.path +
                                   "\" does not match the certificate in tls.cert_file");
    } else {
      fail(tls.key_file.where,
           "cannot load private key from \"" + tls.key_file.path + "\": " + why);
    }
  } else if (have_cert && SSL_CTX_check_private_key(ctx) != 1) {
    fail(tls.key_file.where, "tls.key_file \"" + tls.key_file.path +
                                 "\" does not match the certificate in tls.cert_file");
  }
  if (X509* leaf = SSL_CTX_get0_certificate(ctx)) {
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(leaf), buf, sizeof buf);
    out.server_subject = buf;
    out.server_not_after = unix_time(X509_get0_notAfter(leaf)).value_or(0);
  }

  // Trusted CAs for client certificates; their names also go into the CertificateRequest.
  if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.path.c_str(), nullptr) != 1) {
    fail(tls.ca_file.where,
         "cannot load CA certificates from \"" + tls.ca_file.path + "\": " + openssl_error_text());
  } else if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.ca_file.path.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  } else {
    fail(tls.ca_file.where, "\"" + tls.ca_file.path + "\" holds no CA certificate");
  }

  // CRLs: once any is configured, every certificate in the chain must have a current CRL from
  // its issuer (fail closed: a missing or expired CRL refuses the connection).
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (!tls.crl_file.empty()) {
    const int n = add_crls(store, tls.crl_file.path, tls.crl_file.where, errors);
    if (n > 0) out.crl_count += n;
  }
  if (!tls.crl_dir.empty()) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(tls.crl_dir.path, ec)) {
      if (!entry.is_regular_file()) continue;
      const int n = add_crls(store, entry.path().string(), tls.crl_dir.where, errors);
      if (n > 0) out.crl_count += n;
    }
    if (ec) fail(tls.crl_dir.where, "cannot list tls.crl_dir: " + ec.message());
  }
  if (out.crl_count > 0) {
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  // What monitoring wants to know about the trust store: when each CA expires, when each CRL
  // should be replaced.
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    X509_OBJECT* object = sk_X509_OBJECT_value(objects, i);
    if (X509* ca = X509_OBJECT_get0_X509(object)) {
      out.cas.push_back(
          {name_rfc2253(X509_get_subject_name(ca)), unix_time(X509_get0_notAfter(ca)).value_or(0)});
    } else if (X509_CRL* crl = X509_OBJECT_get0_X509_CRL(object)) {
      const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
      out.crls.push_back({name_rfc2253(X509_CRL_get_issuer(crl)), unix_time(next).value_or(0)});
    }
  }

  // Session tickets, set up once the CRLs are known: a ticket is refused once one of them is stale.
  const auto lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(tls.session_ticket_lifetime).count();
  if (lifetime > 0) {
    // Stateless TLS 1.3 tickets, one per handshake; resumption always runs a fresh (EC)DHE
    // exchange (OpenSSL refuses psk_ke unless SSL_OP_ALLOW_NO_DHE_KEX). TLS 1.2 tickets, which
    // would not, are made (OpenSSL has no switch for only one version) but never accepted.
    auto* policy = new TicketPolicy{static_cast<std::time_t>(lifetime), 0, trust_digest(store), {}};
    for (const auto& raw : tls.session_ticket_keys) {
      TicketKey key;
      std::copy(raw.begin(), raw.begin() + 16, key.name.begin());
      std::copy(raw.begin() + 16, raw.begin() + 48, key.hmac.begin());
      std::copy(raw.begin() + 48, raw.end(), key.aes.begin());
      policy->keys.push_back(key);
    }
    for (const auto& crl : out.crls) {
      if (crl.next_update != 0 &&
          (policy->crls_valid_until == 0 || crl.next_update < policy->crls_valid_until)) {
        policy->crls_valid_until = crl.next_update;
      }
    }
    SSL_CTX_set_ex_data(ctx, ticket_policy_index(), policy);
    SSL_CTX_set_timeout(ctx, static_cast<long>(lifetime));
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_ticket_cb(ctx, make_ticket, accept_ticket, nullptr);
    if (!policy->keys.empty()) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_callback);
    static constexpr unsigned char kSessionContext[] = {'p', 'g', 'm', 't', 'l', 's'};
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext);
  } else {
    // TLS 1.3 servers send tickets after every handshake unless told not to; without resumption
    // they are work (a session encoded and encrypted) and bytes for nothing.
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }

  SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
  SSL_CTX_set_verify_depth(ctx, tls.verify_depth);
  // Request a certificate but let a client without one finish the handshake, so that it gets
  // PostgreSQL's own FATAL message instead of a bare TLS alert. A certificate that is sent is
  // verified during the handshake and a bad one fails it with the matching alert.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, note_verify_failure);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  SSL_CTX_set_client_hello_cb(ctx, check_client_hello, nullptr);

  if (errors.size() != errors_before) return std::nullopt;
  return out;
}

long verify_client_certificate(SSL_CTX* ctx, X509* leaf, const std::vector<X509*>& untrusted,
                               std::vector<X509Ptr>& chain, std::string& error) {
  using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
  struct StackFree {
    void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }  // a macro
  };
  using StackPtr = std::unique_ptr<STACK_OF(X509), StackFree>;
  StoreCtxPtr store_ctx(X509_STORE_CTX_new());
  StackPtr extra(sk_X509_new_null());
  if (!store_ctx || !extra) {
    error = "out of memory";
    return X509_V_ERR_OUT_OF_MEM;
  }
  for (X509* cert : untrusted)
    sk_X509_push(extra.get(), cert);
  if (X509_STORE_CTX_init(store_ctx.get(), SSL_CTX_get_cert_store(ctx), leaf, extra.get()) != 1) {
    error = "cannot set up verification: " + openssl_error_text();
    return X509_V_ERR_UNSPECIFIED;
  }
  X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(store_ctx.get()), SSL_CTX_get0_param(ctx));
  X509_STORE_CTX_set_purpose(store_ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(store_ctx.get()) == 1) {
    STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(store_ctx.get());
    for (int i = 0; i < sk_X509_num(verified); ++i) {
      X509* cert = sk_X509_value(verified, i);
      X509_up_ref(cert);
      chain.emplace_back(cert);
    }
    return X509_V_OK;
  }
  const int code = X509_STORE_CTX_get_error(store_ctx.get());
  error = describe_verify_failure(store_ctx.get());
  return code;
}

SslCtxPtr build_backend_tls_context(const config::BackendTlsConfig& tls,
                                    config::Diagnostics& errors, const config::Location& where) {
  using config::SslMode;
  if (tls.sslmode == SslMode::disable) return nullptr;
  const std::size_t errors_before = errors.size();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    errors.push_back({where, "cannot create a TLS context: " + openssl_error_text()});
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), protocol_version(tls.ssl_min_protocol_version));
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);

  bool have_roots = false;
  if (tls.system_roots) {
    have_roots = SSL_CTX_set_default_verify_paths(ctx.get()) == 1;
  } else if (!tls.sslrootcert.empty()) {
    have_roots =
        SSL_CTX_load_verify_locations(ctx.get(), tls.sslrootcert.path.c_str(), nullptr) == 1;
    if (!have_roots) {
      errors.push_back({tls.sslrootcert.where, "cannot load CA certificates from \"" +
                                                   tls.sslrootcert.path +
                                                   "\": " + openssl_error_text()});
    }
  }
  // libpq: require with a root certificate verifies the chain like verify-ca.
  const bool verify = tls.sslmode == SslMode::verify_ca || tls.sslmode == SslMode::verify_full ||
                      (tls.sslmode == SslMode::require && have_roots);
  SSL_CTX_set_verify(ctx.get(), verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);

  if (!tls.sslcert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.sslcert.path.c_str()) != 1) {
      errors.push_back({tls.sslcert.where, "cannot load certificate chain from \"" +
                                               tls.sslcert.path + "\": " + openssl_error_text()});
    } else if (SSL_CTX_use_PrivateKey_file(ctx.get(), tls.sslkey.path.c_str(), SSL_FILETYPE_PEM) !=
                   1 ||
               SSL_CTX_check_private_key(ctx.get()) != 1) {
      errors.push_back({tls.sslkey.where, "sslkey \"" + tls.sslkey.path +
                                              "\" cannot be loaded or does not match sslcert: " +
                                              openssl_error_text()});
    }
  }
  if (errors.size() != errors_before) return nullptr;
  return ctx;
}

bool configure_backend_ssl(SSL* ssl, const config::BackendTlsConfig& tls, const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  const bool is_ip =
      inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
  if (tls.sslsni && !is_ip && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return false;
  if (tls.sslmode == config::SslMode::verify_full) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (ok != 1) return false;
  }
  return true;
}

}  // namespace pgmtls::auth
