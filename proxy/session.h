// One client connection, start to end, as a coroutine on its worker's io_context.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>

#include "proxy/runtime.h"
#include "proxy/snapshot.h"

namespace pgmtls::proxy {

// Starts a session on the socket's executor (the executor of worker `worker`). The session owns
// itself until it ends; `runtime` must outlive it.
void start_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<const Snapshot> snapshot,
                   std::uint64_t session_id, Runtime& runtime, unsigned worker);

}  // namespace pgmtls::proxy
