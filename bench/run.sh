#!/usr/bin/env bash
# End-to-end benchmark: pgmtls against direct PostgreSQL (TLS with a client certificate, and plain
# TCP) and PgBouncer (session mode, auth_type=cert), all in one run on 127.0.0.1.
#
#   bench/run.sh            full run (20 s per pgbench run, 500 MB COPY, 1000 idle connections);
#                           writes bench/RESULTS.md and bench/results.png
#   bench/run.sh --quick    smoke run (3 s, 50 MB, 100 connections); results go to
#                           /tmp/pgmtls-bench-quick/ unless --out says otherwise
#   options: --out DIR (where RESULTS.md and results.png go), --keep (keep the work directory)
#
# Environment: PGMTLS (the pgmtls binary; default: built here in build-bench/), PGMTLS_NOMETRICS
# (one built with -DPGMTLS_METRICS=OFF; default: built in build-bench-nometrics/), BENCH_DURATION,
# BENCH_COPY_MB, BENCH_IDLE, BENCH_HS_DURATION, BENCH_HS_THREADS, BENCH_SCALE, BENCH_METRICS_ROUNDS,
# BENCH_TX_POOL_SIZE (backend connections per worker for pool_mode transaction, default 8),
# BENCH_PROFILE=0 (skip the perf profiles, which need perf and permission to attach), BENCH_WORKERS
# (pgmtls's workers, default: one per core) and BENCH_JOBS (pgbench's -j, default 2): on a larger
# machine, `for w in 1 2 4 8 16; do BENCH_WORKERS=$w BENCH_JOBS=8 bench/run.sh --out out/w$w; done`
# records how pgmtls scales with workers.
#
# Everything it starts (PostgreSQL, PgBouncer, two pgmtls, clients) lives in a temporary directory
# and is stopped on exit, failure or Ctrl-C. Any failed step makes it exit non-zero. Needs the
# Debian packages from deploy/install-deps.sh; run as root (PostgreSQL and PgBouncer then run as
# the postgres user) or as an ordinary user.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pgbin=/usr/lib/postgresql/15/bin
command_line="bench/run.sh${*:+ $*}"

quick=0
keep=0
out_dir=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --keep) keep=1 ;;
    --out)
      [ $# -ge 2 ] || { echo "bench/run.sh: --out needs a directory" >&2; exit 2; }
      out_dir=$2
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  duration=${BENCH_DURATION:-3} copy_mb=${BENCH_COPY_MB:-50} idle_n=${BENCH_IDLE:-100}
  hs_duration=${BENCH_HS_DURATION:-3} scale=${BENCH_SCALE:-1} metrics_rounds=${BENCH_METRICS_ROUNDS:-1}
  speed_seconds=1
  out_dir=${out_dir:-/tmp/pgmtls-bench-quick}
else
  duration=${BENCH_DURATION:-20} copy_mb=${BENCH_COPY_MB:-500} idle_n=${BENCH_IDLE:-1000}
  hs_duration=${BENCH_HS_DURATION:-10} scale=${BENCH_SCALE:-10} metrics_rounds=${BENCH_METRICS_ROUNDS:-3}
  speed_seconds=3
  out_dir=${out_dir:-$repo/bench}
fi
# What is measured: the tree as the run starts (it builds from it), not as it ends.
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ] && commit+=" (with uncommitted changes)"
hs_threads=${BENCH_HS_THREADS:-4}
tx_pool_size=${BENCH_TX_POOL_SIZE:-8}
cores=$(nproc)
workers=${BENCH_WORKERS:-$cores}
jobs=${BENCH_JOBS:-2}
clk_tck=$(getconf CLK_TCK)

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }
die() {
  printf '\033[31mbench/run.sh: %s\033[0m\n' "$*" >&2
  exit 1
}

# --- tools -------------------------------------------------------------------------------------
for tool in pgbench psql pgbouncer gnuplot openssl cmake ninja clang++ ss setpriv; do
  command -v "$tool" >/dev/null || die "$tool not found: run deploy/install-deps.sh"
done
[ -x "$pgbin/initdb" ] || die "$pgbin/initdb not found: run deploy/install-deps.sh"

as_root=0
[ "$(id -u)" -eq 0 ] && as_root=1
as_pg() {  # PostgreSQL and PgBouncer refuse to run as root
  if [ "$as_root" = 1 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else "$@"; fi
}

# --- work directory and clean-up ---------------------------------------------------------------
work=$(mktemp -d /tmp/pgmtls-bench.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/out"
started=()  # pids of long-running processes we started

stop_all() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [ -f "$work/pg/data/postmaster.pid" ]; then
    as_pg timeout 30 "$pgbin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 ||
      kill -KILL "$(head -1 "$work/pg/data/postmaster.pid")" 2>/dev/null || true
  fi
  for _ in $(seq 50); do
    local alive=0
    for pid in "${started[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then
    echo "bench/run.sh: work directory kept: $work" >&2
  elif [ "$rc" -ne 0 ]; then
    rm -rf "$work/pg/data" "$work/copy.txt"  # the big parts; the logs stay
    echo "bench/run.sh: failed; logs and outputs kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap stop_all EXIT
trap 'echo "bench/run.sh: interrupted" >&2; exit 130' INT TERM

# Enough descriptors for the idle connections: each is a client and a server socket in a proxy.
want_fds=$((4 * idle_n + 1024))
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
  ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
[ "$(ulimit -n)" -ge $((2 * idle_n + 256)) ] ||
  die "ulimit -n is $(ulimit -n); $((2 * idle_n + 256)) descriptors are needed for $idle_n idle connections"

used_ports=" "
pg_port='' pgb_port='' pgmtls_port='' nm_port=''
free_port() {  # sets the named variable to a port nobody listens on and this run has not taken
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    case $used_ports in *" $p "*) continue ;; esac
    if [ -z "$(ss -Htan "sport = :$p")" ]; then
      used_ports+="$p "
      printf -v "$1" '%s' "$p"
      return
    fi
  done
  die "no free port found"
}

wait_port() {  # port pid what logfile
  for _ in $(seq 300); do
    [ -n "$(ss -Htln "sport = :$1")" ] && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2 || true; die "$3 exited during start-up"; }
    sleep 0.1
  done
  tail -n 20 "$4" >&2 || true
  die "$3 is not listening on port $1 after 30 s"
}

# --- CPU time and memory from /proc ------------------------------------------------------------
# utime + stime of one process (all its threads), in clock ticks.
ticks_own() {
  local s
  read -r s <"/proc/$1/stat" 2>/dev/null || { echo 0; return; }
  s=${s##*) }  # the command name may hold spaces; fields from the state on
  # shellcheck disable=SC2086
  set -- $s
  echo $((${12} + ${13}))
}
# A process, its reaped children (cutime + cstime) and its live children: PostgreSQL's postmaster
# and every backend it forked, including those that exited during the measurement.
# All the stat files through one cat and one awk: a fork costs milliseconds on some VMs, and there
# may be 1000 backends. A child that exits meanwhile is skipped by cat (its time is then in the
# postmaster's cutime).
ticks_tree() {
  local files=("/proc/$1/stat") pid
  for pid in $(pgrep -P "$1" || true); do files+=("/proc/$pid/stat"); done
  { cat "${files[@]}" 2>/dev/null || true; } |
    awk '{ sub(/^.*\) /, ""); split($0, f, " "); total += f[12] + f[13] + f[14] + f[15] }
         END { printf "%d\n", total }'
}
vmrss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# "pg pgbouncer pgmtls pgmtls_nometrics" CPU ticks now.
cpu_snapshot() {
  local pg pgb p nm
  local tx
  pg=$(ticks_tree "$pg_pid") pgb=$(ticks_own "$pgb_pid") p=$(ticks_own "$pgmtls_pid") nm=$(ticks_own "$nm_pid")
  tx=$(ticks_own "$tx_pid")
  echo "${pg:-0} ${pgb:-0} ${p:-0} ${nm:-0} ${tx:-0}"
}
# CPU microseconds per operation between two snapshots: cpu_us_per BEFORE AFTER FIELD OPS
cpu_us_per() {
  awk -v a="$1" -v b="$2" -v f="$3" -v n="$4" -v hz="$clk_tck" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    if (n <= 0) { print "nan"; exit }
    printf "%.1f", (y[f] - x[f]) * 1e6 / hz / n }'
}
field_of() {  # which snapshot field holds the proxy's CPU
  case $1 in pgbouncer) echo 2 ;; pgmtls) echo 3 ;; pgmtls_nm) echo 4 ;; pgmtls_tx) echo 5 ;; *) echo 0 ;; esac
}

