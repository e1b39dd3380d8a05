// Opens N client connections with libpq, runs one query on each so that every session is fully
// established (a pooler in session mode then holds a server connection for it), and keeps them
// idle until SIGTERM/SIGINT or --hold seconds, so that bench/run.sh can read the server's memory.
//
//   pgmtls_idle_clients --conninfo "host=localhost port=6432 sslmode=verify-full ..." -n 1000
//       [--hold 600]
//
// Prints "ready connections=N seconds=S" once all are open and idle; the exit status is non-zero
// if any connection or query failed.
#include <libpq-fe.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "pgmtls_idle_clients: %s\n"
               "usage: pgmtls_idle_clients --conninfo STRING -n N [--hold SECONDS]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string conninfo;
  long n = 0;
  long hold = 600;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
    if (arg == "--conninfo")
      conninfo = argv[++i];
    else if (arg == "-n")
      n = std::atol(argv[++i]);
    else if (arg == "--hold")
      hold = std::atol(argv[++i]);
    else
      usage(("unknown option " + arg).c_str());
  }
  if (conninfo.empty() || n <= 0 || hold <= 0) usage("--conninfo and a positive -n are required");

  // Block the signals that end the hold before anything else, so none is lost while connecting.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);

  const auto start = std::chrono::steady_clock::now();
  std::vector<PGconn*> connections;
  connections.reserve(static_cast<size_t>(n));
  int status = 0;
  for (long i = 0; i < n; ++i) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    connections.push_back(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
      std::fprintf(stderr, "pgmtls_idle_clients: connection %ld of %ld: %s", i + 1, n,
                   PQerrorMessage(conn));
      status = 1;
      break;
    }
    PGresult* result = PQexec(conn, "SELECT 1");
    const bool ok = PQresultStatus(result) == PGRES_TUPLES_OK;
    PQclear(result);
    if (!ok) {
      std::fprintf(stderr, "pgmtls_idle_clients: query on connection %ld: %s", i + 1,
                   PQerrorMessage(conn));
      status = 1;
      break;
    }
  }
  if (status == 0) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("ready connections=%ld seconds=%.2f\n", n, seconds);
    std::fflush(stdout);
    const timespec timeout{hold, 0};
    sigtimedwait(&stop, nullptr, &timeout);
  }
  for (PGconn* conn : connections)
    PQfinish(conn);
  return status;
}
