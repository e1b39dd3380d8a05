#!/usr/bin/env bash
# pgmtls quickstart on Debian 12: installs the dependencies, builds pgmtls, creates a dev PKI,
# starts a local PostgreSQL 15 on 127.0.0.1 with pgmtls in front of it, and connects through pgmtls
# with psql, sslmode=verify-full and a client certificate.
#
#   deploy/quickstart.sh          set up (idempotent) and connect
#   deploy/quickstart.sh stop     stop the quickstart's pgmtls and PostgreSQL
#
# Everything lives in .quickstart/ at the top of the checkout (override with QUICKSTART_DIR).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${QUICKSTART_DIR:-$repo/.quickstart}
pg_port=${PG_PORT:-15432}
proxy_port=${PGMTLS_PORT:-16432}
pgbin=/usr/lib/postgresql/15/bin
app_role=app_user

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# PostgreSQL refuses to run as root; run its tools as the postgres user then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  if [ -f "$dir/pgmtls.pid" ]; then
    kill "$(cat "$dir/pgmtls.pid")" 2>/dev/null || true
    rm -f "$dir/pgmtls.pid"
  fi
  if [ -f "$dir/pgdata/postmaster.pid" ]; then
    as_pg "$pgbin/pg_ctl" -D "$dir/pgdata" -m fast stop >/dev/null || true
  fi
}

if [ "${1:-}" = "stop" ]; then
  stop
  echo "quickstart stopped"
  exit 0
fi

say "1/6 dependencies (Debian packages)"
bash "$repo/deploy/install-deps.sh"

say "2/6 build"
# Only the pgmtls binary, -O2 without debug info (about 95 s on 2 cores from a clean checkout;
# with debug info it takes a third longer), in its own folder so that the test suite's build/ and
# this one never rebuild each other.
cmake -S "$repo" -B "$dir/build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DPGMTLS_BUILD_TESTS=OFF -DPGMTLS_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir/build" --target pgmtls
pgmtls="$dir/build/proxy/pgmtls"

stop  # a previous run's processes
mkdir -p "$dir/pki"
pki="$dir/pki"

say "3/6 dev PKI in $pki (ECDSA P-256)"
[ -f "$pki/ca/ca.key" ] ||
  "$pgmtls" pki init-ca --ca "$pki/ca" --cn "pgmtls quickstart CA" --days 365
# Issued afresh when missing or within two days of expiring; the CRL is re-signed on every run
# (pgmtls refuses clients once a CRL is past its nextUpdate).
if ! "$pgmtls" pki expiry --warn-days 2 "$pki/server.crt" "$pki/client.crt" >/dev/null 2>&1; then
  "$pgmtls" pki issue-server --ca "$pki/ca" --cn localhost --ip 127.0.0.1 --days 30 \
    --out "$pki/server"
  "$pgmtls" pki issue-client --ca "$pki/ca" --cn "$app_role" --email "$app_role@example.com" \
    --days 30 --out "$pki/client"
fi
"$pgmtls" pki crl --ca "$pki/ca" >/dev/null
"$pgmtls" pki expiry --warn-days 2 "$pki"

say "4/6 PostgreSQL 15 on 127.0.0.1:$pg_port (trust from 127.0.0.1 only: pgmtls is its only client)"
if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
  mkdir -p "$dir/pgdata" "$dir/run"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/pgdata" "$dir/run"
  as_pg "$pgbin/initdb" -D "$dir/pgdata" -U postgres -A reject --auth-host=trust --no-sync \
    >/dev/null
fi
as_pg "$pgbin/pg_ctl" -D "$dir/pgdata" -l "$dir/run/postgres.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/run" start >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qAt \
  -c "SELECT 'role ' || rolname || ' exists' FROM pg_roles WHERE rolname = '$app_role'" \
  -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$app_role') THEN
        CREATE ROLE $app_role LOGIN; END IF; END \$\$"

say "5/6 pgmtls on 127.0.0.1:$proxy_port"
cat >"$dir/pgmtls.yaml" <<YAML
listen: 127.0.0.1:$proxy_port
workers: 2
tls:
  cert_file: pki/server.crt
  key_file: pki/server.key
  ca_file: pki/ca/ca.crt
  crl_file: pki/ca/crl.pem
map: certs
maps:
  certs:
    - { identity: $app_role, role: $app_role }
    - { identity: "/^(.*)@example\\\\.com\$", role: "\\\\1" }
backends:
  default:
    host: 127.0.0.1
    port: $pg_port
YAML
"$pgmtls" check --config "$dir/pgmtls.yaml"
"$pgmtls" run --config "$dir/pgmtls.yaml" </dev/null >"$dir/run/pgmtls.log" 2>&1 &
echo $! >"$dir/pgmtls.pid"
for _ in $(seq 100); do
  grep -q "listening on" "$dir/run/pgmtls.log" && break
  kill -0 "$(cat "$dir/pgmtls.pid")" 2>/dev/null || { cat "$dir/run/pgmtls.log"; exit 1; }
  sleep 0.1
done
grep "listening on" "$dir/run/pgmtls.log"

say "6/6 psql through pgmtls, sslmode=verify-full with a client certificate"
conninfo="host=localhost port=$proxy_port dbname=postgres user=$app_role sslmode=verify-full \
sslrootcert=$pki/ca/ca.crt sslcert=$pki/client.crt sslkey=$pki/client.key"
echo "\$ psql \"$conninfo\" -c 'SELECT current_user, ...'"
psql "$conninfo" -c "SELECT current_user, inet_server_port() AS backend_port, version()"
echo
echo "pgmtls log ($dir/run/pgmtls.log):"
tail -n 2 "$dir/run/pgmtls.log"
cat <<TXT

pgmtls is running (pid $(cat "$dir/pgmtls.pid")) in front of PostgreSQL on 127.0.0.1:$pg_port.
Connect yourself:   psql "$conninfo"
Stop everything:    deploy/quickstart.sh stop
TXT
