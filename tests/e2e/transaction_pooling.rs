//! Transaction pooling (`[pool] mode = "transaction"`): duet authenticates clients itself and
//! shares a few backend connections among many clients, one transaction at a time.
//!
//! Each test runs its own server (a throwaway cluster) so that `max_connections` is small and
//! the number of server connections can be counted exactly.

use std::sync::Arc;
use std::time::Duration;

use duet_harness::cluster::{Cluster, ClusterOptions};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Config, NoTls};

use serde_json::json;

use crate::support::migration::{column_type, migrate_sql, request, wait_phase};
use crate::support::pg_client::{connect, try_connect};
use crate::support::scenario::Scenario;
use crate::support::tools::{parse_pgbench, pgbench, psql, python, Target};
use crate::support::{
    backend_or_skip, skip_or_fail, tests_path, throwaway_cluster_or_skip, DuetProcess, TempDir,
};

const PASSWORD: &str = "pool-secret";

/// A cluster allowing `max_connections`, with role `app` (password [`PASSWORD`], SCRAM required
/// on TCP) owning database `app`, and a duet in transaction mode with `size` connections per
/// pool (a transaction waits at most `wait_timeout` for one) in front of it. `user_entry` is the
/// rest of the config: the `[[pool.users]]` table for `app`, and whatever follows it.
fn pooled(
    test: &str,
    max_connections: u32,
    size: usize,
    wait_timeout: &str,
    user_entry: &str,
) -> Option<(Cluster, DuetProcess, TempDir)> {
    let cluster = app_cluster(test, max_connections)?;
    let dir = TempDir::new("pool-config");
    let duet = duet_with_config(
        &cluster,
        &dir,
        &format!(
            "[pool]\nmode = \"transaction\"\nsize = {size}\nwait_timeout = \"{wait_timeout}\"\n\n{user_entry}\n"
        ),
    );
    Some((cluster, duet, dir))
}

/// A throwaway cluster allowing `max_connections`, with role `app` (SCRAM required on TCP) and
/// its database.
fn app_cluster(test: &str, max_connections: u32) -> Option<Cluster> {
    let options = ClusterOptions {
        max_connections,
        hba: vec!["host all app 127.0.0.1/32 scram-sha-256".into()],
        ..ClusterOptions::default()
    };
    let cluster = throwaway_cluster_or_skip(test, options)?;
    create_app_role(&cluster);
    Some(cluster)
}

/// duet in front of `cluster` with `config` as its config file (written into `dir`, which the
/// caller keeps).
fn duet_with_config(cluster: &Cluster, dir: &TempDir, config: &str) -> DuetProcess {
    let path = dir.join(&format!("duet-{}.toml", crate::support::free_port()));
    std::fs::write(&path, config).expect("writing the config file");
    DuetProcess::start(
        &cluster.url("postgres", None, "postgres"),
        &["--config", &path.display().to_string()],
    )
}

/// A superuser session on `cluster`'s database `db`, directly.
async fn superuser(cluster: &Cluster, db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname={db}",
            cluster.host(),
            cluster.port()
        ),
        NoTls,
    )
    .await
    .expect("a direct superuser connection");
    tokio::spawn(connection);
    client
}

/// Who the server says `app` is, through `duet`.
async fn current_user_through(duet: &DuetProcess) -> String {
    let session = connect(&app_config(duet, PASSWORD)).await;
    session
        .client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query through the pool")
        .get(0)
}

/// Role `app` (password [`PASSWORD`], stored as a SCRAM verifier) and its database `app`.
fn create_app_role(cluster: &Cluster) {
    let role = format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'"
    );
    // CREATE DATABASE cannot run in a multi-statement string: one -c each.
    let status = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.host()])
        .args([
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", &role, "-c", "CREATE DATABASE app OWNER app"])
        .status()
        .expect("running psql");
    assert!(
        status.success(),
        "psql could not create role and database app"
    );
}

fn app_config(duet: &DuetProcess, password: &str) -> Config {
    let mut config = duet.config("app", "app");
    config.password(password);
    config
}

async fn server_connections(cluster: &Cluster, db: &str) -> i64 {
    superuser(cluster, "postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
            &[&db],
        )
        .await
        .expect("counting connections")
        .get(0)
}

fn password_entry() -> String {
    format!("[[pool.users]]\nname = \"app\"\npassword = \"{PASSWORD}\"\n")
}

/// 500 clients, each with its own prepared statements and settings, run transactions through 10
/// backend connections of a server that accepts 50: none fails, each sees its own statements and
/// settings, and the server never sees more than the pool's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_share_ten_connections() {
    let test = "five_hundred_clients_share_ten_connections";
    let Some((cluster, duet, _dir)) = pooled(test, 50, 10, "20s", &password_entry()) else {
        return;
    };
    let setup = connect(&app_config(&duet, PASSWORD)).await;
    setup
        .client
        .batch_execute(
            "CREATE TABLE ledger (client int, n int, note text, PRIMARY KEY (client, n))",
        )
        .await
        .expect("creating the table");

    const CLIENTS: i32 = 500;
    const ROUNDS: i32 = 5;
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client_no| {
            let mut config = app_config(&duet, PASSWORD);
            config.application_name(format!("client-{client_no}"));
            let gate = gate.clone();
            tokio::spawn(async move {
                let session = {
                    let _permit = gate.acquire().await.expect("gate");
                    connect(&config).await
                };
                let client = &session.client;
                client
                    .batch_execute(&format!("SET statement_timeout = '{}ms'", 100_001 + 2 * client_no))
                    .await
                    .expect("SET");
                let insert = client
                    .prepare("INSERT INTO ledger VALUES ($1, $2, $3) RETURNING n")
                    .await
                    .expect("prepare");
                let mine = client
                    .prepare(&format!("SELECT count(*) + {client_no} FROM ledger WHERE client = $1"))
                    .await
                    .expect("prepare");
                for n in 0..ROUNDS {
                    let tx = async {
                        client.batch_execute("BEGIN").await?;
                        let row = client.query_one(&insert, &[&client_no, &n, &"x"]).await?;
                        assert_eq!(row.get::<_, i32>(0), n);
                        let settings = client
                            .query_one(
                                "SELECT current_setting('statement_timeout'), current_setting('application_name')",
                                &[],
                            )
                            .await?;
                        assert_eq!(settings.get::<_, String>(0), format!("{}ms", 100_001 + 2 * client_no));
                        assert_eq!(settings.get::<_, String>(1), format!("client-{client_no}"));
                        client.batch_execute("COMMIT").await?;
                        let count = client.query_one(&mine, &[&client_no]).await?;
                        assert_eq!(count.get::<_, i64>(0), i64::from(n + 1 + client_no));
                        Ok::<_, tokio_postgres::Error>(())
                    };
                    tx.await.unwrap_or_else(|err| panic!("client {client_no} round {n}: {err}"));
                }
            })
        })
        .collect();
    let mut peak = 0;
    for task in tasks {
        task.await.expect("client task");
        peak = peak.max(server_connections(&cluster, "app").await);
    }
    let total: i64 = setup
        .client
        .query_one("SELECT count(*) FROM ledger", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(total, i64::from(CLIENTS * ROUNDS));
    assert!(
        peak <= 10,
        "the server saw {peak} connections of a pool of 10"
    );
    // `status` shows the pool: its size, what is open, and the statements shared on it.
    let status = duet.status();
    let pool = &status["pools"][0];
    assert_eq!(
        (pool["user"].as_str(), pool["database"].as_str()),
        (Some("app"), Some("app")),
        "{status}"
    );
    assert_eq!(pool["size"], 10, "{status}");
    assert!(
        pool["open"]
            .as_u64()
            .is_some_and(|open| (1..=10).contains(&open)),
        "{status}"
    );
    assert!(
        pool["statements"].as_u64().is_some_and(|n| n >= 2),
        "{status}"
    );
}

