//! `COPY … FROM` on a table under migration, against the real PostgreSQL: the staged form (a
//! temporary table, the COPY into it, the dual-written INSERT from it, its drop) leaves the table
//! exactly as the COPY does on a control table, and the shadow equal to the converted table.
//! The rows come from `FROM PROGRAM` (the test server runs as a superuser on this machine), so the
//! rewritten text runs on the wire as it is; the proxy tests feed STDIN through the proxy.

mod rewrite_support;

use duet_shadow::rewrite::copy_from::STAGING_TABLE;
use duet_shadow::rewrite::{rewrite, Answer, Protocol, Rewrite, Routes, StatementPatch, Target};
use rewrite_support::*;

fn staged(sql: &str, routes: &Routes) -> (String, Vec<StatementPatch>) {
    match rewrite(sql, routes, Protocol::Simple) {
        Ok(Rewrite::Changed { sql, statements }) => (sql, statements),
        other => panic!("{sql}: expected a staged rewrite, got {other:?}"),
    }
}

#[test]
fn copy_from_becomes_four_statements_with_their_answers() {
    let routes = shadow_table_routes();
    let (sql, patches) = staged("SELECT 1; COPY t (note) FROM STDIN; SELECT 2", &routes);
    let answers: Vec<&Answer> = patches.iter().map(|p| &p.answer).collect();
    assert_eq!(
        answers,
        [
            &Answer::Client,
            &Answer::Added,
            &Answer::StagedCopy {
                staging: STAGING_TABLE.into(),
                table: "t".into()
            },
            &Answer::StagedInsert,
            &Answer::Added,
            &Answer::Client,
        ],
        "{sql}"
    );
    assert_eq!(patches.iter().filter(|p| p.rewritten).count(), 1);
    assert!(sql.starts_with("SELECT 1; CREATE TEMP TABLE pg_temp.\"__duet_copy\" ON COMMIT DROP AS SELECT \"note\" FROM \"t\" WITH NO DATA; COPY pg_temp.\"__duet_copy\" (\"note\") FROM STDIN; WITH "), "{sql}");
    assert!(
        sql.ends_with("; DROP TABLE pg_temp.\"__duet_copy\"; SELECT 2"),
        "{sql}"
    );

    // Not on the table, not FROM, or after a rename: unchanged.
    for sql in [
        "COPY other FROM STDIN",
        "COPY t TO STDOUT",
        "COPY (SELECT 1) TO STDOUT",
    ] {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}"
        );
    }
    // After the flip of a rename: the column list is translated, in both protocols.
    let mut renamed = routes.clone();
    renamed.tables[0].target = Target::Renamed {
        columns: vec![("note".into(), "label".into())],
    };
    for protocol in [Protocol::Simple, Protocol::Extended] {
        assert_eq!(
            rewrite("COPY t FROM STDIN", &renamed, protocol),
            Ok(Rewrite::Unchanged)
        );
        match rewrite(
            "COPY app.t (id, note) FROM STDIN (FORMAT csv) WHERE id > 1",
            &renamed,
            protocol,
        ) {
            Ok(Rewrite::Changed { sql, .. }) => assert_eq!(
                sql,
                "COPY app.t (\"id\", \"label\") FROM STDIN (FORMAT csv) WHERE id > 1"
            ),
            other => panic!("expected a translation, got {other:?}"),
        }
    }
    assert!(matches!(
        rewrite("COPY t (id, note) FROM STDIN WHERE note <> ''", &renamed, Protocol::Simple),
        Err(r) if r.sqlstate == "0A000"
    ));

    // What cannot be staged is refused, with the server's SQLSTATE where the server would fail.
    for (sql, protocol, state, says) in [
        (
            "COPY t FROM STDIN",
            Protocol::Extended,
            "0A000",
            "extended query protocol",
        ),
        (
            "COPY t (note) FROM STDIN (FREEZE)",
            Protocol::Simple,
            "0A000",
            "FREEZE",
        ),
        (
            "COPY t FROM STDIN FREEZE",
            Protocol::Simple,
            "0A000",
            "FREEZE",
        ),
        (
            "COPY t (note) FROM STDIN WHERE id > 1",
            Protocol::Simple,
            "0A000",
            "WHERE",
        ),
        (
            "COPY t (id) FROM STDIN WHERE t.id > 1",
            Protocol::Simple,
            "0A000",
            "WHERE",
        ),
        (
            "COPY t (id, nosuch) FROM STDIN",
            Protocol::Simple,
            "42703",
            "column \"nosuch\" of relation \"t\" does not exist",
        ),
        (
            "COPY t (id, id) FROM STDIN",
            Protocol::Simple,
            "42701",
            "column \"id\" specified more than once",
        ),
    ] {
        match rewrite(sql, &routes, protocol) {
            Err(refusal) => {
                assert_eq!(refusal.sqlstate, state, "{sql}: {refusal}");
                assert!(refusal.message.contains(says), "{sql}: {refusal}");
                assert!(!refusal.hint.is_empty());
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
}

/// Rows of `schema.t` without the volatile default columns.
fn table_rows(c: &mut RawClient, schema: &str) -> Vec<Vec<Option<String>>> {
    c.rows(&format!(
        "SELECT id, amount, note FROM {schema}.t ORDER BY id"
    ))
}

#[test]
fn staged_copy_matches_the_control_table_and_fills_the_shadow() {
    let Some(db) = TestDb::create("copy_from_table") else {
        return;
    };
    let mut c = db.connect();
    let routes = shadow_table_routes();
    reset_shadow_table(&mut c);
    let copies = [
        // The key comes from the table's sequence; the volatile defaults are evaluated once.
        "COPY t (amount, note) FROM PROGRAM 'printf \"1.25\\tfirst\\n2.5\\t\\\\\\\\N\\n\"'",
        "COPY t (note, amount) FROM PROGRAM 'printf \"n,amount\\nkept,7\\ndropped,-1\\n\"' WITH (FORMAT csv, HEADER true) WHERE amount > 0",
        "COPY t (id, amount, note, created, r, u) FROM PROGRAM 'printf \"50\\t3.333\\tall\\t2021-01-01 00:00:00+00\\t0.25\\t00000000-0000-0000-0000-000000000001\\n\"'",
        "COPY t FROM PROGRAM 'printf \"60|4|pipe|2022-02-02 00:00:00+00|0.5|00000000-0000-0000-0000-000000000002\\n\"' (DELIMITER '|')",
    ];
    for sql in copies {
        let (rewritten, _) = staged(sql, &routes);
        let control = c.run(&format!("SET search_path = ctl; {sql}"));
        let answers = c.run(&format!("SET search_path = app; {rewritten}"));
        let tags: Vec<&str> = answers.iter().map(|a| a.tag.as_str()).collect();
        let copied = control.last().map(|a| a.tag.clone()).unwrap_or_default();
        assert_ne!(copied, "COPY 0", "{sql}: the program fed rows");
        assert_eq!(tags[1], "CREATE TABLE AS", "{sql}");
        assert_eq!(
            tags[2], copied,
            "{sql}: the staged COPY reports the client's count"
        );
        assert_eq!(tags[4], "DROP TABLE", "{sql}");
        assert_eq!(
            table_rows(&mut c, "app"),
            table_rows(&mut c, "ctl"),
            "{sql}"
        );
        assert_eq!(
            c.rows("SELECT id, amount, note, created, r, u FROM app.t ORDER BY id"),
            c.rows("SELECT id, amount, note, created, r, u FROM app.t__duet WHERE NOT __duet_deleted ORDER BY id"),
            "{sql}: the shadow holds the table's rows, defaults included\n{rewritten}"
        );
    }
    assert_eq!(
        c.rows("SELECT count(*) FROM pg_class WHERE relname = '__duet_copy'"),
        [[Some("0".into())]],
        "the staging table is gone"
    );
    // A failure rolls everything back, staging table included.
    let (rewritten, _) = staged(
        "COPY t (id, note) FROM PROGRAM 'printf \"70\\tok\\n1\\tduplicate\\n\"'",
        &routes,
    );
    let before = table_rows(&mut c, "app");
    let err = c
        .query(&format!("SET search_path = app; {rewritten}"))
        .expect_err("the duplicate key fails the COPY");
    assert!(err.contains("23505"), "{err}");
    assert_eq!(table_rows(&mut c, "app"), before);
    assert_eq!(
        c.rows("SELECT count(*) FROM app.t__duet WHERE id = 70"),
        [[Some("0".into())]]
    );
}
