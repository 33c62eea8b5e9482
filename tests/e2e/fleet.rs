//! Several duet processes in front of one database act as one fleet: a migration started on any
//! member reaches every member (dual-writes, routes, the flip's hold), any member drives the
//! operator commands, a killed driver is taken over, a frozen member makes the flip refuse within
//! its budget (no client error) and lets it succeed once it runs again.
//!
//! Every test writes through every member with the control-table load (each transaction writes
//! the migrated table and its unmigrated twin) and ends with the two tables compared row for row.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::duet_process::through;
use crate::support::load::Load;
use crate::support::migration::{
    assert_clean, column_type, migrate_sql, migration, request, wait_phase, wait_status,
};
use crate::support::scenario::Scenario;
use crate::support::{backend_or_skip, DuetProcess};

const ROWS: i64 = 20_000;
const CLIENTS_PER_MEMBER: usize = 3;

/// The ids of the live members `duet` lists in its status.
async fn member_ids(duet: &DuetProcess) -> Vec<String> {
    let status = request(duet, json!({"command": "status"}))
        .await
        .expect_ok("status");
    status["members"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `duet` lists exactly `count` live members.
async fn wait_members(duet: &DuetProcess, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ids = member_ids(duet).await;
        if ids.len() == count {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} fleet members, status lists {ids:?}\n--- log ---\n{}",
            duet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn member_id(duet: &DuetProcess) -> String {
    let status = request(duet, json!({"command": "status"}))
        .await
        .expect_ok("status");
    status["member_id"]
        .as_str()
        .expect("status names this member")
        .to_owned()
}

/// Cuts over through `duet`, retrying what a loaded proxy may refuse (a missed budget, the
/// table's lock); returns the refusals.
async fn cutover(duet: &DuetProcess, id: i64) -> Vec<String> {
    let mut refusals = Vec::new();
    for _ in 0..10 {
        let reply = request(
            duet,
            json!({"command": "cutover", "id": id, "budget_ms": 5000}),
        )
        .await;
        if reply.ok {
            return refusals;
        }
        refusals.push(reply.error.clone());
        assert_eq!(migration(duet, id).await["phase"], "ready");
        // As an operator would: give the writers that held the table a moment before again.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("the cutover never succeeded: {refusals:?}");
}

/// Sends `request` through `duet` until it succeeds: a loaded fleet may refuse a command that
/// holds every member (a missed budget, a member joining meanwhile); the operator runs it again.
async fn until_ok(duet: &DuetProcess, request_body: serde_json::Value, what: &str) {
    let mut refusals = Vec::new();
    for _ in 0..10 {
        let reply = request(duet, request_body.clone()).await;
        if reply.ok {
            return;
        }
        refusals.push(reply.error.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{what} never succeeded: {refusals:?}");
}

fn assert_no_failures(stats: &crate::support::load::LoadStats, what: &str) {
    assert!(
        stats.failures.is_empty(),
        "{what}: {} failed client statements, first: {:?}",
        stats.failures.len(),
        stats.failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(stats.committed > 0, "{what}: no transaction committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_migrate_a_key_under_load_as_one() {
    let Some(backend) = backend_or_skip("three_members_migrate_a_key_under_load_as_one") else {
        return;
    };
    let s = Scenario::start(backend.clone(), "fleet_key", "flk", "int", "int", ROWS).await;
    let url = backend.url(s.db.name());
    let b = DuetProcess::start(&url, &[]);
    wait_members(&s.duet, 2).await;
    let load_a = Load::start(
        through(&backend, &s.duet, &s.db, "fleet-a"),
        "flk.t",
        "flk.t_control",
        CLIENTS_PER_MEMBER,
        ROWS,
        10_000_000,
    );
    let load_b = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flk.t",
        "flk.t_control",
        CLIENTS_PER_MEMBER,
        ROWS,
        20_000_000,
    );

    // Started on b; a learns of it and dual-writes too.
    let id = migrate_sql(&b, "ALTER TABLE flk.t ALTER COLUMN id TYPE bigint").await;
    wait_status(&s.duet, id, "a follows the migration", |m| {
        matches!(m["phase"].as_str(), Some("copying" | "verifying" | "ready"))
    })
    .await;
    // A member started mid-migration follows it before it serves a client.
    let c = DuetProcess::start(&url, &[]);
    let joined = migration(&c, id).await;
    assert!(
        matches!(
            joined["phase"].as_str(),
            Some("copying" | "verifying" | "ready")
        ),
        "a member started mid-migration must know it at once: {joined}"
    );
    let load_c = Load::start(
        through(&backend, &c, &s.db, "fleet-c"),
        "flk.t",
        "flk.t_control",
        CLIENTS_PER_MEMBER,
        ROWS,
        30_000_000,
    );
    let ids = wait_members(&s.duet, 3).await;
    assert_eq!(wait_members(&c, 3).await.len(), 3, "{ids:?}");

    for member in [&s.duet, &b, &c] {
        wait_phase(member, id, "ready").await;
        wait_status(member, id, "dual-writes counted", |m| {
            m["dual_writes"].as_u64().unwrap_or(0) > 0
        })
        .await;
    }

    // Every member's counts reach every member's status.
    wait_status(&s.duet, id, "the fleet's dual-writes in a's status", |m| {
        m["fleet"]["members"] == 3
            && m["fleet"]["dual_writes"].as_u64().unwrap_or(0)
                > m["dual_writes"].as_u64().unwrap_or(0)
    })
    .await;

    // Cut over from c (not the member that started it), complete from a.
    let refusals = cutover(&c, id).await;
    assert_eq!(column_type(s.direct(), "flk", "t", "id").await, "bigint");
    for member in [&s.duet, &b, &c] {
        wait_phase(member, id, "flipped").await;
    }
    let flip = migration(&c, id).await["last_flip"].clone();
    assert_eq!(flip["outcome"], "flipped", "{flip}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    until_ok(
        &s.duet,
        json!({"command": "complete", "id": id}),
        "complete from a member that neither started nor flipped it",
    )
    .await;
    for member in [&s.duet, &b, &c] {
        wait_phase(member, id, "completed").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, load) in [("a", load_a), ("b", load_b), ("c", load_c)] {
        assert_no_failures(&load.stop().await, name);
    }
    eprintln!("cutover refusals: {refusals:?}");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "flk", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_driver_is_taken_over_and_any_member_finishes() {
    let Some(backend) = backend_or_skip("a_killed_driver_is_taken_over_and_any_member_finishes")
    else {
        return;
    };
    let mut s = Scenario::start(backend.clone(), "fleet_kill", "flkl", "int", "int", ROWS).await;
    let url = backend.url(s.db.name());
    let b = DuetProcess::start(&url, &[]);
    wait_members(&b, 2).await;
    let load_b = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flkl.t",
        "flkl.t_control",
        CLIENTS_PER_MEMBER,
        ROWS,
        20_000_000,
    );
    let id = migrate_sql(&s.duet, "ALTER TABLE flkl.t ALTER COLUMN id TYPE bigint").await;
    // Keep the copy from finishing before the driver dies (a setting stored with the migration).
    request(&s.duet, json!({"command": "pause_copy", "id": id}))
        .await
        .expect_ok("pause_copy");
    wait_status(&b, id, "b follows the copy", |m| m["phase"] == "copying").await;
    // A writer straight to PostgreSQL, sampled by the driver (a), shows in b's status too.
    let bypass = crate::support::pg_client::connect(&s.db.direct_config()).await;
    bypass
        .client
        .batch_execute("BEGIN; UPDATE flkl.t SET amount = amount + 1 WHERE id = 1; UPDATE flkl.t_control SET amount = amount + 1 WHERE id = 1")
        .await
        .expect("a direct write");
    let pid: i32 = bypass
        .client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    wait_status(&b, id, "the driver's bypass sample in b's status", |m| {
        m["bypassing_writers"]
            .as_array()
            .is_some_and(|list| list.iter().any(|w| w["pid"] == pid))
    })
    .await;
    bypass.client.batch_execute("COMMIT").await.expect("commit");
    s.duet.kill();
    wait_members(&b, 1).await;
    // b takes the driver's place; the copy is resumed through b.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = request(&b, json!({"command": "resume_copy", "id": id})).await;
        if reply.ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resume_copy on b: {}",
            reply.error
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_phase(&b, id, "ready").await;
    cutover(&b, id).await;
    until_ok(&b, json!({"command": "revert", "id": id}), "revert").await;
    wait_phase(&b, id, "reverted").await;
    assert_no_failures(&load_b.stop().await, "b");
    assert_eq!(column_type(s.direct(), "flkl", "t", "id").await, "integer");
    s.assert_same_rows().await;
    assert_clean(&b, s.direct(), "flkl", id, "reverted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_makes_the_flip_refuse_then_succeed() {
    let Some(backend) = backend_or_skip("a_frozen_member_makes_the_flip_refuse_then_succeed")
    else {
        return;
    };
    let s = Scenario::start(backend.clone(), "fleet_stop", "flst", "int", "int", 2_000).await;
    let url = backend.url(s.db.name());
    let b = DuetProcess::start(&url, &[]);
    wait_members(&s.duet, 2).await;
    let frozen_id = member_id(&b).await;
    let load_a = Load::start(
        through(&backend, &s.duet, &s.db, "fleet-a"),
        "flst.t",
        "flst.t_control",
        CLIENTS_PER_MEMBER,
        2_000,
        10_000_000,
    );
    let load_b = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flst.t",
        "flst.t_control",
        CLIENTS_PER_MEMBER,
        2_000,
        20_000_000,
    );
    let id = migrate_sql(&s.duet, "ALTER TABLE flst.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&b, id, "ready").await;
    wait_phase(&s.duet, id, "ready").await;

    b.signal(libc::SIGSTOP);
    // Every attempt refuses; under a loaded machine one may first miss on a's own busy sessions
    // instead, so a few are allowed until the refusal is about the frozen member.
    let started = Instant::now();
    let mut reply = request(
        &s.duet,
        json!({"command": "cutover", "id": id, "budget_ms": 2000}),
    )
    .await;
    for _ in 0..5 {
        assert!(!reply.ok, "a flip with a frozen member must refuse");
        if reply.error.contains(&frozen_id) {
            break;
        }
        reply = request(
            &s.duet,
            json!({"command": "cutover", "id": id, "budget_ms": 2000}),
        )
        .await;
    }
    let took = started.elapsed();
    assert!(!reply.ok, "a flip with a frozen member must refuse");
    assert!(
        reply.error.contains(&frozen_id),
        "the refusal names the frozen member {frozen_id}: {}",
        reply.error
    );
    let m = migration(&s.duet, id).await;
    assert_eq!(m["phase"], "ready", "{m}");
    assert_eq!(m["last_flip"]["outcome"], "members_missed", "{m}");
    assert_eq!(
        column_type(s.direct(), "flst", "t", "id").await,
        "integer",
        "nothing changed"
    );
    eprintln!("refused after {took:?}: {}", reply.error);

    b.signal(libc::SIGCONT);
    // b's clients, frozen with it, carry on: the stale hold it reads on waking is released.
    let before = Instant::now();
    let probe = crate::support::pg_client::connect(&through(&backend, &b, &s.db, "probe")).await;
    probe
        .client
        .simple_query("SELECT 1")
        .await
        .expect("b answers after SIGCONT");
    assert!(
        before.elapsed() < Duration::from_secs(5),
        "b held its clients {:?} after waking",
        before.elapsed()
    );
    cutover(&s.duet, id).await;
    wait_phase(&b, id, "flipped").await;
    // b's clients work on the new shape.
    let through_b = crate::support::pg_client::connect(&through(&backend, &b, &s.db, "late")).await;
    let max: i64 = through_b
        .client
        .query_one("SELECT max(id) FROM flst.t", &[])
        .await
        .expect("a read through b after the flip")
        .get(0);
    assert!(max >= 2_000);
    until_ok(
        &b,
        json!({"command": "complete", "id": id, "force": true}),
        "complete",
    )
    .await;
    wait_phase(&s.duet, id, "completed").await;
    assert_no_failures(&load_a.stop().await, "a");
    assert_no_failures(&load_b.stop().await, "b");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "flst", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_is_translated_by_every_member_and_complete_counts_the_fleet() {
    let Some(backend) = backend_or_skip("a_rename_is_translated_by_every_member") else {
        return;
    };
    let mut s = Scenario::start(backend.clone(), "fleet_rename", "flrn", "int", "int", 2_000).await;
    let url = backend.url(s.db.name());
    let b = DuetProcess::start(&url, &[]);
    let c = DuetProcess::start(&url, &[]);
    wait_members(&s.duet, 3).await;
    // The load's statements name `label`, the old name, before and after the flip.
    let load_b = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flrn.t",
        "flrn.t_control",
        CLIENTS_PER_MEMBER,
        2_000,
        20_000_000,
    );
    let id = migrate_sql(&s.duet, "ALTER TABLE flrn.t RENAME COLUMN label TO title").await;
    wait_phase(&b, id, "ready").await;
    wait_phase(&c, id, "ready").await;
    cutover(&c, id).await;
    for member in [&s.duet, &b, &c] {
        wait_phase(member, id, "flipped").await;
    }
    assert_eq!(column_type(s.direct(), "flrn", "t", "title").await, "text");
    // b translates its clients' old names; a saw none itself, yet the fleet did.
    wait_status(&b, id, "old-shape statements counted on b", |m| {
        m["old_shape_statements"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusal = loop {
        let reply = request(&s.duet, json!({"command": "complete", "id": id})).await;
        if !reply.ok {
            break reply.error;
        }
        assert!(
            Instant::now() < deadline,
            "complete on a must be refused while b's clients use the old name"
        );
    };
    assert!(
        refusal.contains("across the fleet"),
        "the refusal counts the whole fleet: {refusal}"
    );
    assert_eq!(migration(&s.duet, id).await["phase"], "flipped");
    assert_no_failures(&load_b.stop().await, "b");
    until_ok(
        &s.duet,
        json!({"command": "complete", "id": id, "force": true}),
        "complete --force",
    )
    .await;
    for member in [&s.duet, &b, &c] {
        wait_phase(member, id, "completed").await;
    }
    s.pair.control_renames = vec![("title".into(), "label".into())];
    s.v = "title".into();
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "flrn", id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_during_the_flip_leaves_the_fleet_consistent() {
    let Some(backend) = backend_or_skip("a_member_killed_during_the_flip") else {
        return;
    };
    let s = Scenario::start(
        backend.clone(),
        "fleet_flipkill",
        "flfk",
        "int",
        "int",
        2_000,
    )
    .await;
    let url = backend.url(s.db.name());
    let mut b = DuetProcess::start(&url, &[]);
    wait_members(&s.duet, 2).await;
    let load_a = Load::start(
        through(&backend, &s.duet, &s.db, "fleet-a"),
        "flfk.t",
        "flfk.t_control",
        CLIENTS_PER_MEMBER,
        2_000,
        10_000_000,
    );
    let load_b = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flfk.t",
        "flfk.t_control",
        CLIENTS_PER_MEMBER,
        2_000,
        20_000_000,
    );
    let id = migrate_sql(&s.duet, "ALTER TABLE flfk.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&b, id, "ready").await;
    // b's clients finish first (a dead proxy only fails its own clients' connections).
    assert_no_failures(&load_b.stop().await, "b");
    // b dies while a's cutover is holding the fleet: the cutover either flips without it (b's
    // connection closed, so it is no longer a member) or refuses; either way nothing is half done.
    let flip = s
        .duet
        .admin_spawn(&["cutover", "--id", &id.to_string(), "--budget", "3s"]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    b.kill();
    let first = flip.await.expect("the cutover command ran");
    eprintln!("cutover while b died: {:?} {}", first.code, first.stdout);
    if migration(&s.duet, id).await["phase"] == "ready" {
        cutover(&s.duet, id).await;
    }
    wait_phase(&s.duet, id, "flipped").await;
    assert_eq!(column_type(s.direct(), "flfk", "t", "id").await, "bigint");
    until_ok(
        &s.duet,
        json!({"command": "complete", "id": id, "force": true}),
        "complete",
    )
    .await;
    assert_no_failures(&load_a.stop().await, "a");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "flfk", id, "completed").await;
}

/// A member cut off from the fleet while the others flip keeps its old routes until it rejoins.
/// The database fences it: its dual-writes name the shadow, which the flip renamed, so they fail
/// without committing anything; what it sends unrewritten reaches the new table, whose safety
/// net mirrors it back into the old one. So whatever its clients commit is in both tables, and a
/// revert afterwards keeps it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_at_the_flip_is_fenced_by_the_database() {
    let Some(backend) = backend_or_skip("a_member_cut_off_at_the_flip_is_fenced") else {
        return;
    };
    let s = Scenario::start(backend.clone(), "fleet_fence", "flfe", "int", "int", 2_000).await;
    let url = backend.url(s.db.name());
    let b = DuetProcess::start(&url, &[]);
    wait_members(&s.duet, 2).await;
    let cut_off = member_id(&b).await;
    let load_b = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flfe.t",
        "flfe.t_control",
        CLIENTS_PER_MEMBER,
        2_000,
        20_000_000,
    );
    let id = migrate_sql(&s.duet, "ALTER TABLE flfe.t ALTER COLUMN id TYPE bigint").await;
    wait_phase(&b, id, "ready").await;

    // Cut b off: its member connection is terminated as soon as it (re)appears.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let config = s.db.direct_config();
        let cut_off = cut_off.clone();
        tokio::spawn(async move {
            let session = crate::support::pg_client::connect(&config).await;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = session
                    .client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM duet.members WHERE id = $1",
                        &[&cut_off],
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while member_ids(&s.duet).await.contains(&cut_off) {
        assert!(Instant::now() < deadline, "b never dropped out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cutover(&s.duet, id).await;
    assert_eq!(column_type(s.direct(), "flfe", "t", "id").await, "bigint");
    // b's clients keep writing while it is cut off, then it rejoins and follows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    killer.await.expect("the killer task");
    // b rejoins (its retries back off: up to 10 s) and follows the flip.
    wait_members(&s.duet, 2).await;
    wait_phase(&b, id, "flipped").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = load_b.stop().await;
    eprintln!(
        "b: {} committed, {} failed while cut off; first failures: {:?}",
        stats.committed,
        stats.failures.len(),
        stats.failures.iter().take(3).collect::<Vec<_>>()
    );
    assert!(stats.committed > 0);
    s.assert_same_rows().await;
    // Everything b committed is in the old shape too.
    until_ok(&s.duet, json!({"command": "revert", "id": id}), "revert").await;
    wait_phase(&b, id, "reverted").await;
    assert_eq!(column_type(s.direct(), "flfe", "t", "id").await, "integer");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "flfe", id, "reverted").await;
}

/// A stopped step is run again by the member that drives the migration: `retry` through another
/// member is refused, naming where to send it, and changes nothing; through the driver it goes
/// on, and the migration completes with every write of both members in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_through_a_member_that_does_not_drive_is_sent_to_the_driver() {
    let Some(backend) =
        backend_or_skip("retry_through_a_member_that_does_not_drive_is_sent_to_the_driver")
    else {
        return;
    };
    let s = Scenario::start(backend.clone(), "fleet_retry", "flrt", "int", "int", 2000).await;
    let b = DuetProcess::start(&backend.url(s.db.name()), &[]);
    wait_members(&b, 2).await;
    // A writer's open transaction holds the table: the expand, driven by the member it was
    // started on, gives up on its lock and stops with the error.
    let writer = s.hold_table().await;
    let id = migrate_sql(&s.duet, "ALTER TABLE flrt.t ALTER COLUMN id TYPE bigint").await;
    let stopped = |m: &serde_json::Value| m["error"].as_str().is_some_and(|e| !e.is_empty());
    wait_status(&s.duet, id, "the expand to give up on the lock", stopped).await;
    let seen = wait_status(&b, id, "the error in the other member's status", stopped).await;
    assert_eq!(seen["phase"], "expanding", "{seen}");
    writer
        .client
        .batch_execute("ROLLBACK")
        .await
        .expect("ROLLBACK");
    let refused = request(&b, json!({"command": "retry", "id": id})).await;
    assert!(
        !refused.ok
            && refused.error.contains("driven by another duet")
            && refused.error.contains("run retry through that one"),
        "retry through a member that does not drive: {}",
        refused.raw
    );
    assert_eq!(migration(&b, id).await["phase"], "expanding");
    request(&s.duet, json!({"command": "retry", "id": id}))
        .await
        .expect_ok("retry through the driver");
    wait_phase(&s.duet, id, "ready").await;
    // b follows within a heartbeat: the cleared error and the new phase.
    let ready = wait_status(&b, id, "b to follow to ready", |m| m["phase"] == "ready").await;
    assert!(ready["error"].is_null(), "{ready}");
    let load = Load::start(
        through(&backend, &b, &s.db, "fleet-b"),
        "flrt.t",
        "flrt.t_control",
        CLIENTS_PER_MEMBER,
        2000,
        10_000_000,
    );
    cutover(&b, id).await;
    until_ok(&b, json!({"command": "complete", "id": id}), "complete").await;
    wait_phase(&s.duet, id, "completed").await;
    assert_no_failures(&load.stop().await, "b");
    assert_eq!(column_type(s.direct(), "flrt", "t", "id").await, "bigint");
    s.assert_same_rows().await;
    assert_clean(&s.duet, s.direct(), "flrt", id, "completed").await;
}
