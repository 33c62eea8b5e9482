//! Extended protocol: a rewritten Parse keeps the client's parameters (count, numbering, inferred
//! types) and the result shape (names, types), and executes to the same data.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite, Routes};
use rewrite_support::*;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn cases() -> Vec<(&'static str, Params)> {
    vec![
        (
            "INSERT INTO t (id, amount, note) VALUES ($1, 5, $2) RETURNING *",
            vec![Box::new(500i32), Box::new("p".to_string())],
        ),
        (
            "UPDATE t SET note = $1 WHERE id = $2",
            vec![Box::new("q".to_string()), Box::new(2i32)],
        ),
        (
            "DELETE FROM t WHERE id = $1 RETURNING id, note",
            vec![Box::new(3i32)],
        ),
        (
            "INSERT INTO t (id, note) VALUES ($1, $2), ($1 + 1000, $2) ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note RETURNING id, note, amount::text",
            vec![Box::new(1i32), Box::new("r".to_string())],
        ),
        (
            "UPDATE t SET amount = amount * $1::int WHERE id = ANY($2) RETURNING t.amount, $3::text AS tag",
            vec![Box::new(2i32), Box::new(vec![1i32, 4]), Box::new("x".to_string())],
        ),
    ]
}

async fn client(db: &TestDb, schema: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("{} options=--search_path={schema}", db.url()),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    c
}

#[test]
fn prepared_rewrites_keep_parameters_and_result_shape() {
    let Some(db) = TestDb::create("extended") else {
        return;
    };
    let mut raw = db.connect();
    let routes: Routes = shadow_table_routes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ctl = client(&db, "ctl").await;
        let app = client(&db, "app").await;
        for (sql, params) in cases() {
            reset_shadow_table(&mut raw);
            let Ok(Rewrite::Changed { sql: rewritten, .. }) =
                rewrite(sql, &routes, Protocol::Extended)
            else {
                panic!("{sql}: expected a rewrite");
            };
            let original = ctl.prepare(sql).await.expect("prepare original");
            let mirrored = app
                .prepare(&rewritten)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{rewritten}"));
            assert_eq!(original.params(), mirrored.params(), "parameter types of {sql}");
            // Names, types, and the source column (table, attnum) drivers such as JDBC report;
            // the two `t`s have different OIDs, so both map to "t".
            let oids = raw.rows("SELECT 'ctl.t'::regclass::oid, 'app.t'::regclass::oid");
            let table_oids: Vec<u32> = oids[0]
                .iter()
                .map(|v| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0))
                .collect();
            let shape = |s: &tokio_postgres::Statement| {
                s.columns()
                    .iter()
                    .map(|c| {
                        let source = c
                            .table_oid()
                            .map(|o| if table_oids.contains(&o) { "t".to_string() } else { o.to_string() });
                        (c.name().to_string(), c.type_().clone(), source, c.column_id())
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(shape(&original), shape(&mirrored), "result columns of {sql}");
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            let a = ctl.query(&original, &refs).await.expect("run original");
            let b = app.query(&mirrored, &refs).await.expect("run rewritten");
            assert_eq!(a.len(), b.len(), "row count of {sql}");
            let table = "SELECT id, amount, note FROM {}.t ORDER BY id";
            assert_eq!(
                raw.rows(&table.replace("{}", "app")),
                raw.rows(&table.replace("{}", "ctl")),
                "{sql}"
            );
            assert_eq!(
                raw.rows("SELECT id::bigint, amount::numeric, note, created, r, u FROM app.t ORDER BY id"),
                raw.rows("SELECT id, amount, note, created, r, u FROM app.t__duet WHERE NOT __duet_deleted ORDER BY id"),
                "shadow after {sql}"
            );
        }
    });
}
