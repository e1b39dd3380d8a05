// What sessions share beyond their snapshot: process-wide state owned by the Server, which
// outlives every session. Each member says how it is shared: thread-safe, or touched only on one
// worker's thread.
#pragma once

namespace pgmtls::proxy {

struct Runtime {};

}  // namespace pgmtls::proxy
