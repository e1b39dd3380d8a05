#!/usr/bin/env bash
# psql through pgmtls: a query, a prepared statement, \copy in and out, and a cancel (psql sends
# one when it gets SIGINT during a query, as on Ctrl-C).
#
# Usage: psql_client.sh CONNINFO. Prints one "<step> ok ..." line per step and exits 0, or prints
# what went wrong and exits 1. Run by tests/integration/clients_test.cpp.
set -euo pipefail

conn=$1
work=$(mktemp -d /tmp/pgmtls-psql-client.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "psql client: $*" >&2
  exit 1
}
run_psql() { timeout 30 psql "$conn" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

user=$(run_psql -c "SELECT current_user") || fail "query failed"
echo "query ok user=$user"

# Several -c options run in one session, so the statement prepared by the first is there.
answer=$(run_psql -c "PREPARE twice(int) AS SELECT \$1 * 2" -c "EXECUTE twice(21)") ||
  fail "prepared statement failed"
[ "$answer" = 42 ] || fail "EXECUTE twice(21) gave '$answer'"
echo "prepared ok"

for i in $(seq 0 999); do printf '%s\tline %s\n' "$i" "$i"; done >"$work/in.tsv"
count=$(run_psql -c "CREATE TEMP TABLE lines (n int, t text)" \
  -c "\\copy lines FROM '$work/in.tsv'" \
  -c "\\copy lines TO '$work/out.tsv'" \
  -c "SELECT count(*) || ' ' || sum(n) FROM lines") || fail "\\copy failed"
[ "$count" = "1000 499500" ] || fail "after \\copy in: '$count'"
cmp -s "$work/in.tsv" "$work/out.tsv" || fail "\\copy out differs from what went in"
echo "copy ok rows=1000"

# A long query, cancelled by SIGINT once it runs.
timeout 60 psql "$conn" -X -q -At -c "SELECT 'cancel-me', pg_sleep(30)" >"$work/cancel.out" 2>&1 &
pid=$!
for _ in $(seq 300); do
  running=$(run_psql -c "SELECT count(*) FROM pg_stat_activity
                         WHERE query LIKE 'SELECT ''cancel-me''%' AND state = 'active'") ||
    fail "cannot watch the query to cancel"
  [ "$running" = 1 ] && break
  sleep 0.05
done
[ "$running" = 1 ] || fail "the query to cancel never started"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
grep -q "canceling statement due to user request" "$work/cancel.out" ||
  fail "psql (exit $rc) was not cancelled: $(cat "$work/cancel.out")"
echo "cancel ok"
