//! `duet-bench migrate`: what an online migration costs the clients.
//!
//! A populated table takes a steady write+read load through duet; the scenario measures a window
//! with no migration, then starts an int → bigint primary-key migration over duet's admin socket,
//! waits for ready, cuts over and completes, and measures a window after. Every client statement
//! is timed and stamped, so the report can show throughput per second with the phases marked,
//! latency per phase, the stall of the statements in flight around the flip, the copier's rate
//! against a plain `INSERT … SELECT` of the same rows, and the write rate while dual-writing
//! against the same load before the migration. See bench/README.md.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duet_proxy::admin::client;
use duet_proxy::admin::protocol::{CopySettings, PlanInput, Reply, Request, Selector};
use duet_proxy::admin::reply::{
    result_of, CopyStateReply, Phase, PhaseReply, SettingsReply, StartedReply, StatusReport,
};
use duet_proxy::control::latency::ThrottleStatus;
use duet_proxy::control::status::MigrationStatus;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cluster::{Cluster, ClusterOptions};
use crate::duet_process::{DuetProxy, DuetProxyOptions};
use crate::load::{connect, describe};
use crate::migrate_report::{MigrateReport, PhaseMark, Sample};
use crate::workload::SplitMix64;

/// The migrated table (in the target database).
pub const TABLE: &str = "public.duet_bench_migrate";
/// The plain table of the target shape for the `INSERT … SELECT` reference.
pub const REFERENCE_TABLE: &str = "public.duet_bench_migrate_reference";
/// Ids of rows the clients insert start here (per client, 10 million apart).
const FIRST_NEW_ID: i64 = 100_000_000;

/// How to run the scenario.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// An existing server (default: a throwaway cluster).
    pub url: Option<String>,
    /// Rows in the table before the migration.
    pub rows: i64,
    /// Concurrent clients through duet.
    pub clients: u32,
    /// Measured window before the migration starts and after it completes.
    pub window: Duration,
    /// The `duet` binary.
    pub duet_bin: PathBuf,
    /// Longest wait for the migration to reach ready.
    pub ready_timeout: Duration,
    /// The measured migration's `nice_ratio` (`None`: duet's default), set right after it starts.
    pub nice_ratio: Option<f64>,
    /// The measured migration's `max_latency_factor` (`None`: duet's default; 0: the clients'
    /// latency not watched), set right after it starts.
    pub max_latency_factor: Option<f64>,
    /// The measured migration's target chunk time (`None`: duet's default), set right after it
    /// starts.
    pub chunk_time: Option<Duration>,
    /// The measured migration's `latency_max_pause` (`None`: duet's default), set right after it
    /// starts.
    pub latency_max_pause: Option<Duration>,
    /// Keep the measured migration's copy paused this long after it starts (dual-writes on, no
    /// copier), to measure what the dual-writes alone cost the clients.
    pub copy_held_for: Option<Duration>,
    /// duet processes in front of the server, one fleet (clients spread over them round-robin;
    /// the migration is driven through the first).
    pub proxies: u32,
}

/// Why the scenario could not run (client errors are part of the report, not this).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MigrateError(pub String);

fn err(what: &str) -> impl FnOnce(tokio_postgres::Error) -> MigrateError + '_ {
    move |e| MigrateError(format!("{what}: {}", describe(&e)))
}

/// The longest wait for one admin reply: a cutover under load, or a `set` queued behind a copy
/// chunk, may take a while.
const ADMIN_REPLY_WAIT: Duration = Duration::from_secs(300);

/// A command duet did not carry out: the scenario records it rather than failing outright.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The command's name (`migrate`, `cutover`, …).
    pub command: &'static str,
    /// duet's reply, `ok: false`.
    pub reply: Reply,
}

impl Refused {
    /// Why duet refused (empty when its reply said nothing).
    pub fn error(&self) -> &str {
        self.reply.error.as_deref().unwrap_or("")
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The whole reply, as the socket sent it: `retryable` matters when reading a report.
        match serde_json::to_string(&self.reply) {
            Ok(reply) => write!(f, "{} refused: {reply}", self.command),
            Err(_) => write!(f, "{} refused: {:?}", self.command, self.reply),
        }
    }
}

/// Sends `request` to duet's admin socket and reads its result as `T`: the outer error is a
/// socket that failed or a reply of the wrong shape (the scenario cannot go on), the inner one a
/// command duet refused (part of what the scenario measures).
pub fn admin_command<T: DeserializeOwned>(
    socket: &Path,
    request: &Request,
) -> Result<Result<T, Refused>, MigrateError> {
    let command = request.name();
    let reply = client::request(socket, request, ADMIN_REPLY_WAIT)
        .map_err(|e| MigrateError(e.to_string()))?;
    if !reply.ok {
        return Ok(Err(Refused { command, reply }));
    }
    let result = reply.result.unwrap_or(serde_json::Value::Null);
    let typed = result_of(command, &result).map_err(|e| MigrateError(e.to_string()))?;
    Ok(Ok(typed))
}

