"""A realistic psycopg 3 application session, run through duet by the e2e suite.

Usage: DUET_DSN=... DIRECT_DSN=... python3 psycopg_session.py

Exercises server-side parameter binding, prepared statements, executemany, pipeline mode, COPY in
both directions, transactions (commit, rollback, savepoints), LISTEN/NOTIFY between two
connections, and errors whose diagnostics must equal what the server gives directly. Prints one
line per step and "ALL OK" at the end; any failure raises (exit 1). Exit 77 when psycopg is not
installed (the Rust test decides whether that is a skip or a failure).
"""

import os
import sys

try:
    import psycopg
    from psycopg import errors, sql
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"psycopg is not importable: {exc}", file=sys.stderr)
    sys.exit(77)


def step(name):
    print(f"ok: {name}", flush=True)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def diag_of(exc):
    d = exc.diag
    return {
        "sqlstate": d.sqlstate,
        "severity": d.severity_nonlocalized,
        "message": d.message_primary,
        "detail": d.message_detail,
        "hint": d.message_hint,
        "position": d.statement_position,
        "context": d.context,
        "schema": d.schema_name,
        "table": d.table_name,
        "column": d.column_name,
        "constraint": d.constraint_name,
    }


def failing(conn, query, params=None):
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
    except psycopg.Error as exc:
        conn.rollback()
        return type(exc), diag_of(exc)
    raise AssertionError(f"{query!r} should have failed")


