//! Utility statements that would make a new object depend on a table under migration are refused
//! with 55000 (naming the statement kind and the table, with a hint saying when it can run),
//! wherever the table appears in the parse tree; a GRANT is carried over to the shadow table and
//! runs on the real server; statements that do not name the table pass untouched.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite};
use rewrite_support::*;

/// Every one names `app.t` (routed, shadow table `app.t__duet`) somewhere: quoted, qualified,
/// unqualified, as the target, in a join, a subquery, a WHERE subquery, a foreign key, a type.
const REFUSED: &[(&str, &str)] = &[
    (
        "ALTER TABLE other ADD FOREIGN KEY (id) REFERENCES t",
        "ALTER TABLE",
    ),
    (
        "ALTER TABLE other ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES app.t (id)",
        "ALTER TABLE",
    ),
    (
        "CREATE TABLE other2 (x int REFERENCES \"t\")",
        "CREATE TABLE",
    ),
    (
        "CREATE TABLE other2 (x int, FOREIGN KEY (x) REFERENCES \"app\".\"t\" (id))",
        "CREATE TABLE",
    ),
    ("CREATE TABLE other2 (row_of_t app.t)", "CREATE TABLE"),
    ("CREATE VIEW v AS SELECT id FROM t", "CREATE VIEW"),
    (
        "CREATE VIEW v AS SELECT o.id FROM other o JOIN app.t ON t.id = o.id",
        "CREATE VIEW",
    ),
    (
        "CREATE VIEW v AS SELECT * FROM (SELECT id FROM T) s",
        "CREATE VIEW",
    ),
    (
        "CREATE VIEW v AS SELECT id FROM other WHERE id IN (SELECT id FROM t)",
        "CREATE VIEW",
    ),
    (
        "CREATE OR REPLACE VIEW v AS WITH c AS (SELECT 1 FROM t) SELECT * FROM c",
        "CREATE VIEW",
    ),
    (
        "CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM t",
        "CREATE MATERIALIZED VIEW",
    ),
    (
        "CREATE RULE r AS ON INSERT TO t DO ALSO NOTIFY t_changed",
        "CREATE RULE",
    ),
    (
        "CREATE RULE r AS ON INSERT TO other DO ALSO INSERT INTO t (note) VALUES ('x')",
        "CREATE RULE",
    ),
    ("COMMENT ON TABLE t IS 'orders'", "COMMENT"),
    ("COMMENT ON TABLE app.\"t\" IS 'orders'", "COMMENT"),
    ("COMMENT ON COLUMN t.note IS 'free text'", "COMMENT"),
    ("COMMENT ON COLUMN app.t.note IS 'free text'", "COMMENT"),
    (
        "CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
        "CREATE TRIGGER",
    ),
    ("CREATE POLICY p ON t USING (true)", "CREATE POLICY"),
    (
        "CREATE POLICY p ON other USING (id IN (SELECT id FROM t))",
        "CREATE POLICY",
    ),
    ("GRANT SELECT (note) ON t TO PUBLIC", "GRANT"),
    ("CREATE INDEX ON t (note)", "CREATE INDEX"),
    (
        "CREATE UNIQUE INDEX CONCURRENTLY i ON app.t (note)",
        "CREATE INDEX",
    ),
    (
        "CREATE STATISTICS s ON id, note FROM t",
        "CREATE STATISTICS",
    ),
    ("ALTER TABLE t ADD COLUMN z int", "ALTER TABLE"),
    (
        "ALTER TABLE IF EXISTS ONLY app.t ALTER COLUMN note SET NOT NULL",
        "ALTER TABLE",
    ),
    ("DROP TABLE t", "DROP"),
    ("DROP TABLE other, app.t CASCADE", "DROP"),
    ("DROP TRIGGER x ON t", "DROP"),
    (
        "CREATE FUNCTION n() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM t; END",
        "CREATE FUNCTION",
    ),
    (
        "CREATE FUNCTION rows_of() RETURNS SETOF t LANGUAGE sql AS 'SELECT 1'",
        "CREATE FUNCTION",
    ),
];

/// Mention no migrating table, or keep no link to it: pass byte for byte.
const PASSED: &[&str] = &[
    "CREATE VIEW v AS SELECT * FROM other",
    "ALTER TABLE other ADD FOREIGN KEY (id) REFERENCES other2",
    "COMMENT ON TABLE other IS 't'",
    "COMMENT ON COLUMN other.t IS 'a column named t'",
    "CREATE TABLE t_copy AS SELECT * FROM t",
    "PREPARE q AS SELECT * FROM t",
    "PREPARE p AS INSERT INTO t (note) VALUES ($1)",
    "CREATE FUNCTION g() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM t'",
    "CREATE INDEX ON app2.t (note)",
    "GRANT SELECT ON other TO PUBLIC",
    "GRANT SELECT ON ALL TABLES IN SCHEMA app TO PUBLIC",
    "DROP FUNCTION IF EXISTS f(t)",
    "TRUNCATE other",
];