# How busy the machine is besides this benchmark: all CPU time (/proc/stat) minus this script's,
# its reaped children's (clients, initdb, pg_ctl, ...), PostgreSQL's, PgBouncer's and pgmtls's.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
self_ticks() {
  local s
  read -r s <"/proc/$$/stat"
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $((${12} + ${13} + ${14} + ${15}))
}

# --- build -------------------------------------------------------------------------------------
say "1/9 build (clang, RelWithDebInfo): pgmtls, pgmtls without metrics, the bench clients"
build=$repo/build-bench
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGMTLS_BUILD_TESTS=OFF -DPGMTLS_BUILD_BENCH=ON -DPGMTLS_METRICS=ON -DPGMTLS_SANITIZE=OFF \
  >"$work/out/cmake.log" 2>&1 || { cat "$work/out/cmake.log" >&2; die "cmake failed"; }
targets=(pgmtls_handshake_client pgmtls_idle_clients pgmtls_auth_bench)
[ -n "${PGMTLS:-}" ] || targets+=(pgmtls)
cmake --build "$build" --target "${targets[@]}" >"$work/out/build.log" 2>&1 ||
  { tail -n 40 "$work/out/build.log" >&2; die "build failed"; }
if [ -z "${PGMTLS_NOMETRICS:-}" ]; then
  cmake -S "$repo" -B "$repo/build-bench-nometrics" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMTLS_BUILD_TESTS=OFF -DPGMTLS_BUILD_BENCH=OFF \
    -DPGMTLS_METRICS=OFF -DPGMTLS_SANITIZE=OFF >"$work/out/cmake-nm.log" 2>&1 ||
    { cat "$work/out/cmake-nm.log" >&2; die "cmake (metrics off) failed"; }
  cmake --build "$repo/build-bench-nometrics" --target pgmtls >"$work/out/build-nm.log" 2>&1 ||
    { tail -n 40 "$work/out/build-nm.log" >&2; die "build (metrics off) failed"; }
fi
pgmtls_bin=$(realpath "${PGMTLS:-$build/proxy/pgmtls}")
nm_bin=$(realpath "${PGMTLS_NOMETRICS:-$repo/build-bench-nometrics/proxy/pgmtls}")
hs_client=$build/bench/pgmtls_handshake_client
idle_client=$build/bench/pgmtls_idle_clients
for b in "$pgmtls_bin" "$nm_bin" "$hs_client" "$idle_client"; do
  [ -x "$b" ] || die "$b is not an executable"
done
sanitized=
for b in "$pgmtls_bin" "$nm_bin"; do
  if nm "$b" 2>/dev/null | grep -q __asan_init; then sanitized+=" $b"; fi
done
[ -z "$sanitized" ] || note "WARNING: built with AddressSanitizer, numbers are meaningless:$sanitized"
note "pgmtls:             $pgmtls_bin"
note "pgmtls metrics off: $nm_bin"

