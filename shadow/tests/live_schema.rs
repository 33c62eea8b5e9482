//! `--database`: the schema model read from a live catalog, with table sizes.

mod migrate_support;

use duet_shadow::check::{self, live_schema, CheckConfig, SourceFile};
use migrate_support::TestDb;

#[test]
fn live_catalog_drives_verdicts() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = rt.block_on(TestDb::create("catalog")) else {
        return;
    };
    rt.block_on(async {
        let c = db.connect().await;
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
    let schema = live_schema::read_live_schema(&db.url()).expect("read catalog");
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
        no_transaction: None,
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
    rt.block_on(db.drop_db());
}
