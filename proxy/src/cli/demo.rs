//! `duet demo`: the quick start — see duet work with nothing configured.
//!
//! It starts a throwaway PostgreSQL from the installed server binaries, puts this very `duet`
//! binary in front of it (`duet proxy` on a free loopback port, private admin socket), creates
//! pgbench's tables *through duet*, runs pgbench's read-write and select-only workloads through it
//! with the harness's load generator (`duet_harness`), then does duet's main job while the read-write load keeps running:
//! an online change of `pgbench_accounts`' primary key from int to bigint (migrate, cutover,
//! complete) and a column rename that the load's old-name statements survive (migrate, cutover,
//! a refused complete, revert). It prints what the clients measured next to what duet itself
//! reports (`duet admin status`), then shuts duet down over the admin socket and removes the
//! cluster.
//! Everything it starts is stopped again on success, on error and on Ctrl-C. It uses only duet's
//! public surfaces (the binary, SQL, the admin socket), exactly as a user would.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use duet_harness::cluster::{Cluster, ClusterOptions};
use duet_harness::duet_process::{DuetProxy, DuetProxyOptions};
use duet_harness::duration_arg::parse_duration;
use duet_harness::load::{init_tables, run_load, LoadOptions};
use duet_harness::report::Report;
use duet_harness::workload::{Protocol, Workload};
use duet_shadow::plan::PlanInput;
use serde_json::Value;
use tokio::sync::watch;

use crate::admin::protocol::{Request, Selector};
use crate::admin::render;
use crate::admin::reply::{self, StartedReply, StatusReport};
use crate::cli::admin::{self as admin_cli, Format};

/// Options of `duet demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent client connections for each workload.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// How long each workload runs (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Leave duet and PostgreSQL running after the load (until Ctrl-C), to try them by hand; the
    /// demo's own online migrations are skipped so that the tables are yours to migrate.
    #[arg(long)]
    keep_running: bool,
}

/// pgbench scale of the demo's tables (100 000 accounts): quick to create, big enough to matter.
const DEMO_SCALE: u32 = 1;
/// Unmeasured run before each workload's window.
const WARMUP: Duration = Duration::from_secs(1);
/// How long duet's sessions may take to finish when the demo shuts it down.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);
/// The shortest load the online migration runs under (both changes take a few seconds at scale 1).
const MIGRATION_LOAD: Duration = Duration::from_secs(12);
/// The two changes the demo makes online.
const WIDEN_KEY: &str = "ALTER TABLE pgbench_accounts ALTER COLUMN aid TYPE bigint";
const RENAME: &str = "ALTER TABLE pgbench_accounts RENAME COLUMN abalance TO balance";

/// Runs `duet demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.clients == 0 {
        anyhow::bail!("--clients must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(demo(args))
}

