"""psycopg 3 over duet's TLS: sslmode=require is encrypted, sslmode=disable is not.

Usage: DSN=... python3 psycopg_tls.py   (exit 77 when psycopg is not installed)
"""

import os
import sys

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"psycopg is not importable: {exc}", file=sys.stderr)
    sys.exit(77)

dsn = os.environ["DSN"]
with psycopg.connect(dsn + " sslmode=require") as conn:
    assert conn.info.pgconn.ssl_in_use, "sslmode=require is not encrypted"
    assert conn.execute("SELECT 41 + %s", (1,)).fetchone()[0] == 42
with psycopg.connect(dsn + " sslmode=disable") as conn:
    assert not conn.info.pgconn.ssl_in_use, "sslmode=disable is encrypted"
    assert conn.execute("SELECT 'plain'").fetchone()[0] == "plain"
print("TLS OK")
