//! Writes without a column list on a table with a shadow column get the list of the columns the
//! application sees (`duet_shadow::rewrite::visible_columns`): after the flip the parked old
//! column sits where the old column was, so a positional write would fill it instead of the new
//! column, and the value would be lost. Writes with a list, `DEFAULT VALUES`, and writes of
//! another number of values pass as written (the safety net sets the other column of every row:
//! shadow/tests/net_shadow_column.rs).

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite};
use rewrite_support::*;

#[test]
fn copy_into_a_shadow_column_table_lists_the_visible_columns() {
    // The safety net's BEFORE trigger sets the shadow column of every copied row
    // (shadow/tests/net_shadow_column.rs): nothing to stage.
    let routes = shadow_column_routes();
    // Without a column list the client's rows hold the columns it sees: they are listed.
    let Ok(Rewrite::Changed { sql, .. }) = rewrite(
        "COPY acc FROM STDIN (FORMAT csv)",
        &routes,
        Protocol::Simple,
    ) else {
        panic!("COPY without a column list gets one");
    };
    assert_eq!(
        sql,
        "COPY acc (\"id\", \"amount\", \"note\") FROM STDIN (FORMAT csv)"
    );
    for sql in [
        "COPY acc (id, note) FROM STDIN (FORMAT csv)",
        "COPY acc (amount, id) FROM STDIN WHERE id > 1",
    ] {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}"
        );
    }
}

#[test]
fn insert_into_a_shadow_column_table_lists_the_visible_columns() {
    let routes = shadow_column_routes();
    let listed = [
        (
            "INSERT INTO acc VALUES (1, 5, 'x')",
            "INSERT INTO acc (\"id\", \"amount\", \"note\") VALUES (1, 5, 'x')",
        ),
        (
            "insert into public.acc as a select 1, 5, 'x' returning a.id",
            "insert into public.acc as a (\"id\", \"amount\", \"note\") select 1, 5, 'x' returning a.id",
        ),
        (
            "INSERT INTO acc (SELECT id, 1, note FROM other) ON CONFLICT (id) DO NOTHING",
            "INSERT INTO acc (\"id\", \"amount\", \"note\") (SELECT id, 1, note FROM other) ON CONFLICT (id) DO NOTHING",
        ),
        (
            "INSERT INTO acc WITH x AS (SELECT 1) SELECT 1, 2, 'n' FROM x",
            "INSERT INTO acc (\"id\", \"amount\", \"note\") WITH x AS (SELECT 1) SELECT 1, 2, 'n' FROM x",
        ),
        (
            "INSERT INTO acc OVERRIDING USER VALUE VALUES (1, 2, 'n')",
            "INSERT INTO acc (\"id\", \"amount\", \"note\") OVERRIDING USER VALUE VALUES (1, 2, 'n')",
        ),
    ];
    for (sql, want) in listed {
        match rewrite(sql, &routes, Protocol::Simple) {
            Ok(Rewrite::Changed { sql: got, .. }) => assert_eq!(got, want, "{sql}"),
            other => panic!("{sql}: expected the list, got {other:?}"),
        }
    }
    // Named columns, no columns, another table; and writes of another number of values than
    // the application's columns (the extra column included: the table as it is), or of a
    // number that cannot be told (`*`, a set operation), pass as written.
    for sql in [
        "INSERT INTO acc (id, note) VALUES (1, 'x')",
        "INSERT INTO acc DEFAULT VALUES",
        "INSERT INTO other VALUES (1, 'x')",
        "INSERT INTO acc VALUES (1, 2, 'n', 20)",
        "INSERT INTO acc VALUES (1, 2)",
        "INSERT INTO acc SELECT * FROM acc WHERE id = 1",
        "INSERT INTO acc SELECT a.*, 1 FROM other a",
        "INSERT INTO acc SELECT 1, 2, 'n' UNION ALL SELECT 3, 4, 'm'",
    ] {
        assert_eq!(
            rewrite(sql, &routes, Protocol::Simple),
            Ok(Rewrite::Unchanged),
            "{sql}"
        );
    }
}
