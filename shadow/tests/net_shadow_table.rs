//! The safety net on a shadow table against the real PostgreSQL: a rewritten statement's rows are
//! mirrored once (by the rewrite; the net skips them, as the shadow's own write counters in the
//! transaction show), and every other write of the same transaction — a plain statement after
//! it in the same query string, a function, a write nested in a trigger, a write under
//! `session_replication_role = replica` — is mirrored by the net.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite};
use rewrite_support::*;

/// How many rows of the shadow were inserted and updated (on PostgreSQL 15+ this includes counts
/// of earlier transactions not yet flushed: compare differences).
const SHADOW_WRITES: &str = "SELECT n_tup_ins + n_tup_upd FROM pg_stat_xact_user_tables \
     WHERE relid = 'app.t__duet'::regclass";

const IN_SYNC: &str = "SELECT count(*) FROM (
       (SELECT id::bigint, amount::numeric, note FROM app.t
        EXCEPT SELECT id, amount, note FROM app.t__duet WHERE NOT __duet_deleted)
       UNION ALL
       (SELECT id, amount, note FROM app.t__duet WHERE NOT __duet_deleted
        EXCEPT SELECT id::bigint, amount::numeric, note FROM app.t)) d";

fn rewritten(sql: &str) -> String {
    match rewrite(sql, &shadow_table_routes(), Protocol::Simple) {
        Ok(Rewrite::Changed { sql, .. }) => sql,
        other => panic!("{sql}: expected a rewrite, got {other:?}"),
    }
}

fn count(c: &mut RawClient, sql: &str) -> i64 {
    c.rows(sql)[0][0]
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: no count"))
}

#[test]
fn rewritten_rows_are_mirrored_once_and_everything_else_by_the_net() {
    let Some(db) = TestDb::create("net_table") else {
        return;
    };
    let mut c = db.connect();
    reset_shadow_table(&mut c);
    install_net(&mut c, &shadow_table_routes());
    c.run("CREATE FUNCTION app.touch(k int) RETURNS void LANGUAGE sql AS $$ UPDATE app.t SET note = 'function' WHERE id = k $$");

    // One rewritten single-row UPDATE: one shadow write (the rewrite's), none by the net.
    c.run("BEGIN; SET LOCAL search_path = app");
    let base = count(&mut c, SHADOW_WRITES);
    c.run(&rewritten("UPDATE t SET note = 'rewritten' WHERE id = 1"));
    assert_eq!(
        count(&mut c, SHADOW_WRITES) - base,
        1,
        "the net skipped the rewritten row"
    );
    // A plain statement after it in the same transaction: the marker is gone, the net mirrors.
    c.run("UPDATE t SET note = 'plain' WHERE id = 2");
    assert_eq!(
        count(&mut c, SHADOW_WRITES) - base,
        2,
        "the net mirrored the plain write"
    );
    // The same in one query string: rewritten, then plain, then a function, then rewritten.
    let string = format!(
        "{}; UPDATE t SET note = 'plain too' WHERE id = 3; SELECT app.touch(4); {}",
        rewritten("UPDATE t SET amount = amount + 1 WHERE id = 5"),
        rewritten("DELETE FROM t WHERE id = 2"),
    );
    c.run(&string);
    assert_eq!(
        count(&mut c, SHADOW_WRITES) - base,
        2 + 4,
        "each row mirrored exactly once"
    );
    c.run("COMMIT");
    assert_eq!(count(&mut c, IN_SYNC), 0);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM app.t__duet WHERE id = 2 AND __duet_deleted"
        ),
        1,
        "the delete left its tombstone"
    );

    // Under session_replication_role = replica (logical-replication apply, a restore) ordinary
    // triggers do not fire; the net's do.
    c.run(
        "BEGIN; SET LOCAL session_replication_role = replica;
         UPDATE app.t SET note = 'replica' WHERE id = 5; COMMIT",
    );
    assert_eq!(count(&mut c, IN_SYNC), 0, "mirrored in replica mode");

    // A write nested in a trigger of the rewritten statement's own table runs at depth 2: always
    // mirrored, even though the marker is set.
    c.run(
        "CREATE FUNCTION app.echo() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id = 3 THEN UPDATE app.t SET note = 'echoed' WHERE id = 4; END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER echo AFTER UPDATE ON app.t FOR EACH ROW EXECUTE FUNCTION app.echo();",
    );
    c.run(&format!(
        "SET search_path = app; {}; RESET search_path",
        rewritten("UPDATE t SET note = 'three' WHERE id = 3")
    ));
    assert_eq!(
        count(&mut c, IN_SYNC),
        0,
        "the nested write reached the shadow"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM app.t__duet WHERE id = 4 AND note = 'echoed'"
        ),
        1
    );
}

/// A write the rewrite did not see, whose row the application's own `AFTER` trigger changes
/// again (or removes, or re-creates) in the same statement: that trigger fires before the net's
/// (names sort before `~`), its nested write is mirrored first, and the net's mirror of the outer
/// row must not put the older version back. The net mirrors what the table holds now.
#[test]
fn an_application_trigger_rewriting_the_same_row_is_not_undone_by_the_net() {
    let Some(db) = TestDb::create("net_table_same_row") else {
        return;
    };
    let mut c = db.connect();
    reset_shadow_table(&mut c);
    install_net(&mut c, &shadow_table_routes());
    c.run(
        "CREATE FUNCTION app.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.note = 'stamp me' THEN
             UPDATE app.t SET note = 'stamped', amount = amount + 100 WHERE id = NEW.id;
           ELSIF NEW.note = 'remove me' THEN
             DELETE FROM app.t WHERE id = NEW.id;
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER stamp AFTER INSERT OR UPDATE ON app.t FOR EACH ROW EXECUTE FUNCTION app.stamp();
         CREATE FUNCTION app.revive() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF OLD.note = 'revive me' THEN
             INSERT INTO app.t (id, amount, note) VALUES (OLD.id, 7, 'revived');
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER revive AFTER DELETE ON app.t FOR EACH ROW EXECUTE FUNCTION app.revive();",
    );
    // Plain (unrewritten) writes, each in its own transaction and several in one.
    c.run("UPDATE app.t SET note = 'stamp me' WHERE id = 1");
    c.run("INSERT INTO app.t (id, amount, note) VALUES (1001, 1, 'stamp me')");
    c.run("UPDATE app.t SET note = 'remove me' WHERE id = 2");
    c.run("UPDATE app.t SET note = 'revive me' WHERE id = 3; DELETE FROM app.t WHERE id = 3");
    c.run(
        "BEGIN; UPDATE app.t SET note = 'stamp me', id = id + 2000 WHERE id IN (4, 5);
         UPDATE app.t SET note = 'remove me' WHERE id = 1001; COMMIT",
    );
    assert_eq!(
        count(&mut c, IN_SYNC),
        0,
        "the shadow holds what the table holds"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM app.t__duet WHERE note = 'stamped' AND NOT __duet_deleted"
        ),
        3,
        "each stamped row's newest version is mirrored"
    );
    for removed in [2, 1001, 4, 5] {
        assert_eq!(
            count(
                &mut c,
                &format!(
                    "SELECT count(*) FROM app.t__duet WHERE id = {removed} AND __duet_deleted"
                )
            ),
            1,
            "row {removed} is gone from the table and tombstoned in the shadow"
        );
    }
}
