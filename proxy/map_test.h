// `pgmtls map-test`: explains, for one certificate and one requested role/database/address,
// which rule and which map line decide and why, as a connection would be decided.
#pragma once

#include <string>

#include "proxy/snapshot.h"

namespace pgmtls::proxy {

struct MapTestRequest {
  std::string cert_file;  // PEM: the leaf, then any intermediates the client would send
  std::string user;
  std::string database;  // empty: the user name, as PostgreSQL defaults it
  std::string address = "127.0.0.1";
};

// Prints the explanation to stdout. Returns 0 when the connection would be admitted, 1 when it
// would be refused, 2 when the request itself is unusable (unreadable certificate, bad address).
int run_map_test(const Snapshot& snapshot, const MapTestRequest& request);

}  // namespace pgmtls::proxy