# What starting a process costs here (PostgreSQL forks a backend for every connection).
read -r self_stat </proc/$$/stat
self_stat=${self_stat##*) }
read -r -a f0 <<<"$self_stat"
spawn_t0=$(date +%s.%N)
for _ in $(seq 100); do /bin/true; done
spawn_t1=$(date +%s.%N)
read -r self_stat </proc/$$/stat
self_stat=${self_stat##*) }
read -r -a f1 <<<"$self_stat"
spawn_cost=$(awk -v a="$spawn_t0" -v b="$spawn_t1" -v c=$((f1[13] + f1[14] - f0[13] - f0[14])) -v hz="$clk_tck" \
  'BEGIN { printf "%.2f ms wall, %.2f ms CPU", (b - a) * 10, c * 1000 / hz / 100 }')
note "fork + exec of /bin/true: $spawn_cost"

machine_start=$(machine_ticks) self_start=$(self_ticks)
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- PKI ---------------------------------------------------------------------------------------
say "2/9 PKI (ECDSA P-256): CA, server localhost/127.0.0.1, client CN=bench"
pki=$work/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=pgmtls bench CA" -keyout "$pki/ca.key" -out "$pki/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>"$work/out/pki.log"
issue() {  # name subject extensions
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>>"$work/out/pki.log"
  printf '%s\n' "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>>"$work/out/pki.log"
  chmod 600 "$pki/$1.key"
}
issue server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
issue client "/CN=bench" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
# Copies the postgres user can read (PostgreSQL insists on owning its key).
mkdir -p "$work/srv"
cp "$pki/server.crt" "$pki/server.key" "$pki/ca.crt" "$work/srv/"
[ "$as_root" = 1 ] && chown -R postgres:postgres "$work/srv"
chmod 600 "$work/srv/server.key"

# PostgreSQL 15 takes one curve for ssl_ecdh_curve and hands it to SSL_CTX_set_tmp_ecdh, which
# cannot take X25519; its server offers that one group only. libpq (OpenSSL 3.0 defaults) sends its
# key share for X25519 first, so every direct TLS handshake would pay a HelloRetryRequest. The
# direct-TLS clients get this OpenSSL configuration, which makes them offer P-256 first.
cat >"$work/openssl-p256.cnf" <<'CNF'
openssl_conf = bench_init
[bench_init]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_tls
[bench_tls]
Groups = P-256
CNF

# --- PostgreSQL --------------------------------------------------------------------------------
say "3/9 PostgreSQL 15"
free_port pg_port
mkdir -p "$work/pg/run"
[ "$as_root" = 1 ] && chown -R postgres:postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres -A trust --no-sync -E UTF8 --locale=C \
  >"$work/out/initdb.log" 2>&1 || { cat "$work/out/initdb.log" >&2; die "initdb failed"; }
as_pg cp "$work/srv/server.crt" "$work/srv/server.key" "$work/srv/ca.crt" "$work/pg/data/"
pg_max_connections=$((idle_n + 300))
as_pg tee -a "$work/pg/data/postgresql.conf" >/dev/null <<CONF
# bench/run.sh
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/pg/run'
max_connections = $pg_max_connections
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
max_wal_size = 8GB
checkpoint_timeout = 30min
log_min_messages = warning
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
ssl_ecdh_curve = 'prime256v1'
ssl_min_protocol_version = 'TLSv1.2'
CONF
as_pg tee "$work/pg/data/pg_hba.conf" >/dev/null <<'HBA'
local   all all                trust
hostssl all all 127.0.0.1/32   cert
host    all all 127.0.0.1/32   trust
HBA
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgres.log" -w -t 60 start \
  >"$work/out/pg_ctl.log" 2>&1 || { tail -n 20 "$work/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
pg_pid=$(head -1 "$work/pg/data/postmaster.pid")
pg_local() { psql -X -q -v ON_ERROR_STOP=1 -h "$work/pg/run" -p "$pg_port" "$@"; }
pg_local -U postgres -d postgres -c "CREATE ROLE bench LOGIN" -c "CREATE DATABASE bench OWNER bench"
pgbench -i -q -s "$scale" -h "$work/pg/run" -p "$pg_port" -U bench bench >"$work/out/pgbench-init.log" 2>&1 ||
  { cat "$work/out/pgbench-init.log" >&2; die "pgbench -i failed"; }
pg_local -U bench -d bench -c "CREATE UNLOGGED TABLE t (line text)"
pg_local -U postgres -d bench -c "VACUUM ANALYZE" -c "CHECKPOINT"
note "PostgreSQL on 127.0.0.1:$pg_port (postmaster $pg_pid), pgbench scale $scale, max_connections $pg_max_connections"

# --- PgBouncer ---------------------------------------------------------------------------------
say "4/9 PgBouncer (session mode, client TLS verify-full, auth_type=cert, plain to PostgreSQL)"
free_port pgb_port
mkdir -p "$work/pgbouncer"
echo '"bench" ""' >"$work/pgbouncer/userlist.txt"
cat >"$work/pgbouncer/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
logfile = $work/pgbouncer/pgbouncer.log
pool_mode = session
auth_type = cert
auth_file = $work/pgbouncer/userlist.txt
max_client_conn = $((idle_n + 200))
default_pool_size = $((idle_n + 100))
client_tls_sslmode = verify-full
client_tls_ca_file = $work/srv/ca.crt
client_tls_cert_file = $work/srv/server.crt
client_tls_key_file = $work/srv/server.key
server_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
log_stats = 0
ignore_startup_parameters = extra_float_digits
INI
[ "$as_root" = 1 ] && chown -R postgres:postgres "$work/pgbouncer"
# Started directly, not through a shell function, so that $! is PgBouncer itself (setpriv execs).
if [ "$as_root" = 1 ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups -- \
    pgbouncer "$work/pgbouncer/pgbouncer.ini" >"$work/pgbouncer/stderr.log" 2>&1 &
else
  pgbouncer "$work/pgbouncer/pgbouncer.ini" >"$work/pgbouncer/stderr.log" 2>&1 &
fi
pgb_pid=$!
started+=("$pgb_pid")
wait_port "$pgb_port" "$pgb_pid" PgBouncer "$work/pgbouncer/stderr.log"
note "PgBouncer on 127.0.0.1:$pgb_port (pid $pgb_pid)"

# --- pgmtls ------------------------------------------------------------------------------------
say "5/9 pgmtls ($workers workers): session pooling with and without metrics, transaction pooling"
mkdir -p "$work/pgmtls"
echo "hostssl all all 127.0.0.1/32 cert" >"$work/pgmtls/pg_hba.conf"
pgmtls_config() {  # port pool_mode session_ticket_lifetime
  cat <<YAML
listen: 127.0.0.1:$1
workers: $workers
tls:
  cert_file: $pki/server.crt
  key_file: $pki/server.key
  ca_file: $pki/ca.crt
  min_protocol_version: TLSv1.2
  session_ticket_lifetime: $3
identity:
  source: cn
hba_file: $work/pgmtls/pg_hba.conf
backends:
  default:
    host: 127.0.0.1
    port: $pg_port
    sslmode: disable
    # Session pooling, as PgBouncer's here; idle ones go soon, so that the idle test's backends
    # are gone before PgBouncer's starts. Transaction pooling: $tx_pool_size per worker.
    pool_mode: $2
    pool_size: $([ "$2" = transaction ] && echo "$tx_pool_size" || echo $((idle_n + 100)))
    server_idle_timeout: 5s
log:
  level: warn
YAML
}
start_pgmtls() {  # name binary port pool_mode session_ticket_lifetime; sets started_pid
  pgmtls_config "$3" "$4" "$5" >"$work/pgmtls/$1.yaml"
  "$2" check --config "$work/pgmtls/$1.yaml" >"$work/pgmtls/$1.check.log" 2>&1 ||
    { cat "$work/pgmtls/$1.check.log" >&2; die "pgmtls check failed for $1"; }
  "$2" run --config "$work/pgmtls/$1.yaml" >"$work/pgmtls/$1.log" 2>&1 &
  started_pid=$!
  started+=("$started_pid")
}
free_port pgmtls_port
start_pgmtls pgmtls "$pgmtls_bin" "$pgmtls_port" session 0
pgmtls_pid=$started_pid
free_port nm_port
start_pgmtls pgmtls_nm "$nm_bin" "$nm_port" session 0
nm_pid=$started_pid
free_port tx_port
# The transaction-pooling instance also gives out TLS session tickets (off by default), for the
# handshake measurements with tickets and with resumption.
start_pgmtls pgmtls_tx "$pgmtls_bin" "$tx_port" transaction 1h
tx_pid=$started_pid
wait_port "$pgmtls_port" "$pgmtls_pid" pgmtls "$work/pgmtls/pgmtls.log"
wait_port "$nm_port" "$nm_pid" "pgmtls (metrics off)" "$work/pgmtls/pgmtls_nm.log"
wait_port "$tx_port" "$tx_pid" "pgmtls (transaction pooling)" "$work/pgmtls/pgmtls_tx.log"
note "pgmtls on 127.0.0.1:$pgmtls_port (pid $pgmtls_pid), metrics off on 127.0.0.1:$nm_port (pid $nm_pid), transaction pooling on 127.0.0.1:$tx_port (pid $tx_pid)"

# --- clients -----------------------------------------------------------------------------------
# Every target through libpq's environment: host name localhost (verify-full checks it), address
# 127.0.0.1, role and database bench, the client certificate for everything but plain TCP.
targets=(plain tls pgbouncer pgmtls)
declare -A label=([plain]="direct plain" [tls]="direct TLS" [pgbouncer]="PgBouncer" [pgmtls]="pgmtls"
  [pgmtls_nm]="pgmtls, metrics off" [pgmtls_tx]="pgmtls, pool_mode transaction")
port_of() {
  case $1 in plain | tls) echo "$pg_port" ;; pgbouncer) echo "$pgb_port" ;; pgmtls) echo "$pgmtls_port" ;;
    pgmtls_nm) echo "$nm_port" ;; pgmtls_tx) echo "$tx_port" ;; esac
}
target_env() {  # target; sets the array tenv
  local t=$1
  tenv=(PGHOST=localhost PGHOSTADDR=127.0.0.1 "PGPORT=$(port_of "$t")" PGUSER=bench PGDATABASE=bench
    PGCONNECT_TIMEOUT=15 PGGSSENCMODE=disable PGAPPNAME=bench)
  if [ "$t" = plain ]; then
    tenv+=(PGSSLMODE=disable)
  else
    tenv+=(PGSSLMODE=verify-full "PGSSLROOTCERT=$pki/ca.crt" "PGSSLCERT=$pki/client.crt"
      "PGSSLKEY=$pki/client.key")
  fi
  if [ "$t" = tls ]; then tenv+=("OPENSSL_CONF=$work/openssl-p256.cnf"); fi
}
in_env() {  # target command...
  target_env "$1"
  shift
  env "${tenv[@]}" "$@"
}
for t in "${targets[@]}" pgmtls_nm pgmtls_tx; do
  got=$(in_env "$t" timeout 30 psql -X -At -v ON_ERROR_STOP=1 \
    -c "SELECT current_user || ' ' || coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), 'no-tls')") ||
    die "cannot connect as bench through ${label[$t]}"
  note "${label[$t]}: connected as $got (TLS toward PostgreSQL)"
