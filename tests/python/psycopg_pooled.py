"""A psycopg 3 application through duet in transaction mode (tests/e2e/transaction_pooling.rs).

Several connections share two pooled backend connections. psycopg prepares statements on its own
after `prepare_threshold` executions and deallocates the least used beyond `prepared_max`; it
pipelines executemany; it uses DECLARE for server-side cursors and COPY for bulk data. Each must
work as on a server of its own, and what cannot move between connections must be refused with
SQLSTATE 0A000. Prints ALL OK at the end; exits 77 when psycopg is missing.
"""

import os
import sys
import threading

try:
    import psycopg
except ImportError as err:  # pragma: no cover - reported by the Rust side
    print(f"psycopg missing: {err}", file=sys.stderr)
    sys.exit(77)

DSN = os.environ["DUET_DSN"]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def worker(no, errors):
    try:
        with psycopg.connect(DSN, prepare_threshold=2, autocommit=True) as conn:
            conn.prepared_max = 2
            conn.execute(f"SET application_name = 'worker-{no}'")
            for i in range(12):
                # Four distinct statements, prepared after two uses, two kept: psycopg
                # deallocates and prepares again as it goes.
                for k in range(4):
                    row = conn.execute(f"SELECT %s::int + {k}, current_setting('application_name')", (i,)).fetchone()
                    check(row == (i + k, f"worker-{no}"), f"worker {no}: {row}")
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO items (worker, n) VALUES (%s, %s)", [(no, n) for n in range(50)])
                with conn.cursor(name=f"c{no}") as named:
                    named.execute("SELECT n FROM items WHERE worker = %s ORDER BY n", (no,))
                    check([r[0] for r in named.fetchmany(10)] == list(range(10)), "server-side cursor")
            with conn.cursor() as cur:
                with cur.copy("COPY items (worker, n) FROM STDIN") as copy:
                    for n in range(50, 60):
                        copy.write_row((no, n))
            count = conn.execute("SELECT count(*) FROM items WHERE worker = %s", (no,)).fetchone()[0]
            check(count == 60, f"worker {no} count {count}")
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO items (worker, n) VALUES (%s, 1000)", (no,))
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            count = conn.execute("SELECT count(*) FROM items WHERE worker = %s", (no,)).fetchone()[0]
            check(count == 60, "rolled back")
    except Exception as err:  # noqa: BLE001 - reported to the main thread
        errors.append(f"worker {no}: {err!r}")


def main():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (worker int, n int, PRIMARY KEY (worker, n))")
        for statement, what in [
            ("LISTEN jobs", "LISTEN"),
            ("SELECT pg_advisory_lock(7)", "advisory"),
        ]:
            try:
                conn.execute(statement)
            except psycopg.errors.FeatureNotSupported as err:
                check(what in str(err), f"{statement}: {err}")
                check(err.diag.message_hint and "session" in err.diag.message_hint, "hint")
            else:
                raise AssertionError(f"{statement} was not refused")
        conn.execute("SET TIME ZONE 'Asia/Tokyo'")
        check(conn.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo", "time zone")
    errors = []
    threads = [threading.Thread(target=worker, args=(no, errors)) for no in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for error in errors:
            print(error)
        sys.exit(1)
    with psycopg.connect(DSN, autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        check(total == 8 * 60, f"total {total}")
    print("ALL OK")


if __name__ == "__main__":
    main()
