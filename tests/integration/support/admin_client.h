// Talking to pgmtls's admin endpoint from tests, through pgmtls's own HTTP client.
#pragma once

#include <string>

#include "auth/aws_credentials.h"
#include "tests/integration/support/pgmtls_process.h"

namespace pgmtls::integration {

// One request to http://ADDRESS/PATH (https:// verified against `ca_file` when it is given);
// bounded by the client's timeout (5 s).
auth::aws::HttpResponse admin_request(const std::string& address, const std::string& method,
                                      const std::string& path, const std::string& ca_file = {});

// The admin endpoint's "host:port", from pgmtls's "admin endpoint on http(s)://..." log line;
// empty if it does not appear in time.
std::string admin_address(const PgmtlsProcess& proxy);

}  // namespace pgmtls::integration
