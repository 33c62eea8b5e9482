//! Post-flip translation of a column rename: statements written for the old name run on the
//! renamed table and answer exactly as they would have on the old shape (names, rows, tags).

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Column, Protocol, Rewrite, Routes, TableRoute, Target};
use rewrite_support::*;

fn routes() -> Routes {
    let col = |name: &str| Column {
        name: name.into(),
        base_type: "text".into(),
    };
    Routes {
        tables: vec![TableRoute {
            schema: "app".into(),
            name: "people".into(),
            columns: vec![col("id"), col("full_name"), col("age")],
            key: vec!["id".into()],
            target: Target::Renamed {
                columns: vec![("name".into(), "full_name".into())],
            },
        }],
        server_version_num: 150000,
        net_only: vec![],
    }
}

/// `ctl.people` in the old shape and `app.people` renamed, with the same two rows.
fn reset_people(c: &mut RawClient) {
    c.run(
        "DROP SCHEMA IF EXISTS ctl CASCADE; DROP SCHEMA IF EXISTS app CASCADE;
           CREATE SCHEMA ctl; CREATE SCHEMA app;
           CREATE TABLE ctl.people (id int PRIMARY KEY, name text, age int);
           CREATE TABLE app.people (id int PRIMARY KEY, full_name text, age int);
           INSERT INTO ctl.people VALUES (1, 'a', 30), (2, 'b', 40);
           INSERT INTO app.people VALUES (1, 'a', 30), (2, 'b', 40);
           CREATE TABLE ctl.other (id int, name text, x int);
           CREATE TABLE app.other (id int, name text, x int);
           INSERT INTO ctl.other VALUES (1, 'o1', 7), (2, 'o2', 8);
           INSERT INTO app.other VALUES (1, 'o1', 7), (2, 'o2', 8);",
    );
}