#[test]
fn ddl_naming_a_migrating_table_is_refused_with_55000_and_a_hint() {
    let routes = shadow_table_routes();
    for (sql, kind) in REFUSED {
        let refusal = match rewrite(sql, &routes, Protocol::Simple) {
            Err(refusal) => refusal,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        };
        assert_eq!(refusal.sqlstate, "55000", "{sql}: {refusal}");
        assert!(
            refusal
                .message
                .starts_with(&format!("{kind} naming table app.t ")),
            "{sql}: {}",
            refusal.message
        );
        assert!(
            refusal.hint.contains(
                "after `duet admin complete` (or `abort`/`revert`) of the migration of app.t"
            ) && refusal.hint.contains("`duet admin status`"),
            "{sql}: {}",
            refusal.hint
        );
        // The same in the extended protocol and inside a multi-statement string.
        assert!(rewrite(sql, &routes, Protocol::Extended).is_err(), "{sql}");
        assert!(
            rewrite(&format!("SELECT 1; {sql}"), &routes, Protocol::Simple).is_err(),
            "{sql}"
        );
    }
    for sql in PASSED {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}"
        );
    }
}

#[test]
fn routes_that_keep_one_table_pass_a_grant_and_refuse_the_rest() {
    let routes = shadow_column_routes();
    for sql in [
        "GRANT SELECT, UPDATE ON acc TO PUBLIC",
        "REVOKE ALL ON public.acc FROM PUBLIC",
    ] {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}"
        );
    }
    for sql in [
        "CREATE VIEW v AS SELECT amount FROM acc",
        "COMMENT ON COLUMN acc.amount IS 'x'",
    ] {
        let refusal = rewrite(sql, &routes, Protocol::Simple).expect_err(sql);
        assert_eq!(refusal.sqlstate, "55000", "{sql}");
        assert!(
            refusal.message.contains("public.acc"),
            "{}",
            refusal.message
        );
    }
}

/// A GRANT or REVOKE on the table also applies to the shadow, in the same statement, on the
/// real server: whichever shape survives the migration keeps the privilege.
#[test]
fn grant_and_revoke_are_carried_over_to_the_shadow_table() {
    let routes = shadow_table_routes();
    let cases = [
        (
            "GRANT SELECT, INSERT ON TABLE t TO duet_rw_grantee WITH GRANT OPTION",
            "GRANT SELECT, INSERT ON TABLE t, \"app\".\"t__duet\" TO duet_rw_grantee WITH GRANT OPTION",
        ),
        (
            "grant all on other, app.t to duet_rw_grantee",
            "grant all on other, app.t, \"app\".\"t__duet\" to duet_rw_grantee",
        ),
        (
            "REVOKE INSERT ON \"t\" FROM duet_rw_grantee CASCADE",
            "REVOKE INSERT ON \"t\", \"app\".\"t__duet\" FROM duet_rw_grantee CASCADE",
        ),
    ];
    for (sql, expected) in cases {
        match rewrite(sql, &routes, Protocol::Simple) {
            Ok(Rewrite::Changed { sql: got, .. }) => assert_eq!(got, expected, "{sql}"),
            other => panic!("{sql}: expected a rewrite, got {other:?}"),
        }
    }

    let Some(db) = TestDb::create("ddl_grant") else {
        return;
    };
    let mut c = db.connect();
    reset_shadow_table(&mut c);
    c.run(
        "DROP ROLE IF EXISTS duet_rw_grantee; CREATE ROLE duet_rw_grantee; SET search_path = app",
    );
    let privileges = |c: &mut RawClient| {
        c.rows(
            "SELECT has_table_privilege('duet_rw_grantee', 'app.t', 'INSERT'),
                    has_table_privilege('duet_rw_grantee', 'app.t__duet', 'INSERT')",
        )
    };
    let grant = "GRANT SELECT, INSERT ON TABLE t TO duet_rw_grantee";
    let Ok(Rewrite::Changed { sql, .. }) = rewrite(grant, &routes, Protocol::Simple) else {
        panic!("expected a rewrite");
    };
    assert_eq!(c.run(&sql).remove(0).tag, "GRANT");
    let yes = Some("t".to_owned());
    assert_eq!(privileges(&mut c), vec![vec![yes.clone(), yes]]);
    let revoke = "REVOKE INSERT ON t FROM duet_rw_grantee";
    let Ok(Rewrite::Changed { sql, .. }) = rewrite(revoke, &routes, Protocol::Simple) else {
        panic!("expected a rewrite");
    };
    assert_eq!(c.run(&sql).remove(0).tag, "REVOKE");
    let no = Some("f".to_owned());
    assert_eq!(privileges(&mut c), vec![vec![no.clone(), no]]);
    c.run("DROP SCHEMA app CASCADE; DROP SCHEMA ctl CASCADE; DROP ROLE duet_rw_grantee");
}
