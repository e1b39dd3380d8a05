// The certificates the integration tests need, generated with auth/pki into a temp dir that is
// removed on destruction.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "auth/pki.h"

namespace pgmtls::integration {

struct ClientCertificate {
  std::string cert_file;  // PEM: leaf, then any intermediate the client sends
  std::string key_file;   // PKCS#8, mode 0600 (libpq insists)
  std::uint64_t serial = 0;
};

class TestPki {
 public:
  // Client certificates (file names = keys):
  //   alice             CN=alice, clientAuth, signed by the root
  //   bob               CN=bob@example.com (for regex ident maps)
  //   carol             CN=carol, issued by the intermediate; the file holds leaf + intermediate
  //   carol-leaf-only   the same key and certificate without the intermediate
  //   expired           CN=alice, validity ended yesterday
  //   not-yet-valid     CN=alice, validity starts tomorrow
  //   revoked           CN=alice, listed in the root's CRL
  //   unknown-ca        CN=alice, signed by a CA nobody trusts
  //   server-auth-only  CN=alice, extendedKeyUsage serverAuth only
  //   user00..userNN    CN=userNN, for concurrency tests
  explicit TestPki(int numbered_users = 50);
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;
  ~TestPki();

  const std::string& dir() const { return dir_; }
  std::string root_ca_file() const { return dir_ + "/root.crt"; }
  std::string ca_chain_file() const { return dir_ + "/root+intermediate.crt"; }  // both CAs
  // The root and a second root without a path length limit (add_chain_client's).
  std::string open_roots_file() const { return dir_ + "/root+open-root.crt"; }
  std::string server_cert_file() const { return dir_ + "/server.crt"; }  // CN=localhost
  std::string server_key_file() const { return dir_ + "/server.key"; }
  std::string root_crl_file() const { return dir_ + "/root.crl.pem"; }  // lists `revoked`
  // The root's and the intermediate's CRLs in one file (carol's chain needs both under a
  // full-chain CRL check).
  std::string all_crls_file() const { return dir_ + "/all.crl.pem"; }
  // A directory holding the root's CRL and the intermediate's, one per file.
  std::string crl_dir() const { return dir_ + "/crls"; }
  // A root CRL whose nextUpdate has passed.
  std::string stale_crl_file() const { return dir_ + "/stale.crl.pem"; }

  const ClientCertificate& client(const std::string& name) const;

  enum class Issuer { root, intermediate };
  // Issues one more client certificate from `spec` (written as name.crt / name.key, like the
  // built-in ones). From the intermediate, the file holds the leaf and the intermediate. Throws if
  // `name` is taken.
  const ClientCertificate& add_client(const std::string& name,
                                      const auth::pki::CertificateSpec& spec,
                                      Issuer issuer = Issuer::root);
  // A client certificate (CN=`common_name`) at the end of a chain of `intermediates` CAs below
  // the open root (open_roots_file()), each issued by the one before; the file holds the leaf and
  // every intermediate.
  const ClientCertificate& add_chain_client(const std::string& name, const std::string& common_name,
                                            int intermediates);

 private:
  // The file holds the leaf, then `send_chain` (the intermediates the client sends, its issuer
  // first).
  void write_client(const std::string& name, const auth::pki::Credential& credential,
                    const std::vector<const auth::pki::Credential*>& send_chain = {});

  std::string dir_;
  std::map<std::string, ClientCertificate> clients_;
  auth::pki::Credential root_;
  auth::pki::Credential intermediate_;
  auth::pki::Credential open_root_;
};

}  // namespace pgmtls::integration