fn progress(line: &str) {
    eprintln!("duet demo: {line}");
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    // First of all, so that a Ctrl-C from here on is ours to handle (and everything gets stopped).
    let stop = StopSignal::install()?;

    progress("starting a throwaway PostgreSQL (temporary data directory, free port)…");
    let cluster = Cluster::start(ClusterOptions::default())
        .context("duet demo needs the PostgreSQL server binaries (initdb, postgres)")?;
    let backend_url = cluster.url("postgres", None, "postgres");
    progress(&format!(
        "PostgreSQL is up on 127.0.0.1:{} (data in {})",
        cluster.port(),
        cluster.data_dir().display()
    ));
    stop.check()?;

    progress("starting duet in front of it…");
    let duet_bin = std::env::current_exe().context("finding the duet executable")?;
    let duet = DuetProxy::start(&DuetProxyOptions {
        duet_bin,
        backend_url,
        extra_args: Vec::new(),
    })
    .context("starting `duet proxy`")?;
    progress(&format!(
        "duet listens on 127.0.0.1:{} → PostgreSQL 127.0.0.1:{}; admin socket {}",
        duet.port(),
        cluster.port(),
        duet.admin_socket().display()
    ));
    stop.check()?;

    let outcome = drive(&args, &duet, &stop).await;

    // Shut down in order whatever happened: duet first (over its admin socket), then PostgreSQL.
    progress("shutting duet down (admin shutdown)…");
    let shutdown = tokio::task::block_in_place(|| duet.shutdown(SHUTDOWN_BUDGET));
    if let Err(err) = &shutdown {
        progress(&format!("duet did not shut down cleanly: {err}"));
    }
    progress("stopping PostgreSQL and removing its files…");
    tokio::task::block_in_place(|| cluster.stop());
    progress("done: nothing left running");
    let failures = outcome?;
    shutdown.context("shutting duet down")?;
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Creates the tables, runs both workloads, prints the results; returns the failed transactions.
async fn drive(args: &Args, duet: &DuetProxy, stop: &StopSignal) -> anyhow::Result<u64> {
    let url = duet.url();
    progress(&format!(
        "creating pgbench tables through duet (scale {DEMO_SCALE}, 100000 accounts)…"
    ));
    stop.race(init_tables(&url, DEMO_SCALE)).await??;

    let mut failures = 0;
    for workload in [Workload::ReadWrite, Workload::SelectOnly] {
        progress(&format!(
            "running {} through duet: {} clients, {:.0?} (+{:.0?} warm-up)…",
            workload.name(),
            args.clients,
            args.duration,
            WARMUP
        ));
        let load = LoadOptions {
            url: url.clone(),
            clients: args.clients,
            duration: args.duration,
            warmup: WARMUP,
            workload,
            protocol: Protocol::Prepared,
            scale: Some(DEMO_SCALE),
        };
        let report = stop.race(run_load(&load)).await??;
        failures += report.failures;
        println!("{}", render_report(&report));
    }

    if args.keep_running {
        progress("--keep-running: the online migrations are left for you to run by hand (README walkthrough)");
    } else {
        failures += stop.race(online_migration(args, duet)).await??;
    }

    let status = tokio::task::block_in_place(|| duet.status()).context("duet admin status")?;
    println!("{}", render_status(&status));

    if args.keep_running {
        let exe = std::env::current_exe()
            .map(|exe| exe.display().to_string())
            .unwrap_or_else(|_| "duet".into());
        println!(
            "duet keeps running. Try:\n  export DUET_ADMIN_SOCKET={socket} URL='{url}'\n  \
             psql \"$URL\"\n  {exe} admin status\n  \
             {exe} admin migrate --sql \"{WIDEN_KEY}\" --wait\n\
             Press Ctrl-C to stop duet and PostgreSQL.",
            socket = duet.admin_socket().display()
        );
        stop.wait().await;
        progress("Ctrl-C received");
    }
    Ok(failures)
}

/// duet's main job under load: the read-write workload runs through duet while the primary key
/// of `pgbench_accounts` becomes bigint (and the change is completed), then while `abalance` is
/// renamed (the workload keeps using the old name: duet translates it, refuses to complete, and
/// the rename is reverted). Returns the failed transactions of that load.
async fn online_migration(args: &Args, duet: &DuetProxy) -> anyhow::Result<u64> {
    let load = LoadOptions {
        url: duet.url(),
        clients: args.clients,
        duration: args.duration.max(MIGRATION_LOAD),
        warmup: Duration::ZERO,
        workload: Workload::ReadWrite,
        protocol: Protocol::Prepared,
        scale: Some(DEMO_SCALE),
    };
    progress(&format!(
        "duet's main job: online schema changes while read-write runs through duet ({} clients, {:.0?})…",
        load.clients, load.duration
    ));
    let running = tokio::spawn(async move { run_load(&load).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let socket = duet.admin_socket().to_path_buf();
    let url = duet.url();
    let steps = async {
        migrate_until_ready(&socket, WIDEN_KEY).await?;
        admin(&socket, cutover()).await?;
        admin(&socket, complete()).await?;
        migrate_until_ready(&socket, RENAME).await?;
        admin(&socket, cutover()).await?;
        // The workload still says `abalance` (while it runs: the key's copy may have taken most
        // of its time on a busy machine), and so does a client that reads it, as an application
        // not yet redeployed would: duet translates both and counts them.
        old_name_reader(&url).await?;
        match admin(&socket, complete()).await {
            Err(refused) => progress(&format!("refused, as it should be — {refused}")),
            Ok(_) => anyhow::bail!(
                "complete of the rename was accepted while old-name statements still arrive"
            ),
        }
        admin(
            &socket,
            Request::Revert {
                force: false,
                target: Selector::default(),
            },
        )
        .await?;
        anyhow::Ok(())
    };
    let outcome = steps.await;
    let report = running
        .await
        .context("the load task failed")?
        .context("the load during the migration")?;
    println!("during the online migrations: {}", render_report(&report));
    outcome?;
    Ok(report.failures)
}

/// Reads `abalance` — the column's name before the rename — through duet for two seconds, as
/// a client written for the old shape does.
async fn old_name_reader(url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting an old-shape client through duet")?;
    tokio::spawn(connection);
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < until {
        client
            .query("SELECT abalance FROM pgbench_accounts WHERE aid = 1", &[])
            .await
            .context("an old-shape read through duet")?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn cutover() -> Request {
    Request::Cutover {
        budget_ms: None,
        force: false,
        target: Selector::default(),
    }
}

fn complete() -> Request {
    Request::Complete {
        force: false,
        target: Selector::default(),
    }
}

/// Sends one admin request the way `duet admin` does and prints duet's readable answer.
async fn admin(socket: &std::path::Path, request: Request) -> anyhow::Result<Value> {
    let shown = match &request {
        Request::Migrate {
            input: PlanInput::Sql { sql, .. },
            ..
        } => format!("migrate --sql \"{sql}\""),
        other => other.name().replace('_', "-"),
    };
    progress(&format!("duet admin {shown}"));
    let result = tokio::task::block_in_place(|| {
        admin_cli::send(socket, &request, Duration::from_secs(120))
    })?;
    print!("{}", render::human(request.name(), &result)?);
    Ok(result)
}

/// Starts the migration of `sql` and waits, printing its progress like `duet admin migrate
/// --wait`, until it is ready.
async fn migrate_until_ready(socket: &std::path::Path, sql: &str) -> anyhow::Result<()> {
    let started = admin(
        socket,
        Request::Migrate {
            input: PlanInput::sql(sql),
            auto_cutover: false,
            keep_referencing_types: false,
        },
    )
    .await?;
    let id = reply::result_of::<StartedReply>("migrate", &started)?
        .first
        .id;
    tokio::task::block_in_place(|| admin_cli::wait_for_migration(socket, id, Format::Human))?;
    Ok(())
}

fn render_report(report: &Report) -> String {
    let l = &report.latency_us;
    format!(
        "{} ({} clients, {:.1}s): {:.0} tps, {} transactions, {} failed; \
         latency µs p50 {} p99 {} p999 {} max {}",
        report.workload.name(),
        report.clients,
        report.duration_secs,
        report.tps,
        report.transactions,
        report.failures,
        l.p50,
        l.p99,
        l.p999,
        l.max
    ) + &report
        .errors
        .iter()
        .map(|e| format!("\n  error ×{}: {}", e.count, e.message))
        .collect::<String>()
}

/// Summarises `duet admin status --format json` read as the typed [`StatusReport`]; the raw reply
/// is printed when it is not an object at all.
///
/// A reply that does not read as a `StatusReport` (a `duet` of another version, fields missing)
/// still gets the summary, with every figure shown as `?`: the demo's job is to finish and stop
/// what it started, not to fail on its last printout, and guessing field by field from untyped
/// JSON is what the typed reply replaced. (`StatusReport` defaults only the parts a proxy may
/// leave out or an older one did not send — sessions, members, the backend TLS line, the last
/// second —; a missing figure fails the read, so neither
/// `duet admin` nor this summary shows a broken status as zeros.)
fn render_status(status: &Value) -> String {
    if !status.is_object() {
        return format!("duet status: {status}");
    }
    let typed = reply::result_of::<StatusReport>("status", status);
    let shown = |figure: &dyn Fn(&StatusReport) -> String| {
        typed.as_ref().map_or_else(|_| "?".to_owned(), figure)
    };
    let mut out = String::from("duet's own view (duet admin status):\n");
    let _ = writeln!(
        out,
        "  up {}s, listening on {}, backend {}, paused: {}",
        shown(&|s| format!("{:.1}", s.uptime_secs)),
        shown(&|s| s.listen.clone()),
        shown(&|s| s.backend.clone()),
        shown(&|s| s.paused.to_string())
    );
    let _ = writeln!(
        out,
        "  clients: {} now, {} total; backend connections: {} now, {} total",
        shown(&|s| s.clients.current.to_string()),
        shown(&|s| s.clients.total.to_string()),
        shown(&|s| s.backend_connections.current.to_string()),
        shown(&|s| s.backend_connections.total.to_string())
    );
    let _ = writeln!(
        out,
        "  statements forwarded: {}; bytes client→server {}, server→client {}",
        shown(&|s| s.statements.to_string()),
        shown(&|s| s.bytes.client_to_server.to_string()),
        shown(&|s| s.bytes.server_to_client.to_string())
    );
    let _ = write!(
        out,
        "  request latency inside duet (µs, {} samples): p50 {} p99 {} p999 {} max {}",
        shown(&|s| s.latency_us.count.to_string()),
        shown(&|s| s.latency_us.p50.to_string()),
        shown(&|s| s.latency_us.p99.to_string()),
        shown(&|s| s.latency_us.p999.to_string()),
        shown(&|s| s.latency_us.max.to_string())
    );
    if let Err(unexpected) = &typed {
        let _ = write!(out, "\n  ({unexpected})");
    }
    out
}

/// SIGINT/SIGTERM, observed instead of dying, so the demo can stop what it started.
struct StopSignal {
    stopped: watch::Receiver<bool>,
}

impl StopSignal {
    fn install() -> anyhow::Result<StopSignal> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(StopSignal { stopped: rx })
    }

    /// An error if a stop was requested.
    fn check(&self) -> anyhow::Result<()> {
        if *self.stopped.borrow() {
            anyhow::bail!("interrupted");
        }
        Ok(())
    }

    /// Resolves when a stop is requested.
    async fn wait(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Runs `work` unless a stop is requested first.
    async fn race<T>(&self, work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
        tokio::select! {
            out = work => Ok(out),
            () = self.wait() => anyhow::bail!("interrupted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_summary_reads_the_contract_fields() {
        let status = serde_json::json!({
            "uptime_secs": 12.5, "listen": "127.0.0.1:6432", "backend": "127.0.0.1:5432",
            "paused": false, "clients": {"current": 0, "total": 17},
            "backend_connections": {"current": 0, "total": 17},
            "bytes": {"client_to_server": 1000, "server_to_client": 2000}, "statements": 4242,
            "latency_us": {"count": 4242, "p50": 180, "p99": 900, "p999": 2000, "max": 5000},
            "sessions": []
        });
        let text = render_status(&status);
        assert!(
            text.contains("up 12.5s, listening on 127.0.0.1:6432"),
            "{text}"
        );
        assert!(text.contains("clients: 0 now, 17 total"), "{text}");
        assert!(text.contains("statements forwarded: 4242"), "{text}");
        assert!(
            text.contains("p50 180 p99 900 p999 2000 max 5000"),
            "{text}"
        );
    }

    #[test]
    fn status_summary_tolerates_missing_fields() {
        let text = render_status(&serde_json::json!({"listen": "x"}));
        assert!(text.contains("clients: ? now, ? total"), "{text}");
        assert_eq!(
            render_status(&serde_json::json!("odd")),
            "duet status: \"odd\""
        );
    }
}
