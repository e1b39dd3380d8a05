#include "auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <charconv>

namespace pgmtls::auth {

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hmac_sha256(const Bytes& key, std::string_view data) {
  Bytes out(SHA256_DIGEST_LENGTH);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

Bytes sha256(const Bytes& data) {
  Bytes out(SHA256_DIGEST_LENGTH);
  SHA256(data.data(), data.size(), out.data());
  return out;
}

std::string b64(const Bytes& data) {
  return base64_encode(data.data(), data.size());
}

// The attributes of a SCRAM message, "a=value,b=value", in order.
std::vector<std::pair<char, std::string_view>> attributes(std::string_view message) {
  std::vector<std::pair<char, std::string_view>> out;
  while (!message.empty()) {
    const auto comma = message.find(',');
    const std::string_view part = message.substr(0, comma);
    if (part.size() < 2 || part[1] != '=') return {};
    out.emplace_back(part[0], part.substr(2));
    if (comma == std::string_view::npos) break;
    message.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

std::string base64_encode(const std::uint8_t* data, std::size_t len) {
  std::string out(4 * ((len + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=';
    if (!ok) return std::nullopt;
  }
  Bytes out(3 * text.size() / 4);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes.
  std::size_t size = static_cast<std::size_t>(n);
  if (text.ends_with("==")) {
    size -= 2;
  } else if (text.ends_with('=')) {
    size -= 1;
  }
  out.resize(size);
  return out;
}

ScramClient::ScramClient(std::string password, ChannelBinding binding,
                         std::vector<std::uint8_t> cb_data, std::string nonce,
                         std::string_view user)
    : password_(std::move(password)),
      binding_(binding),
      cb_data_(std::move(cb_data)),
      client_nonce_(std::move(nonce)) {
  if (client_nonce_.empty()) {
    Bytes raw(18);
    RAND_bytes(raw.data(), static_cast<int>(raw.size()));
    client_nonce_ = b64(raw);
  }
  // SCRAM escapes ',' and '=' in the user name (RFC 5802 section 5.1).
  std::string name;
  for (const char c : user) {
    if (c == ',') {
      name += "=2C";
    } else if (c == '=') {
      name += "=3D";
    } else {
      name.push_back(c);
    }
  }
  client_first_bare_ = "n=" + name + ",r=" + client_nonce_;
}

std::string ScramClient::gs2_header() const {
  switch (binding_) {
    case ChannelBinding::none:
      return "n,,";
    case ChannelBinding::unsupported:
      return "y,,";
    case ChannelBinding::tls_server_end_point:
      return "p=tls-server-end-point,,";
  }
  return "n,,";
}

std::string ScramClient::client_first() const {
  return gs2_header() + client_first_bare_;
}

std::optional<std::string> ScramClient::client_final(std::string_view server_first) {
  std::string_view nonce;
  std::string_view salt_b64;
  std::string_view iterations_text;
  for (const auto& [key, value] : attributes(server_first)) {
    if (key == 'r' && nonce.empty()) nonce = value;
    if (key == 's' && salt_b64.empty()) salt_b64 = value;
    if (key == 'i' && iterations_text.empty()) iterations_text = value;
    if (key == 'm') {
      error_ = "the server requires a SCRAM extension";
      return std::nullopt;
    }
  }
  if (nonce.empty() || salt_b64.empty() || iterations_text.empty()) {
    error_ = "malformed SCRAM server-first-message";
    return std::nullopt;
  }
  if (nonce.size() <= client_nonce_.size() || !nonce.starts_with(client_nonce_)) {
    error_ = "the server's SCRAM nonce does not extend ours";
    return std::nullopt;
  }
  auto salt = base64_decode(salt_b64);
  if (!salt || salt->empty()) {
    error_ = "invalid SCRAM salt";
    return std::nullopt;
  }
  std::uint32_t iterations = 0;
  auto [ptr, ec] = std::from_chars(iterations_text.data(),
                                   iterations_text.data() + iterations_text.size(), iterations);
  if (ec != std::errc() || ptr != iterations_text.data() + iterations_text.size() ||
      iterations == 0 || iterations > kMaxScramIterations) {
    error_ = "SCRAM iteration count \"" + std::string(iterations_text) +
             "\" is out of range (1 to " + std::to_string(kMaxScramIterations) + ")";
    return std::nullopt;
  }

  Bytes salted(SHA256_DIGEST_LENGTH);
  if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()), salt->data(),
                        static_cast<int>(salt->size()), static_cast<int>(iterations), EVP_sha256(),
                        static_cast<int>(salted.size()), salted.data()) != 1) {
    error_ = "PBKDF2 failed";
    return std::nullopt;
  }
  const Bytes client_key = hmac_sha256(salted, "Client Key");
  const Bytes stored_key = sha256(client_key);
  const Bytes server_key = hmac_sha256(salted, "Server Key");

  std::string cbind = gs2_header();
  Bytes cbind_bytes(cbind.begin(), cbind.end());
  if (binding_ == ChannelBinding::tls_server_end_point) {
    cbind_bytes.insert(cbind_bytes.end(), cb_data_.begin(), cb_data_.end());
  }
  const std::string without_proof = "c=" + b64(cbind_bytes) + ",r=" + std::string(nonce);
  const std::string auth_message =
      client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
  const Bytes client_signature = hmac_sha256(stored_key, auth_message);
  Bytes proof(client_key.size());
  for (std::size_t i = 0; i < proof.size(); ++i)
    proof[i] = client_key[i] ^ client_signature[i];
  server_signature_ = hmac_sha256(server_key, auth_message);
  OPENSSL_cleanse(salted.data(), salted.size());
  return without_proof + ",p=" + b64(proof);
}

bool ScramClient::verify_server_final(std::string_view server_final) {
  if (server_signature_.empty()) {
    error_ = "SCRAM server-final-message before client-final-message";
    return false;
  }
  for (const auto& [key, value] : attributes(server_final)) {
    if (key == 'e') {
      error_ = "the server refused SCRAM authentication: " + std::string(value);
      return false;
    }
    if (key == 'v') {
      auto signature = base64_decode(value);
      if (!signature || signature->size() != server_signature_.size() ||
          CRYPTO_memcmp(signature->data(), server_signature_.data(), server_signature_.size()) !=
              0) {
        error_ = "the server's SCRAM signature is wrong: it does not know the password";
        return false;
      }
      return true;
    }
  }
  error_ = "malformed SCRAM server-final-message";
  return false;
}

std::string md5_password(std::string_view user, std::string_view password,
                         const std::uint8_t salt[4]) {
  auto md5_hex = [](std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out.push_back(digits[md[i] >> 4]);
      out.push_back(digits[md[i] & 0xf]);
    }
    return out;
  };
  std::string inner = md5_hex(std::string(password) + std::string(user));
  inner.append(reinterpret_cast<const char*>(salt), 4);
  return "md5" + md5_hex(inner);
}

std::vector<std::uint8_t> tls_server_end_point(X509* server_certificate) {
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (!OBJ_find_sigid_algs(X509_get_signature_nid(server_certificate), &md_nid, &pk_nid)) {
    return {};
  }
  const EVP_MD* md = nullptr;
  if (md_nid == NID_md5 || md_nid == NID_sha1) {
    md = EVP_sha256();
  } else {
    md = EVP_get_digestbynid(md_nid);
  }
  if (md == nullptr) return {};
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (X509_digest(server_certificate, md, out.data(), &len) != 1) return {};
  out.resize(len);
  return out;
}

}  // namespace pgmtls::auth