/// pgbench in all three protocols in transaction mode: no failed transaction, and the server
/// sees no more connections than the pool has while 40 clients run.
#[test]
fn pgbench_every_protocol_through_a_transaction_pool() {
    let test = "pgbench_every_protocol_through_a_transaction_pool";
    // The database's own size (8) wins over [pool] size (30).
    let entries = format!(
        "{}\n[[pool.databases]]\nname = \"app\"\nsize = 8\n",
        password_entry()
    );
    let Some((cluster, duet, _dir)) = pooled(test, 50, 30, "20s", &entries) else {
        return;
    };
    let target = Target::tcp("127.0.0.1", duet.port(), "app", "app").with_password(PASSWORD);
    pgbench(&target, &["-i", "-s", "1", "-q"]).assert_success();
    for mode in ["prepared", "extended", "simple"] {
        let run = pgbench(
            &target,
            &["-M", mode, "-c", "40", "-j", "2", "-T", "3", "-n"],
        );
        run.assert_success();
        let summary = parse_pgbench(&run);
        assert!(
            summary.processed > 0,
            "pgbench -M {mode}:\n{}",
            run.stdout_text()
        );
        assert_eq!(
            summary.failed,
            0,
            "pgbench -M {mode}:\n{}\n{}",
            run.stdout_text(),
            run.stderr
        );
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let connections = runtime.block_on(server_connections(&cluster, "app"));
    assert!(
        connections <= 8,
        "{connections} server connections for a pool of 8"
    );
}

/// What cannot follow a client from one connection to the next is refused with SQLSTATE 0A000
/// and a hint, before the server runs it; what can (settings, protocol-level prepared
/// statements) follows it; passwords are checked by duet; a cancel reaches the running query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_follows_the_client_or_is_refused() {
    let test = "session_state_follows_the_client_or_is_refused";
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .expect("address");
    let entries = format!("{}\n[metrics]\nlisten = \"{metrics}\"\n", password_entry());
    let Some((_cluster, duet, _dir)) = pooled(test, 20, 1, "20s", &entries) else {
        return;
    };
    // A wrong password and an unknown user get PostgreSQL's own answer.
    for (user, password) in [("app", "wrong"), ("nobody", PASSWORD)] {
        let mut config = duet.config(user, "app");
        config.password(password);
        let err = try_connect(&config).await.err().expect("refused");
        assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
        let message = err.as_db_error().map(|db| db.message().to_owned());
        assert_eq!(
            message,
            Some(format!(
                "password authentication failed for user \"{user}\""
            )),
            "{err}"
        );
    }

    let a = connect(&app_config(&duet, PASSWORD)).await;
    let mut b_config = app_config(&duet, PASSWORD);
    b_config.application_name("pooled-b");
    let b = connect(&b_config).await;
    for (sql, what) in [
        ("LISTEN jobs", "LISTEN"),
        ("SELECT pg_advisory_lock(42)", "advisory"),
        ("CREATE TEMP TABLE scratch (a int)", "temporary"),
        ("PREPARE q AS SELECT 1", "PREPARE"),
        (
            "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT",
            "WITH HOLD",
        ),
    ] {
        let err = a.client.batch_execute(sql).await.expect_err(sql);
        let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
        assert_eq!(db.code(), &SqlState::FEATURE_NOT_SUPPORTED, "{sql}");
        assert!(db.message().contains(what), "{sql}: {}", db.message());
        assert!(
            db.hint().is_some_and(|h| h.contains("session")),
            "{sql}: {:?}",
            db.hint()
        );
    }
    // Nothing of them ran: the transaction-scoped forms work.
    a.client
        .batch_execute("BEGIN; CREATE TEMP TABLE scratch (a int) ON COMMIT DROP; SELECT pg_advisory_xact_lock(42); COMMIT")
        .await
        .expect("transaction-scoped forms");

    // Settings follow their client over the one shared connection.
    a.client
        .batch_execute("SET work_mem = '7MB'")
        .await
        .expect("SET");
    b.client
        .batch_execute("SET work_mem = '9MB'")
        .await
        .expect("SET");
    for _ in 0..3 {
        let wa = show(&a.client, "work_mem").await;
        let wb = show(&b.client, "work_mem").await;
        assert_eq!((wa.as_str(), wb.as_str()), ("7MB", "9MB"));
    }
    // A setting changed inside a function (the statement's text shows no sign of it) stays the
    // client's: on a server of its own the other client would never see it.
    a.client
        .batch_execute(
            "CREATE FUNCTION set_tokyo() RETURNS void LANGUAGE plpgsql AS \
             $$BEGIN PERFORM pg_catalog.set_config('TimeZone', 'Asia/Tokyo', false); END$$",
        )
        .await
        .expect("function");
    a.client
        .batch_execute("SELECT set_tokyo()")
        .await
        .expect("call");
    let zone_b = show(&b.client, "TimeZone").await;
    let zone_a = show(&a.client, "TimeZone").await;
    assert_eq!(zone_a, "Asia/Tokyo");
    assert_ne!(
        zone_b, "Asia/Tokyo",
        "another client's function setting leaked"
    );

    // A SET rolled back with its transaction is not carried.
    a.client
        .batch_execute("BEGIN; SET work_mem = '1MB'; ROLLBACK")
        .await
        .expect("rolled back SET");
    let wa = show(&a.client, "work_mem").await;
    assert_eq!(wa, "7MB");
    // RESET ALL returns to the startup packet's values, as on a server of its own.
    b.client
        .batch_execute("RESET ALL")
        .await
        .expect("RESET ALL");
    let row = b
        .client
        .query_one(
            "SELECT current_setting('work_mem'), current_setting('application_name')",
            &[],
        )
        .await
        .expect("after RESET ALL");
    assert_eq!(row.get::<_, String>(0), "4MB");
    assert_eq!(row.get::<_, String>(1), "pooled-b");

    // Both clients prepare the same name for different statements; both stay theirs.
    let sa = a
        .client
        .prepare("SELECT 'a'::text")
        .await
        .expect("prepare a");
    let sb = b
        .client
        .prepare("SELECT 'b'::text")
        .await
        .expect("prepare b");
    for _ in 0..3 {
        let ra: String = a.client.query_one(&sa, &[]).await.expect("a").get(0);
        let rb: String = b.client.query_one(&sb, &[]).await.expect("b").get(0);
        assert_eq!((ra.as_str(), rb.as_str()), ("a", "b"));
    }

    // 600 distinct statements on the one connection: past its limit duet closes the oldest on
    // the server, and a client's statement that went is prepared again when next used.
    let mut statements = Vec::new();
    for n in 0..600 {
        statements.push(
            b.client
                .prepare(&format!("SELECT {n}::int"))
                .await
                .expect("prepare"),
        );
    }
    let on_server: i64 = b
        .client
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .expect("count")
        .get(0);
    assert!(
        on_server <= 500,
        "{on_server} statements kept on the connection"
    );
    for n in [0, 1, 599] {
        let value: i32 = b
            .client
            .query_one(&statements[n], &[])
            .await
            .expect("an evicted statement prepared again")
            .get(0);
        assert_eq!(value, n as i32);
    }

    // A cancel reaches the statement running on the connection the client has now.
    let token = a.client.cancel_token();
    let sleeper = tokio::spawn(async move { a.client.batch_execute("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel_query(NoTls).await.expect("cancel request");
    let err = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the sleep ends after the cancel")
        .expect("task")
        .expect_err("canceled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");

    // The metrics endpoint shows the pool too.
    let text = crate::support::http::get(metrics, "/metrics").text();
    assert!(
        text.contains("duet_pool_connections{user=\"app\",database=\"app\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("duet_pool_size{user=\"app\",database=\"app\"} 1"),
        "{text}"
    );
    // duet knows this user's password (it logs its connections in with it): it shows it nowhere.
    assert!(!duet.log().contains(PASSWORD), "the password is in the log");
    assert!(!text.contains(PASSWORD), "the password is in the metrics");
    assert!(
        !duet.status().to_string().contains(PASSWORD),
        "the password is in status"
    );
}

/// A user given by its SCRAM verifier only (as pg_authid stores it): duet checks clients
/// against it and logs its pooled connections in to a server that demands SCRAM with the key
/// the client's proof revealed — duet never knows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_alone_or_auth_query_logs_clients_in() {
    let test = "a_verifier_alone_or_auth_query_logs_clients_in";
    let Some(cluster) = app_cluster(test, 20) else {
        return;
    };
    let verifier: String = superuser(&cluster, "postgres")
        .await
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
            &[],
        )
        .await
        .expect("verifier")
        .get(0);
    let dir = TempDir::new("pool-verifier");
    let duet = duet_with_config(
        &cluster,
        &dir,
        &format!("[pool]\nmode = \"transaction\"\nsize = 2\n\n[[pool.users]]\nname = \"app\"\nscram_verifier = \"{verifier}\"\n"),
    );
    assert_eq!(current_user_through(&duet).await, "app");

    // With no user list, `auth_query` finds the verifier on the server (duet's control login
    // runs it), per login.
    let looked_up = duet_with_config(
        &cluster,
        &dir,
        "[pool]\nmode = \"transaction\"\nsize = 2\nauth_query = \"SELECT usename, passwd FROM pg_shadow WHERE usename = $1\"\n",
    );
    assert_eq!(current_user_through(&looked_up).await, "app");
    let err = try_connect(&app_config(&looked_up, "wrong"))
        .await
        .err()
        .expect("a wrong password is refused");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// A psycopg 3 application (tests/python/psycopg_pooled.py): eight threads on two pooled
/// connections, with psycopg's own prepared statements (prepared and deallocated as it goes),
/// pipelined executemany, server-side cursors, COPY and rollbacks.
#[test]
fn psycopg_through_a_transaction_pool() {
    let test = "psycopg_through_a_transaction_pool";
    let Some((_cluster, duet, _dir)) = pooled(test, 20, 2, "20s", &password_entry()) else {
        return;
    };
    let dsn = format!(
        "host=127.0.0.1 port={} user=app password={PASSWORD} dbname=app connect_timeout=10",
        duet.port()
    );
    let output = python(
        &tests_path("python/psycopg_pooled.py"),
        &[],
        &[("DUET_DSN", dsn.as_str())],
    );
    if output.code() == Some(77) {
        let why = format!(
            "python3 cannot import psycopg ({}); install it with: pip install 'psycopg[binary]'",
            output.stderr.trim()
        );
        let _: Option<()> = skip_or_fail(test, &why);
        return;
    }
    assert!(
        output.stdout_text().contains("ALL OK"),
        "the psycopg script failed:\n{}\n{}\nduet:\n{}",
        output.stdout_text(),
        output.stderr,
        duet.log()
    );
}

/// An online migration with every client pooled per transaction: the shadow table is copied
/// while every write class (both protocols, psql, psycopg, a statement prepared before the flip)
/// goes through two pooled connections, the flip holds new transactions at the proxy, and at the
/// end the migrated table equals its unmigrated twin row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_through_a_transaction_pool_loses_nothing() {
    let test = "a_migration_through_a_transaction_pool_loses_nothing";
    let Some(mut backend) = backend_or_skip(test) else {
        return;
    };
    // Clients authenticate to duet; duet logs in to the server with the same password (a
    // trust-auth test server never asks for it).
    let password = backend
        .password
        .clone()
        .unwrap_or_else(|| PASSWORD.to_owned());
    backend.password = Some(password.clone());
    let dir = TempDir::new("pool-migration");
    let path = dir.join("duet.toml");
    std::fs::write(
        &path,
        format!(
            "[pool]\nmode = \"transaction\"\nsize = 2\n\n[[pool.users]]\nname = \"{}\"\npassword = \"{password}\"\n",
            backend.user
        ),
    )
    .expect("config");
    let config = path.display().to_string();
    let mut s = Scenario::start_with(
        backend,
        "pool_migration",
        "pmg",
        "int",
        "int",
        3000,
        &["--config", &config],
    )
    .await;
    s.round().await;
    let id = migrate_sql(&s.duet, "ALTER TABLE pmg.t ALTER COLUMN id TYPE bigint").await;
    let m = wait_phase(&s.duet, id, "ready").await;
    assert_eq!(m["strategy"], "shadow_table", "{m}");
    s.round().await;
    // Writes the rewrite never sees, sent by pooled clients: inside a function, a DO block, and
    // an unqualified name that the client's own search_path resolves to another schema's `t`
    // (which must stay out of pmg.t's shadow). The same writes go straight to the control
    // table, except the other schema's, which the control must not see either.
    s.direct()
        .batch_execute(
            "CREATE FUNCTION pmg.bump(tbl regclass, k int) RETURNS void LANGUAGE plpgsql AS $f$
             BEGIN
               EXECUTE format('UPDATE %s SET amount = amount + 1000 WHERE id = $1', tbl) USING k;
               EXECUTE format('INSERT INTO %s (id, label, amount) VALUES ($1, ''fn'', 7)', tbl)
                 USING k + 910000;
             END $f$;
             CREATE SCHEMA pmg_other;
             CREATE TABLE pmg_other.t (id int PRIMARY KEY, label text NOT NULL, amount int);
             INSERT INTO pmg_other.t SELECT g, 'other', 0 FROM generate_series(1, 20) g;",
        )
        .await
        .expect("function and the other schema");
    s.through()
        .batch_execute(
            "SELECT pmg.bump('pmg.t', 11);
             DO $$ BEGIN UPDATE pmg.t SET label = 'do' WHERE id = 12; DELETE FROM pmg.t WHERE id = 13; END $$;
             SET search_path = pmg_other, pmg;",
        )
        .await
        .expect("function, DO and search_path through the pool");
    // A later transaction of the same client, maybe on another pooled connection: its
    // search_path follows it, so `t` is still pmg_other.t.
    s.through()
        .batch_execute("UPDATE t SET amount = -5 WHERE id = 14; RESET search_path")
        .await
        .expect("the other schema's t through the pool");
    s.direct()
        .batch_execute(
            "SELECT pmg.bump('pmg.t_control', 11);
             UPDATE pmg.t_control SET label = 'do' WHERE id = 12;
             DELETE FROM pmg.t_control WHERE id = 13;",
        )
        .await
        .expect("the same writes on the control table");
    let other: i32 = s
        .direct()
        .query_one("SELECT amount FROM pmg_other.t WHERE id = 14", &[])
        .await
        .expect("other schema")
        .get(0);
    assert_eq!(
        other, -5,
        "the write went to the table its search_path names"
    );
    s.assert_same_rows().await;
    let prepared = s
        .through()
        .prepare("INSERT INTO pmg.t (id, label, amount) VALUES ($1, $2, $3) RETURNING id::text")
        .await
        .expect("prepare before the flip");
    s.through()
        .query_one(&prepared, &[&900_001_i32, &"prep", &1_i32])
        .await
        .expect("prepared insert before the flip");
    let out = s
        .duet
        .admin_async(&[
            "cutover", "--table", "pmg.t", "--budget", "5s", "--format", "json",
        ])
        .await;
    assert_eq!(out.code, Some(0), "cutover: {} {}", out.stdout, out.stderr);
    assert_eq!(out.json()["phase"], "flipped", "{}", out.stdout);
    s.through()
        .query_one(&prepared, &[&900_002_i32, &"prep", &2_i32])
        .await
        .expect("a statement prepared before the flip works after it");
    s.direct()
        .batch_execute("INSERT INTO pmg.t_control VALUES (900001, 'prep', 1), (900002, 'prep', 2)")
        .await
        .expect("control");
    s.round().await;
    let done = request(&s.duet, json!({"command": "complete", "table": "pmg.t"})).await;
    assert!(done.ok, "complete: {}", done.raw);
    s.round().await;
    s.assert_same_rows().await;
    assert_eq!(column_type(s.direct(), "pmg", "t", "id").await, "bigint");
}

/// What a pool meets in production: a server that ends an idle pooled connection, a client that
/// leaves in the middle of a transaction, a server that ends an attached one, and a pool that
/// stays busy longer than a transaction may wait. Nothing half-done reaches the next client, and
/// the pool recovers each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_from_ended_connections_and_never_hands_on_a_transaction() {
    let test = "the_pool_recovers_from_ended_connections_and_never_hands_on_a_transaction";
    let entries = format!("{}\n", password_entry());
    let Some((cluster, duet, _dir)) = pooled(test, 20, 1, "2s", &entries) else {
        return;
    };
    let admin = superuser(&cluster, "app").await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t OWNER TO app")
        .await
        .expect("table");
    let pooled_pids = || async {
        admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'",
                &[],
            )
            .await
            .expect("pids")
            .iter()
            .map(|row| row.get::<_, i32>(0))
            .collect::<Vec<i32>>()
    };

    // 1. The server ends the idle pooled connection: the next transaction gets a new one.
    let a = connect(&app_config(&duet, PASSWORD)).await;
    a.client.batch_execute("SELECT 1").await.expect("first");
    for pid in pooled_pids().await {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .expect("terminate");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .expect("a transaction after the idle connection ended");

    // 2. A client leaves inside a transaction: its write is rolled back, and the next client
    //    does not find itself inside that transaction.
    let leaver = connect(&app_config(&duet, PASSWORD)).await;
    leaver
        .client
        .batch_execute("BEGIN; INSERT INTO t VALUES (2)")
        .await
        .expect("open transaction");
    drop(leaver);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status: String = a
        .client
        .query_one(
            "SELECT count(*)::text || ':' || (pg_current_xact_id_if_assigned() IS NULL)::text FROM t",
            &[],
        )
        .await
        .expect("the next client runs on a clean connection")
        .get(0);
    assert_eq!(
        status, "1:true",
        "only row 1, and no transaction (with its write) carried over"
    );

    // 3. The server ends the connection while it is attached: the client gets the server's
    //    FATAL, and the pool serves the next client.
    let victim = connect(&app_config(&duet, PASSWORD)).await;
    victim
        .client
        .batch_execute("BEGIN; INSERT INTO t VALUES (3)")
        .await
        .expect("open transaction");
    for pid in pooled_pids().await {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .expect("terminate");
    }
    let err = victim
        .client
        .batch_execute("COMMIT")
        .await
        .expect_err("the connection was terminated");
    assert!(err.is_closed() || err.code().is_some(), "{err}");
    let count: i64 = a
        .client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("the pool serves the next client")
        .get(0);
    assert_eq!(count, 1, "the terminated transaction left nothing");

    // 4. A transaction that waits longer than wait_timeout for the one connection is told so.
    let holder = connect(&app_config(&duet, PASSWORD)).await;
    holder
        .client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("holds the connection");
    let waited = tokio::time::timeout(Duration::from_secs(15), a.client.batch_execute("SELECT 1"))
        .await
        .expect("wait_timeout ends the wait");
    let err = waited.expect_err("no connection became free");
    let text = err
        .as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| err.to_string());
    assert!(text.contains("became free within"), "{text}");
    holder.client.batch_execute("COMMIT").await.expect("commit");
}

