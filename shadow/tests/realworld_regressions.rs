//! Regressions found by running `duet check` over public migration histories (see
//! docs/check.md, "Validated on real-world histories"). Every case is our own SQL reproducing the
//! shape that was judged wrong.

use duet_shadow::check::{self, CheckConfig, EngineVersion, StatementReport};

fn report(sql: &str) -> Vec<StatementReport> {
    let config = CheckConfig {
        engine_version: EngineVersion::major(15),
        assume_in_transaction: false,
        ..CheckConfig::default()
    };
    check::check_sql("r.sql", sql, &config)
        .expect("check runs")
        .statements
}

fn last(sql: &str) -> StatementReport {
    report(sql).pop().expect("a statement")
}

#[test]
fn psql_variables_are_read_as_names() {
    let all = report(
        "create table :app.jobs (id bigint primary key, n int);\n\
         alter table :app.jobs add column note text default :'fallback';\n\
         select x::int from :\"app\".jobs;",
    );
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|s| s.kind != "unparsed"), "{all:#?}");
    assert_eq!(all[1].kind, "alter_table.add_column");
    assert!(all[1].locks.contains_key("app.jobs"));
    // Real syntax errors stay errors.
    assert_eq!(
        last("create table :app.jobs (id bigint primary key,);").kind,
        "unparsed"
    );
}

#[test]
fn using_expression_rewrites_even_for_the_same_type() {
    let s = last(
        "CREATE TABLE t (status text);\nCOMMIT;\n\
         ALTER TABLE t ALTER COLUMN status TYPE text USING CASE WHEN status = 'x' THEN 'y' ELSE status END;",
    );
    assert!(s.rewrites_table && s.scans_table, "{s:#?}");
    // USING the column itself (with a cast to the new type) is judged like no USING at all.
    let s = last(
        "CREATE TABLE t (name varchar(10));\nCOMMIT;\n\
         ALTER TABLE t ALTER COLUMN name TYPE varchar(20) USING name::varchar(20);",
    );
    assert!(!s.rewrites_table && !s.scans_table, "{s:#?}");
}

#[test]
fn composite_type_attributes_rewrite_nothing() {
    let s = last(
        "CREATE TYPE pair AS (a int, b text);\nALTER TYPE pair ALTER ATTRIBUTE a TYPE bigint;",
    );
    assert_eq!(s.kind, "alter_type.alter_column_type");
    assert!(!s.rewrites_table && !s.scans_table, "{s:#?}");
    assert!(s.findings.iter().all(|f| f.rule != "changing-column-type"));
}

#[test]
fn unnamed_and_constraint_indexes_live_in_their_tables_schema() {
    // The index dropped by its qualified name is gone: the later type change does not lock it.
    let s = last(
        "CREATE TABLE s.t (a int, b int);\nCREATE INDEX ON s.t (a);\nDROP INDEX s.t_a_idx;\nCOMMIT;\n\
         ALTER TABLE s.t ALTER COLUMN a TYPE bigint;",
    );
    assert_eq!(s.locks.len(), 1, "{:?}", s.locks);
    // PRIMARY KEY USING INDEX finds the schema's index and its NOT NULL column: no scan.
    let s = last(
        "CREATE TABLE s.u (code text NOT NULL);\nCREATE UNIQUE INDEX u_code ON s.u (code);\nCOMMIT;\n\
         ALTER TABLE s.u ADD CONSTRAINT u_pkey PRIMARY KEY USING INDEX u_code;",
    );
    assert!(!s.scans_table, "{s:#?}");
}

#[test]
fn search_path_resolves_unqualified_names() {
    let s = last(
        "SET search_path TO app, public;\nCREATE TABLE items (name varchar(10));\nCOMMIT;\n\
         ALTER TABLE app.items ALTER COLUMN name TYPE varchar(20);",
    );
    assert!(!s.rewrites_table, "{s:#?}");
    let s = last(
        "SET search_path TO app;\nCREATE TABLE app.items (name varchar(10));\nCOMMIT;\n\
         ALTER TABLE items ALTER COLUMN name TYPE varchar(20);",
    );
    assert!(!s.rewrites_table, "{s:#?}");
    assert!(s.locks.contains_key("app.items"), "{:?}", s.locks);
}