#[test]
fn old_shape_statements_are_translated() {
    let Some(db) = TestDb::create("renamed") else {
        return;
    };
    let mut c = db.connect();
    let routes = routes();
    let cases = [
        "SELECT * FROM people ORDER BY id",
        "SELECT name, p.name AS n2, upper(name) FROM people p WHERE name <> 'zz' ORDER BY name",
        "SELECT people.* FROM people WHERE \"name\" = 'a'",
        "INSERT INTO people (id, name) VALUES (3, 'c') RETURNING *",
        "INSERT INTO people (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name || people.name RETURNING name",
        "UPDATE people SET name = upper(name) WHERE id = 1 RETURNING name, id",
        "DELETE FROM people WHERE name = 'b' RETURNING people.*",
        // INSERT … SELECT from other relations: the column list, ON CONFLICT and RETURNING are
        // translated; the SELECT reads other relations and is left as written.
        "INSERT INTO people (id, name) SELECT 10 + g, 'g' || g FROM generate_series(1, 3) g RETURNING name",
        "INSERT INTO people (id, name, age) SELECT g, 'v' || g, 50 FROM generate_series(1, 3) g ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name || people.name",
        // Names resolved by scope: writable CTEs, joins with a relation that has a column of
        // the old name, subqueries, set operations, MERGE, LATERAL.
        "WITH x AS (UPDATE people SET name = name || '!' WHERE id = 1 RETURNING *) SELECT * FROM x",
        "WITH x AS (SELECT name FROM people) SELECT * FROM x ORDER BY name",
        "WITH d AS (DELETE FROM people WHERE id = 2 RETURNING id, name) INSERT INTO people (id, name) SELECT id + 10, name || 'moved' FROM d RETURNING name",
        "SELECT p.name, o.name FROM people p JOIN other o ON o.id = p.id AND p.name <> o.name ORDER BY p.id",
        "SELECT name FROM people WHERE EXISTS (SELECT 1 FROM other o WHERE o.id = people.id AND o.name <> people.name) ORDER BY 1",
        "UPDATE people SET name = o.name || people.name FROM other o WHERE o.id = people.id RETURNING people.name, o.name",
        "UPDATE people SET (name, age) = (SELECT o.name, o.x FROM other o WHERE o.id = people.id) WHERE id = 1",
        "SELECT name, count(*) FROM people GROUP BY name ORDER BY name",
        "SELECT name FROM people UNION SELECT name FROM other ORDER BY name",
        "SELECT * FROM (SELECT name, id FROM people) s ORDER BY name",
        "SELECT age AS name, name AS n FROM people ORDER BY name",
        "SELECT (SELECT max(name) FROM people) AS m",
        "SELECT p.*, l.n FROM people p, LATERAL (SELECT p.name || '?' AS n) l ORDER BY p.id",
        "MERGE INTO people p USING (VALUES (1, 'm'), (9, 'n')) AS s(id, name) ON p.id = s.id WHEN MATCHED AND p.name <> s.name THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)",
        "INSERT INTO people AS tgt (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE tgt.name <> excluded.name RETURNING *",
        "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM people ORDER BY id; FETCH ALL FROM c; CLOSE c",
    ];
    for sql in cases {
        reset_people(&mut c);
        let Ok(Rewrite::Changed {
            sql: translated,
            statements,
        }) = rewrite(sql, &routes, Protocol::Simple)
        else {
            panic!(
                "{sql}: expected a translation, got {:?}",
                rewrite(sql, &routes, Protocol::Simple)
            );
        };
        assert_eq!(statements[0].command_tag, None);
        c.run("SET search_path = ctl");
        let original = c.run(sql);
        c.run("SET search_path = app");
        let answer = c
            .query(&translated)
            .unwrap_or_else(|e| panic!("{e}\n{sql}\n→ {translated}"));
        assert_eq!(answer, original, "{sql}\n→ {translated}");
        c.run("RESET search_path");
        assert_eq!(
            c.rows("SELECT * FROM app.people ORDER BY id"),
            c.rows("SELECT * FROM ctl.people ORDER BY id"),
            "{sql}"
        );
    }
    for unchanged in [
        "SELECT count(*) FROM people",
        // Defines a result column of the old name; refers to none.
        "SELECT age AS name FROM people",
        // Another relation's column of the same name.
        "SELECT o.name FROM other o WHERE o.name = 'o1'",
        "SELECT name FROM other",
    ] {
        assert_eq!(
            rewrite(unchanged, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{unchanged}"
        );
    }
    for refused in [
        // `*` over the table and another relation.
        "SELECT * FROM people JOIN other USING (id)",
        // A bare old name in a subquery over another relation, inside a statement on the
        // table: PostgreSQL would take the subquery's own column if it has one.
        "SELECT id FROM people WHERE id IN (SELECT id FROM other WHERE name = 'o1')",
        "SELECT name FROM people NATURAL JOIN other",
        "SELECT p.name FROM people p JOIN other USING (name)",
        "SELECT n.name FROM people AS n(a, name)",
        // A field of the row, not a column reference duet can place.
        "SELECT (p).name FROM people p",
    ] {
        assert!(
            matches!(rewrite(refused, &routes, Protocol::Simple), Err(ref r) if r.sqlstate == "0A000"),
            "{refused} must be refused"
        );
    }
}

/// SQL-level `PREPARE … AS <statement>` is translated like the statement alone: its `EXECUTE`
/// runs what the server prepared, which duet never sees again.
#[test]
fn a_sql_prepare_of_an_old_shape_statement_is_translated() {
    let Some(db) = TestDb::create("renamed_prepare") else {
        return;
    };
    let mut c = db.connect();
    let routes = routes();
    reset_people(&mut c);
    let statements = [
        (
            "PREPARE upd (int, text) AS UPDATE people SET name = $2 WHERE id = $1 RETURNING name",
            "EXECUTE upd(1, 'prepared')",
        ),
        (
            "PREPARE sel AS SELECT * FROM people WHERE name <> 'zz' ORDER BY id",
            "EXECUTE sel",
        ),
    ];
    for (prepare, execute) in statements {
        let Ok(Rewrite::Changed {
            sql: translated, ..
        }) = rewrite(prepare, &routes, Protocol::Simple)
        else {
            panic!(
                "{prepare}: expected a translation, got {:?}",
                rewrite(prepare, &routes, Protocol::Simple)
            );
        };
        assert!(translated.starts_with("PREPARE "), "{translated}");
        c.run("SET search_path = ctl");
        c.run(prepare);
        let original = c.run(execute);
        c.run("DEALLOCATE ALL; SET search_path = app");
        c.query(&translated)
            .unwrap_or_else(|e| panic!("{e}\n{prepare}\n→ {translated}"));
        let answer = c
            .query(execute)
            .unwrap_or_else(|e| panic!("{e}\n{execute}"));
        assert_eq!(answer, original, "{prepare}\n→ {translated}");
        c.run("DEALLOCATE ALL; RESET search_path");
    }
    assert_eq!(
        c.rows("SELECT * FROM app.people ORDER BY id"),
        c.rows("SELECT * FROM ctl.people ORDER BY id")
    );
    // A PREPARE of a statement on other tables is left alone.
    assert_eq!(
        rewrite("PREPARE o AS SELECT 1", &routes, Protocol::Simple),
        Ok(Rewrite::Unchanged)
    );
}