/// Transaction mode over TLS: psql logs in with SCRAM over duet's certificate (libpq's default
/// channel_binding=prefer, which duet does not offer), and megabytes go both ways through the
/// pool — a large result read, a large COPY written — equal to the same done directly.
#[test]
fn tls_clients_and_large_data_through_a_transaction_pool() {
    let test = "tls_clients_and_large_data_through_a_transaction_pool";
    let certs = TempDir::new("pool-tls");
    let certificate = crate::auth_and_tls::self_signed_certificate(&certs);
    let entries = format!(
        "{}\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        password_entry(),
        certificate.cert.display(),
        certificate.key.display()
    );
    let Some((cluster, duet, _dir)) = pooled(test, 20, 2, "20s", &entries) else {
        return;
    };
    let target = Target::tcp("127.0.0.1", duet.port(), "app", "app").with_password(PASSWORD);
    let tls = target.with("sslmode=require");
    let conninfo = psql(&tls, &["-c", "\\conninfo"], None);
    conninfo.assert_success();
    assert!(
        conninfo
            .stdout_text()
            .contains("SSL connection (protocol: TLSv1."),
        "{}",
        conninfo.stdout_text()
    );
    let query = "SELECT i, repeat(md5(i::text), 10) FROM generate_series(1, 20000) i";
    let pooled = psql(&tls, &["-At", "-c", query], None);
    pooled.assert_success();
    let direct_target = Target::tcp(cluster.host(), cluster.port(), "postgres", "app");
    let direct = psql(&direct_target, &["-At", "-c", query], None);
    direct.assert_success();
    assert!(pooled.stdout.len() > 6_000_000, "{}", pooled.stdout.len());
    assert!(
        pooled.stdout == direct.stdout,
        "a large result through the pool differs"
    );

    let create = psql(&tls, &["-c", "CREATE TABLE big (id int, line text)"], None);
    create.assert_success();
    let mut data = String::new();
    for i in 1..=40_000u32 {
        data.push_str(&format!("{i}\t{}{i}\n", "z".repeat(120)));
    }
    let copied = psql(
        &tls,
        &["-c", "\\copy big FROM STDIN"],
        Some(data.as_bytes()),
    );
    copied.assert_success();
    let summary = psql(
        &direct_target,
        &["-At", "-c", "SELECT count(*), sum(length(line)) FROM big"],
        None,
    );
    summary.assert_success();
    let expected: usize = (1..=40_000u32).map(|i| 120 + i.to_string().len()).sum();
    assert_eq!(summary.stdout_text().trim(), format!("40000|{expected}"));
}