done
# The groups a direct TLS client agrees on: P-256 without a HelloRetryRequest.
# What each TLS server negotiates with these clients (protocol, cipher suite, key exchange).
declare -A tls_params
for t in tls pgbouncer pgmtls; do
  target_env "$t"
  echo | env "${tenv[@]}" timeout 10 openssl s_client -starttls postgres -connect "127.0.0.1:$(port_of "$t")" \
    -servername localhost -CAfile "$pki/ca.crt" -cert "$pki/client.crt" -key "$pki/client.key" -brief \
    >"$work/out/s_client.$t.log" 2>&1 || true
  tls_params[$t]=$(awk -F': ' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
    /^Server Temp Key/ { k = $2 } END { print p ", " c ", " k }' "$work/out/s_client.$t.log")
  note "${label[$t]}: ${tls_params[$t]}"
done

declare -A R  # results: R[workload.metric.target]


# pgbench against one target; records tps, pg/proxy CPU per transaction.
run_pgbench() {  # key target mode pgbench-args...
  local key=$1 t=$2 mode=$3
  shift 3
  local outf="$work/out/$key.$t.txt" before after tps tx rc=0
  before=$(cpu_snapshot)
  in_env "$t" timeout $((duration + 120)) pgbench -n "$@" >"$outf" 2>&1 || rc=$?
  after=$(cpu_snapshot)
  if [ "$rc" -ne 0 ]; then tail -n 20 "$outf" >&2; die "pgbench $* against ${label[$t]} failed (exit $rc)"; fi
  if [ "$mode" = connect ]; then
    tps=$(sed -n 's/^tps = \([0-9.]*\) (including reconnection times)/\1/p' "$outf")
  else
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$outf")
  fi
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$outf")
  [ -n "$tps" ] && [ "${tx:-0}" -gt 0 ] || { cat "$outf" >&2; die "no result from pgbench against ${label[$t]}"; }
  if grep -q '^number of failed transactions: [1-9]' "$outf"; then
    cat "$outf" >&2
    die "pgbench reported failed transactions against ${label[$t]}"
  fi
  R[$key.rate.$t]=$tps
  R[$key.pgcpu.$t]=$(cpu_us_per "$before" "$after" 1 "$tx")
  local f
  f=$(field_of "$t")
  [ "$f" = 0 ] || R[$key.proxycpu.$t]=$(cpu_us_per "$before" "$after" "$f" "$tx")
  note "$(printf '%-20s %8.0f /s  PostgreSQL %7s us  proxy %7s us  (%s transactions)' "${label[$t]}" \
    "$tps" "${R[$key.pgcpu.$t]}" "${R[$key.proxycpu.$t]:--}" "$tx")"
}

# --- 1. select-only ----------------------------------------------------------------------------
say "6/9 pgbench -S -M prepared (-c 16 and -c 64, -j $jobs, $duration s) and -S -C -c 4 (new connection per transaction)"
for c in 16 64; do
  for t in "${targets[@]}"; do
    run_pgbench "sel$c" "$t" select -S -M prepared -c "$c" -j "$jobs" -T "$duration"
  done
done
for t in "${targets[@]}"; do
  run_pgbench conn "$t" connect -S -C -c 4 -j "$jobs" -T "$duration"
done
# The same through transaction pooling.
run_pgbench sel16 pgmtls_tx select -S -M prepared -c 16 -j "$jobs" -T "$duration"
run_pgbench sel64 pgmtls_tx select -S -M prepared -c 64 -j "$jobs" -T "$duration"
run_pgbench conn pgmtls_tx connect -S -C -c 4 -j "$jobs" -T "$duration"

# --- 3. COPY -----------------------------------------------------------------------------------
say "7/9 COPY $copy_mb MB out and in"
rows=$((copy_mb * 1000))  # 1000 bytes a line: 999 x and a newline
copy_file=$work/copy.txt
awk -v n="$rows" 'BEGIN { s = sprintf("%999s", ""); gsub(/ /, "x", s); for (i = 0; i < n; i++) print s }' >"$copy_file"
[ "$(stat -c %s "$copy_file")" -eq $((rows * 1000)) ] || die "COPY input has the wrong size"
now() { date +%s.%N; }
run_copy() {  # direction target
  local dir=$1 t=$2 before after t0 t1 rc=0 outf="$work/out/copy-$1.$2.txt"
  [ "$dir" = in ] && pg_local -U bench -d bench -c "TRUNCATE t"
  before=$(cpu_snapshot)
  t0=$(now)
  if [ "$dir" = out ]; then
    in_env "$t" timeout 900 psql -X -q -v ON_ERROR_STOP=1 \
      -c "COPY (SELECT repeat('x', 999) FROM generate_series(1, $rows)) TO STDOUT" \
      >/dev/null 2>"$outf" || rc=$?
  else
    in_env "$t" timeout 900 psql -X -q -v ON_ERROR_STOP=1 -c "COPY t FROM STDIN" \
      <"$copy_file" >"$outf" 2>&1 || rc=$?
  fi
  t1=$(now)
  after=$(cpu_snapshot)
  [ "$rc" -eq 0 ] || { cat "$outf" >&2; die "COPY $dir through ${label[$t]} failed (exit $rc)"; }
  if [ "$dir" = in ]; then
    local n
    n=$(pg_local -U bench -d bench -At -c "SELECT count(*) FROM t")
    [ "$n" -eq "$rows" ] || die "COPY in through ${label[$t]} stored $n rows, not $rows"
  fi
  R[copy$dir.rate.$t]=$(awk -v mb="$copy_mb" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", mb / (b - a) }')
  R[copy$dir.pgcpu.$t]=$(cpu_us_per "$before" "$after" 1 "$copy_mb")
  local f
  f=$(field_of "$t")
  [ "$f" = 0 ] || R[copy$dir.proxycpu.$t]=$(cpu_us_per "$before" "$after" "$f" "$copy_mb")
  note "$(printf 'COPY %-3s %-14s %8s MB/s  PostgreSQL %8s us/MB  proxy %8s us/MB' "$dir" "${label[$t]}" \
    "${R[copy$dir.rate.$t]}" "${R[copy$dir.pgcpu.$t]}" "${R[copy$dir.proxycpu.$t]:--}")"
}
for t in "${targets[@]}"; do run_copy out "$t"; done
for t in "${targets[@]}"; do run_copy in "$t"; done
rm -f "$copy_file"
pg_local -U bench -d bench -c "TRUNCATE t"

# --- 4. idle connections -----------------------------------------------------------------------
say "8/9 $idle_n idle mTLS connections: the proxy's memory per connection"
# pgmtls first: PgBouncer keeps its server connections pooled after its clients leave.
for t in pgmtls pgbouncer; do
  pid=$([ "$t" = pgbouncer ] && echo "$pgb_pid" || echo "$pgmtls_pid")
  rss0=$(vmrss_kib "$pid")
  target_env "$t"
  env "${tenv[@]}" "$idle_client" --conninfo "application_name=bench_idle" -n "$idle_n" --hold 900 \
    >"$work/out/idle.$t.txt" 2>&1 &
  idle_pid=$!
  started+=("$idle_pid")
  for _ in $(seq 3000); do
    grep -q '^ready' "$work/out/idle.$t.txt" && break
    kill -0 "$idle_pid" 2>/dev/null || { cat "$work/out/idle.$t.txt" >&2; die "idle clients against ${label[$t]} failed"; }
    sleep 0.1
  done
  grep -q '^ready' "$work/out/idle.$t.txt" || die "$idle_n idle connections to ${label[$t]} not ready after 300 s"
  sleep 2
  rss1=$(vmrss_kib "$pid")
  backends=$(pg_local -U postgres -d postgres -At \
    -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench_idle'")
  kill -TERM "$idle_pid"
  rc=0
  wait "$idle_pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$work/out/idle.$t.txt" >&2; die "idle clients against ${label[$t]} exited $rc"; }
  sleep 2
  rss2=$(vmrss_kib "$pid")
  # Pooled backends of these clients close after server_idle_timeout (pgmtls); wait for that.
  for _ in $(seq 600); do
    [ "$t" = pgbouncer ] && break
    [ "$(pg_local -U postgres -d postgres -At -c \
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench_idle'")" = 0 ] && break
    sleep 0.1
  done
  R[idle.rss.$t]=$(awk -v a="$rss0" -v b="$rss1" -v n="$idle_n" 'BEGIN { printf "%.1f", (b - a) / n }')
  R[idle.before.$t]=$rss0 R[idle.during.$t]=$rss1 R[idle.after.$t]=$rss2 R[idle.backends.$t]=$backends
  note "$(printf '%-10s VmRSS %7s KiB -> %7s KiB with %s idle (%s PostgreSQL backends) -> %7s KiB after: %s KiB per connection' \
    "${label[$t]}" "$rss0" "$rss1" "$idle_n" "$backends" "$rss2" "${R[idle.rss.$t]}")"
done

# --- 5. handshakes -----------------------------------------------------------------------------
say "9/9 handshake rate ($hs_threads client threads, $hs_duration s), theoretical limit, metrics on vs off"
run_handshakes() {  # target mode(tls|startup|resume)
  local t=$1 mode=$2 args=() before after line rc=0 outf="$work/out/hs-$2.$1.txt"
  case $t in
    tls) args=(--pid-tree "$pg_pid" --groups P-256) ;;
    pgbouncer) args=(--pid "$pgb_pid") ;;
    pgmtls) args=(--pid "$pgmtls_pid") ;;
    pgmtls_tx) args=(--pid "$tx_pid") ;;
  esac
  [ "$mode" = startup ] && args+=(--startup --user bench --database bench)
  [ "$mode" = resume ] && args+=(--resume)
  before=$(cpu_snapshot)
  timeout $((hs_duration + 60)) "$hs_client" --host 127.0.0.1 --port "$(port_of "$t")" \
    --servername localhost --ca "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key" \
    --threads "$hs_threads" --duration "$hs_duration" "${args[@]}" >"$outf" 2>&1 || rc=$?
  after=$(cpu_snapshot)
  [ "$rc" -eq 0 ] || { cat "$outf" >&2; die "handshake client against ${label[$t]} failed (exit $rc)"; }
  line=$(grep '^mode=' "$outf")
  local n
  n=$(sed -n 's/.* connections=\([0-9]*\).*/\1/p' <<<"$line")
  R[hs$mode.rate.$t]=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$line")
  R[hs$mode.servercpu.$t]=$(sed -n 's/.* server_cpu_us=\([0-9.]*\).*/\1/p' <<<"$line")
  R[hs$mode.pgcpu.$t]=$(cpu_us_per "$before" "$after" 1 "$n")
  R[hs$mode.resumed.$t]=$(awk -v n="$n" -v r="$(sed -n 's/.* resumed=\([0-9]*\).*/\1/p' <<<"$line")" \
    'BEGIN { printf "%.0f", (n > 0 ? 100 * r / n : 0) }')
  [ "$t" = tls ] || R[hs$mode.proxycpu.$t]=${R[hs$mode.servercpu.$t]}
  note "$(printf '%-8s %-12s %9s /s  server CPU %7s us  PostgreSQL %7s us  client %s us' "$mode" "${label[$t]}" \
    "${R[hs$mode.rate.$t]}" "${R[hs$mode.servercpu.$t]}" "${R[hs$mode.pgcpu.$t]}" \
    "$(sed -n 's/.* client_cpu_us=\([0-9.]*\).*/\1/p' <<<"$line")")"
}
for mode in tls startup; do
  for t in tls pgbouncer pgmtls; do run_handshakes "$t" "$mode"; done
