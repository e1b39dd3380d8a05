// How many new mTLS connections a PostgreSQL-protocol server accepts per second, and what each one
// costs the server in CPU time. Every connection is new and complete: TCP connect, SSLRequest, 'S',
// a full TLS handshake with the client certificate (one SSL_CTX for all, no session resumption),
// then optionally a StartupMessage and everything up to ReadyForQuery, then a clean close. With
// --resume each thread offers the session ticket its previous connection received instead, as a
// driver with a TLS session cache does (libpq has none), and the result counts the resumptions.
//
//   pgmtls_handshake_client --port 6432 --ca ca.crt --cert client.crt --key client.key \
//       [--host 127.0.0.1] [--servername localhost] [--startup --user bench --database bench] \
//       [--threads 4] [--duration 10] [--groups X25519] [--resume] [--pid PID] [--pid-tree PID]
//   pgmtls_handshake_client --x25519-keygen-speed 3     X25519 key pairs generated per second
//
// --pid adds a process's own CPU time (all its threads) to the server's; --pid-tree adds a process
// and its children, the reaped ones included (a postmaster and its backends). The result is one
// line of key=value pairs on stdout; the exit status is non-zero if any connection failed.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string servername = "localhost";
  std::string ca_file, cert_file, key_file;
  std::string groups;
  bool startup = false;
  bool resume = false;
  std::string user = "bench";
  std::string database = "bench";
  int threads = 4;
  double duration = 10;
  std::vector<pid_t> pids;       // own CPU time only
  std::vector<pid_t> pid_trees;  // the process and its children
  double keygen_speed = 0;       // > 0: only time X25519 key generation for this many seconds
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "pgmtls_handshake_client: %s\n"
               "usage: pgmtls_handshake_client --port P --ca FILE --cert FILE --key FILE\n"
               "         [--host 127.0.0.1] [--servername localhost] [--groups LIST]\n"
               "         [--startup] [--user bench] [--database bench] [--resume]\n"
               "         [--threads 4] [--duration 10] [--pid PID]... [--pid-tree PID]...\n"
               "       pgmtls_handshake_client --x25519-keygen-speed SECONDS\n",
               why);
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--host")
      o.host = value();
    else if (arg == "--port")
      o.port = std::atoi(value().c_str());
    else if (arg == "--servername")
      o.servername = value();
    else if (arg == "--ca")
      o.ca_file = value();
    else if (arg == "--cert")
      o.cert_file = value();
    else if (arg == "--key")
      o.key_file = value();
    else if (arg == "--groups")
      o.groups = value();
    else if (arg == "--startup")
      o.startup = true;
    else if (arg == "--resume")
      o.resume = true;
    else if (arg == "--user")
      o.user = value();
    else if (arg == "--database")
      o.database = value();
    else if (arg == "--threads")
      o.threads = std::atoi(value().c_str());
    else if (arg == "--duration")
      o.duration = std::atof(value().c_str());
    else if (arg == "--pid")
      o.pids.push_back(std::atoi(value().c_str()));
    else if (arg == "--x25519-keygen-speed")
      o.keygen_speed = std::atof(value().c_str());
    else if (arg == "--pid-tree")
      o.pid_trees.push_back(std::atoi(value().c_str()));
    else
      usage(("unknown option " + arg).c_str());
  }
  if (o.keygen_speed > 0) return o;
  if (o.port <= 0 || o.port > 65535) usage("--port is required");
  if (o.ca_file.empty() || o.cert_file.empty() || o.key_file.empty())
    usage("--ca, --cert and --key are required");
  if (o.threads < 1 || o.duration <= 0) usage("--threads and --duration must be positive");
  return o;
}

// CPU time from /proc/PID/stat, in clock ticks: utime + stime, plus cutime + cstime (children
// that were waited for) when asked. The command name is in parentheses and may hold spaces.
struct ProcStat {
  bool ok = false;
  pid_t ppid = 0;
  std::uint64_t own = 0;       // utime + stime
  std::uint64_t children = 0;  // cutime + cstime
};