/// A client asking for protocol 3.2 and a protocol option, on the wire: duet answers as
/// PostgreSQL does — NegotiateProtocolVersion first (3.0, the option named), then the SCRAM
/// exchange — and the session gives a 4-byte cancel key, as protocol 3.0 requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_protocol_is_negotiated_down_before_the_login() {
    use duet_proxy::pool::auth::scram::{ScramClient, ScramSecret};
    use duet_testkit::wire;
    use tokio::io::AsyncWriteExt;

    let test = "a_newer_protocol_is_negotiated_down_before_the_login";
    let Some((_cluster, duet, _dir)) = pooled(test, 20, 1, "20s", &password_entry()) else {
        return;
    };
    let startup = wire::startup_message_version(
        0x0003_0002,
        &[
            ("user", "app"),
            ("database", "app"),
            ("_pq_.duet_e2e", "on"),
        ],
    );
    let mut stream = tokio::net::TcpStream::connect(duet.listen())
        .await
        .expect("connect");
    stream.write_all(&startup).await.expect("startup");
    let mut buffer = Vec::new();
    let negotiate = read_one(&mut stream, &mut buffer).await;
    assert_eq!(
        negotiate.tag, b'v',
        "NegotiateProtocolVersion first: {negotiate:?}"
    );
    assert_eq!(
        &negotiate.body[..8],
        &[0, 0, 0, 0, 0, 0, 0, 1],
        "minor 0, one option"
    );
    assert_eq!(&negotiate.body[8..], b"_pq_.duet_e2e\0");
    let sasl = read_one(&mut stream, &mut buffer).await;
    assert_eq!(
        (sasl.tag, &sasl.body[..4]),
        (b'R', &[0, 0, 0, 10][..]),
        "AuthenticationSASL"
    );

    let mut scram = ScramClient::new(ScramSecret::Password(PASSWORD.to_owned()));
    let first = scram.client_first();
    let mut body = b"SCRAM-SHA-256\0".to_vec();
    body.extend_from_slice(&(first.len() as i32).to_be_bytes());
    body.extend_from_slice(&first);
    stream
        .write_all(&wire::message(b'p', &body))
        .await
        .expect("SASLInitialResponse");
    let server_first = read_one(&mut stream, &mut buffer).await;
    assert_eq!(
        &server_first.body[..4],
        &[0, 0, 0, 11],
        "AuthenticationSASLContinue"
    );
    let last = scram
        .server_first(&server_first.body[4..])
        .expect("server-first");
    stream
        .write_all(&wire::message(b'p', &last))
        .await
        .expect("SASLResponse");
    let server_final = read_one(&mut stream, &mut buffer).await;
    assert_eq!(
        &server_final.body[..4],
        &[0, 0, 0, 12],
        "AuthenticationSASLFinal"
    );
    scram
        .server_final(&server_final.body[4..])
        .expect("duet proves it knows the verifier");
    let mut key_len = None;
    loop {
        let message = read_one(&mut stream, &mut buffer).await;
        match message.tag {
            b'K' => key_len = Some(message.body.len() - 4),
            b'Z' => break,
            b'R' => assert_eq!(message.body, [0, 0, 0, 0], "AuthenticationOk"),
            b'S' => {}
            other => panic!("unexpected message {:?}: {message:?}", other as char),
        }
    }
    assert_eq!(key_len, Some(4), "a protocol 3.0 cancel key");
    let _ = stream.write_all(&wire::message(b'X', &[])).await;
}

