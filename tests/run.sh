#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the dependencies, then
#   1. builds everything (RelWithDebInfo) and runs every test through ctest;
#   2. builds pgmtls, the unit tests and the component tests (pgmtls code running inside the test
#      process) with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included), runs
#      those tests, then runs the integration tests of step 1 against that sanitized pgmtls binary
#      (the integration tests only drive the binary, so their own harness stays uninstrumented);
#   3. runs the multi-worker integration suites once more against a ThreadSanitizer build of pgmtls;
#   4. runs every libFuzzer target for a short while (tests/fuzz.sh).
# Exits non-zero on any failure. Debug info is line tables only (enough for sanitizer reports and
# backtraces; full -g costs 15% more compile time).
#
#   tests/run.sh        BUILD_DIR=... (default build/; the sanitizer builds go to BUILD_DIR-asan and
#                       BUILD_DIR-tsan, the fuzzers to BUILD_DIR-fuzz)
#                       SANITIZE=0 skips both sanitizer runs for a quicker local run
#                       FUZZ_SECONDS=N runs each fuzz target N s (default 10; 0 skips them;
#                       tests/fuzz.sh alone runs them 60 s each)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build}
jobs=$(nproc)
start=$(date +%s)

bash "$repo/deploy/install-deps.sh"

status=0
configure() {  # build-dir extra-cmake-args...
  local dir=$1
  shift
  cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" "$@"
}
# ctest prints its summary ("100% tests passed, 0 tests failed out of N") and exits non-zero on
# any failure.
run_ctest() { ctest --output-on-failure -j"$jobs" "$@" || status=1; }

echo "== release: build in $build"
configure "$build" -DPGMTLS_BUILD_TESTS=ON -DPGMTLS_BUILD_BENCH=ON
cmake --build "$build" -j"$jobs"
echo "== release: ctest"
run_ctest --test-dir "$build"

if [ "${SANITIZE:-1}" != 0 ]; then
  echo "== asan+ubsan: build in $build-asan"
  configure "$build-asan" -DPGMTLS_SANITIZE=ON -DPGMTLS_BUILD_TESTS=ON -DPGMTLS_BUILD_BENCH=OFF
  cmake --build "$build-asan" -j"$jobs" --target pgmtls pgmtls_unit_tests pgmtls_component_tests
  echo "== asan+ubsan: unit and component tests"
  run_ctest --test-dir "$build-asan" -L '^(unit|component)$'
  echo "== asan+ubsan: integration tests against $build-asan/proxy/pgmtls"
  PGMTLS_BINARY="$build-asan/proxy/pgmtls" PGMTLS_SANITIZED=1 \
    run_ctest --test-dir "$build" -L '^integration$'

  # Data races: pgmtls built with ThreadSanitizer (only the binary), under the suites that run
  # many sessions on several workers at once, reloads, cancels across workers and pooled backends
  # among them. halt_on_error: the first race kills pgmtls, and the test that was running fails
  # ("pgmtls died", or its exit code at the end).
  tsan_suites='^(ProxyRobustnessTest|HostileClientsTest|CancelTest|PeerCancelTest|LifecycleTest|LifecycleScaleTest|PoolTest|TransactionPoolTest|LimitsTest|AdminTest|MetricsTest|ResumptionTest|ListenerTest|TicketKeyTest)\.'
  echo "== tsan: pgmtls in $build-tsan, the multi-worker integration suites"
  configure "$build-tsan" -DPGMTLS_TSAN=ON -DPGMTLS_BUILD_TESTS=OFF -DPGMTLS_BUILD_BENCH=OFF
  cmake --build "$build-tsan" -j"$jobs" --target pgmtls
  PGMTLS_BINARY="$build-tsan/proxy/pgmtls" PGMTLS_SANITIZED=1 \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run_ctest --test-dir "$build" -R "$tsan_suites"
fi

fuzz_seconds=${FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" != 0 ]; then
  echo "== fuzz: every target for ${fuzz_seconds}s"
  BUILD_DIR="$build-fuzz" bash "$repo/tests/fuzz.sh" "$fuzz_seconds" || status=1
fi

echo "tests/run.sh: $(($(date +%s) - start)) s, exit $status"
exit "$status"