done
# With session tickets on (the transaction-pooling instance), every full handshake also makes a
# ticket; clients that keep a TLS session cache (pgJDBC, Npgsql; not libpq) resume with it.
run_handshakes pgmtls_tx tls
run_handshakes pgmtls_tx resume

# The crypto a TLS 1.3 server does per mutual handshake with P-256 certificates and X25519.
openssl speed -seconds "$speed_seconds" ecdsap256 ecdhx25519 ecdhp256 >"$work/out/speed.txt" 2>/dev/null ||
  die "openssl speed failed"
sign_s=$(awk '/ecdsa \(nistp256\)/ { print $(NF-1) }' "$work/out/speed.txt")
verify_s=$(awk '/ecdsa \(nistp256\)/ { print $NF }' "$work/out/speed.txt")
x25519_s=$(awk '/ecdh \(X25519\)/ { print $NF }' "$work/out/speed.txt")
p256dh_s=$(awk '/ecdh \(nistp256\)/ { print $NF }' "$work/out/speed.txt")
keygen_s=$("$hs_client" --x25519-keygen-speed "$speed_seconds" | sed -n 's/^x25519_keygen_per_s=//p')
[ -n "$sign_s" ] && [ -n "$verify_s" ] && [ -n "$x25519_s" ] && [ -n "$keygen_s" ] ||
  die "could not read openssl speed's output ($work/out/speed.txt)"
crypto_us=$(awk -v s="$sign_s" -v v="$verify_s" -v d="$x25519_s" -v k="$keygen_s" \
  'BEGIN { printf "%.1f", 1e6 / s + 2e6 / v + 1e6 / k + 1e6 / d }')
limit_core=$(awk -v c="$crypto_us" 'BEGIN { printf "%.0f", 1e6 / c }')
for mode_target in "tls pgmtls" "startup pgmtls" "tls pgmtls_tx" "resume pgmtls_tx"; do
  read -r mode t <<<"$mode_target"
  u=${R[hs$mode.proxycpu.$t]}
  R[hs$mode.capacity.$t]=$(awk -v c="$((workers < cores ? workers : cores))" -v u="$u" \
    'BEGIN { printf "%.0f", c * 1e6 / u }')
  R[hs$mode.pct.$t]=$(awk -v c="$crypto_us" -v u="$u" 'BEGIN { printf "%.0f", 100 * c / u }')
done
# The server's side of the same handshake in one process, without sockets (bench/auth_bench.cpp):
# OpenSSL alone, pgmtls's SSL_CTX, and pgmtls's with session tickets; medians of 5 interleaved runs.
"$build/bench/pgmtls_auth_bench" --benchmark_filter=ServerHandshake --benchmark_repetitions=5 \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
  --benchmark_min_time="$([ "$quick" = 1 ] && echo 0.1 || echo 0.5)" --benchmark_format=csv \
  >"$work/out/auth_bench.csv" 2>"$work/out/auth_bench.log" ||
  { cat "$work/out/auth_bench.log" >&2; die "pgmtls_auth_bench failed"; }
for v in BareOpenSsl Pgmtls PgmtlsTickets; do
  R[inproc.$v]=$(awk -F, -v n="\"BM_ServerHandshake_$v/manual_time_median\"" \
    '$1 == n { printf "%.0f", $3 }' "$work/out/auth_bench.csv")
  [ -n "${R[inproc.$v]}" ] || die "no median for $v in $work/out/auth_bench.csv"
  R[inproc.pct.$v]=$(awk -v c="$crypto_us" -v u="${R[inproc.$v]}" 'BEGIN { printf "%.0f", 100 * c / u }')
done
note "crypto per handshake: $crypto_us us (sign $sign_s/s, verify $verify_s/s, X25519 derive $x25519_s/s, keygen $keygen_s/s)"
note "limit $limit_core handshakes/s per core; pgmtls uses ${R[hstls.proxycpu.pgmtls]} us per handshake: ${R[hstls.pct.pgmtls]}% of the limit"

# --- 6. metrics on vs off ----------------------------------------------------------------------
for round in $(seq "$metrics_rounds"); do
  run_pgbench "mon$round" pgmtls select -S -M prepared -c 16 -j "$jobs" -T "$duration"
  run_pgbench "moff$round" pgmtls_nm select -S -M prepared -c 16 -j "$jobs" -T "$duration"
done
mean_of() {  # prefix metric target
  local vals=() r
  for r in $(seq "$metrics_rounds"); do vals+=("${R[$1$r.$2.$3]}"); done
  printf '%s\n' "${vals[@]}" | awk '{ s += $1 } END { printf "%.1f", s / NR }'
}
R[mon.rate]=$(mean_of mon rate pgmtls) R[moff.rate]=$(mean_of moff rate pgmtls_nm)
R[mon.proxycpu]=$(mean_of mon proxycpu pgmtls) R[moff.proxycpu]=$(mean_of moff proxycpu pgmtls_nm)