/// The next whole message from the server (waiting up to 10 s for it).
async fn read_one(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> duet_testkit::wire::BackendMessage {
    use tokio::io::AsyncReadExt;
    loop {
        let (messages, _) = duet_testkit::wire::parse_messages(buffer);
        if let Some(first) = messages.into_iter().next() {
            buffer.drain(..5 + first.body.len());
            return first;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "duet closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// duet logs its pooled connections in with whatever the server asks for: md5 and cleartext
/// passwords too (the clients still log in to duet with SCRAM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_log_in_with_md5_and_cleartext() {
    let test = "pooled_connections_log_in_with_md5_and_cleartext";
    let options = ClusterOptions {
        max_connections: 20,
        hba: vec![
            "host all md5_app 127.0.0.1/32 md5".into(),
            "host all plain_app 127.0.0.1/32 password".into(),
        ],
        ..ClusterOptions::default()
    };
    let Some(cluster) = throwaway_cluster_or_skip(test, options) else {
        return;
    };
    superuser(&cluster, "postgres")
        .await
        .batch_execute(&format!(
            "SET password_encryption = 'md5';
             CREATE ROLE md5_app LOGIN PASSWORD '{PASSWORD}';
             SET password_encryption = 'scram-sha-256';
             CREATE ROLE plain_app LOGIN PASSWORD '{PASSWORD}';"
        ))
        .await
        .expect("roles");
    let dir = TempDir::new("pool-md5");
    let duet = duet_with_config(
        &cluster,
        &dir,
        &format!(
            "[pool]\nmode = \"transaction\"\nsize = 1\n\n\
             [[pool.users]]\nname = \"md5_app\"\npassword = \"{PASSWORD}\"\n\n\
             [[pool.users]]\nname = \"plain_app\"\npassword = \"{PASSWORD}\"\n"
        ),
    );
    // The server really asks: the same duet with a wrong password for the server is refused by it.
    let wrong = duet_with_config(
        &cluster,
        &dir,
        "[pool]\nmode = \"transaction\"\nsize = 1\n\n\
         [[pool.users]]\nname = \"md5_app\"\npassword = \"nope\"\n\n\
         [[pool.users]]\nname = \"plain_app\"\npassword = \"nope\"\n",
    );
    for user in ["md5_app", "plain_app"] {
        let mut config = duet.config(user, "postgres");
        config.password(PASSWORD);
        let session = connect(&config).await;
        let who: String = session
            .client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("query through the pool")
            .get(0);
        assert_eq!(who, user);
        let mut config = wrong.config(user, "postgres");
        config.password("nope");
        let err = try_connect(&config)
            .await
            .err()
            .expect("the server refuses");
        let message = err.as_db_error().map(|db| db.message().to_owned());
        assert!(
            message.as_deref().is_some_and(|m| m.contains(&format!(
                "password authentication failed for user \"{user}\""
            ))),
            "{err}"
        );
    }
}

/// What `SHOW name` says on `client`'s session.
async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
        .get(0)
}

/// A transaction whose answer is larger than what the link buffers for the client at once
/// (one 1 MB row, then many rows) gives its connection back as soon as it is answered: with a
/// pool of one, a second client gets it while the first stays connected and idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_gives_the_connection_back() {
    let Some((_cluster, duet, _dir)) =
        pooled("tx_pool_large_answer", 20, 1, "5s", &password_entry())
    else {
        return;
    };
    let first = connect(&app_config(&duet, PASSWORD)).await;
    let second = connect(&app_config(&duet, PASSWORD)).await;
    for (sql, rows) in [
        ("SELECT repeat('x', 1000000)", 1),
        (
            "SELECT g, repeat('y', 100) FROM generate_series(1, 20000) g",
            20_000,
        ),
    ] {
        let answer = first
            .client
            .simple_query(sql)
            .await
            .expect("a large answer");
        let got = answer
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(got, rows, "{sql}");
        // The first client is idle and connected; the only connection must be free.
        let n: i64 = tokio::time::timeout(
            Duration::from_secs(3),
            second
                .client
                .query_one("SELECT count(*) FROM pg_class", &[]),
        )
        .await
        .unwrap_or_else(|_| panic!("the connection was not given back after: {sql}"))
        .expect("a query on the connection the first client released")
        .get(0);
        assert!(n > 0);
    }
}

/// A client of duet's unix socket (set in the config file's `[proxy] unix_socket_dir`) logs in
/// with SCRAM to duet and shares the pool with TCP clients: one server connection serves both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_unix_socket_is_pooled_like_a_tcp_one() {
    let test = "a_client_of_the_unix_socket_is_pooled_like_a_tcp_one";
    let local = TempDir::new("pool-local");
    let user_entry = format!(
        "[[pool.users]]\nname = \"app\"\npassword = \"{PASSWORD}\"\n\n[proxy]\nunix_socket_dir = \"{}\"\n",
        local.path().display()
    );
    let Some((cluster, duet, _dir)) = pooled(test, 20, 1, "5s", &user_entry) else {
        return;
    };
    let mut over_socket = Config::new();
    over_socket
        .host_path(local.path())
        .port(duet.port())
        .user("app")
        .dbname("app")
        .password(PASSWORD);
    let socket_client = connect(&over_socket).await;
    let tcp_client = connect(&app_config(&duet, PASSWORD)).await;
    for round in 0..3 {
        for (client, how) in [(&socket_client, "socket"), (&tcp_client, "tcp")] {
            let row = client
                .client
                .query_one("SELECT current_user::text, $1::text", &[&how])
                .await
                .unwrap_or_else(|err| panic!("{how}, round {round}: {err}"));
            assert_eq!(row.get::<_, String>(0), "app");
            assert_eq!(row.get::<_, String>(1), how);
        }
    }
    let mut wrong = over_socket.clone();
    wrong.password("nope");
    let err = try_connect(&wrong)
        .await
        .err()
        .expect("a wrong password is refused over the socket too");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    assert_eq!(server_connections(&cluster, "app").await, 1);
}