#[test]
fn attach_partition_behind_a_check_does_not_scan() {
    let setup = "CREATE TABLE m (d date NOT NULL, v int) PARTITION BY RANGE (d);\n\
                 CREATE TABLE m_2031 (d date NOT NULL, v int);\nCOMMIT;\n";
    let proven = last(&format!(
        "{setup}ALTER TABLE m_2031 ADD CONSTRAINT m_2031_d CHECK (d >= '2031-01-01' AND d < '2032-01-01');\nCOMMIT;\n\
         ALTER TABLE m ATTACH PARTITION m_2031 FOR VALUES FROM ('2031-01-01') TO ('2032-01-01');"
    ));
    assert!(!proven.scans_table, "{proven:#?}");
    assert!(
        proven
            .findings
            .iter()
            .all(|f| f.rule != "attach-partition-scan"),
        "{:?}",
        proven.findings
    );
    let wider = last(&format!(
        "{setup}ALTER TABLE m_2031 ADD CONSTRAINT m_2031_d CHECK (d >= '2030-01-01' AND d < '2032-01-01');\nCOMMIT;\n\
         ALTER TABLE m ATTACH PARTITION m_2031 FOR VALUES FROM ('2031-01-01') TO ('2032-01-01');"
    ));
    assert!(wider.scans_table);
    let not_valid = last(&format!(
        "{setup}ALTER TABLE m_2031 ADD CONSTRAINT m_2031_d CHECK (d >= '2031-01-01' AND d < '2032-01-01') NOT VALID;\nCOMMIT;\n\
         ALTER TABLE m ATTACH PARTITION m_2031 FOR VALUES FROM ('2031-01-01') TO ('2032-01-01');"
    ));
    assert!(not_valid.scans_table);
    // A DEFAULT partition on the parent is locked and scanned.
    let with_default = last(&format!(
        "{setup}CREATE TABLE m_rest PARTITION OF m DEFAULT;\n\
         ALTER TABLE m_2031 ADD CONSTRAINT m_2031_d CHECK (d >= '2031-01-01' AND d < '2032-01-01');\nCOMMIT;\n\
         ALTER TABLE m ATTACH PARTITION m_2031 FOR VALUES FROM ('2031-01-01') TO ('2032-01-01');"
    ));
    assert!(with_default.scans_table);
    assert_eq!(
        with_default.locks.get("m_rest").map(|l| l.to_string()),
        Some("ACCESS EXCLUSIVE".to_string())
    );
}

#[test]
fn dropping_an_index_of_a_table_created_in_the_same_transaction_blocks_nobody() {
    let s = last(
        "BEGIN;\nCREATE TABLE IF NOT EXISTS rooms (id int PRIMARY KEY, title varchar(64));\n\
         CREATE INDEX IF NOT EXISTS idx_rooms_title ON rooms (title);\n\
         DROP INDEX IF EXISTS idx_rooms_title;",
    );
    assert_eq!(s.lock, None, "{s:#?}");
    assert!(
        s.findings.iter().all(|f| f.rule != "require-lock-timeout"),
        "{:?}",
        s.findings
    );
}

#[test]
fn tables_read_by_dml_are_locked_access_share() {
    let s = last(
        "CREATE TABLE a (id int, v int);\nCREATE TABLE b (id int, v int);\nCOMMIT;\n\
         WITH recent AS (SELECT id FROM b) INSERT INTO a (id, v) SELECT id, 1 FROM recent;",
    );
    assert_eq!(
        s.locks.get("a").map(|l| l.to_string()).as_deref(),
        Some("ROW EXCLUSIVE")
    );
    assert_eq!(
        s.locks.get("b").map(|l| l.to_string()).as_deref(),
        Some("ACCESS SHARE")
    );
    assert!(!s.locks.contains_key("recent"), "{:?}", s.locks);
}

#[test]
fn drop_default_is_named_as_such() {
    let s = last(
        "CREATE TABLE d (n int DEFAULT 1);\nCOMMIT;\nALTER TABLE d ALTER COLUMN n DROP DEFAULT;",
    );
    assert_eq!(s.kind, "alter_table.drop_default");
    let s = last("CREATE TABLE d (n int);\nCOMMIT;\nALTER TABLE d ALTER COLUMN n SET DEFAULT 1;");
    assert_eq!(s.kind, "alter_table.set_default");
}

/// A multi-line `E'…'` string with a doubled quote whose next line starts with a backslash used
/// to be blanked as a psql meta-command, so the string swallowed the next statement, which then
/// got no verdict at all.
#[test]
fn backslash_line_inside_a_multi_line_string_does_not_merge_statements() {
    let all = report(
        "CREATE TABLE t (id bigint PRIMARY KEY, s text);\nCOMMIT;\n\
         INSERT INTO t VALUES (1, E'first\n\\n'' second'\n);\n\
         ALTER TABLE t ADD COLUMN z timestamptz DEFAULT clock_timestamp();\n\
         UPDATE t SET s = 'x';\n",
    );
    let kinds: Vec<&str> = all.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "create_table",
            "commit",
            "insert",
            "alter_table.add_column",
            "update"
        ]
    );
    assert!(all[3].rewrites_table, "{:#?}", all[3]);
}
