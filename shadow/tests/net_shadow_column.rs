//! Shadow-column mirroring by the safety net against the real PostgreSQL: whatever a write looks
//! like — positional, `DEFAULT`, volatile expressions, `ON CONFLICT`, `RETURNING *`, `COPY`,
//! `MERGE`, a prepared statement — the rewriter forwards it unchanged and the net's `BEFORE`
//! trigger leaves the new column equal to the conversion of its source, with the parameter types
//! and results of the statement as written.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite};
use rewrite_support::*;
use tokio_postgres::NoTls;

const SETUP: &str = "DROP TABLE IF EXISTS acc; CREATE TABLE acc (id int PRIMARY KEY, amount int DEFAULT 3, note text, amount__duet bigint);
   INSERT INTO acc SELECT g, g, 'n' FROM generate_series(1, 5) g; UPDATE acc SET amount__duet = amount::bigint * 10;";

const IN_SYNC: &str =
    "SELECT count(*) FROM acc WHERE amount__duet IS DISTINCT FROM amount::bigint * 10";

/// SETUP, then the net of the shadow-column route on `acc`.
fn netted(c: &mut RawClient) {
    c.run(SETUP);
    install_net(c, &shadow_column_routes());
}

#[test]
fn shadow_column_writes_pass_and_the_net_keeps_the_column_in_sync() {
    let Some(db) = TestDb::create("shadow_column") else {
        return;
    };
    let mut c = db.connect();
    let routes = shadow_column_routes();
    let writes = [
        "INSERT INTO acc (id, amount, note) VALUES (10, 7, 'a')",
        "INSERT INTO acc (id, note, amount) VALUES (11, 'b', -3), (12, 'c', NULL)",
        "INSERT INTO acc (id, amount) VALUES (13, '42') ON CONFLICT DO NOTHING RETURNING id, amount",
        "UPDATE acc SET amount = 99, note = 'u' WHERE id = 1",
        "UPDATE acc AS a SET note = 'v', amount = 5 FROM (SELECT 2 AS id) s WHERE a.id = s.id RETURNING a.amount",
        "UPDATE acc SET amount = amount * 2 + 1, note = 'u' WHERE id > 2",
        "UPDATE acc SET note = 'u', amount = (random() * 1000)::int WHERE id < 4",
        "INSERT INTO acc (id, amount, note) VALUES (1, 50, 'a'), (40, 60, 'b') ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount + acc.amount, note = 'u' WHERE acc.id > 0 RETURNING id",
        "INSERT INTO acc (id, amount, note) SELECT 100 + g, g * 3, 'sel' || g FROM generate_series(1, 4) g",
        "INSERT INTO acc (note, amount, id) SELECT 'r', (random() * 1000)::int, 200 + g FROM generate_series(1, 3) g ORDER BY 1 LIMIT 2 RETURNING id, amount",
        // Shapes the inline rewrite used to refuse.
        "INSERT INTO acc VALUES (20, 1, 'x', 10)",
        "INSERT INTO acc (id, amount) VALUES (21, DEFAULT)",
        "INSERT INTO acc (id, amount) VALUES (22, (random() * 10)::int)",
        "INSERT INTO acc (id, note) VALUES (23, 'source left to its default')",
        "UPDATE acc SET amount = DEFAULT WHERE id = 2",
        "UPDATE acc SET amount = 1 WHERE id = 3 RETURNING *",
        "INSERT INTO acc (id, amount) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET amount = (random() * 100)::int",
        "MERGE INTO acc USING (VALUES (4, 44), (500, 5)) AS s(id, amount) ON acc.id = s.id WHEN MATCHED THEN UPDATE SET amount = s.amount WHEN NOT MATCHED THEN INSERT (id, amount) VALUES (s.id, s.amount)",
        // A write to the shadow column itself is overridden: nothing changes.
        "UPDATE acc SET amount__duet = 0 WHERE id = 5",
        "COPY acc (id, amount) FROM PROGRAM 'printf \"600\\t6\\n601\\t\\\\\\\\N\\n\"'",
        "COPY acc (id, note) FROM PROGRAM 'printf \"602,default\\n\"' (FORMAT csv)",
    ];
    for sql in writes {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}: forwarded as written"
        );
        netted(&mut c);
        let table = "SELECT string_agg(a::text, ',' ORDER BY id) FROM acc a";
        let before = c.rows(table);
        let tag = c.run(sql).remove(0).tag;
        assert!(!tag.is_empty());
        assert_eq!(c.rows(IN_SYNC), vec![vec![Some("0".into())]], "{sql}");
        if sql.contains("amount__duet") {
            assert_eq!(c.rows(table), before, "{sql}");
        } else {
            assert_ne!(c.rows(table), before, "{sql} wrote nothing");
        }
    }

    // Extended protocol: the statement as written, with its own parameter types.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db.url(), NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        for (sql, id, amount) in [
            (
                "INSERT INTO acc (id, amount, note) VALUES ($1, $2, 'p')",
                30i32,
                8i32,
            ),
            ("UPDATE acc SET amount = $2 WHERE id = $1", 3, 77),
        ] {
            assert_eq!(
                rewrite(sql, &routes, Protocol::Extended),
                Ok(Rewrite::Unchanged)
            );
            netted(&mut c);
            let n = client.execute(sql, &[&id, &amount]).await.expect("execute");
            assert_eq!(n, 1);
            assert_eq!(c.rows(IN_SYNC), vec![vec![Some("0".into())]], "{sql}");
            assert_eq!(
                c.rows(&format!("SELECT amount__duet FROM acc WHERE id = {id}")),
                vec![vec![Some((i64::from(amount) * 10).to_string())]]
            );
        }
    });
}
