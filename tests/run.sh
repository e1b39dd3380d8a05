#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs the dependencies, then builds and
# runs every test twice through ctest — an optimised build, and an AddressSanitizer +
# UndefinedBehaviorSanitizer build (LeakSanitizer included) whose pgmtls binary the integration
# tests drive — then the multi-worker integration suites once more against a ThreadSanitizer build
# of pgmtls, then a short run of every libFuzzer target (tests/fuzz.sh). Exits non-zero on any
# failure.
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
run_suite() {  # name build-dir extra-cmake-args...
  local name=$1 dir=$2
  shift 2
  echo "== $name: build in $dir"
  cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DPGMTLS_BUILD_TESTS=ON "$@"
  cmake --build "$dir" -j"$jobs"
  echo "== $name: ctest"
  # ctest prints its summary ("100% tests passed, 0 tests failed out of N") and exits non-zero
  # on any failure.
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" || status=1
}

run_suite "release" "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMTLS_BUILD_BENCH=ON
if [ "${SANITIZE:-1}" != 0 ]; then
  run_suite "asan+ubsan" "$build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMTLS_SANITIZE=ON \
    -DPGMTLS_BUILD_BENCH=OFF
fi

# Data races: pgmtls built with ThreadSanitizer (only the binary: the tests drive it as a separate
# process), under the suites that run many sessions on several workers at once, reloads, cancels
# across workers and pooled backends among them. halt_on_error: the first race kills pgmtls, and
# the test that was running fails ("pgmtls died", or its exit code at the end).
tsan_suites='^(ProxyRobustnessTest|HostileClientsTest|CancelTest|PeerCancelTest|LifecycleTest|LifecycleScaleTest|PoolTest|TransactionPoolTest|LimitsTest|AdminTest|MetricsTest|ResumptionTest)\.'
if [ "${SANITIZE:-1}" != 0 ]; then
  echo "== tsan: pgmtls in $build-tsan, the multi-worker integration suites"
  cmake -S "$repo" -B "$build-tsan" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMTLS_TSAN=ON -DPGMTLS_BUILD_TESTS=OFF \
    -DPGMTLS_BUILD_BENCH=OFF
  cmake --build "$build-tsan" -j"$jobs" --target pgmtls
  PGMTLS_BINARY="$build-tsan/proxy/pgmtls" PGMTLS_SANITIZED=1 \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest --test-dir "$build" --output-on-failure -j"$jobs" -R "$tsan_suites" || status=1
fi

fuzz_seconds=${FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" != 0 ]; then
  echo "== fuzz: every target for ${fuzz_seconds}s"
  BUILD_DIR="$build-fuzz" bash "$repo/tests/fuzz.sh" "$fuzz_seconds" || status=1
fi

echo "tests/run.sh: $(($(date +%s) - start)) s, exit $status"
exit "$status"