/// A Parse after a schema change passed through duet is parsed again, as PostgreSQL parses every
/// Parse: a statement prepared before `t.v` changed from int to bigint is not reused for the
/// same text after it (its parameter would stay int, where the server now says bigint). Found by
/// SQLAlchemy's own test suite (an enum column created again), which failed only through a pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_before_a_schema_change_is_not_reused_after_it() {
    let Some((_cluster, duet, _dir)) =
        pooled("tx_pool_schema_change", 20, 1, "5s", &password_entry())
    else {
        return;
    };
    let text = "INSERT INTO t (v) VALUES ($1)";
    let first = connect(&app_config(&duet, PASSWORD)).await;
    first
        .client
        .batch_execute("CREATE TABLE t (v int)")
        .await
        .expect("CREATE TABLE");
    let before = first.client.prepare(text).await.expect("prepare");
    assert_eq!(before.params(), &[Type::INT4]);
    first
        .client
        .execute(&before, &[&1i32])
        .await
        .expect("insert");
    // Changed by the other client, in a transaction, on the one pooled connection.
    let second = connect(&app_config(&duet, PASSWORD)).await;
    second
        .client
        .batch_execute("BEGIN; DROP TABLE t; CREATE TABLE t (v bigint); COMMIT")
        .await
        .expect("the schema change");
    for client in [&second.client, &first.client] {
        let after = client.prepare(text).await.expect("prepare after");
        assert_eq!(after.params(), &[Type::INT8], "as the server parses it now");
        client
            .execute(&after, &[&5_000_000_000i64])
            .await
            .expect("a bigint value");
    }
    let rows: i64 = second
        .client
        .query_one("SELECT count(*) FROM t WHERE v = 5000000000", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 2);
}

