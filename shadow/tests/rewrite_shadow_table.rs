//! Shadow-table dual-writes against the real PostgreSQL: each statement shape runs as written on
//! a control copy and rewritten on the migrated table; the table must equal the control, the
//! shadow the converted table (tombstones for deletes), the patched command tags and the
//! RETURNING rows the original's; prepared statements keep their parameter and result types.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite};
use rewrite_support::*;

/// Columns whose values are volatile across the control and the migrated table.
const VOLATILE: [&str; 3] = ["created", "r", "u"];

struct Case {
    sql: &'static str,
}

const fn case(sql: &'static str) -> Case {
    Case { sql }
}

const CASES: &[Case] = &[
    case("INSERT INTO t (amount, note) VALUES (1.25, 'defaults: nextval, clock_timestamp, random, uuid')"),
    case("INSERT INTO t (id, amount, note) VALUES (100, 1, 'x'), (101, DEFAULT, 'y')"),
    case("INSERT INTO t VALUES (DEFAULT, 2.5, 'no column list')"),
    case("INSERT INTO t (id, amount, note) SELECT id + 200, 3, note FROM other"),
    case("INSERT INTO t (id, note) VALUES (1, 'dup') ON CONFLICT DO NOTHING"),
    case("INSERT INTO t (id, note) VALUES (1, 'upd'), (300, 'new') ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note || '!', r = random() RETURNING *, (xmax = 0) AS inserted"),
    case("INSERT INTO t (amount, note) VALUES (9, 'ret') RETURNING id, note AS label, amount * 2, upper(note), amount::int"),
    case("INSERT INTO t AS x (id, note) VALUES (7, 'alias') RETURNING x.*"),
    case("UPDATE t SET amount = amount + 1 WHERE id <= 2"),
    case("UPDATE t SET note = o.note FROM other o WHERE o.id = t.id RETURNING t.*, o.note AS other_note"),
    case("UPDATE t AS x SET note = 'aliased' WHERE x.id = 3 RETURNING x.id, x.note"),
    case("UPDATE t SET amount = 0, created = now(), r = random(), u = gen_random_uuid() WHERE id = 1"),
    case("UPDATE t SET note = 'none' WHERE id = 12345"),
    case("DELETE FROM t WHERE id = 4"),
    case("DELETE FROM t USING other WHERE other.id = t.id RETURNING t.id, other.note"),
    case("DELETE FROM t WHERE id > 3 RETURNING *"),
    case("WITH src AS (SELECT 400 AS id, 'cte' AS note) INSERT INTO t (id, note) SELECT id, note FROM src"),
    case("WITH moved AS (DELETE FROM other WHERE id = 9 RETURNING id, note) INSERT INTO t (id, note) SELECT id, note FROM moved RETURNING id"),
    case("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3) UPDATE t SET note = 'rec' WHERE id IN (SELECT n FROM g)"),
    case("UPDATE t SET note = 'm' WHERE id = 1; SELECT 1 AS one; DELETE FROM t WHERE id = 2 -- bye"),
    case("/* leading */ update T set note = $$x$$ where id = 5; -- trailing"),
];

