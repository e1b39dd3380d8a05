#include "proxy/target_session.h"

namespace pgmtls::proxy {

std::string session_attrs_mismatch(config::TargetSessionAttrs wanted,
                                   std::optional<bool> in_hot_standby,
                                   std::optional<bool> default_transaction_read_only) {
  using A = config::TargetSessionAttrs;
  if (wanted == A::any) return {};
  if (!in_hot_standby ||
      (!default_transaction_read_only && (wanted == A::read_write || wanted == A::read_only))) {
    return "the server does not report in_hot_standby and default_transaction_read_only "
           "(PostgreSQL 14 or later does)";
  }
  const bool standby = *in_hot_standby;
  const bool read_only = standby || default_transaction_read_only.value_or(false);
  switch (wanted) {
    case A::read_write:
      return read_only ? (standby ? "it is a standby" : "its transactions are read-only") : "";
    case A::read_only:
      return read_only ? "" : "it accepts read-write transactions";
    case A::primary:
      return standby ? "it is a standby" : "";
    case A::standby:
    case A::prefer_standby:
      return standby ? "" : "it is not a standby";
    case A::any:
      break;
  }
  return {};
}

}  // namespace pgmtls::proxy
