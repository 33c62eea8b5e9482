//! `--database`: the schema model read from a live catalog, with table sizes.

use shadow::check::{self, catalog, CheckConfig, SourceFile};
use tokio_postgres::NoTls;

fn base_url() -> String {
    std::env::var("DUET_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_string())
}

#[test]
fn live_catalog_drives_verdicts() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = format!("duet_check_catalog_{}", std::process::id());
    let admin = rt.block_on(async {
        let (c, conn) =
            tokio_postgres::connect(&format!("{} dbname=postgres", base_url()), NoTls).await?;
        tokio::spawn(conn);
        Ok::<_, tokio_postgres::Error>(c)
    });
    let admin = match admin {
        Ok(c) => c,
        Err(err) => {
            if std::env::var("DUET_REQUIRE_DATABASE").is_ok_and(|v| v == "1") {
                panic!("DUET_REQUIRE_DATABASE=1 but PostgreSQL is unreachable: {err}");
            }
            eprintln!(
                "SKIPPED live_catalog_drives_verdicts: no PostgreSQL at {} ({err})",
                base_url()
            );
            return;
        }
    };
    rt.block_on(async {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .ok();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .expect("create db");
        let (c, conn) = tokio_postgres::connect(&format!("{} dbname={db}", base_url()), NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        c.batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, email text, name varchar(10));
             INSERT INTO t SELECT g, 'e' || g, 'n' FROM generate_series(1, 5000) g;
             ALTER TABLE t ADD CONSTRAINT t_email_nn CHECK (email IS NOT NULL);
             CREATE INDEX t_name_idx ON t (name);
             ANALYZE t;",
        )
        .await
        .expect("fixture");
    });
    let url = format!("{} dbname={db}", base_url());
    let schema = catalog::read_live_schema(&url).expect("read catalog");
    let table = schema.table("t").expect("t is known");
    assert!(table.stats.is_some_and(|s| s.rows >= 4000.0 && s.bytes > 0));
    assert!(table.has_valid_not_null_check("email"));
    let config = CheckConfig {
        assume_in_transaction: false,
        ..CheckConfig::default()
    };
    let files = vec![SourceFile {
        name: "m.sql".into(),
        text: "ALTER TABLE t ALTER COLUMN email SET NOT NULL;\nALTER TABLE t ALTER COLUMN name TYPE varchar(40);\nALTER TABLE t ALTER COLUMN id TYPE int;".into(),
    }];
    let report = check::check_files(&files, &config, schema).expect("check");
    assert!(
        !report.statements[0].scans_table,
        "valid CHECK read from the catalog"
    );
    assert!(!report.statements[1].rewrites_table, "varchar widening");
    assert!(report.statements[1].locks.contains_key("t_name_idx"));
    assert!(report.statements[2].rewrites_table);
    // 5000 rows: small, so a rewrite is scaled down from high to medium.
    assert_eq!(report.statements[2].risk.name(), "medium");
    rt.block_on(async {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .ok();
    });
}
