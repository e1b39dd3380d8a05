#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the dependencies, builds pgmtls
# and its tests with clang, and runs everything through ctest (unit tests, then integration tests
# against a real PostgreSQL 15 that the tests start themselves). Exits non-zero on any failure.
#
#   tests/run.sh                  (BUILD_DIR=... to build elsewhere; default: build/)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build}
jobs=$(nproc)

start=$(date +%s)
bash "$repo/deploy/install-deps.sh"

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DPGMTLS_BUILD_TESTS=ON -DPGMTLS_BUILD_BENCH=ON
cmake --build "$build" -j"$jobs"
built=$(date +%s)

# ctest prints its summary ("100% tests passed, 0 tests failed out of N") and exits non-zero on
# any failure; set -e turns that into this script's exit code.
status=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" || status=$?
echo "tests/run.sh: build $((built - start)) s, tests $(($(date +%s) - built)) s, exit $status"
exit "$status"