ProcStat read_proc_stat(pid_t pid) {
  ProcStat st;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return st;
  const auto close = line.rfind(')');
  if (close == std::string::npos) return st;
  std::istringstream fields(line.substr(close + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string s; fields >> s;)
    f.push_back(s);
  if (f.size() < 15) return st;
  st.ppid = static_cast<pid_t>(std::stol(f[1]));
  st.own = std::stoull(f[11]) + std::stoull(f[12]);
  st.children = std::stoull(f[13]) + std::stoull(f[14]);
  st.ok = true;
  return st;
}

// A process's CPU plus that of all its children, live or reaped, in seconds.
double tree_cpu_seconds(pid_t root) {
  std::uint64_t ticks = 0;
  const ProcStat r = read_proc_stat(root);
  if (r.ok) ticks += r.own + r.children;
  if (DIR* dir = opendir("/proc")) {
    while (dirent* e = readdir(dir)) {
      const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
      if (pid <= 0 || pid == root) continue;
      const ProcStat s = read_proc_stat(pid);
      if (s.ok && s.ppid == root) ticks += s.own + s.children;
    }
    closedir(dir);
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double server_cpu_seconds(const Options& o) {
  double total = 0;
  for (pid_t pid : o.pids) {
    const ProcStat s = read_proc_stat(pid);
    if (s.ok) total += static_cast<double>(s.own) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  for (pid_t pid : o.pid_trees)
    total += tree_cpu_seconds(pid);
  return total;
}

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

std::string openssl_error() {
  char buf[256];
  const unsigned long e = ERR_get_error();
  if (e == 0) return "no OpenSSL error queued";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

SslCtxPtr make_context(const Options& o) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (o.resume) {
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT);
  } else {
    // Every handshake is a full one: nothing is cached or offered for resumption.
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), o.ca_file.c_str(), nullptr) != 1)
    throw std::runtime_error("--ca " + o.ca_file + ": " + openssl_error());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), o.cert_file.c_str()) != 1)
    throw std::runtime_error("--cert " + o.cert_file + ": " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1)
    throw std::runtime_error("--key " + o.key_file + ": " + openssl_error());
  if (!o.groups.empty() && SSL_CTX_set1_groups_list(ctx.get(), o.groups.c_str()) != 1)
    throw std::runtime_error("--groups " + o.groups + ": " + openssl_error());
  return ctx;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool write_all(int fd, const void* data, size_t size) {
  auto p = static_cast<const unsigned char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool ssl_read_all(SSL* ssl, void* data, size_t size) {
  auto p = static_cast<unsigned char*>(data);
  while (size > 0) {
    const int n = SSL_read(ssl, p, static_cast<int>(size));
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint32_t get_u32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string startup_message(const Options& o) {
  std::string body;
  put_u32(body, 196608);  // protocol 3.0
  const std::pair<const char*, const std::string*> parameters[] = {{"user", &o.user},
                                                                   {"database", &o.database}};
  for (const auto& [key, value] : parameters) {
    body += key;
    body.push_back('\0');
    body += *value;
    body.push_back('\0');
  }
  body.push_back('\0');
  std::string msg;
  put_u32(msg, static_cast<std::uint32_t>(body.size() + 4));
  return msg + body;
}

// Reads backend messages until ReadyForQuery; an ErrorResponse is a failure.
bool read_until_ready(SSL* ssl, std::string& error) {
  std::vector<unsigned char> body;
  for (;;) {
    unsigned char header[5];
    if (!ssl_read_all(ssl, header, sizeof header)) {
      error = "connection closed before ReadyForQuery";
      return false;
    }
    const std::uint32_t length = get_u32(header + 1);
    if (length < 4 || length > (1u << 20)) {
      error = "bad message length from the server";
      return false;
    }
    body.resize(length - 4);
    if (!body.empty() && !ssl_read_all(ssl, body.data(), body.size())) {
      error = "connection closed inside a message";
      return false;
    }
    if (header[0] == 'E') {
      error = "ErrorResponse:";
      for (size_t i = 0; i < body.size() && body[i] != 0;) {  // type byte, then a C string
        const char type = static_cast<char>(body[i++]);
        std::string field(reinterpret_cast<const char*>(&body[i]));
        i += field.size() + 1;
        if (type == 'C' || type == 'M') error += " " + field;
      }
      return false;
    }
    if (header[0] == 'Z') return true;
  }
}

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionFree>;

// One complete connection, offering `session` if it holds one and replacing it with the newest
// resumable session the server gave (--resume). Returns an empty string on success, else why it
// failed.
std::string one_connection(const Options& o, SSL_CTX* ctx, const sockaddr_in& addr,
                           const std::string& startup, SessionPtr& session, bool& resumed) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::string("socket: ") + std::strerror(errno);
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const timeval timeout{10, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return std::string("connect: ") + std::strerror(errno);

  static const unsigned char kSslRequest[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};  // 80877103
  if (!write_all(fd.get(), kSslRequest, sizeof kSslRequest)) return "sending SSLRequest failed";
  char answer = 0;
  if (::recv(fd.get(), &answer, 1, 0) != 1) return "no answer to SSLRequest";
  if (answer != 'S') return std::string("SSLRequest answered '") + answer + "'";

  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return "SSL_new: " + openssl_error();
  SSL_set_fd(ssl.get(), fd.get());
  SSL_set_tlsext_host_name(ssl.get(), o.servername.c_str());
  SSL_set1_host(ssl.get(), o.servername.c_str());  // verify-full: the name must match
  if (session) SSL_set_session(ssl.get(), session.get());
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK)
      return std::string("server certificate: ") + X509_verify_cert_error_string(verify);
    return "TLS handshake: " + openssl_error();
  }
  resumed = SSL_session_reused(ssl.get()) == 1;

  std::string error;
  if (o.startup) {
    if (SSL_write(ssl.get(), startup.data(), static_cast<int>(startup.size())) <= 0)
      return "sending StartupMessage: " + openssl_error();
    if (!read_until_ready(ssl.get(), error)) return error;
    static const unsigned char kTerminate[5] = {'X', 0, 0, 0, 4};
    SSL_write(ssl.get(), kTerminate, sizeof kTerminate);
  } else {
    // TLS 1.3: the server reads the client's certificate, CertificateVerify and Finished after
    // SSL_connect has returned here. A byte (or EOF) from the server after our close_notify proves
    // it got that far; closing at once could reset the connection before it did.
  }
  SSL_shutdown(ssl.get());
  ::shutdown(fd.get(), SHUT_WR);
  char drain[4096];
  if (o.resume) {
    // Through TLS, so that a NewSessionTicket still in flight is read and kept.
    while (SSL_read(ssl.get(), drain, sizeof drain) > 0) {
    }
    ERR_clear_error();
    if (SSL_SESSION* got = SSL_get1_session(ssl.get())) {
      if (SSL_SESSION_is_resumable(got) == 1) {
        session.reset(got);
      } else {
        SSL_SESSION_free(got);
      }
    }
  } else {
    while (::recv(fd.get(), drain, sizeof drain, 0) > 0) {
    }
  }
  return {};
}

// `openssl speed ecdhx25519` times the shared-secret derivation only; a TLS server also generates
// an ephemeral key pair per handshake (a fixed-base multiplication, cheaper than a derivation).
// One context for all keys, as `openssl speed` keeps one for its derivations: this is the crypto
// alone, without OpenSSL's per-call lookups. bench/run.sh uses it for the theoretical limit.
int x25519_keygen_speed(double seconds) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr), EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) {
    std::fprintf(stderr, "pgmtls_handshake_client: X25519: %s\n", openssl_error().c_str());
    return 1;
  }
  std::uint64_t n = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < 256; ++i) {
      EVP_PKEY* key = nullptr;
      if (EVP_PKEY_keygen(ctx.get(), &key) != 1) {
        std::fprintf(stderr, "pgmtls_handshake_client: X25519 keygen: %s\n",
                     openssl_error().c_str());
        return 1;
      }
      EVP_PKEY_free(key);
    }
    n += 256;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  std::printf("x25519_keygen_per_s=%.1f\n", static_cast<double>(n) / elapsed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  if (o.keygen_speed > 0) return x25519_keygen_speed(o.keygen_speed);
  std::signal(SIGPIPE, SIG_IGN);  // a server that closes first must not kill us mid-write
  SslCtxPtr ctx;
  try {
    ctx = make_context(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmtls_handshake_client: %s\n", e.what());
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1)
    usage("--host must be an IPv4 address");
  const std::string startup = startup_message(o);

  std::atomic<std::uint64_t> done{0}, failed{0}, resumptions{0};
  std::mutex first_error_mutex;
  std::string first_error;
  const auto start = std::chrono::steady_clock::now();
  const auto stop_at = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(o.duration));
  const double cpu_before = server_cpu_seconds(o);
  rusage self_before{};
  getrusage(RUSAGE_SELF, &self_before);

  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&] {
      SessionPtr session;
      while (std::chrono::steady_clock::now() < stop_at) {
        bool resumed = false;
        const std::string error = one_connection(o, ctx.get(), addr, startup, session, resumed);
        if (error.empty()) {
          done.fetch_add(1, std::memory_order_relaxed);
          if (resumed) resumptions.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        failed.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(first_error_mutex);
        if (first_error.empty()) first_error = error;
      }
    });
  }
  for (auto& t : threads)
    t.join();

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = server_cpu_seconds(o) - cpu_before;
  rusage self_after{};
  getrusage(RUSAGE_SELF, &self_after);
  auto tv = [](const timeval& v) { return static_cast<double>(v.tv_sec) + v.tv_usec / 1e6; };
  const double client_cpu = tv(self_after.ru_utime) + tv(self_after.ru_stime) -
                            tv(self_before.ru_utime) - tv(self_before.ru_stime);
  const auto n = done.load();
  const bool measured = !o.pids.empty() || !o.pid_trees.empty();
  std::printf(
      "mode=%s connections=%llu failed=%llu resumed=%llu seconds=%.3f rate=%.1f "
      "client_cpu_us=%.1f server_cpu_s=%.3f server_cpu_us=%.1f\n",
      o.startup ? "startup" : "tls", static_cast<unsigned long long>(n),
      static_cast<unsigned long long>(failed.load()),
      static_cast<unsigned long long>(resumptions.load()), seconds,
      static_cast<double>(n) / seconds, n ? client_cpu * 1e6 / static_cast<double>(n) : 0.0,
      measured ? cpu : 0.0, measured && n ? cpu * 1e6 / static_cast<double>(n) : 0.0);
  if (failed.load() > 0 || n == 0) {
    std::fprintf(stderr, "pgmtls_handshake_client: %llu connections failed; first: %s\n",
                 static_cast<unsigned long long>(failed.load()),
                 first_error.empty() ? "none completed" : first_error.c_str());
    return 1;
  }
  return 0;
}