/// [`admin_command`] for a command whose refusal the scenario cannot go on after.
fn admin_command_or_fail<T: DeserializeOwned>(
    socket: &Path,
    request: &Request,
    doing: &str,
) -> Result<T, MigrateError> {
    admin_command(socket, request)?.map_err(|refused| MigrateError(format!("{doing}: {refused}")))
}

/// `value` as the admin socket wrote it, for progress lines and error messages.
fn json<T: Serialize + std::fmt::Debug>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

/// The selector of migration `id`.
fn migration(id: i64) -> Selector {
    Selector {
        table: None,
        id: Some(id),
    }
}

/// The migration the scenario measures: the table's int primary key becomes bigint.
fn widen_key() -> Request {
    Request::Migrate {
        input: PlanInput::sql(format!("ALTER TABLE {TABLE} ALTER COLUMN id TYPE bigint")),
        auto_cutover: false,
        keep_referencing_types: false,
    }
}

/// Runs the scenario; `progress` receives one line per step.
pub fn run_migrate(
    opts: &MigrateOptions,
    rt: &tokio::runtime::Runtime,
    progress: &mut dyn FnMut(String),
) -> Result<MigrateReport, MigrateError> {
    let (_cluster, url, server) = match &opts.url {
        Some(url) => (None, url.clone(), crate::load::redact(url)),
        None => {
            progress("starting a throwaway PostgreSQL cluster".into());
            let cluster = Cluster::start(ClusterOptions {
                max_connections: opts.clients * 2 + 30,
                ..ClusterOptions::default()
            })
            .map_err(|e| MigrateError(e.to_string()))?;
            let url = cluster.url("postgres", None, "postgres");
            let server = format!("throwaway cluster on port {}", cluster.port());
            (Some(cluster), url, server)
        }
    };
    progress(format!("populating {TABLE} with {} rows", opts.rows));
    let reference_rows_per_s = rt.block_on(populate(&url, opts.rows))?;
    progress(format!(
        "INSERT … SELECT into a table of the shadow's shape: {reference_rows_per_s:.0} rows/s"
    ));
    let proxies = opts.proxies.max(1);
    progress(format!("starting duet ({proxies} process(es), one fleet)"));
    let fleet = (0..proxies)
        .map(|_| {
            DuetProxy::start(&DuetProxyOptions {
                duet_bin: opts.duet_bin.clone(),
                backend_url: url.clone(),
                extra_args: Vec::new(),
            })
            .map_err(|e| MigrateError(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let throughs: Vec<String> = fleet.iter().map(DuetProxy::url).collect();
    let socket = fleet[0].admin_socket().to_path_buf();
    wait_for_members(&socket, proxies as usize)?;

    progress("the copier alone (no client load): migrate, wait for ready, abort".into());
    let copier_alone = copier_alone(&socket, opts.ready_timeout)?;
    progress(format!(
        "copier alone: {}",
        copier_alone.map_or("not measured".to_string(), |r| format!("{r:.0} rows/s"))
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let clients: Vec<_> = (0..opts.clients)
        .map(|client| {
            let url = throughs[client as usize % throughs.len()].clone();
            let stop = stop.clone();
            let rows = opts.rows;
            rt.spawn(async move { run_client(url, client, rows, epoch, stop).await })
        })
        .collect();
    let mut marks = vec![PhaseMark::at(epoch, "load")];
    let outcome = drive(opts, &socket, epoch, &mut marks, progress);
    stop.store(true, Ordering::SeqCst);
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for handle in clients {
        let (s, e) = rt
            .block_on(handle)
            .map_err(|e| MigrateError(format!("a client task failed: {e}")))?;
        samples.extend(s);
        errors.extend(e);
    }
    marks.push(PhaseMark::at(epoch, "end"));
    let mut driven = outcome?;
    driven.copier_alone_rows_per_s = copier_alone;
    let duet_log = fleet
        .iter()
        .map(|duet| duet.log_tail(30))
        .collect::<Vec<_>>()
        .join("\n---\n");
    drop(fleet);
    let server = if proxies > 1 {
        format!("{server}, through {proxies} duet processes")
    } else {
        server
    };
    let mut report = MigrateReport::build(
        server,
        opts.rows,
        opts.clients,
        &marks,
        &samples,
        errors,
        driven,
        reference_rows_per_s,
    );
    if report.migration_error.is_some() {
        report.duet_log_tail = Some(duet_log);
    }
    Ok(report)
}

/// What the admin side observed.
#[derive(Debug, Clone, Default)]
pub struct Driven {
    /// The cutover's reply `stall_ms`.
    pub stall_ms: Option<u64>,
    /// Cutover attempts refused before the one that flipped, with their errors.
    pub cutover_refusals: Vec<String>,
    /// Rows the copier copied and its copy phase's length (from status polling).
    pub copied_rows: Option<u64>,
    /// Seconds between the copy phase's first and last observation.
    pub copy_secs: Option<f64>,
    /// The copier's own rate as status reported it last.
    pub status_rate_rows_per_s: Option<f64>,
    /// Why the migration did not finish, if it did not.
    pub migration_error: Option<String>,
    /// The copier's rate with no client load (a first migration, aborted once ready).
    pub copier_alone_rows_per_s: Option<f64>,
    /// The migration's latency throttle as status showed it last before ready (holds, time held,
    /// pieces forced through, baseline).
    pub latency_throttle: Option<ThrottleStatus>,
    /// The throttle as each status poll saw it while copying and verifying: seconds since the
    /// load started, state, pace, the clients' p99 (µs) it judged.
    pub throttle_timeline: Vec<(f64, String, f64, u64)>,
}

/// Waits until the first proxy lists `count` fleet members (each joins on start; the first may
/// not have seen the others' heartbeat yet).
fn wait_for_members(socket: &Path, count: usize) -> Result<(), MigrateError> {
    if count <= 1 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: StatusReport =
            admin_command_or_fail(socket, &Request::Status, "reading duet's status")?;
        let members = status.members.len();
        if members >= count {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let listed: Vec<&str> = status.members.iter().map(|m| m.id.as_str()).collect();
            return Err(MigrateError(format!(
                "the fleet has {members} member(s), expected {count}: {listed:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Migration `id` as `status` shows it (`None` when it is not listed).
fn migration_status(socket: &Path, id: i64) -> Result<Option<MigrationStatus>, MigrateError> {
    let status: StatusReport =
        admin_command_or_fail(socket, &Request::Status, "reading duet's status")?;
    Ok(status.migrations.into_iter().find(|m| m.id == id))
}

/// The copier's own rate in `m`, when it has measured one.
fn copier_rate(m: &MigrationStatus) -> Option<f64> {
    m.rate_rows_per_s.filter(|rate| *rate > 0.0)
}

/// Why `m` stopped, when it did.
fn migration_failure(m: &MigrationStatus) -> Option<&str> {
    m.error.as_deref().filter(|e| !e.is_empty())
}

/// The copier on its own, comparable with the `INSERT … SELECT` reference (also run without
/// load): starts the migration, waits for ready, takes the copier's own rate from status, and
/// aborts (nothing is left). `None` when the migration does not get there.
fn copier_alone(socket: &Path, timeout: Duration) -> Result<Option<f64>, MigrateError> {
    let started: StartedReply =
        admin_command_or_fail(socket, &widen_key(), "the copier-alone run")?;
    let id = started.first.id;
    let deadline = Instant::now() + timeout;
    let mut rate = None;
    loop {
        let m = migration_status(socket, id)?;
        if let Some(r) = m.as_ref().and_then(copier_rate) {
            rate = Some(r);
        }
        // A stopped migration shows its error (an empty one included) as a string.
        let stopped = m.as_ref().is_some_and(|m| m.error.is_some());
        let ready = m.as_ref().is_some_and(|m| m.phase == Phase::Ready);
        if ready || stopped || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _: PhaseReply = admin_command_or_fail(
        socket,
        &Request::Abort {
            target: migration(id),
        },
        "aborting the copier-alone run failed",
    )?;
    Ok(rate)
}

fn drive(
    opts: &MigrateOptions,
    socket: &Path,
    epoch: Instant,
    marks: &mut Vec<PhaseMark>,
    progress: &mut dyn FnMut(String),
) -> Result<Driven, MigrateError> {
    let mut driven = Driven::default();
    progress(format!("load without a migration for {:?}", opts.window));
    std::thread::sleep(opts.window);
    marks.push(PhaseMark::at(epoch, "migrate"));
    let started: StartedReply = match admin_command(socket, &widen_key())? {
        Ok(started) => started,
        Err(refused) => {
            driven.migration_error = Some(refused.to_string());
            return Ok(driven);
        }
    };
    let id = started.first.id;
    progress(format!("migration {id} started: {}", json(&started)));
    let settings = CopySettings {
        nice_ratio: opts.nice_ratio,
        max_latency_factor: opts.max_latency_factor,
        chunk_time_ms: opts.chunk_time.map(duet_proxy::duration::whole_millis),
        latency_max_pause_ms: opts
            .latency_max_pause
            .map(duet_proxy::duration::whole_millis),
        ..CopySettings::default()
    };
    if settings != CopySettings::default() {
        let set = Request::Set {
            settings: settings.clone(),
            target: migration(id),
        };
        let _: SettingsReply =
            admin_command_or_fail(socket, &set, &format!("setting {settings:?}"))?;
    }
    if let Some(held) = opts.copy_held_for {
        let pause = Request::PauseCopy {
            target: migration(id),
        };
        let _: CopyStateReply = admin_command_or_fail(socket, &pause, "pausing the copy")?;
        marks.push(PhaseMark::at(epoch, "copy held"));
        progress(format!(
            "copy paused for {held:?}: dual-writes without the copier"
        ));
        std::thread::sleep(held);
        let resume = Request::ResumeCopy {
            target: migration(id),
        };
        let _: CopyStateReply = admin_command_or_fail(socket, &resume, "resuming the copy")?;
        marks.push(PhaseMark::at(epoch, "copy resumed"));
    }
    let deadline = Instant::now() + opts.ready_timeout;
    let mut last_phase = String::new();
    // The copy phase as polled: when it was first seen, and the rows done when last seen.
    let mut copy_first: Option<Instant> = None;
    let mut copy_done = 0;
    loop {
        let m = migration_status(socket, id)?;
        let phase = m.as_ref().map_or("?", |m| m.phase.as_str()).to_string();
        if phase != last_phase {
            marks.push(PhaseMark::at(epoch, &phase));
            progress(format!("phase {phase}"));
            last_phase = phase.clone();
        }
        let done = m
            .as_ref()
            .and_then(|m| m.rows_done)
            .and_then(|rows| u64::try_from(rows).ok())
            .unwrap_or(0);
        if m.as_ref().is_some_and(|m| m.phase == Phase::Copying) {
            copy_first.get_or_insert_with(Instant::now);
            copy_done = done;
        } else if let Some(start) = copy_first {
            if driven.copy_secs.is_none() {
                driven.copy_secs = Some(start.elapsed().as_secs_f64());
                driven.copied_rows = Some(done.max(copy_done));
            }
        }
        if let Some(rate) = m.as_ref().and_then(copier_rate) {
            driven.status_rate_rows_per_s = Some(rate);
        }
        if let Some(throttle) = m.as_ref().and_then(|m| m.latency_throttle.as_ref()) {
            driven.throttle_timeline.push((
                epoch.elapsed().as_secs_f64(),
                throttle.state.clone(),
                throttle.pace,
                throttle.p99_us,
            ));
            driven.latency_throttle = Some(throttle.clone());
        }
        if let Some(error) = m.as_ref().and_then(migration_failure) {
            driven.migration_error = Some(format!("migration failed in {phase}: {error}"));
            return Ok(driven);
        }
        if m.as_ref().is_some_and(|m| m.phase == Phase::Ready) {
            break;
        }
        if Instant::now() >= deadline {
            driven.migration_error = Some(format!(
                "not ready after {:?} (phase {phase}): {}",
                opts.ready_timeout,
                json(&m)
            ));
            return Ok(driven);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..10 {
        marks.push(PhaseMark::at(epoch, "cutover"));
        let cutover = Request::Cutover {
            budget_ms: None,
            force: false,
            target: migration(id),
        };
        match admin_command::<PhaseReply>(socket, &cutover)? {
            Ok(flipped) => {
                driven.stall_ms = flipped.stall_ms;
                marks.push(PhaseMark::at(epoch, "flipped"));
                progress(format!("flipped: {}", json(&flipped)));
                break;
            }
            Err(refused) => {
                let why = refused.error().to_string();
                progress(format!("cutover refused: {why}"));
                driven.cutover_refusals.push(why);
                marks.push(PhaseMark::at(epoch, "ready"));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    if driven.stall_ms.is_none() {
        driven.migration_error = Some("the cutover never succeeded".into());
        return Ok(driven);
    }
    let complete = Request::Complete {
        force: true,
        target: migration(id),
    };
    if let Err(refused) = admin_command::<PhaseReply>(socket, &complete)? {
        driven.migration_error = Some(refused.to_string());
        return Ok(driven);
    }
    marks.push(PhaseMark::at(epoch, "completed"));
    progress(format!("completed; load for {:?} more", opts.window));
    std::thread::sleep(opts.window);
    Ok(driven)
}

/// Creates and fills the table and times `INSERT … SELECT` of the same rows into a plain table
/// of exactly the shape the copier fills: the shadow duet's expand creates (shadow/src/migrate/
/// expand.rs) — the converted columns, the bigint primary key, the tombstone column
/// `__duet_deleted boolean NOT NULL DEFAULT false` and the partial index over tombstones — and
/// nothing else.
async fn populate(url: &str, rows: i64) -> Result<f64, MigrateError> {
    let client = connect(url)
        .await
        .map_err(err("connecting to the server"))?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLE}, {REFERENCE_TABLE};
             CREATE TABLE {TABLE} (id int PRIMARY KEY, label text NOT NULL, amount int);
             INSERT INTO {TABLE} SELECT g, 'row ' || g, g % 1000 FROM generate_series(1, {rows}) g;
             CREATE INDEX ON {TABLE} (label);
             CREATE TABLE {REFERENCE_TABLE} (id bigint PRIMARY KEY, label text, amount int,
                 __duet_deleted boolean NOT NULL DEFAULT false);
             CREATE INDEX ON {REFERENCE_TABLE} (id) WHERE __duet_deleted;"
        ))
        .await
        .map_err(err("creating the table"))?;
    // Its own statement: VACUUM cannot run in the implicit transaction of a multi-statement query.
    client
        .batch_execute(&format!("VACUUM ANALYZE {TABLE}"))
        .await
        .map_err(err("VACUUM ANALYZE"))?;
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "INSERT INTO {REFERENCE_TABLE} SELECT id, label, amount FROM {TABLE}"
        ))
        .await
        .map_err(err("INSERT … SELECT reference"))?;
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    client
        .batch_execute(&format!("DROP TABLE {REFERENCE_TABLE}"))
        .await
        .map_err(err("dropping the reference table"))?;
    Ok(rows as f64 / secs)
}

/// One client: prepared statements, alternately a write (70 % update of an existing row, 30 %
/// insert of a new one) and a read by key, each timed and stamped relative to `epoch`.
async fn run_client(
    url: String,
    client_no: u32,
    rows: i64,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    let client = match connect(&url).await {
        Ok(client) => client,
        Err(e) => return (samples, vec![format!("connect: {}", describe(&e))]),
    };
    use tokio_postgres::types::Type;
    let statements = async {
        Ok::<_, tokio_postgres::Error>((
            client
                .prepare_typed(
                    &format!("UPDATE {TABLE} SET amount = amount + 1 WHERE id = $1"),
                    &[Type::INT8],
                )
                .await?,
            client
                .prepare_typed(
                    &format!("INSERT INTO {TABLE} (id, label, amount) VALUES ($1, 'new', 0)"),
                    &[Type::INT8],
                )
                .await?,
            client
                .prepare_typed(
                    &format!("SELECT label, amount FROM {TABLE} WHERE id = $1"),
                    &[Type::INT8],
                )
                .await?,
        ))
    }
    .await;
    let (update, insert, select) = match statements {
        Ok(s) => s,
        Err(e) => return (samples, vec![format!("prepare: {}", describe(&e))]),
    };
    let mut rng = SplitMix64::new(0x5eed_0000 + u64::from(client_no));
    let mut next_id = FIRST_NEW_ID + i64::from(client_no) * 10_000_000;
    while !stop.load(Ordering::SeqCst) {
        let key = i64::from(rng.uniform(1, rows));
        let write = rng.next_u64() % 10 < 3;
        let started = Instant::now();
        let result = if write {
            next_id += 1;
            client.execute(&insert, &[&next_id]).await
        } else {
            client.execute(&update, &[&key]).await
        };
        record(
            &mut samples,
            &mut errors,
            epoch,
            started,
            true,
            result.map(|_| ()),
        );
        let started = Instant::now();
        let result = client.query_opt(&select, &[&key]).await;
        record(
            &mut samples,
            &mut errors,
            epoch,
            started,
            false,
            result.map(|_| ()),
        );
    }
    (samples, errors)
}

fn record(
    samples: &mut Vec<Sample>,
    errors: &mut Vec<String>,
    epoch: Instant,
    started: Instant,
    write: bool,
    result: Result<(), tokio_postgres::Error>,
) {
    let ended = Instant::now();
    match result {
        Ok(()) => samples.push(Sample {
            start_us: started.duration_since(epoch).as_micros() as u64,
            latency_us: ended.duration_since(started).as_micros() as u64,
            write,
        }),
        Err(e) => errors.push(describe(&e)),
    }
}