/// Two clients whose search paths lead the same text to different tables (a schema per tenant,
/// each with its own `t`) each get their own statement, as PostgreSQL parses it for them: a
/// statement shared by text alone would give the second client the first one's parameter type
/// (and, with a different result type, "cached plan must not change result type").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_other_search_paths_do_not_share_a_statement() {
    let Some((_cluster, duet, _dir)) =
        pooled("tx_pool_search_path", 20, 1, "5s", &password_entry())
    else {
        return;
    };
    let setup = connect(&app_config(&duet, PASSWORD)).await;
    setup
        .client
        .batch_execute(
            "CREATE SCHEMA one; CREATE TABLE one.t (v int); INSERT INTO one.t VALUES (1);
             CREATE SCHEMA two; CREATE TABLE two.t (v text); INSERT INTO two.t VALUES ('two')",
        )
        .await
        .expect("two schemas");
    let text = "SELECT v FROM t WHERE v = $1";
    let first = connect(&app_config(&duet, PASSWORD)).await;
    first
        .client
        .batch_execute("SET search_path = one")
        .await
        .expect("SET");
    let in_one = first.client.prepare(text).await.expect("prepare in one");
    assert_eq!(in_one.params(), &[Type::INT4]);
    let second = connect(&app_config(&duet, PASSWORD)).await;
    // Set in the same transaction as the Parse, and in a transaction before it.
    for (i, set) in ["BEGIN; SET search_path = two", "SET search_path = two"]
        .into_iter()
        .enumerate()
    {
        second.client.batch_execute(set).await.expect("SET");
        let in_two = second.client.prepare(text).await.expect("prepare in two");
        assert_eq!(in_two.params(), &[Type::TEXT], "round {i}");
        let row = second
            .client
            .query_one(&in_two, &[&"two"])
            .await
            .expect("a row of two.t");
        assert_eq!(row.get::<_, String>(0), "two");
        if i == 0 {
            second.client.batch_execute("COMMIT").await.expect("COMMIT");
        }
    }
    let row = first
        .client
        .query_one(&in_one, &[&1i32])
        .await
        .expect("a row of one.t");
    assert_eq!(row.get::<_, i32>(0), 1);
}

/// Statements that need a database to themselves (`CREATE DATABASE … TEMPLATE`, `ALTER DATABASE
/// … RENAME`, `DROP DATABASE`) work through the pool as they do straight on the server: the
/// pool's idle connections to that database, which no client is using, are closed (Django's test
/// runner clones and drops its test database this way; it failed with 55006 before). A client of
/// that database goes on with a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_no_client_is_using_can_be_copied_renamed_and_dropped() {
    let Some((cluster, duet, _dir)) =
        pooled("tx_pool_database_ddl", 20, 2, "5s", &password_entry())
    else {
        return;
    };
    superuser(&cluster, "postgres")
        .await
        .batch_execute("ALTER ROLE app CREATEDB")
        .await
        .expect("CREATEDB");
    // A client of `app` leaves its pooled connection idle there.
    let app = connect(&app_config(&duet, PASSWORD)).await;
    app.client
        .batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)")
        .await
        .expect("a table to copy");
    assert_eq!(server_connections(&cluster, "app").await, 1);
    let mut maintenance = duet.config("app", "postgres");
    maintenance.password(PASSWORD);
    let maintenance = connect(&maintenance).await;
    maintenance
        .client
        .batch_execute("CREATE DATABASE app_copy TEMPLATE app")
        .await
        .expect("CREATE DATABASE … TEMPLATE of a database only the pool's idle connection is in");
    // The copy is used through the pool, then renamed and dropped.
    let mut copy = duet.config("app", "app_copy");
    copy.password(PASSWORD);
    let copy = connect(&copy).await;
    let copied: i64 = copy
        .client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .expect("the copy's table")
        .get(0);
    assert_eq!(copied, 1);
    // Its client leaves (a connected one would keep the database busy, as on the server alone).
    drop(copy);
    maintenance
        .client
        .batch_execute("ALTER DATABASE app_copy RENAME TO app_renamed")
        .await
        .expect("ALTER DATABASE … RENAME of a database only the pool's idle connection is in");
    maintenance
        .client
        .batch_execute("DROP DATABASE app_renamed")
        .await
        .expect("DROP DATABASE of a database only the pool's idle connection is in");
    // `app`'s client goes on, on a new connection.
    let n: i64 = app
        .client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .expect("the first client after its connection was closed")
        .get(0);
    assert_eq!(n, 1);
    // A database a client is in the middle of a transaction in is refused, as by the server.
    app.client.batch_execute("BEGIN").await.expect("BEGIN");
    app.client
        .batch_execute("SELECT 1")
        .await
        .expect("attached");
    let refused = maintenance
        .client
        .batch_execute("CREATE DATABASE app_copy2 TEMPLATE app")
        .await
        .expect_err("a database with a client's open transaction cannot be a template");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE),
        "{refused:?}"
    );
    app.client.batch_execute("COMMIT").await.expect("COMMIT");
}