# --- 7. profiles ------------------------------------------------------------------------------
# perf on pgmtls (sampling, no call graphs: Debian's OpenSSL has no frame pointers) during the
# handshake-only client and select-only -c 16: where its CPU goes, by library and by function.
profile_md=
perf_rows() {  # perf.data sort-keys -> markdown rows: share, then the keys
  perf report -i "$1" --no-children --sort "$2" --stdio --percent-limit 1 2>/dev/null |
    awk '$1 ~ /^[0-9.]+%$/ { line = $0; sub(/^ *[0-9.]+% +/, "", line); gsub(/\|/, "\\|", line)
      gsub(/ +\[[.k]\] +/, " | ", line); printf "| %s | %s |\n", $1, line }' | head -n "$3"
}
profile() {  # name title command...
  local name=$1 title=$2 data="$work/out/perf.$1.data" perf_pid rc=0
  shift 2
  perf record -F 999 -o "$data" -p "$pgmtls_pid" >"$work/out/perf.$name.log" 2>&1 &
  perf_pid=$!
  sleep 1  # perf attaches to every thread before it samples
  if ! kill -0 "$perf_pid" 2>/dev/null; then
    note "perf record could not attach ($(tail -n 1 "$work/out/perf.$name.log")); no profile"
    return 0
  fi
  "$@" >"$work/out/profiled.$name.txt" 2>&1 || rc=$?
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  [ "$rc" -eq 0 ] || { cat "$work/out/profiled.$name.txt" >&2; die "profiled run $name failed (exit $rc)"; }
  local samples
  samples=$(perf report -i "$data" --stdio 2>/dev/null | sed -n 's/^# Samples: \([0-9KM]*\).*/\1/p' | head -1)
  profile_md+="
#### $title ($samples samples at 999 Hz)

| share | library |
|---:|---|
$(perf_rows "$data" dso 8)

| share | library | function |
|---:|---|---|
$(perf_rows "$data" dso,sym 25)
"
  note "profile $name: $samples samples"
}
if [ "${BENCH_PROFILE:-1}" != 0 ] && command -v perf >/dev/null; then
  say "profiles: perf record on pgmtls during handshakes, select-only -c 16 and COPY out"
  profile handshake "handshake only, $hs_threads client threads, $hs_duration s" \
    "$hs_client" --host 127.0.0.1 --port "$pgmtls_port" --servername localhost --ca "$pki/ca.crt" \
    --cert "$pki/client.crt" --key "$pki/client.key" --threads "$hs_threads" --duration "$hs_duration" \
    --pid "$pgmtls_pid"
  profile select "select-only -c 16, $duration s" \
    in_env pgmtls pgbench -n -S -M prepared -c 16 -j "$jobs" -T "$duration"
  profile copyout "COPY out $copy_mb MB" \
    in_env pgmtls psql -X -q -v ON_ERROR_STOP=1 -o /dev/null \
    -c "COPY (SELECT repeat('x', 999) FROM generate_series(1, $rows)) TO STDOUT"
fi
[ -n "$profile_md" ] || profile_md="
(none: perf is not installed, cannot attach, or BENCH_PROFILE=0)
"

# pgmtls must not have logged trouble (warn and above) nor died.
for n in pgmtls pgmtls_nm pgmtls_tx; do
  pid=$(case $n in pgmtls) echo "$pgmtls_pid" ;; pgmtls_nm) echo "$nm_pid" ;; *) echo "$tx_pid" ;; esac)
  kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/pgmtls/$n.log" >&2; die "$n died during the run"; }
done
kill -0 "$pgb_pid" 2>/dev/null || die "PgBouncer died during the run"
pgmtls_warnings=$(wc -l <"$work/pgmtls/pgmtls.log")  # log.level warn: every line is a warning or worse
pgmtls_warnings=$((pgmtls_warnings + $(wc -l <"$work/pgmtls/pgmtls_tx.log")))
pgmtls_reasons=$(cat "$work/pgmtls/pgmtls.log" "$work/pgmtls/pgmtls_nm.log" "$work/pgmtls/pgmtls_tx.log" |
  grep -o 'result=[a-z_]* reason=[a-z_]*' | sort | uniq -c | sort -rn |
  awk '{ sub(/result=/, "", $2); sub(/reason=/, "", $3); printf "%s%s × %s/%s", (NR > 1 ? ", " : ""), $1, $2, $3 }' ||
  true)  # grep finds nothing in a clean log
pgmtls_other=$(cat "$work/pgmtls/pgmtls.log" "$work/pgmtls/pgmtls_nm.log" "$work/pgmtls/pgmtls_tx.log" |
  grep -vc ' connection id=' || true)
pg_errors=$(grep -cE ' (ERROR|FATAL|PANIC): ' "$work/pg/postgres.log" || true)
pgmtls_rss_end=$(vmrss_kib "$pgmtls_pid")
pgb_rss_end=$(vmrss_kib "$pgb_pid")

# --- report ------------------------------------------------------------------------------------
ours=$(($(self_ticks) - self_start))
for n in $(cpu_snapshot); do ours=$((ours + n)); done
read -r busy_end all_end <<<"$(machine_ticks)"
read -r busy_start all_start <<<"$machine_start"
machine_busy=$(awk -v b=$((busy_end - busy_start)) -v a=$((all_end - all_start)) -v o="$ours" -v c="$cores" \
  'BEGIN { printf "all processes %.0f %%, this benchmark %.0f %%, others %.0f %% (%.2f cores)",
           100 * b / a, 100 * o / a, 100 * (b - o) / a, c * (b - o) / a }')
others_pct=$(awk -v b=$((busy_end - busy_start)) -v a=$((all_end - all_start)) -v o="$ours" \
  'BEGIN { printf "%.0f", 100 * (b - o) / a }')
busy_warning=
if [ "$others_pct" -ge 5 ]; then
  busy_warning="**Other work used $others_pct % of this machine's CPU while this ran**, so the figures are
noisy (the rounds of \"metrics on vs off\" below show how much). Rerun on an idle machine before
drawing conclusions from differences of less than about 30 %.
"
fi
loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)
note "CPU during the measurements: $machine_busy"

val() { echo "${R[$1]:-}"; }
ratio() {  # a b -> a/b
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "nan" || b == "nan" || b + 0 == 0) print "–"; else printf "%.2f", a / b }'
}
sum() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (a == "" || a == "nan") print ""; else printf "%.1f", a + b }'; }
fmt() {  # whole numbers from 100 on, one decimal below; "–" for nothing
  awk -v v="$1" 'BEGIN { if (v == "" || v == "nan") print "–"; else if (v + 0 >= 100) printf "%.0f", v; else printf "%.1f", v }'
}

# Total server CPU per unit of work: PostgreSQL's, plus the proxy's behind a proxy.
for k in sel16 sel64 conn copyout copyin hstls hsstartup; do
  for t in "${targets[@]}"; do
    if [ "$t" = pgbouncer ] || [ "$t" = pgmtls ]; then
      R[$k.tot.$t]=$(sum "$(val "$k.pgcpu.$t")" "$(val "$k.proxycpu.$t")")
    else
      R[$k.tot.$t]=$(val "$k.pgcpu.$t")
    fi
  done
done

rows_md=()
rate_chart=() cpu_chart=()  # "label" pgmtls/direct-TLS pgmtls/PgBouncer
row() {  # title plain tls pgbouncer pgmtls
  rows_md+=("| $1 | $(fmt "$2") | $(fmt "$3") | $(fmt "$4") | $(fmt "$5") | $(ratio "$5" "$3") | $(ratio "$5" "$4") |")
}
rows_for() {  # key title unit per chart-label
  local k=$1 name=$2 unit=$3 per=$4 short=$5
  row "$name: $unit" "$(val "$k.rate.plain")" "$(val "$k.rate.tls")" "$(val "$k.rate.pgbouncer")" "$(val "$k.rate.pgmtls")"
  row "$name: PostgreSQL CPU µs/$per" "$(val "$k.pgcpu.plain")" "$(val "$k.pgcpu.tls")" \
    "$(val "$k.pgcpu.pgbouncer")" "$(val "$k.pgcpu.pgmtls")"
  row "$name: proxy CPU µs/$per" "" "" "$(val "$k.proxycpu.pgbouncer")" "$(val "$k.proxycpu.pgmtls")"
  row "$name: total server CPU µs/$per" "$(val "$k.tot.plain")" "$(val "$k.tot.tls")" \
    "$(val "$k.tot.pgbouncer")" "$(val "$k.tot.pgmtls")"
  rate_chart+=("\"$short\" $(ratio "$(val "$k.rate.pgmtls")" "$(val "$k.rate.tls")") $(ratio "$(val "$k.rate.pgmtls")" "$(val "$k.rate.pgbouncer")")")
  cpu_chart+=("\"$short\" $(ratio "$(val "$k.tot.pgmtls")" "$(val "$k.tot.tls")") $(ratio "$(val "$k.tot.pgmtls")" "$(val "$k.tot.pgbouncer")")")
}
rows_for sel16 "select-only -c 16" TPS tx "select -c 16"
rows_for sel64 "select-only -c 64" TPS tx "select -c 64"
rows_for conn "new connection per tx (-C -c 4)" conn/s conn "-C -c 4"
rows_for copyout "COPY out $copy_mb MB" MB/s MB "COPY out"
rows_for copyin "COPY in $copy_mb MB" MB/s MB "COPY in"
rows_for hstls "handshake only" "conn/s ($hs_threads client threads)" conn "handshake"
rows_for hsstartup "handshake + startup" "conn/s ($hs_threads client threads)" conn "handshake+startup"
row "$idle_n idle connections: proxy RSS KiB/conn" "" "" "$(val idle.rss.pgbouncer)" "$(val idle.rss.pgmtls)"
row "pgmtls handshake capacity: % of the crypto limit" "" "" "" "$(val hstls.pct.pgmtls)"

