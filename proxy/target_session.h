// target_session_attrs (libpq's): whether a backend that finished its start-up is one this
// session may use, judged from the ParameterStatus values PostgreSQL 14 and later report at
// start-up (in_hot_standby, default_transaction_read_only).
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace pgmtls::proxy {

// Empty when the server matches `wanted`; otherwise why not ("a standby", "read-only", ...).
// A value the server did not report counts as unknown, which matches only `any`.
std::string session_attrs_mismatch(config::TargetSessionAttrs wanted,
                                   std::optional<bool> in_hot_standby,
                                   std::optional<bool> default_transaction_read_only);

}  // namespace pgmtls::proxy
