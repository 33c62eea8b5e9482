//! Version-dependent verdicts (ENGINE-FACTS.md "Version deltas"), and schema-dependent ones that
//! the replayed model must get right.

use duet_shadow::check::{self, CheckConfig, EngineVersion};

fn last(sql: &str, major: u32) -> check::StatementReport {
    let config = CheckConfig {
        engine_version: EngineVersion::major(major),
        assume_in_transaction: false,
        ..CheckConfig::default()
    };
    let report = check::check_sql("v.sql", sql, &config).expect("check runs");
    report.statements.last().cloned().expect("a statement")
}

#[test]
fn defaults_rewrite_only_before_11() {
    let sql = "ALTER TABLE t ADD COLUMN x int DEFAULT 0;";
    assert!(last(sql, 11).facts.contains(&"add_column.default"));
    assert!(!last(sql, 11).rewrites_table);
    // 10 is outside the modelled range; 11 is the first with fast defaults.
    let volatile = last("ALTER TABLE t ADD COLUMN x float8 DEFAULT random();", 15);
    assert!(volatile.rewrites_table && volatile.scans_table && volatile.blocks_reads);
}

#[test]
fn set_not_null_uses_a_valid_check_from_12() {
    let setup =
        "CREATE TABLE t (a int);\nALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL);\n";
    let stmt = "ALTER TABLE t ALTER COLUMN a SET NOT NULL;";
    assert!(!last(&format!("{setup}{stmt}"), 12).scans_table);
    assert!(last(&format!("{setup}{stmt}"), 11).scans_table);
    let not_valid = "CREATE TABLE t (a int);\nALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;\n";
    assert!(last(&format!("{not_valid}{stmt}"), 15).scans_table);
    let validated = format!("{not_valid}ALTER TABLE t VALIDATE CONSTRAINT a_nn;\n{stmt}");
    assert!(!last(&validated, 15).scans_table);
}

#[test]
fn timestamptz_is_free_from_12_under_utc() {
    let sql = "CREATE TABLE t (at timestamp);\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;";
    let under = |major: u32, utc: bool| {
        let config = CheckConfig {
            engine_version: EngineVersion::major(major),
            assume_in_transaction: false,
            session_time_zone_utc: utc,
            ..CheckConfig::default()
        };
        let report = check::check_sql("v.sql", sql, &config).expect("check runs");
        report.statements.last().cloned().expect("a statement")
    };
    assert!(!under(12, true).rewrites_table);
    assert!(under(11, true).rewrites_table);
    // duet cannot see the runner's TimeZone: by default it assumes the rewrite, and says why.
    let unknown = last(sql, 15);
    assert!(unknown.rewrites_table);
    assert!(
        unknown.notes.iter().any(|n| n.contains("TimeZone")),
        "{unknown:#?}"
    );
    // Under UTC an index on the column is still rebuilt: a scan, not a rewrite.
    let indexed = "CREATE TABLE t (at timestamp);\nCREATE INDEX t_at_idx ON t (at);\nCOMMIT;\nALTER TABLE t ALTER COLUMN at TYPE timestamptz;";
    let config = CheckConfig {
        assume_in_transaction: false,
        session_time_zone_utc: true,
        ..CheckConfig::default()
    };
    let report = check::check_sql("v.sql", indexed, &config).expect("check runs");
    let s = report.statements.last().expect("a statement");
    assert!(!s.rewrites_table && s.scans_table, "{s:#?}");
}

#[test]
fn varchar_widening_is_free_and_shrinking_is_not() {
    let base = "CREATE TABLE t (name varchar(10));\n";
    assert!(
        !last(
            &format!("{base}ALTER TABLE t ALTER COLUMN name TYPE varchar(20);"),
            15
        )
        .rewrites_table
    );
    assert!(
        last(
            &format!("{base}ALTER TABLE t ALTER COLUMN name TYPE varchar(5);"),
            15
        )
        .rewrites_table
    );
    assert!(
        !last(
            &format!("{base}ALTER TABLE t ALTER COLUMN name TYPE text;"),
            15
        )
        .rewrites_table
    );
}

#[test]
fn attach_partition_lock_changed_in_12() {
    let sql = "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (10);";
    assert_eq!(
        last(sql, 11).locks.get("pt").map(|l| l.name()),
        Some("ACCESS EXCLUSIVE")
    );
    assert_eq!(
        last(sql, 12).locks.get("pt").map(|l| l.name()),
        Some("SHARE UPDATE EXCLUSIVE")
    );
}

#[test]
fn virtual_generated_columns_from_18() {
    let sql = "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2) VIRTUAL;";
    assert!(!last(sql, 18).rewrites_table);
}