table_header="| workload: figure | direct plain | direct TLS | PgBouncer | pgmtls | pgmtls / direct TLS | pgmtls / PgBouncer |
|---|---:|---:|---:|---:|---:|---:|"
main_table=$(printf '%s\n' "$table_header" "${rows_md[@]}")
for k in sel16 sel64 conn; do
  R[$k.tot.pgmtls_tx]=$(sum "$(val "$k.pgcpu.pgmtls_tx")" "$(val "$k.proxycpu.pgmtls_tx")")
done
tx_table="| pgmtls, pool_mode transaction | rate | PostgreSQL CPU µs | proxy CPU µs | total CPU µs | rate / pgmtls session | rate / PgBouncer | total CPU / PgBouncer |
|---|---:|---:|---:|---:|---:|---:|---:|"
for k in sel16 sel64 conn; do
  case $k in sel16) name="select-only -c 16 (TPS, per tx)" ;; sel64) name="select-only -c 64 (TPS, per tx)" ;;
    conn) name="new connection per tx (conn/s, per conn)" ;; esac
  tx_table+="
| $name | $(fmt "$(val "$k.rate.pgmtls_tx")") | $(fmt "$(val "$k.pgcpu.pgmtls_tx")") | $(fmt "$(val "$k.proxycpu.pgmtls_tx")") | $(fmt "$(val "$k.tot.pgmtls_tx")") | $(ratio "$(val "$k.rate.pgmtls_tx")" "$(val "$k.rate.pgmtls")") | $(ratio "$(val "$k.rate.pgmtls_tx")" "$(val "$k.rate.pgbouncer")") | $(ratio "$(val "$k.tot.pgmtls_tx")" "$(val "$k.tot.pgbouncer")") |"
done
metrics_table="| pgmtls, select-only -c 16 | metrics on | metrics off | on / off |
|---|---:|---:|---:|
| TPS (mean of $metrics_rounds) | $(fmt "${R[mon.rate]}") | $(fmt "${R[moff.rate]}") | $(ratio "${R[mon.rate]}" "${R[moff.rate]}") |
| pgmtls CPU µs/tx (mean) | $(fmt "${R[mon.proxycpu]}") | $(fmt "${R[moff.proxycpu]}") | $(ratio "${R[mon.proxycpu]}" "${R[moff.proxycpu]}") |"
for r in $(seq "$metrics_rounds"); do
  metrics_table+="
| round $r: TPS; µs/tx | $(fmt "${R[mon$r.rate.pgmtls]}"); $(fmt "${R[mon$r.proxycpu.pgmtls]}") | $(fmt "${R[moff$r.rate.pgmtls_nm]}"); $(fmt "${R[moff$r.proxycpu.pgmtls_nm]}") | |"
done

# Chart: per workload, pgmtls over direct TLS and over PgBouncer; throughput above, CPU below.
mkdir -p "$out_dir"
printf '%s\n' "${rate_chart[@]}" | sed 's/–/NaN/g' >"$work/rate.dat"
printf '%s\n' "${cpu_chart[@]}" | sed 's/–/NaN/g' >"$work/cpu.dat"
gnuplot >"$work/out/gnuplot.log" 2>&1 <<GP || { cat "$work/out/gnuplot.log" >&2; die "gnuplot failed"; }
set terminal pngcairo size 1100,900 font "sans,10"
set output "$out_dir/results.png"
set multiplot layout 2,1 title "pgmtls relative to direct TLS to PostgreSQL and to PgBouncer ($(date -u +%Y-%m-%d), ${cores} cores; 1 = the same)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 10
set yrange [0.01:100]
set ytics ("0.01" 0.01, "0.1" 0.1, "0.5" 0.5, "1" 1, "2" 2, "10" 10, "100" 100)
set grid ytics
set xtics scale 0
set key top left
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "#444444"
set title "throughput (TPS, conn/s, MB/s): pgmtls / other, higher is better"
plot "$work/rate.dat" using 2:xtic(1) title "pgmtls / direct TLS" lc rgb "#3b75af", \
     "" using 3 title "pgmtls / PgBouncer" lc rgb "#ef8636"
set title "total server CPU per transaction, connection or MB (PostgreSQL + proxy): pgmtls / other, lower is better"
plot "$work/cpu.dat" using 2:xtic(1) title "pgmtls / direct TLS" lc rgb "#3b75af", \
     "" using 3 title "pgmtls / PgBouncer" lc rgb "#ef8636"
unset multiplot
GP

pg_version=$("$pgbin/postgres" --version)
pgb_version=$(pgbouncer --version | head -1)
ssl_version=$(openssl version)
clang_version=$(clang++ --version | head -1)
pgmtls_version=$("$pgmtls_bin" --version 2>/dev/null | head -1 || true)
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
env_overrides=$(env | grep -E '^(PGMTLS|PGMTLS_NOMETRICS|BENCH_[A-Z_]+)=' | sort | tr '\n' ' ' || true)

cat >"$out_dir/RESULTS.md" <<MD
# pgmtls end-to-end benchmark

