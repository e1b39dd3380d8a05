#!/usr/bin/env bash
# Installs every build and test dependency of pgmtls from Debian 12 (bookworm) packages.
# Non-interactive and idempotent; run as root (or it re-runs itself with sudo).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E bash "$0" "$@"
fi

packages=(
  # toolchain (clang: GCC 12 miscompiles the coroutines, see CMakeLists.txt)
  build-essential clang cmake ninja-build pkg-config clang-format git ca-certificates
  # libraries (the chosen stack)
  libboost1.81-dev libssl-dev openssl libyaml-cpp-dev libspdlog-dev libfmt-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  # PostgreSQL 15 server, client tools and libpq for the integration tests and the quickstart
  postgresql-15 postgresql-client-15 libpq-dev
  # promtool, which checks the /metrics exposition in the tests (the server is not used)
  prometheus
  # bench/run.sh: the peer it compares against, and its chart
  pgbouncer gnuplot-nox
  # the real-client matrix in the integration tests (tests/integration/clients_test.cpp)
  python3-psycopg2 libpostgresql-jdbc-java openjdk-17-jdk-headless
  # deploy/tests/check_deploy.sh: parses the YAML under deploy/ (Kubernetes manifests)
  python3-yaml
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's postgresql package creates and starts a "main" cluster; pgmtls never uses it, the
  # tests and the quickstart run their own initdb'd servers on free ports.
  # Only promtool is wanted from the prometheus package: stop the server it may have started.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus prometheus-node-exporter 2>/dev/null || true
  fi
fi

# node-postgres for the real-client matrix (tests/integration/clients/node): the versions pinned
# in its package-lock.json, from the npm registry; Debian's Node.js and npm where the machine has
# none.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
node_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/integration/clients/node
if [ ! "$node_dir/node_modules/.package-lock.json" -nt "$node_dir/package-lock.json" ]; then
  echo "install-deps: npm ci in $node_dir"
  npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error
fi
echo "install-deps: done"
