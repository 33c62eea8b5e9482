//! Shadow-column dual-writes (inline) against the real PostgreSQL: the new column always equals
//! the conversion of its source after every rewritten write; unsafe shapes are refused.

mod rewrite_support;

use rewrite_support::*;
use shadow::rewrite::{rewrite, Protocol, Rewrite};
use tokio_postgres::NoTls;

const SETUP: &str = "DROP TABLE IF EXISTS acc; CREATE TABLE acc (id int PRIMARY KEY, amount int, note text, amount__duet bigint);
   INSERT INTO acc SELECT g, g, 'n' FROM generate_series(1, 5) g; UPDATE acc SET amount__duet = amount::bigint * 10;";

const IN_SYNC: &str =
    "SELECT count(*) FROM acc WHERE amount__duet IS DISTINCT FROM amount::bigint * 10";

#[test]
fn shadow_column_stays_in_sync() {
    let Some(db) = TestDb::create("shadow_column") else {
        return;
    };
    let mut c = db.connect();
    let routes = shadow_column_routes();
    let simple = [
        "INSERT INTO acc (id, amount, note) VALUES (10, 7, 'a')",
        "INSERT INTO acc (id, note, amount) VALUES (11, 'b', -3), (12, 'c', NULL)",
        "INSERT INTO acc (id, amount) VALUES (13, '42') ON CONFLICT DO NOTHING RETURNING id, amount",
        "UPDATE acc SET amount = 99, note = 'u' WHERE id = 1",
        "UPDATE acc AS a SET note = 'v', amount = 5 FROM (SELECT 2 AS id) s WHERE a.id = s.id RETURNING a.amount",
        "UPDATE acc SET amount = amount * 2 + 1, note = 'u' WHERE id > 2",
        "UPDATE acc SET note = 'u', amount = (random() * 1000)::int WHERE id < 4",
        "UPDATE acc SET amount = '17', note = 'u' WHERE id = 4",
        "INSERT INTO acc (id, amount, note) VALUES (1, 50, 'a'), (40, 60, 'b') ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount + acc.amount, note = 'u' WHERE acc.id > 0 RETURNING id",
        // INSERT … SELECT: wrapped, each row of the client's SELECT evaluated once.
        "INSERT INTO acc (id, amount, note) SELECT 100 + g, g * 3, 'sel' || g FROM generate_series(1, 4) g",
        "INSERT INTO acc (note, amount, id) SELECT 'r', (random() * 1000)::int, 200 + g FROM generate_series(1, 3) g ORDER BY 1 LIMIT 2 RETURNING id, amount",
        "INSERT INTO acc (id, amount) SELECT id + 300, '7' FROM acc WHERE id <= 2 ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount + 1",
        "INSERT INTO acc AS a (id, amount) SELECT 1, 8 UNION ALL SELECT 400, 9 ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount RETURNING a.id",
    ];
    for sql in simple {
        c.run(SETUP);
        let Ok(Rewrite::Changed {
            sql: rewritten,
            statements,
        }) = rewrite(sql, &routes, Protocol::Simple)
        else {
            panic!("{sql}: expected a rewrite");
        };
        assert_eq!(
            statements[0].command_tag, None,
            "inline rewrites keep the verb"
        );
        let before = c.rows("SELECT count(*) FROM acc");
        let tag = c.run(&rewritten).remove(0).tag;
        assert!(!tag.is_empty());
        assert_eq!(
            c.rows(IN_SYNC),
            vec![vec![Some("0".into())]],
            "{sql}\n{rewritten}"
        );
        assert_ne!(
            c.rows(
                "SELECT count(*) FROM acc WHERE note IN ('a','b','u','v') OR id = 13 OR id >= 100"
            ),
            vec![vec![Some("0".into())]],
            "{sql}: {before:?}"
        );
    }
    assert_eq!(
        rewrite("UPDATE acc SET note = 'x'", &routes, Protocol::Simple),
        Ok(Rewrite::Unchanged),
        "writes that do not assign the source need nothing"
    );
    for refused in [
        "INSERT INTO acc VALUES (20, 1, 'x', 10)",
        "INSERT INTO acc (id, amount) VALUES (21, DEFAULT)",
        "INSERT INTO acc (id, amount) VALUES (22, (random() * 10)::int)",
        "INSERT INTO acc (id, note) VALUES (23, 'no source')",
        "UPDATE acc SET amount = DEFAULT",
        "UPDATE acc SET amount = 1 RETURNING *",
        "INSERT INTO acc (id, amount) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET amount = random()::int",
    ] {
        assert!(
            matches!(rewrite(refused, &routes, Protocol::Simple), Err(ref r) if r.sqlstate == "0A000"),
            "{refused} must be refused"
        );
    }

    // Extended protocol: duplicated parameters are pinned to the source's base type, so the
    // prepared statement's parameter types do not change.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            &format!("host={} port=5432 user=postgres dbname={}", host(), db.name),
            NoTls,
        )
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
            c.run(SETUP);
            let Ok(Rewrite::Changed { sql: rewritten, .. }) =
                rewrite(sql, &routes, Protocol::Extended)
            else {
                panic!("{sql}: expected a rewrite");
            };
            let original = client.prepare(sql).await.expect("prepare original");
            let mirrored = client
                .prepare(&rewritten)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{rewritten}"));
            assert_eq!(original.params(), mirrored.params(), "{sql}");
            let n = client
                .execute(&mirrored, &[&id, &amount])
                .await
                .expect("execute");
            assert_eq!(n, 1);
            assert_eq!(c.rows(IN_SYNC), vec![vec![Some("0".into())]], "{sql}");
            assert_eq!(
                c.rows(&format!("SELECT amount__duet FROM acc WHERE id = {id}")),
                vec![vec![Some((i64::from(amount) * 10).to_string())]]
            );
        }
    });
}