#[test]
fn index_on_table_created_in_same_transaction_is_harmless() {
    let config = CheckConfig::default();
    let report = check::check_sql(
        "tx.sql",
        "CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);",
        &config,
    )
    .expect("check");
    let s = &report.statements[1];
    assert_eq!(s.lock, None);
    assert!(!s.blocks_writes);
    assert!(s
        .findings
        .iter()
        .all(|f| f.rule != "require-concurrent-index-creation"));
    // The same index in a later, separate transaction is not.
    let no_tx = CheckConfig {
        assume_in_transaction: false,
        ..CheckConfig::default()
    };
    let report = check::check_sql(
        "tx.sql",
        "CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);",
        &no_tx,
    )
    .expect("check");
    assert!(report.statements[1]
        .findings
        .iter()
        .any(|f| f.rule == "require-concurrent-index-creation"));
}

#[test]
fn concurrently_in_a_transaction_is_an_error_and_lock_timeout_counts() {
    let config = CheckConfig::default();
    let report =
        check::check_sql("c.sql", "CREATE INDEX CONCURRENTLY i ON t (a);", &config).expect("check");
    assert!(report.statements[0]
        .findings
        .iter()
        .any(|f| f.rule == "ban-concurrent-index-creation-in-transaction"));
    let report = check::check_sql(
        "c.sql",
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
        &config,
    )
    .expect("check");
    assert!(report.statements[0]
        .findings
        .iter()
        .all(|f| f.rule != "ban-concurrent-index-creation-in-transaction"));
    let guarded = check::check_sql(
        "g.sql",
        "SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN x int;",
        &config,
    )
    .expect("check");
    assert!(guarded.statements[1]
        .findings
        .iter()
        .all(|f| f.rule != "require-lock-timeout"));
    let reset = check::check_sql(
        "g.sql",
        "SET lock_timeout = 0;\nALTER TABLE t ADD COLUMN x int;",
        &config,
    )
    .expect("check");
    assert!(reset.statements[1]
        .findings
        .iter()
        .any(|f| f.rule == "require-lock-timeout"));
}

#[test]
fn runner_lock_timeout_setting_silences_the_lock_timeout_rule() {
    let config = CheckConfig {
        runner_sets_lock_timeout: true,
        ..CheckConfig::default()
    };
    let report =
        check::check_sql("r.sql", "ALTER TABLE t ADD COLUMN x int;", &config).expect("check");
    assert!(report.statements[0]
        .findings
        .iter()
        .all(|f| f.rule != "require-lock-timeout"));
    let parsed = CheckConfig::from_toml(
        "[check]\nrunner_sets_lock_timeout = true\n",
        std::path::Path::new("d.toml"),
    );
    assert!(parsed.is_ok_and(|c| c.runner_sets_lock_timeout));
}

/// `--engine-version` gates syntax: what only a newer server parses is an error for an older one.
#[test]
fn syntax_newer_than_the_engine_is_an_error() {
    let gated = |sql: &str, major: u32| {
        last(sql, major)
            .findings
            .iter()
            .any(|f| f.rule == "syntax-newer-than-engine")
    };
    let cases: &[(&str, u32)] = &[
        ("CREATE TABLE t (id int PRIMARY KEY, a int);\nMERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE;", 15),
        ("CREATE TABLE t (id int PRIMARY KEY, a int);\nMERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE;", 17),
        ("CREATE TABLE t (id int PRIMARY KEY, a int);\nMERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.id;", 17),
        ("CREATE TABLE t (id int, a int);\nCREATE OR REPLACE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();", 14),
        ("CREATE TABLE t (id int, a int);\nCREATE UNIQUE INDEX t_a ON t (a) NULLS NOT DISTINCT;", 15),
        ("CREATE TABLE t (id int, a int);\nALTER TABLE t SET ACCESS METHOD heap;", 15),
        ("CREATE TABLE t (id int, a int, g int GENERATED ALWAYS AS (a * 2) STORED);\nALTER TABLE t ALTER COLUMN g SET EXPRESSION AS (a * 3);", 17),
        ("CREATE TABLE t (id int, a int);\nALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2) VIRTUAL;", 18),
        ("CREATE TABLE t (id int, a int);\nALTER TABLE t ADD CONSTRAINT t_a_nn NOT NULL a NOT VALID;", 18),
        ("CREATE TABLE t (id int, a int);\nUPDATE t SET a = 1 RETURNING old.a, new.a;", 18),
        ("CREATE TABLE t (id int, a int);\nDELETE FROM t RETURNING WITH (OLD AS o) o.a;", 18),
        ("CREATE TABLE t (id int, a int);\nGRANT MAINTAIN ON t TO PUBLIC;", 17),
    ];
    for (sql, since) in cases {
        assert!(
            gated(sql, since - 1),
            "{sql} must be an error on {}",
            since - 1
        );
        assert!(!gated(sql, *since), "{sql} parses on {since}");
    }
    // `old` as the target's own alias is a plain column reference on every version.
    let aliased = "CREATE TABLE t (id int, a int);\nUPDATE t AS old SET a = 1 RETURNING old.a;";
    assert!(!gated(aliased, 14));
    let plain = "CREATE TABLE t (id int, a int);\nCREATE INDEX t_a ON t (a);";
    assert!(!gated(plain, 11));
}
