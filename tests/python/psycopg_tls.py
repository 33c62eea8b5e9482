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
libpq = psycopg.pq.version()
if libpq >= 170000:
    # Direct TLS (PostgreSQL 17+ clients): TLS from the first byte, ALPN "postgresql".
    with psycopg.connect(dsn + " sslmode=require sslnegotiation=direct") as conn:
        assert conn.info.pgconn.ssl_in_use, "sslnegotiation=direct is not encrypted"
        assert conn.execute("SELECT 'direct'").fetchone()[0] == "direct"
    print("direct TLS OK")
else:
    print(f"libpq {libpq} predates sslnegotiation=direct; not tried")
if libpq >= 180000:
    # A protocol 3.2 client in front of an older server: negotiated down, session works.
    with psycopg.connect(dsn + " sslmode=require max_protocol_version=latest") as conn:
        assert conn.execute("SELECT 'negotiated'").fetchone()[0] == "negotiated"
    print("protocol negotiation OK")
print("TLS OK")
