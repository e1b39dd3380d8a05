// `pgmtls pki`: a small CA for development, tests and modest deployments, on OpenSSL's API:
// init-ca, issue-server, issue-client, revoke, crl, inspect, expiry. `pgmtls pki --help` lists
// the options; README's "PKI toolkit" section shows the workflows.
#pragma once

namespace pgmtls::proxy {

// `args` are the words after "pki". Exit status: 0 done, 1 failed, 2 bad arguments; `expiry`
// uses 0 ok, 1 warning, 2 critical, 3 unknown, as monitoring checks do.
int run_pki(int argc, char** argv);

}  // namespace pgmtls::proxy
