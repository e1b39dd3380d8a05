// Which SQL commands keep state in the backend's session beyond the transaction. In
// pool_mode: transaction a backend connection serves another client once a transaction ends, so
// such a command would leak into that client's session (or be lost for this one): pgmtls refuses
// it with a clear error instead. Only what is visible in the command text is recognised; a
// function with the same effect (set_config(..., false), pg_advisory_lock) is not.
#pragma once

#include <string_view>

namespace pgmtls::protocol {

// The first command of `sql` (one statement or several separated by semicolons) that keeps
// session state, named as in PostgreSQL's documentation ("SET", "LISTEN", "DECLARE ... WITH
// HOLD", ...), or empty if there is none. Accepted: SET LOCAL, SET TRANSACTION, SET CONSTRAINTS,
// PREPARE TRANSACTION, CREATE TEMP ... ON COMMIT DROP, and everything else. Quotes, dollar quotes
// and comments are skipped, so a keyword inside a string is not taken for a command.
std::string_view session_feature(std::string_view sql);

}  // namespace pgmtls::protocol
