"""One round of writes of every class through psycopg 3 (extended protocol, server-side binding).

Environment: DSN, TABLE (qualified), BASE and TOUCH (ids), V and N (the text and int columns),
UNREWRITABLE=1 to also run writes duet cannot rewrite (MERGE, COPY FROM … FREEZE), which are
forwarded unchanged and mirrored by the safety net. Ends with two pipelines of writes (one
failing on a duplicate key). Prints one JSON line per statement: what the client was told (rowcount, rows). Exits 77
when psycopg is missing, 1 on any unexpected outcome.
"""

import json
import os
import sys

try:
    import psycopg
except ImportError as err:  # the Rust side turns 77 into a skip (or a failure when required)
    print(f"psycopg missing: {err}", file=sys.stderr)
    sys.exit(77)

dsn = os.environ["DSN"]
t = os.environ["TABLE"]
b = int(os.environ["BASE"])
touch = int(os.environ["TOUCH"])
v = os.environ["V"]
n = os.environ["N"]


def told(cur):
    rows = cur.fetchall() if cur.description else []
    return {"rowcount": cur.rowcount, "rows": [[None if x is None else str(x) for x in r] for r in rows]}


with psycopg.connect(dsn, autocommit=True) as conn:
    if os.environ.get("UNREWRITABLE") == "1":
        # Writes duet cannot rewrite: forwarded unchanged, mirrored by the safety net. What the
        # client is told (row count, or the server's own error) must be the same as direct.
        for sql, params in (
            (f"MERGE INTO {t} AS t USING (VALUES (%s::int8)) AS s(id) ON t.id = s.id WHEN MATCHED THEN UPDATE SET {v} = t.{v} || '+m' WHEN NOT MATCHED THEN INSERT (id, {v}, {n}) VALUES (s.id, 'merged', 5)", (touch,)),
            (f"MERGE INTO {t} AS t USING (VALUES (%s::int8)) AS s(id) ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (id, {v}, {n}) VALUES (s.id, 'merged', 6)", (b + 98,)),
        ):
            cur = conn.execute(sql, params, prepare=True)
            print(json.dumps({"merge": cur.rowcount}))
        try:
            with conn.cursor().copy(f"COPY {t} (id, {v}, {n}) FROM STDIN (FREEZE)") as copy:
                copy.write_row((b + 99, "copied", 1))
            print(json.dumps({"copy_freeze": "ok"}))
        except psycopg.Error as err:
            print(json.dumps({"copy_freeze": err.sqlstate}))
        with conn.transaction():
            with conn.cursor().copy(f"COPY {t} (id, {v}, {n}) FROM STDIN") as copy:
                copy.write_row((b + 97, "copied", 1))
        print(json.dumps({"copy": "ok"}))

    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, %s, %s)",
            [(b + 1, "a", 1), (b + 2, "b", 2), (b + 3, "c", 3)],
        )
        print(json.dumps({"executemany": cur.rowcount}))
    steps = [
        (f"INSERT INTO {t} (id, {v}, {n}) SELECT %s::int8 + g, 'sel' || g, g FROM generate_series(1, 3) g", (b + 10,)),
        (f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET {v} = excluded.{v}", (b + 1, "a2", 11)),
        (f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, %s, %s) RETURNING id::text, {v}", (b + 20, "ret", 20)),
        (f"UPDATE {t} SET {n} = {n} + %s WHERE id BETWEEN %s AND %s", (100, b + 11, b + 13)),
        (f"UPDATE {t} AS t SET {v} = s.v FROM (VALUES (%s::int8, %s::text)) AS s(id, v) WHERE t.id = s.id RETURNING t.id::text, t.{v}", (b + 2, "from")),
        (f"UPDATE {t} SET {v} = {v} || %s WHERE id = %s", ("+", touch)),
        (f"DELETE FROM {t} AS t USING (VALUES (%s::int8)) AS d(id) WHERE t.id = d.id RETURNING t.id::text", (b + 12,)),
        (f"DELETE FROM {t} WHERE id = %s", (b + 3,)),
    ]
    for sql, params in steps:
        cur = conn.execute(sql, params, prepare=True)
        print(json.dumps(told(cur)))
    # COPY FROM STDIN (simple protocol): dual-written through duet like the INSERTs above.
    with conn.cursor() as cur:
        with cur.copy(f"COPY {t} (id, {v}, {n}) FROM STDIN") as copy:
            for i in range(3):
                copy.write_row((b + 40 + i, f"copy{i}", 40 + i))
        print(json.dumps({"copy": cur.rowcount, "status": cur.statusmessage}))
    # A transaction with several writes, committed.
    with conn.transaction():
        conn.execute(f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, 'tx', 1)", (b + 30,))
        conn.execute(f"UPDATE {t} SET {n} = 7 WHERE id = %s", (b + 30,))
    # A rolled-back one leaves nothing.
    try:
        with conn.transaction():
            conn.execute(f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, 'gone', 1)", (b + 31,))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    # Pipeline mode: several writes in flight before one Sync. One fails (a duplicate key), and
    # what the server skipped or rolled back with it must be the same through duet as direct.
    try:
        with conn.pipeline():
            conn.execute(f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, 'piped', 1)", (b + 50,))
            conn.execute(f"UPDATE {t} SET {n} = {n} + 1 WHERE id = %s", (b + 50,))
            conn.execute(f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, 'dup', 1)", (b + 50,))
            conn.execute(f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, 'after', 1)", (b + 51,))
        print(json.dumps({"pipeline": "no error"}))
    except psycopg.errors.UniqueViolation:
        print(json.dumps({"pipeline": "23505"}))
    with conn.pipeline():
        for i in range(5):
            conn.execute(f"INSERT INTO {t} (id, {v}, {n}) VALUES (%s, 'piped ok', %s)", (b + 52 + i, i))
        conn.execute(f"UPDATE {t} SET {v} = {v} || '+' WHERE id BETWEEN %s AND %s", (b + 52, b + 54))
        conn.execute(f"DELETE FROM {t} WHERE id = %s", (b + 53,))
    print(json.dumps({"pipeline": "ok"}))
    print("ALL OK")
