#include "tests/integration/support/test_pki.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "tests/integration/support/process.h"

namespace pgmtls::integration {
namespace pki = auth::pki;
using std::chrono::days;

namespace {

pki::CertificateSpec ca_spec(const std::string& name, std::optional<int> path_length) {
  pki::CertificateSpec spec;
  spec.common_name = name;
  spec.organization = "pgmtls tests";
  spec.is_ca = true;
  spec.path_length = path_length;
  spec.not_after = days(30);
  return spec;
}

pki::CertificateSpec client_spec(const std::string& common_name) {
  pki::CertificateSpec spec;
  spec.common_name = common_name;
  spec.client_auth = true;
  spec.not_after = days(30);
  return spec;
}

std::string numbered_user(int i) {
  char name[16];
  std::snprintf(name, sizeof name, "user%02d", i);
  return name;
}

}  // namespace

TestPki::TestPki(int numbered_users) : dir_(make_temp_dir("pgmtls-pki")) {
  try {
    root_ = pki::self_signed(ca_spec("pgmtls test root CA", 1));
    intermediate_ = pki::issue(ca_spec("pgmtls test intermediate CA", 0), root_);
    const auto& root = root_;
    const auto& intermediate = intermediate_;
    const auto rogue = pki::self_signed(ca_spec("pgmtls test rogue CA", std::nullopt));
    open_root_ = pki::self_signed(ca_spec("pgmtls test open root CA", std::nullopt));
    pki::write_certificates(root_ca_file(), {root.cert.get()});
    pki::write_certificates(open_roots_file(), {root.cert.get(), open_root_.cert.get()});
    pki::write_certificates(ca_chain_file(), {root.cert.get(), intermediate.cert.get()});

    pki::CertificateSpec server;
    server.common_name = "localhost";
    server.server_auth = true;
    server.san.dns = {"localhost"};
    server.san.ip = {"127.0.0.1"};
    server.not_after = days(30);
    const auto server_credential = pki::issue(server, root);
    pki::write_certificates(server_cert_file(), {server_credential.cert.get()});
    pki::write_private_key(server_key_file(), *server_credential.key);

    write_client("alice", pki::issue(client_spec("alice"), root));
    write_client("bob", pki::issue(client_spec("bob@example.com"), root));
    const auto carol = pki::issue(client_spec("carol"), intermediate);
    write_client("carol", carol, {&intermediate});
    write_client("carol-leaf-only", carol);

    auto expired = client_spec("alice");
    expired.not_before = -days(30);
    expired.not_after = -days(1);
    write_client("expired", pki::issue(expired, root));
    auto not_yet_valid = client_spec("alice");
    not_yet_valid.not_before = days(1);
    not_yet_valid.not_after = days(30);
    write_client("not-yet-valid", pki::issue(not_yet_valid, root));
    write_client("revoked", pki::issue(client_spec("alice"), root));
    write_client("unknown-ca", pki::issue(client_spec("alice"), rogue));
    auto server_only = client_spec("alice");
    server_only.client_auth = false;
    server_only.server_auth = true;
    write_client("server-auth-only", pki::issue(server_only, root));
    for (int i = 0; i < numbered_users; ++i) {
      write_client(numbered_user(i), pki::issue(client_spec(numbered_user(i)), root));
    }

    pki::CrlSpec root_crl;
    root_crl.revoked_serials = {clients_.at("revoked").serial};
    const auto root_crl_pem = pki::to_pem(*pki::make_crl(root_crl, root));
    const auto intermediate_crl_pem = pki::to_pem(*pki::make_crl(pki::CrlSpec{}, intermediate));
    write_text_file(root_crl_file(), root_crl_pem);
    write_text_file(all_crls_file(), root_crl_pem + intermediate_crl_pem);
    std::filesystem::create_directory(crl_dir());
    write_text_file(crl_dir() + "/root.crl.pem", root_crl_pem);
    write_text_file(crl_dir() + "/intermediate.crl.pem", intermediate_crl_pem);
    pki::CrlSpec stale = root_crl;
    stale.last_update = -days(2);
    stale.next_update = -days(1);
    pki::write_crl(stale_crl_file(), *pki::make_crl(stale, root));
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw;
  }
}

TestPki::~TestPki() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

const ClientCertificate& TestPki::client(const std::string& name) const {
  const auto found = clients_.find(name);
  if (found == clients_.end()) throw std::out_of_range("no test client certificate " + name);
  return found->second;
}

const ClientCertificate& TestPki::add_client(const std::string& name,
                                             const pki::CertificateSpec& spec, Issuer issuer) {
  if (clients_.count(name) != 0) throw std::invalid_argument("test client " + name + " exists");
  if (issuer == Issuer::intermediate) {
    write_client(name, pki::issue(spec, intermediate_), {&intermediate_});
  } else {
    write_client(name, pki::issue(spec, root_));
  }
  return clients_.at(name);
}

const ClientCertificate& TestPki::add_chain_client(const std::string& name,
                                                   const std::string& common_name,
                                                   int intermediates) {
  if (clients_.count(name) != 0) throw std::invalid_argument("test client " + name + " exists");
  std::vector<pki::Credential> cas;
  for (int i = 0; i < intermediates; ++i) {
    pki::CertificateSpec ca{.common_name = name + " CA " + std::to_string(i + 1), .is_ca = true};
    cas.push_back(pki::issue(ca, cas.empty() ? open_root_ : cas.back()));
  }
  pki::CertificateSpec leaf{.common_name = common_name, .client_auth = true};
  const auto credential = pki::issue(leaf, cas.empty() ? open_root_ : cas.back());
  std::vector<const pki::Credential*> send_chain;
  for (auto it = cas.rbegin(); it != cas.rend(); ++it)
    send_chain.push_back(&*it);
  write_client(name, credential, send_chain);
  return clients_.at(name);
}

void TestPki::write_client(const std::string& name, const pki::Credential& credential,
                           const std::vector<const pki::Credential*>& send_chain) {
  ClientCertificate files{dir_ + "/" + name + ".crt", dir_ + "/" + name + ".key",
                          pki::serial_of(*credential.cert)};
  std::vector<const X509*> chain{credential.cert.get()};
  for (const pki::Credential* ca : send_chain)
    chain.push_back(ca->cert.get());
  pki::write_certificates(files.cert_file, chain);
  pki::write_private_key(files.key_file, *credential.key);
  clients_[name] = files;
}

}  // namespace pgmtls::integration
