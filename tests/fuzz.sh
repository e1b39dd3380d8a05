#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan) in build-fuzz/ and runs each
# one, one after another, on a scratch copy of its seed corpus. Prints one line per target and
# exits non-zero if any target found a crash, leak, timeout or sanitizer report; the input that
# did it is kept in build-fuzz/fuzz-artifacts/<target>/ and the full log next to it.
#
#   tests/fuzz.sh [SECONDS] [TARGET...]    SECONDS per target (default 60); TARGET: e.g. message
#                                          (default: every target)
#   BUILD_DIR=... (default build-fuzz/)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-fuzz}
seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  # Every target has a seed folder of its name.
  for seeds in "$repo"/tests/fuzz/corpus/*/; do targets+=("$(basename "$seeds")"); done
fi

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DPGMTLS_FUZZ=ON \
  -DPGMTLS_BUILD_TESTS=OFF -DPGMTLS_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target pgmtls_fuzzers

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
artifacts="$build/fuzz-artifacts"
status=0
summary=()
for name in "${targets[@]}"; do
  binary="$build/tests/fuzz/fuzz_$name"
  seeds="$repo/tests/fuzz/corpus/$name"
  if [[ ! -x $binary || ! -d $seeds ]]; then
    echo "unknown target: $name" >&2
    exit 2
  fi
  mkdir -p "$scratch/$name/corpus" "$artifacts/$name"
  cp "$seeds"/* "$scratch/$name/corpus/"
  log="$artifacts/$name/last.log"
  echo "== fuzz_$name: ${seconds}s"
  # Run from an empty folder, so a relative file name in an input names nothing.
  rc=0
  (cd "$scratch/$name" && "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name/" corpus) >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
  if [[ $rc -eq 0 ]]; then
    result=ok
  else
    status=1
    result="FAILED (rc $rc): $(grep -m1 -oE 'ERROR: [A-Za-z]+: .*|runtime error: .*|invariant failed: .*' \
      "$log" || echo 'see log') -- log and input in $artifacts/$name/"
  fi
  line=$(printf '%-16s runs %-10s execs/s %-8s %-32s %s' "$name" "${runs:-?}" "${speed:-?}" \
    "${cov:-cov: ?}" "$result")
  echo "$line"
  summary+=("$line")
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