fn masked(answer: &Answer) -> Vec<Vec<Option<String>>> {
    answer
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&answer.columns)
                .map(|(v, c)| {
                    if VOLATILE.contains(&c.as_str()) {
                        None
                    } else {
                        v.clone()
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn shadow_table_statements_match_the_control() {
    let Some(db) = TestDb::create("shadow_table") else {
        return;
    };
    let mut c = db.connect();
    let routes = shadow_table_routes();
    for case in CASES {
        reset_shadow_table(&mut c);
        let keys_before = c.rows("SELECT id FROM app.t ORDER BY id");
        let rewritten = match rewrite(case.sql, &routes, Protocol::Simple) {
            Ok(Rewrite::Changed { sql, statements }) => (sql, statements),
            other => panic!("{}: expected a rewrite, got {other:?}", case.sql),
        };
        c.run("SET search_path = ctl");
        let original = c.run(case.sql);
        c.run("SET search_path = app");
        let mirrored = c
            .query(&rewritten.0)
            .unwrap_or_else(|e| panic!("{e}\n{}\nrewritten:\n{}", case.sql, rewritten.0));
        assert_eq!(original.len(), mirrored.len(), "{}", case.sql);
        assert_eq!(original.len(), rewritten.1.len(), "{}", case.sql);
        for ((o, m), patch) in original.iter().zip(&mirrored).zip(&rewritten.1) {
            let tag = match patch.command_tag {
                Some(verb) => verb.restore(&m.tag).expect("tag with count"),
                None => m.tag.clone(),
            };
            assert_eq!(tag, o.tag, "command tag of {}", case.sql);
            assert_eq!(m.columns, o.columns, "RETURNING columns of {}", case.sql);
            assert_eq!(masked(m), masked(o), "RETURNING rows of {}", case.sql);
        }
        c.run("RESET search_path");
        let table = "SELECT id, amount, note FROM {}.t ORDER BY id";
        assert_eq!(
            c.rows(&table.replace("{}", "app")),
            c.rows(&table.replace("{}", "ctl")),
            "table vs control after {}",
            case.sql
        );
        assert_eq!(
            c.rows("SELECT id, note FROM app.other ORDER BY id"),
            c.rows("SELECT id, note FROM ctl.other ORDER BY id"),
            "other vs control after {}",
            case.sql
        );
        // The shadow equals the converted table, volatile values included.
        assert_eq!(
            c.rows("SELECT id::bigint, amount::numeric, note, created, r, u FROM app.t ORDER BY id"),
            c.rows("SELECT id, amount, note, created, r, u FROM app.t__duet WHERE NOT __duet_deleted ORDER BY id"),
            "shadow vs table after {}\n{}",
            case.sql,
            rewritten.0
        );
        // Every key the shadow knew is still there: deleted ones as tombstones.
        let mut expected: Vec<_> = keys_before;
        for k in c.rows("SELECT id FROM app.t") {
            if !expected.contains(&k) {
                expected.push(k);
            }
        }
        expected.sort_by_key(|k| k[0].as_deref().and_then(|v| v.parse::<i64>().ok()));
        assert_eq!(
            c.rows("SELECT id FROM app.t__duet ORDER BY id"),
            expected,
            "tombstones after {}",
            case.sql
        );
    }
}

#[test]
fn truncate_passes_and_the_safety_net_empties_the_shadow() {
    let Some(db) = TestDb::create("truncate_net") else {
        return;
    };
    let mut c = db.connect();
    let routes = shadow_table_routes();
    for sql in [
        "TRUNCATE t",
        "TRUNCATE TABLE ONLY t RESTART IDENTITY CASCADE",
    ] {
        reset_shadow_table(&mut c);
        install_net(&mut c, &routes);
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}: forwarded as written (an unqualified name may resolve elsewhere)"
        );
        c.run(&format!("SET search_path = app; {sql}; RESET search_path"));
        assert_eq!(
            c.rows("SELECT count(*) FROM app.t__duet"),
            vec![vec![Some("0".to_string())]],
            "{sql}"
        );
    }
}

#[test]
fn writes_before_the_copier_insert_full_rows() {
    let Some(db) = TestDb::create("before_copier") else {
        return;
    };
    let mut c = db.connect();
    let routes = shadow_table_routes();
    reset_shadow_table(&mut c);
    c.run("TRUNCATE app.t__duet");
    let sql = "UPDATE t SET note = 'early' WHERE id IN (2, 3)";
    let Ok(Rewrite::Changed { sql: rewritten, .. }) = rewrite(sql, &routes, Protocol::Simple)
    else {
        panic!("expected a rewrite");
    };
    c.run("SET search_path = app");
    let tag = c.run(&rewritten).remove(0).tag;
    assert_eq!(tag, "INSERT 0 2");
    assert_eq!(
        c.rows("SELECT id, note, created FROM app.t__duet ORDER BY id"),
        c.rows("SELECT id, note, created FROM app.t WHERE id IN (2, 3) ORDER BY id")
    );
}

/// Refusals, with their SQLSTATE; statements that must pass untouched.
#[test]
fn refusals_and_passes() {
    let routes = shadow_table_routes();
    let refused = [
        ("UPDATE t SET id = id + 10 WHERE id = 1", "0A000"),
        ("INSERT INTO t (id, note) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET id = 5", "0A000"),
        ("MERGE INTO t USING other o ON t.id = o.id WHEN MATCHED THEN UPDATE SET note = o.note", "0A000"),
        // COPY FROM is staged and dual-written (rewrite_copy_from.rs), except what cannot be.
        ("COPY t (id, note) FROM STDIN WITH (FORMAT csv, FREEZE)", "0A000"),
        ("COPY t (note) FROM STDIN WHERE id > 1", "0A000"),
        ("COPY t (nosuch) FROM STDIN", "42703"),
        ("ALTER TABLE t ADD COLUMN z int", "55000"),
        ("CREATE INDEX ON t (note)", "55000"),
        ("DROP TABLE t", "55000"),
        ("CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "55000"),
        ("UPDATE t SET note = 'x' WHERE", "0A000"),
        ("WITH x AS (UPDATE t SET note = 'a' RETURNING id) UPDATE t SET note = 'b' WHERE id IN (SELECT id FROM x)", "0A000"),
        ("WITH x AS (DELETE FROM t RETURNING id) SELECT * FROM x", "0A000"),
        ("WITH x AS (INSERT INTO t (note) VALUES ('a') RETURNING id) INSERT INTO other SELECT id, 'b' FROM x", "0A000"),
        ("EXPLAIN ANALYZE DELETE FROM t", "0A000"),
        ("DELETE FROM t USING other WHERE other.id = t.id RETURNING *", "0A000"),
        ("SELECT 1; UPDATE t SET id = 2", "0A000"),
    ];
    for (sql, state) in refused {
        match rewrite(sql, &routes, Protocol::Simple) {
            Err(refusal) => {
                assert_eq!(refusal.sqlstate, state, "{sql}: {refusal}");
                assert!(!refusal.message.is_empty() && !refusal.hint.is_empty());
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    let passed = [
        "SELECT * FROM t",
        "SELECT * FROM t FOR NO KEY UPDATE",
        "COPY t TO STDOUT",
        "EXPLAIN DELETE FROM t",
        "LOCK t IN SHARE MODE",
        "BEGIN",
        "UPDATE other SET note = 'x'",
        "INSERT INTO app2.t (id) VALUES (1)",
        "TRUNCATE other",
        "CREATE TABLE copy_of_t AS SELECT * FROM t",
    ];
    for sql in passed {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}"
        );
    }
}