def main():
    dsn = os.environ["DUET_DSN"]
    direct_dsn = os.environ["DIRECT_DSN"]

    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, "
            "amount numeric(12,2) NOT NULL CHECK (amount >= 0), tags text[], created date)"
        )
        conn.commit()
        step("connect and DDL")

        # Server-side binding: parameters travel in Bind, not interpolated into the text.
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO orders (customer, amount, tags, created) VALUES (%s, %s, %s, %s) RETURNING id",
                ("O'Brien; DROP TABLE orders", 12.5, ["a", "b"], "2024-02-29"),
            )
            first_id = cur.fetchone()[0]
            cur.execute("SELECT customer, amount, tags, created::text FROM orders WHERE id = %s", (first_id,))
            row = cur.fetchone()
            check(row[0] == "O'Brien; DROP TABLE orders", row)
            check(str(row[1]) == "12.50" and row[2] == ["a", "b"] and row[3] == "2024-02-29", row)
        conn.commit()
        step("server-side binding")

        # Prepared statements: the same query executed often gets prepared server side.
        with conn.cursor() as cur:
            for i in range(20):
                cur.execute("SELECT %s::int * 3", (i,), prepare=True)
                check(cur.fetchone()[0] == i * 3, "prepared result")
        step("prepared statements")

        # executemany
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO orders (customer, amount) VALUES (%s, %s)",
                [(f"customer {i}", i) for i in range(1, 501)],
            )
            cur.execute("SELECT count(*), sum(amount) FROM orders WHERE customer LIKE 'customer %%'")
            count, total = cur.fetchone()
            check(count == 500 and total == sum(range(1, 501)), (count, total))
        conn.commit()
        step("executemany")

        # Pipeline mode: many statements in flight, including one that fails.
        with conn.pipeline():
            cursors = []
            for i in range(50):
                cur = conn.cursor()
                cur.execute("SELECT %s::int + 1000", (i,))
                cursors.append(cur)
            results = [c.fetchone()[0] for c in cursors]
        check(results == [i + 1000 for i in range(50)], results)
        try:
            with conn.pipeline() as pipe:
                conn.execute("INSERT INTO orders (customer, amount) VALUES ('pipe ok', 1)")
                conn.execute("INSERT INTO orders (customer, amount) VALUES ('pipe bad', -1)")
                conn.execute("INSERT INTO orders (customer, amount) VALUES ('pipe skipped', 1)")
                pipe.sync()
            raise AssertionError("the pipeline with a failing statement should raise")
        except errors.CheckViolation:
            pass
        conn.rollback()
        cnt = conn.execute("SELECT count(*) FROM orders WHERE customer LIKE 'pipe %'").fetchone()[0]
        check(cnt == 0, f"pipeline rows after failure: {cnt}")
        step("pipeline mode")

        # COPY in and out (text and binary via psycopg's adapters).
        with conn.cursor() as cur:
            with cur.copy("COPY orders (customer, amount, tags) FROM STDIN") as copy:
                for i in range(3000):
                    copy.write_row((f"copied {i}\ttab", i, [f"t{i}", None]))
            cur.execute("SELECT count(*) FROM orders WHERE customer LIKE 'copied %%'")
            check(cur.fetchone()[0] == 3000, "copy in count")
            rows = []
            with cur.copy("COPY (SELECT customer, amount FROM orders WHERE customer LIKE 'copied %%' ORDER BY amount) TO STDOUT") as copy:
                for row in copy.rows():
                    rows.append(row)
            check(len(rows) == 3000 and rows[5] == ("copied 5\ttab", "5.00"), rows[:6])
            with cur.copy("COPY orders (customer, amount) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "numeric"])
                for i in range(100):
                    copy.write_row((f"binary {i}", i))
            cur.execute("SELECT count(*) FROM orders WHERE customer LIKE 'binary %%'")
            check(cur.fetchone()[0] == 100, "binary copy count")
        conn.commit()
        step("COPY")

        # Transactions: context manager commit, rollback on exception, savepoints.
        with conn.transaction():
            conn.execute("INSERT INTO orders (customer, amount) VALUES ('tx kept', 1)")
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO orders (customer, amount) VALUES ('tx savepoint', 1)")
                    raise RuntimeError("roll back the savepoint")
            except RuntimeError:
                pass
        try:
            with conn.transaction():
                conn.execute("INSERT INTO orders (customer, amount) VALUES ('tx lost', 1)")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        names = [r[0] for r in conn.execute("SELECT customer FROM orders WHERE customer LIKE 'tx %' ORDER BY 1")]
        check(names == ["tx kept"], names)
        conn.commit()
        step("transactions")

        # Errors: same class and diagnostics as a direct connection.
        with psycopg.connect(direct_dsn) as direct:
            for query, params, expected in [
                ("INSERT INTO orders (id, customer, amount) VALUES (%s, 'dup', 1)", (first_id,), errors.UniqueViolation),
                ("INSERT INTO orders (id, customer, amount) VALUES (999999, %s, %s)", ("neg", -5), errors.CheckViolation),
                ("SELECT custmer FROM orders", None, errors.UndefinedColumn),
                ("SELECT %s::int", ("nope",), errors.InvalidTextRepresentation),
                ("SELECT 1/0", None, errors.DivisionByZero),
            ]:
                via_duet = failing(conn, query, params)
                via_direct = failing(direct, query, params)
                check(via_duet[0] is expected, f"{query}: {via_duet[0]} is not {expected}")
                check(via_duet == via_direct, f"{query}: through duet {via_duet} != direct {via_direct}")
        step("errors and diagnostics")

        # Notifications between two connections through duet.
        with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as notifier:
            listener.execute("LISTEN orders_changed")
            notifier_pid = notifier.info.backend_pid
            notifier.execute("NOTIFY orders_changed, 'order 1'")
            notifier.execute("SELECT pg_notify('orders_changed', %s)", ("order ✓ 2",))
            got = []
            for notify in listener.notifies(timeout=20, stop_after=2):
                got.append((notify.channel, notify.payload, notify.pid))
            check(
                got == [("orders_changed", "order 1", notifier_pid), ("orders_changed", "order ✓ 2", notifier_pid)],
                got,
            )
        step("notifications")

        # Notices reach the client's handler.
        notices = []
        conn.add_notice_handler(lambda diag: notices.append((diag.severity, diag.message_primary)))
        conn.execute("DO $$ BEGIN RAISE NOTICE 'psycopg notice %', 1; END $$")
        check(notices == [("NOTICE", "psycopg notice 1")], notices)
        step("notices")

        # ParameterStatus mid-session (SET of a reported setting) and BackendKeyData's pid.
        conn.execute("SET application_name = 'psycopg-renamed'")
        conn.commit()
        check(conn.info.parameter_status("application_name") == "psycopg-renamed",
              conn.info.parameter_status("application_name"))
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        check(conn.info.backend_pid == pid, (conn.info.backend_pid, pid))
        conn.commit()
        step("parameter status and backend pid")

        # Identifiers composed client side, a server-side cursor (named portal, fetched in batches).
        with conn.cursor(name="big_cursor") as cur:
            cur.itersize = 100
            cur.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(sql.Identifier("orders")))
            ids = [r[0] for r in cur]
            check(len(ids) == 1 + 500 + 3000 + 100 + 1 and ids == sorted(ids), len(ids))
        conn.commit()
        step("server-side cursor")

    print("ALL OK", flush=True)


if __name__ == "__main__":
    main()