Generated by \`$command_line\` on $(date -u '+%Y-%m-%d %H:%M UTC')${env_overrides:+ with \`$env_overrides\`}.
Rerun it to regenerate this file and \`results.png\` completely.

![pgmtls throughput relative to direct TLS and PgBouncer](results.png)

## Machine

| | |
|---|---|
| CPU | $cpu_model, $cores cores ($(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core) |
| kernel | $(uname -sr) |
| PostgreSQL | $pg_version |
| PgBouncer | $pgb_version |
| OpenSSL | $ssl_version |
| pgmtls | commit $commit${pgmtls_version:+, $pgmtls_version}, $clang_version, RelWithDebInfo |
| fork + exec of /bin/true | $spawn_cost (mean of 100) |
| CPU used during the measurements (of $cores cores) | $machine_busy; load average $loadavg_start at the start, $loadavg_end at the end |
${sanitized:+| WARNING | built with AddressSanitizer:$sanitized |}

${busy_warning}
Client, PostgreSQL, PgBouncer and pgmtls share these $cores cores, so every rate here is bounded
by what the client leaves to the server; the CPU figures per transaction or connection are the
better measure of what each server costs. PgBouncer runs one thread, pgmtls $workers workers.
Every new PostgreSQL connection forks a backend; where fork is as slow as the line above says,
that dominates every per-connection figure except PgBouncer's, which reuses pooled server
connections.

## Results

$main_table

Ratios are pgmtls's figure over the other's: above 1 means pgmtls is faster (rates) or costs more
(CPU, memory). "Total server CPU" is PostgreSQL's plus the proxy's.

### pool_mode: transaction

$tx_table

The same pgmtls with \`pool_mode: transaction\` and \`pool_size: $tx_pool_size\` per worker ($((tx_pool_size * cores))
backend connections at most): clients share backend connections between transactions, and a new
client is answered without a backend connection of its own.

### Metrics on vs off

$metrics_table

### Idle connections (VmRSS, KiB)

| | before | with $idle_n idle | after they closed | PostgreSQL backends while idle |
|---|---:|---:|---:|---:|
| PgBouncer | ${R[idle.before.pgbouncer]} | ${R[idle.during.pgbouncer]} | ${R[idle.after.pgbouncer]} | ${R[idle.backends.pgbouncer]} |
| pgmtls | ${R[idle.before.pgmtls]} | ${R[idle.during.pgmtls]} | ${R[idle.after.pgmtls]} | ${R[idle.backends.pgmtls]} |

Each client opens its connection, runs \`SELECT 1\` (so PgBouncer in session mode holds a
server connection for it, as pgmtls does) and stays idle.

### Handshake capacity against the crypto limit

A TLS 1.3 server in a mutual handshake with ECDSA P-256 certificates and X25519 does, at least:

| operation | count | rate (\`openssl speed -seconds $speed_seconds\`, one core) | µs |
|---|---:|---:|---:|
| ECDSA P-256 sign (its CertificateVerify) | 1 | $sign_s /s | $(awk -v r="$sign_s" 'BEGIN { printf "%.1f", 1e6 / r }') |
| ECDSA P-256 verify (the CA's signature on the client certificate, the client's CertificateVerify) | 2 | $verify_s /s | $(awk -v r="$verify_s" 'BEGIN { printf "%.1f", 2e6 / r }') |
| X25519 key generation (its key share; timed by \`pgmtls_handshake_client --x25519-keygen-speed\`) | 1 | $keygen_s /s | $(awk -v r="$keygen_s" 'BEGIN { printf "%.1f", 1e6 / r }') |
| X25519 derivation (the shared secret) | 1 | $x25519_s /s | $(awk -v r="$x25519_s" 'BEGIN { printf "%.1f", 1e6 / r }') |
| **total** | | | **$crypto_us** |

So one core can complete at most 1e6 / $crypto_us = **$limit_core handshakes/s**, and $cores
cores $((limit_core * cores)) /s, if the server did nothing but public-key crypto (the CA's own
self-signature is not verified; hashing, HKDF, AES-GCM, certificate parsing and the network are
extra). pgmtls's capacity is $cores cores divided by its CPU time per handshake, measured by the
handshake client from /proc (its client threads run on the same cores, so the rate it reaches is
lower):

| pgmtls | CPU µs per connection | capacity on $cores cores | % of the crypto limit |
|---|---:|---:|---:|
| handshake only | ${R[hstls.proxycpu.pgmtls]} | ${R[hstls.capacity.pgmtls]} /s | ${R[hstls.pct.pgmtls]} % |
| handshake + startup + ReadyForQuery | ${R[hsstartup.proxycpu.pgmtls]} | ${R[hsstartup.capacity.pgmtls]} /s | ${R[hsstartup.pct.pgmtls]} % |
| handshake only, session tickets on (one made per handshake) | ${R[hstls.proxycpu.pgmtls_tx]} | ${R[hstls.capacity.pgmtls_tx]} /s | ${R[hstls.pct.pgmtls_tx]} % |
| handshake only, resuming a session ticket (${R[hsresume.resumed.pgmtls_tx]} % resumed) | ${R[hsresume.proxycpu.pgmtls_tx]} | ${R[hsresume.capacity.pgmtls_tx]} /s | – |

How much of that is OpenSSL's own: the server's side of the same full handshake in one process,
client and server over a BIO pair, no sockets, no event loop, no proxy (\`pgmtls_auth_bench\`,
bench/auth_bench.cpp; server time only, median of 5 interleaved runs):

| server SSL_CTX | µs per full handshake | % of the crypto limit |
|---|---:|---:|
| OpenSSL alone (certificate, key, CA bundle, client certificate required, no tickets) | ${R[inproc.BareOpenSsl]} | ${R[inproc.pct.BareOpenSsl]} % |
| pgmtls's (defaults: no tickets) | ${R[inproc.Pgmtls]} | ${R[inproc.pct.Pgmtls]} % |
| pgmtls's with session tickets | ${R[inproc.PgmtlsTickets]} | ${R[inproc.pct.PgmtlsTickets]} % |

For comparison, PostgreSQL's direct TLS uses P-256 for the key exchange (ECDH P-256:
$p256dh_s /s), and its figure includes forking a backend for every connection.

### Where pgmtls's CPU goes

Sampled with \`perf record -F 999 -p\` on the session-pooling pgmtls during a separate run of each
load (the figures above were taken without perf attached). What the profiles mean and what would
close each gap to the targets: [docs/PERFORMANCE.md](../docs/PERFORMANCE.md).
$profile_md
## How it was measured

- **Setup**: a fresh PKI (ECDSA P-256 CA, server certificate for localhost and 127.0.0.1, client
  certificate CN=bench), PostgreSQL 15 (initdb, fsync off, \`max_connections\` $pg_max_connections,
  pgbench scale $scale, \`ssl=on\`, \`hostssl all all 127.0.0.1/32 cert\` and \`host all all
  127.0.0.1/32 trust\`), PgBouncer (session mode, \`auth_type = cert\`, \`client_tls_sslmode =
  verify-full\`, plain to PostgreSQL), pgmtls (\`workers: $workers\`, \`hostssl all all 127.0.0.1/32
  cert\`, CN = role, plain trust backend, \`pool_mode: session\` like PgBouncer's,
  \`log.level: warn\`), and the same pgmtls built with
  \`-DPGMTLS_METRICS=OFF\`. All on 127.0.0.1; every TLS client uses \`sslmode=verify-full\` with
  the client certificate.
- **Key exchange**: PostgreSQL 15's \`ssl_ecdh_curve\` names one curve and cannot be X25519, so
  its server offers P-256 only; libpq sends an X25519 key share first and would pay a
  HelloRetryRequest on every direct TLS handshake. The direct-TLS clients therefore run with an
  \`OPENSSL_CONF\` that sets \`Groups = P-256\`; PgBouncer and pgmtls get libpq's defaults.
  Negotiated (\`openssl s_client\` with the same settings): direct TLS ${tls_params[tls]};
  PgBouncer ${tls_params[pgbouncer]}; pgmtls ${tls_params[pgmtls]}.
- **select-only**: \`pgbench -n -S -M prepared -c 16|64 -j $jobs -T $duration\`, TPS without the
  initial connection time. **New connection per transaction**: \`pgbench -n -S -C -c 4 -j $jobs -T
  $duration\`, TPS including reconnection (one connection per transaction).
- **CPU**: utime + stime from /proc/PID/stat, before and after each run. PostgreSQL: the
  postmaster with cutime + cstime (backends that exited) plus every live child. PgBouncer and
  pgmtls: the process (all threads). Divided by the transactions or connections pgbench reports.
- **COPY**: \`COPY (SELECT repeat('x', 999) FROM generate_series(1, $rows)) TO STDOUT\` through
  psql to /dev/null, and \`COPY t FROM STDIN\` (unlogged table) of the same $copy_mb MB (10^6 bytes)
  from a file, timed around psql.
- **Idle connections**: \`pgmtls_idle_clients\` (bench/idle_clients.cpp, libpq) opens $idle_n
  connections, runs one query on each and holds them; VmRSS of the proxy before and 2 s after all
  are idle, divided by $idle_n.
- **Handshakes**: \`pgmtls_handshake_client\` (bench/handshake_client.cpp, OpenSSL): one SSL_CTX,
  no session cache or tickets, $hs_threads threads for $hs_duration s, each connection TCP
  connect, SSLRequest, 'S', full TLS handshake with the client certificate, then ("+ startup")
  StartupMessage up to ReadyForQuery and Terminate, then close_notify and wait for the server's
  close. PgBouncer and pgmtls (both in session pooling mode) serve the startup from their pools,
  so their PostgreSQL CPU per connection is nearly zero. "Session tickets on" and "resuming a
  session ticket" run against the transaction-pooling pgmtls, the one configured with
  \`session_ticket_lifetime: 1h\` (tickets are off by default): the handshake-only loop, then the
  same with \`--resume\`, each thread offering the ticket its previous connection got (TLS 1.3 PSK
  with a fresh X25519 exchange: no certificates, signatures or chain checks).
- **Metrics on vs off**: select-only -c 16 alternately against the two pgmtls binaries,
  $metrics_rounds round(s) of $duration s.
- pgmtls logged $pgmtls_warnings line(s) at warn level or above (connections by result/reason:
  ${pgmtls_reasons:-none}; $pgmtls_other other line(s)). (A client that leaves before its StartupMessage,
  as the handshake-only one does, is logged at info, not counted here.) Its VmRSS at
  the end was $pgmtls_rss_end KiB (PgBouncer: $pgb_rss_end KiB). PostgreSQL logged $pg_errors
  ERROR/FATAL line(s).
MD

say "results ($out_dir/RESULTS.md, $out_dir/results.png)"
printf '%s\n\n%s\n\n%s\n' "$main_table" "$tx_table" "$metrics_table"