/// SQL `EXECUTE` (and `EXPLAIN … EXECUTE`) of a statement the client prepared with the protocol's
/// Parse works through the pool, as it does on a server of the client's own — on a connection
/// that has it and on one that does not yet (sqlx's `describe`, which its `query!` macros run at
/// build time, checks nullability this way; it failed with 26000 "prepared statement does not
/// exist" before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_execute_of_a_protocol_prepared_statement_works() {
    let Some((_cluster, duet, _dir)) =
        pooled("tx_pool_sql_execute", 20, 3, "5s", &password_entry())
    else {
        return;
    };
    let a = connect(&app_config(&duet, PASSWORD)).await;
    let statement = a
        .client
        .prepare("SELECT $1::int + 1 AS next")
        .await
        .expect("prepare");
    // tokio-postgres keeps the name to itself but for its Debug form (`name: "s<n>"`).
    let debug = format!("{statement:?}");
    let name = debug
        .split("name: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the statement's name in its Debug form")
        .to_owned();
    let answer = |messages: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<String> {
        messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect()
    };
    let on_same = a
        .client
        .simple_query(&format!("EXECUTE {name}(41)"))
        .await
        .expect("EXECUTE on the connection that prepared it");
    assert_eq!(answer(on_same), ["42"]);
    // Another client holds that connection: the next one must be prepared first.
    let b = connect(&app_config(&duet, PASSWORD)).await;
    b.client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("b holds a connection");
    let on_other = a
        .client
        .simple_query(&format!("EXECUTE {name}(1)"))
        .await
        .expect("EXECUTE on a connection that had to prepare it");
    assert_eq!(answer(on_other), ["2"]);
    let plan = a
        .client
        .simple_query(&format!(
            "EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {name}(NULL)"
        ))
        .await
        .expect("EXPLAIN EXECUTE");
    assert!(
        answer(plan).concat().contains("\"Output\""),
        "a JSON plan with its outputs"
    );
    // The same prepared by Parse itself (sqlx's describe sends it so).
    let rows = a
        .client
        .query(
            &format!("EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {name}(NULL)"),
            &[],
        )
        .await
        .expect("EXPLAIN EXECUTE through Parse");
    assert_eq!(rows.len(), 1);
    // Prepared by name, then run on a third connection that has neither it nor the statement it
    // executes: both are prepared there first, the executed one before.
    let explain = a
        .client
        .prepare(&format!("EXPLAIN (FORMAT JSON) EXECUTE {name}(NULL)"))
        .await
        .expect("prepare EXPLAIN EXECUTE");
    let c = connect(&app_config(&duet, PASSWORD)).await;
    c.client
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("c holds a connection");
    let rows = a
        .client
        .query(&explain, &[])
        .await
        .expect("EXPLAIN EXECUTE on a connection that had neither statement");
    assert_eq!(rows.len(), 1);
    c.client.batch_execute("COMMIT").await.expect("COMMIT");
    b.client.batch_execute("COMMIT").await.expect("COMMIT");
    // An unknown name is the server's own error, and the session goes on.
    let unknown = a
        .client
        .simple_query("EXECUTE no_such_statement(1)")
        .await
        .expect_err("unknown statement");
    assert_eq!(
        unknown.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_PSTATEMENT)
    );
    let still: i32 = a
        .client
        .query_one(&statement, &[&9i32])
        .await
        .expect("the statement by the protocol")
        .get(0);
    assert_eq!(still, 10);
}

/// A `SET` prepared with the protocol's Parse in one round and executed in a later one (what
/// tokio-postgres, sqlx and psycopg's `prepare=True` do) stays its client's: the next client of
/// the one pooled connection sees its own `search_path`, not the first one's (it inherited it
/// before — found by sqlx's suite, whose next tests then failed with "relation does not exist").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_set_does_not_leak_to_the_next_client() {
    let Some((_cluster, duet, _dir)) =
        pooled("tx_pool_prepared_set", 20, 1, "5s", &password_entry())
    else {
        return;
    };
    let a = connect(&app_config(&duet, PASSWORD)).await;
    // tokio-postgres prepares (Parse, Describe, Sync), then binds and executes in a second round.
    a.client
        .execute("SET search_path = elsewhere, public", &[])
        .await
        .expect("a prepared SET");
    let b = connect(&app_config(&duet, PASSWORD)).await;
    for (client, want) in [
        (&b.client, "\"$user\", public"),
        (&a.client, "elsewhere, public"),
        (&b.client, "\"$user\", public"),
    ] {
        let path: String = client
            .query_one("SHOW search_path", &[])
            .await
            .expect("SHOW search_path")
            .get(0);
        assert_eq!(path, want);
    }
}

/// A session-level `SET ROLE` or `SET SESSION AUTHORIZATION` would outlive the transaction on the
/// pooled connection, and `RESET ALL` (what duet replays) does not reset it: the next client of
/// that connection ran as the role (seen before this refusal). It is refused with 0A000 and a
/// hint, in both protocols and through `set_config`; `SET LOCAL ROLE` works and ends with its
/// transaction, and the next client is itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_role_is_refused_and_a_local_one_ends_with_its_transaction() {
    let Some((cluster, duet, _dir)) =
        pooled("tx_pool_session_role", 20, 1, "5s", &password_entry())
    else {
        return;
    };
    superuser(&cluster, "postgres")
        .await
        .batch_execute("CREATE ROLE reader; GRANT reader TO app")
        .await
        .expect("a role app may take");
    let a = connect(&app_config(&duet, PASSWORD)).await;
    for sql in [
        "SET ROLE reader",
        "SET SESSION AUTHORIZATION reader",
        "SELECT set_config('role', 'reader', false)",
    ] {
        for prepared in [false, true] {
            let refused = if prepared {
                a.client.execute(sql, &[]).await.map(|_| ())
            } else {
                a.client.batch_execute(sql).await
            };
            let err = refused.expect_err(sql);
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
                "{sql}: {err:?}"
            );
            let hint = err.as_db_error().and_then(|e| e.hint()).unwrap_or("");
            assert!(hint.contains("SET LOCAL ROLE"), "{sql}: {hint}");
        }
    }
    let in_transaction: String = {
        a.client
            .batch_execute("BEGIN; SET LOCAL ROLE reader")
            .await
            .expect("SET LOCAL ROLE");
        let who = a
            .client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("current_user")
            .get(0);
        a.client.batch_execute("COMMIT").await.expect("COMMIT");
        who
    };
    assert_eq!(in_transaction, "reader");
    let b = connect(&app_config(&duet, PASSWORD)).await;
    for client in [&b.client, &a.client] {
        let who: String = client
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("current_user")
            .get(0);
        assert_eq!(who, "app", "the role ended with its transaction");
    }
}
