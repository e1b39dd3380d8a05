#!/usr/bin/python3
"""One psycopg2 session through pgmtls: a query, a prepared statement, COPY in and out, a cancel.

Usage: psycopg2_client.py CONNINFO. Prints one "<step> ok ..." line per step and exits 0, or
prints what went wrong and exits 1. Run by tests/integration/clients_test.cpp.
"""
import io
import sys
import threading
import time

import psycopg2
import psycopg2.errors


def main(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()

    cur.execute("SELECT current_user, %s::int + 1", (41,))
    user, answer = cur.fetchone()
    assert answer == 42, answer
    print(f"query ok user={user}")

    cur.execute("PREPARE twice(int) AS SELECT $1 * 2")
    cur.execute("EXECUTE twice(%s)", (21,))
    assert cur.fetchone()[0] == 42
    print("prepared ok")

    rows = "".join(f"{i}\tline {i}\n" for i in range(1000))
    cur.execute("CREATE TEMP TABLE lines (n int, t text)")
    cur.copy_expert("COPY lines FROM STDIN", io.StringIO(rows))
    cur.execute("SELECT count(*), sum(n) FROM lines")
    assert cur.fetchone() == (1000, 499500)
    out = io.StringIO()
    cur.copy_expert("COPY lines TO STDOUT", out)
    assert out.getvalue() == rows
    print("copy ok rows=1000")

    # A cancel that arrives before the query runs is a no-op on the server, so keep sending one
    # until the query has been interrupted; the main thread joins before running anything else.
    interrupted = threading.Event()

    def cancel_until_interrupted():
        while not interrupted.wait(0.2):
            conn.cancel()

    canceller = threading.Thread(target=cancel_until_interrupted)
    start = time.monotonic()
    canceller.start()
    try:
        cur.execute("SELECT pg_sleep(60)")
        raise AssertionError("pg_sleep(60) finished: the cancel never arrived")
    except psycopg2.errors.QueryCanceled:
        pass
    finally:
        interrupted.set()
        canceller.join()
    elapsed = time.monotonic() - start
    cur.execute("SELECT 1")
    assert cur.fetchone()[0] == 1
    print(f"cancel ok after {elapsed:.1f} s")
    conn.close()


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as e:  # report any failure as one line for the test's assertion message
        print(f"failed: {type(e).__name__}: {e}")
        sys.exit(1)
