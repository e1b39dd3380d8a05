// One stable vocabulary for why a client certificate was not accepted. These names appear in logs
// (reason=...), and later in metrics labels; tests assert on them.
#pragma once

#include <string_view>

namespace pgmtls::auth {

// Maps an X509_V_ERR_* verification result to a reason name: unknown_ca, revoked, expired,
// not_yet_valid, bad_purpose, crl_unavailable, crl_invalid, bad_signature, chain_too_long,
// invalid_certificate. X509_V_OK maps to "ok".
std::string_view verify_reason(long x509_verify_result);

}  // namespace pgmtls::auth
