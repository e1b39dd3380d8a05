#include "tests/integration/support/pg_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pgmtls::integration {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<long>(0, left));
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // let the caller's next call report the error
  }
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

}  // namespace

ConnectResult pg_connect(const std::string& conninfo, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  PgConn conn(PQconnectStart(conninfo.c_str()));
  if (!conn) return {nullptr, "PQconnectStart: out of memory"};
  PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
  if (PQstatus(conn.get()) == CONNECTION_BAD) return {nullptr, trim(PQerrorMessage(conn.get()))};
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  for (;;) {
    if (state == PGRES_POLLING_OK) return {std::move(conn), ""};
    if (state == PGRES_POLLING_FAILED) return {nullptr, trim(PQerrorMessage(conn.get()))};
    const short events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (!wait_fd(PQsocket(conn.get()), events, deadline)) {
      return {nullptr, "timed out after " + std::to_string(timeout.count()) +
                           " ms while connecting; libpq says: " + trim(PQerrorMessage(conn.get()))};
    }
    state = PQconnectPoll(conn.get());
  }
}

std::string tls_conninfo(std::uint16_t port, const std::string& root_ca_file,
                         const ClientCertificate* client, const std::string& user,
                         const std::string& dbname) {
  const std::string cert = client ? client->cert_file : "/nonexistent/client.crt";
  const std::string key = client ? client->key_file : "/nonexistent/client.key";
  return "host=localhost hostaddr=127.0.0.1 port=" + std::to_string(port) +
         " sslmode=verify-full sslrootcert=" + root_ca_file + " sslcert=" + cert +
         " sslkey=" + key + " user=" + user + " dbname=" + dbname +
         " gssencmode=disable connect_timeout=10";
}

std::string plaintext_conninfo(std::uint16_t port, const std::string& user,
                               const std::string& dbname) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " sslmode=disable gssencmode=disable" +
         " user=" + user + " dbname=" + dbname + " connect_timeout=10";
}

QueryResult query(PGconn* conn, const std::string& sql, const std::vector<std::string>& params,
                  std::chrono::milliseconds timeout) {
  std::vector<const char*> values;
  for (const auto& param : params)
    values.push_back(param.c_str());
  if (!PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                         nullptr, nullptr, 0)) {
    return {std::nullopt, trim(PQerrorMessage(conn))};
  }
  return wait_for_result(conn, timeout);
}

QueryResult wait_for_result(PGconn* conn, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  QueryResult result;
  for (;;) {
    while (PQisBusy(conn)) {
      if (!wait_fd(PQsocket(conn), POLLIN, deadline)) {
        result.error =
            "timed out after " + std::to_string(timeout.count()) + " ms waiting for a query result";
        return result;
      }
      if (!PQconsumeInput(conn)) {
        result.error = trim(PQerrorMessage(conn));
        return result;
      }
    }
    PGresult* raw = PQgetResult(conn);
    if (raw == nullptr) break;
    std::unique_ptr<PGresult, decltype(&PQclear)> res(raw, &PQclear);
    const ExecStatusType status = PQresultStatus(raw);
    if (status == PGRES_TUPLES_OK) {
      if (!result.value && PQntuples(raw) > 0 && PQnfields(raw) > 0 && !PQgetisnull(raw, 0, 0)) {
        result.value = PQgetvalue(raw, 0, 0);
      }
    } else if (status != PGRES_COMMAND_OK && result.error.empty()) {
      result.error = trim(PQresultErrorMessage(raw));
      if (result.error.empty()) result.error = PQresStatus(status);
    }
  }
  return result;
}

RawSocket::RawSocket(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string message =
        "connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    close();
    throw std::runtime_error(message);
  }
}

RawSocket::~RawSocket() {
  close();
}

void RawSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawSocket::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

RawSocket::Read RawSocket::read_exactly(std::size_t count, std::chrono::milliseconds timeout) {
  return read(count, timeout);
}

RawSocket::Read RawSocket::read_until_closed(std::chrono::milliseconds timeout) {
  return read(std::nullopt, timeout);
}

RawSocket::Read RawSocket::read(std::optional<std::size_t> count,
                                std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Read result;
  while (!count || result.data.size() < *count) {
    if (!wait_fd(fd_, POLLIN, deadline)) {
      result.end = End::timeout;
      return result;
    }
    char buffer[4096];
    const std::size_t want =
        count ? std::min(sizeof buffer, *count - result.data.size()) : sizeof buffer;
    const ssize_t n = ::recv(fd_, buffer, want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      result.end = End::eof;
      return result;
    }
    if (n < 0) {
      result.end = End::reset;
      return result;
    }
    result.data.append(buffer, static_cast<std::size_t>(n));
  }
  result.end = End::complete;
  return result;
}

const char* to_string(RawSocket::End end) {
  switch (end) {
    case RawSocket::End::complete:
      return "complete";
    case RawSocket::End::eof:
      return "eof";
    case RawSocket::End::reset:
      return "reset";
    case RawSocket::End::timeout:
      return "timeout";
  }
  return "?";
}

std::string be32(std::uint32_t value) {
  const char bytes[] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                        static_cast<char>(value >> 8), static_cast<char>(value)};
  return std::string(bytes, 4);
}

std::string ssl_request() {
  return be32(8) + be32(80877103);
}

std::string gssenc_request() {
  return be32(8) + be32(80877104);
}

std::string startup_message(const std::string& user, const std::string& dbname) {
  std::string body = be32(196608);
  body += std::string("user") + '\0' + user + '\0';
  body += std::string("database") + '\0' + dbname + '\0';
  body += '\0';
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

std::string tls_client_hello() {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  if (!ctx) throw std::runtime_error("SSL_CTX_new failed");
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (!ssl || !in || !out) throw std::runtime_error("SSL_new/BIO_new failed");
  SSL_set_bio(ssl.get(), in, out);  // ssl owns both now
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get());  // writes the ClientHello, then wants to read
  char* data = nullptr;
  const long length = BIO_get_mem_data(out, &data);
  if (length <= 0) throw std::runtime_error("no ClientHello produced");
  return std::string(data, static_cast<std::size_t>(length));
}

}  // namespace pgmtls::integration
