//! The migration controller: drives online schema changes planned by [`shadow::plan`] through
//! their phases, publishes the proxy's routes, and answers the migration admin commands.
//!
//! One [`Migration`] per recorded migration lives in the [`Migrations`] registry (held by the
//! [`crate::context::ProxyContext`]). While a migration is before `ready`, a background task
//! ([`controller`]) runs its steps: expand (guarded DDL), dual-writes on, wait for older
//! transactions, copy, verify and repair, prepare the flip. Operator commands ([`flip`]) change
//! what a table's statements mean only while the pause gate holds every session at a transaction
//! boundary, and always resume the gate. [`bypass`] watches for writers that do not go through
//! duet; [`status`] renders the `migrations` part of `status`; [`resume`] restores migrations
//! when the proxy starts.
//!
//! Every phase change is recorded in `duet.migrations` (through
//! [`shadow::migrate::state::transition`]) in the same transaction as the step it records where
//! that step is transactional; the in-memory phase follows the stored one.

pub mod bypass;
pub mod control;
pub mod controller;
pub mod error;
pub mod flip;
pub mod follow;
pub mod latency;
pub mod resume;
pub mod settings;
pub mod status;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use shadow::migrate::copier::CopierControl;
use shadow::migrate::latency::LatencyThrottle;
use shadow::migrate::Phase;
use shadow::plan::Plan;
use tokio::task::JoinHandle;

use crate::admin::protocol::Selector;
use crate::context::ProxyContext;
pub use settings::RunSettings;

/// How many finished migrations `status` keeps showing.
const RECENT_FINISHED: usize = 10;

/// Every migration this proxy drives or recently finished.
#[derive(Debug, Default)]
pub struct Migrations {
    entries: Mutex<Vec<Arc<Migration>>>,
    /// Backend pids of duet's own control connections (never reported as bypassing writers).
    control_pids: Mutex<HashSet<i32>>,
    /// `server_version_num` of the backend, published with every route change (0: unknown yet).
    server_version_num: AtomicU32,
    /// Migrations being started here: recorded in the database, not yet registered (the
    /// follower leaves new rows alone meanwhile, or it would adopt this member's own start).
    starting: AtomicU32,
    /// One reading of the stored migrations at a time (startup's, the follower's, a hold's):
    /// two at once would both adopt a new migration, and the second copy would replace the
    /// first — the one driving it — in the registry.
    pub(crate) following: tokio::sync::Mutex<()>,
}

impl Migrations {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Migration>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every migration shown by `status`: the active ones and the recently finished, by id.
    pub fn all(&self) -> Vec<Arc<Migration>> {
        self.lock().clone()
    }

    /// The migration with id `id`, if known.
    pub fn get(&self, id: i64) -> Option<Arc<Migration>> {
        self.lock().iter().find(|m| m.id == id).cloned()
    }

    /// Adds a migration (replacing one with the same id) and forgets old finished ones.
    pub(crate) fn insert(&self, migration: Arc<Migration>) {
        let mut entries = self.lock();
        entries.retain(|m| m.id != migration.id);
        entries.push(migration);
        entries.sort_by_key(|m| m.id);
        let finished = entries.iter().filter(|m| m.phase().is_terminal()).count();
        let mut drop_finished = finished.saturating_sub(RECENT_FINISHED);
        entries.retain(|m| {
            if drop_finished > 0 && m.phase().is_terminal() {
                drop_finished -= 1;
                false
            } else {
                true
            }
        });
    }

    /// The migration a command is about: by id, by table (`schema.name` or unqualified), or the
    /// only active one.
    pub fn select(&self, selector: &Selector) -> Result<Arc<Migration>, String> {
        let entries = self.lock();
        if let Some(id) = selector.id {
            return entries
                .iter()
                .find(|m| m.id == id)
                .cloned()
                .ok_or_else(|| format!("no migration {id} is known to this proxy"));
        }
        let active: Vec<&Arc<Migration>> = entries
            .iter()
            .filter(|m| !m.phase().is_terminal())
            .collect();
        let describe = |list: &[&Arc<Migration>]| {
            list.iter()
                .map(|m| format!("{} (id {}, {})", m.table_label(), m.id, m.phase()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(table) = &selector.table {
            let found: Vec<&Arc<Migration>> = active
                .iter()
                .copied()
                .filter(|m| m.matches_table(table))
                .collect();
            return match found.as_slice() {
                [one] => Ok((*one).clone()),
                [] => Err(format!(
                    "no active migration of table {table}{}",
                    if active.is_empty() {
                        String::new()
                    } else {
                        format!("; active: {}", describe(&active))
                    }
                )),
                several => Err(format!(
                    "several active migrations match {table}: {}; pass --id",
                    describe(several)
                )),
            };
        }
        match active.as_slice() {
            [one] => Ok((*one).clone()),
            // The tables of one migration of several: the command acts on all of them.
            [first, rest @ ..]
                if !first.plan.group.is_empty()
                    && rest.iter().all(|m| m.plan.group == first.plan.group) =>
            {
                Ok((*first).clone())
            }
            [] => Err("no active migration; start one with `duet admin migrate`".to_owned()),
            several => Err(format!(
                "several migrations are active: {}; pass --table or --id",
                describe(several)
            )),
        }
    }

    /// The migrations a command on `m` acts on: `m` alone, or — for a migration of several
    /// tables — the migration of each of its tables, in flip order (finished ones included, so
    /// a command that stopped half-way can be run again for the rest).
    pub fn group(&self, m: &Arc<Migration>) -> Result<Vec<Arc<Migration>>, String> {
        if m.plan.group.is_empty() {
            return Ok(vec![m.clone()]);
        }
        let entries = self.lock();
        m.plan
            .group
            .iter()
            .map(|table| {
                entries
                    .iter()
                    .filter(|o| o.plan.table == *table && o.plan.group == m.plan.group)
                    .max_by_key(|o| o.id)
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "migration {} is planned together with {table}, whose migration this proxy does not know (yet): retry in a moment, or run the command on the member that started it",
                            m.id
                        )
                    })
            })
            .collect()
    }

    /// Remembers a control connection's backend pid.
    pub(crate) fn add_control_pid(&self, pid: i32) {
        self.control_pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid);
    }

    /// Whether `pid` is one of duet's own control connections.
    pub(crate) fn is_control_pid(&self, pid: i32) -> bool {
        self.control_pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&pid)
    }

    /// Whether a migration is being started here right now.
    pub(crate) fn is_starting(&self) -> bool {
        self.starting.load(Ordering::SeqCst) > 0
    }

    /// The backend's version number (0 until a control connection has asked).
    pub(crate) fn server_version_num(&self) -> u32 {
        self.server_version_num.load(Ordering::Relaxed)
    }

    pub(crate) fn set_server_version_num(&self, version: u32) {
        self.server_version_num.store(version, Ordering::Relaxed);
    }

    /// Stops every background task (proxy shutdown). Stored state is untouched: a restarted
    /// proxy resumes from it.
    pub fn stop_all(&self) {
        for m in self.all() {
            m.stop_tasks();
            m.set_driven(false);
        }
    }
}

/// How the last cutover attempt ended.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct FlipRecord {
    /// `flipped`, `budget_missed`, `lock_timeout` or `error`.
    pub outcome: &'static str,
    /// How long clients were held (gate pause start to resume), in milliseconds.
    pub stall_ms: u64,
    /// The sessions that kept the proxy from being quiet (budget missed).
    pub blocked_by: Vec<BlockingSession>,
    /// What went wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A session named in a missed flip budget.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct BlockingSession {
    /// duet's session id.
    pub id: u64,
    /// The user.
    pub user: String,
    /// What it was doing (`idle in transaction`, …).
    pub state: &'static str,
    /// Seconds in that state.
    pub age_s: f64,
    /// Its backend pid.
    pub backend_pid: i32,
}

/// A connection seen writing the table without going through duet.
#[derive(Debug, Clone, PartialEq)]
pub struct BypassWriter {
    /// Backend pid.
    pub pid: i32,
    /// The user.
    pub user: String,
    /// Its application_name.
    pub application_name: String,
    /// Its client address (empty for unix sockets).
    pub client_addr: String,
    /// When it was last seen holding a write lock.
    pub last_seen: Instant,
    /// Whether the last sample saw it (its transaction may still write).
    pub active: bool,
}

/// What changes while a migration runs (behind a mutex; never held across an await).
pub(crate) struct Live {
    pub phase: Phase,
    pub error: Option<String>,
    pub copy: Option<CopierControl>,
    /// What the copy phase is doing when no copier runs (waiting for old transactions, …).
    pub note: Option<String>,
    pub last_flip: Option<FlipRecord>,
    pub bypass: BTreeMap<i32, BypassWriter>,
    /// The operator's settings in force (chunk time, throttles, a paused copy — applied to the
    /// copier when it starts, too — and automatic cutover).
    pub settings: RunSettings,
    /// The clients'-latency throttle of the copy and the verification, once either started here
    /// (it keeps its baseline and its counts from the copy to the verification).
    pub latency: Option<Arc<LatencyThrottle>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("phase", &self.phase)
            .field("error", &self.error)
            .field("copying", &self.copy.is_some())
            .field("note", &self.note)
            .field("last_flip", &self.last_flip)
            .finish_non_exhaustive()
    }
}

/// One migration.
#[derive(Debug)]
pub struct Migration {
    /// Id in `duet.migrations`.
    pub id: i64,
    /// The plan it runs (as stored).
    pub plan: Plan,
    /// What the sessions counted for this migration's table since it started. Its own handle:
    /// the next migration of the same table starts new counters, so a finished one keeps its
    /// figures in `status`.
    pub counters: Arc<crate::routes::TableCounters>,
    live: Mutex<Live>,
    /// One operator command at a time per migration.
    pub(crate) op: tokio::sync::Mutex<()>,
    /// One run-settings change at a time (see [`settings::change`]).
    pub(crate) settings_lock: tokio::sync::Mutex<()>,
    task: Mutex<Option<JoinHandle<()>>>,
    sampler: Mutex<Option<JoinHandle<()>>>,
    /// Whether this member holds the migration's driver lock (runs its background work).
    driven: std::sync::atomic::AtomicBool,
}

impl Migration {
    pub(crate) fn new(
        id: i64,
        plan: Plan,
        phase: Phase,
        settings: RunSettings,
        counters: Arc<crate::routes::TableCounters>,
    ) -> Self {
        Migration {
            id,
            plan,
            counters,
            live: Mutex::new(Live {
                phase,
                error: None,
                copy: None,
                note: None,
                last_flip: None,
                bypass: BTreeMap::new(),
                settings,
                latency: None,
            }),
            op: tokio::sync::Mutex::new(()),
            settings_lock: tokio::sync::Mutex::new(()),
            task: Mutex::new(None),
            sampler: Mutex::new(None),
            driven: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.live().phase
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        let mut live = self.live();
        live.phase = phase;
        if phase != Phase::Copying {
            live.note = None;
        }
    }

    pub(crate) fn set_error(&self, error: Option<String>) {
        self.live().error = error;
    }

    /// The table as `schema.name`, for messages.
    pub fn table_label(&self) -> String {
        format!("{}.{}", self.plan.table.schema, self.plan.table.name)
    }

    /// The table as stored in `duet.migrations.table_name`.
    pub fn table_key(&self) -> String {
        self.plan.table.sql()
    }

    fn matches_table(&self, wanted: &str) -> bool {
        let wanted = wanted.trim();
        match wanted.split_once('.') {
            Some((schema, name)) => {
                schema.trim_matches('"') == self.plan.table.schema
                    && name.trim_matches('"') == self.plan.table.name
            }
            None => wanted.trim_matches('"') == self.plan.table.name,
        }
    }

    /// Writes forwarded without their dual-write so far (see `[migration] unrewritable_writes`).
    pub fn unrewritten(&self) -> u64 {
        self.counters.unrewritten.load(Ordering::Relaxed)
    }

    /// The copier's control handle, while a copier runs.
    pub fn copier(&self) -> Option<CopierControl> {
        self.live().copy.clone()
    }

    /// The operator's settings now in force.
    pub fn run_settings(&self) -> RunSettings {
        self.live().settings
    }

    /// Puts `settings` in force, in the running copier too (storing them is
    /// [`settings::change`]'s part).
    pub(crate) fn apply_settings(&self, settings: RunSettings) {
        let mut live = self.live();
        let before = std::mem::replace(&mut live.settings, settings);
        if let Some(latency) = &live.latency {
            latency.set_limit(settings.throttles().latency_limit());
            // Only a changed baseline replaces one the throttle measured itself.
            if settings.latency_baseline_us != before.latency_baseline_us {
                latency.set_baseline(settings.latency_baseline());
            }
        }
        if let Some(copy) = &live.copy {
            copy.set_chunk_time(settings.chunk_time());
            copy.set_throttle(settings.throttles().copier_config());
            if settings.copy_paused {
                copy.pause();
            } else {
                copy.resume();
            }
        }
    }

    /// The clients'-latency throttle of the copy and the verification (made on first use).
    pub(crate) fn latency_throttle(&self, ctx: &Arc<ProxyContext>) -> Arc<LatencyThrottle> {
        let mut live = self.live();
        if let Some(throttle) = &live.latency {
            return throttle.clone();
        }
        let throttle = LatencyThrottle::new(
            Arc::new(latency::FleetLatency::new(ctx)),
            live.settings.throttles().latency_limit(),
            live.settings.latency_baseline(),
        );
        live.latency = Some(throttle.clone());
        throttle
    }

    pub(crate) fn set_task(&self, task: JoinHandle<()>) {
        let mut slot = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }

    pub(crate) fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(crate) fn set_sampler(&self, task: JoinHandle<()>) {
        let mut slot = self.sampler.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }

    /// Stops the background task and the bypass sampler (the migration's stored state stays).
    pub(crate) fn stop_tasks(&self) {
        if let Some(copy) = self.copier() {
            copy.stop();
        }
        if let Some(task) = self.take_task() {
            task.abort();
        }
        self.stop_sampler();
    }

    /// Stops the bypass sampler only (safe to call from the background task itself).
    pub(crate) fn stop_sampler(&self) {
        if let Some(task) = self
            .sampler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// Whether this member drives the migration (holds its driver lock).
    pub fn driven_here(&self) -> bool {
        self.driven.load(Ordering::SeqCst)
    }

    pub(crate) fn set_driven(&self, driven: bool) {
        self.driven.store(driven, Ordering::SeqCst);
    }

    /// The route every member publishes for the table while the migration is stored in `phase`:
    /// dual-writes from the copy to the flip, the flipped route after it, none otherwise (the
    /// driver publishes dual-writes at the end of `expanding`, before it records `copying`; a
    /// member that learns of it later is covered by the safety net meanwhile).
    pub(crate) fn route_for(&self, phase: Phase) -> Option<shadow::rewrite::TableRoute> {
        match phase {
            Phase::Copying | Phase::Verifying | Phase::Ready | Phase::Flipping => {
                self.dual_write_route_in(phase)
            }
            Phase::Flipped => self.plan.flipped_route.clone(),
            _ => None,
        }
    }

    /// Publishes `route` unless it is the one published already (a publication makes every
    /// session prepare its statements again).
    pub(crate) fn publish_if_changed(
        &self,
        ctx: &ProxyContext,
        route: Option<shadow::rewrite::TableRoute>,
    ) {
        let current = ctx.routes.current();
        let published = current
            .routes
            .find(&self.plan.table.schema, &self.plan.table.name);
        if published != route.as_ref() {
            self.publish(ctx, route);
        }
    }

    /// The dual-write route for `phase`: tombstones for deletes while a copier may run, plain
    /// deletes once the copy is done (a tombstone would then only break the constraints the
    /// shadow gains before the flip).
    pub(crate) fn dual_write_route_in(&self, phase: Phase) -> Option<shadow::rewrite::TableRoute> {
        let mut route = self.plan.dual_write_route.clone()?;
        if matches!(phase, Phase::Verifying | Phase::Ready | Phase::Flipping) {
            if let shadow::rewrite::Target::ShadowTable { plain_deletes, .. } = &mut route.target {
                *plain_deletes = true;
            }
        }
        Some(route)
    }

    /// Whether the proxy's route table holds a route for this migration's table (the table has
    /// one migration at a time, so the route is this migration's).
    pub(crate) fn has_route(&self, ctx: &ProxyContext) -> bool {
        ctx.routes
            .current()
            .routes
            .find(&self.plan.table.schema, &self.plan.table.name)
            .is_some()
    }

    /// Publishes `route` for the table (or clears it); returns the new epoch.
    pub(crate) fn publish(
        &self,
        ctx: &ProxyContext,
        route: Option<shadow::rewrite::TableRoute>,
    ) -> u64 {
        let published = route.is_some();
        let epoch = ctx.routes.set_table_mirrored(
            &self.plan.table.schema,
            &self.plan.table.name,
            route,
            self.plan.writes_mirrored_by_net_only(),
            ctx.migrations.server_version_num(),
        );
        tracing::info!(
            migration = self.id,
            table = %self.table_label(),
            epoch,
            published,
            "routes published"
        );
        epoch
    }
}

/// Marks a start in progress until dropped.
struct Starting<'a>(&'a Migrations);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.starting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Records, registers and starts a planned migration; returns it once recorded (the work goes on
/// in the background). Used by the `migrate` admin command after planning, and by embedders and
/// tests that build a [`Plan`] themselves.
pub async fn start(
    ctx: &Arc<ProxyContext>,
    mut plan: Plan,
    auto_cutover: bool,
) -> Result<Arc<Migration>, String> {
    // Whoever built the plan, no write may bypass its shadow (a no-op when it has the net).
    shadow::plan::steps::add_safety_net(&mut plan);
    let mut client = control::connect(ctx).await?;
    shadow::migrate::state::ensure_schema(&mut client)
        .await
        .map_err(|e| format!("cannot create duet's state schema: {e}"))?;
    let plan_json =
        serde_json::to_value(&plan).map_err(|e| format!("internal error storing the plan: {e}"))?;
    let table = plan.table.sql();
    let settings = RunSettings {
        // The clients' latency before anything of the migration runs: what the copier's and
        // the verifier's latency throttle keeps them near.
        latency_baseline_us: latency::baseline_now(ctx)
            .map(|p99| u64::try_from(p99.as_micros()).unwrap_or(u64::MAX)),
        ..RunSettings::initial(&ctx.config.migration, auto_cutover)
    };
    ctx.migrations.starting.fetch_add(1, Ordering::SeqCst);
    let _started = Starting(&ctx.migrations);
    let settings_json = serde_json::to_value(settings)
        .map_err(|e| format!("internal error storing the settings: {e}"))?;
    let id = shadow::migrate::state::create_migration_with_settings(
        &client,
        &table,
        plan.kind.as_str(),
        &plan_json,
        &settings_json,
    )
    .await
        .map_err(|e| match e {
            shadow::migrate::MigrateError::AlreadyActive { .. } => format!(
                "table {}.{} already has an active migration: finish it first (`duet admin status` shows it; `duet admin abort --table {}.{}` or `complete`)",
                plan.table.schema, plan.table.name, plan.table.schema, plan.table.name
            ),
            other => other.to_string(),
        })?;
    ctx.routes
        .reset_counters(&plan.table.schema, &plan.table.name);
    let counters = ctx.routes.counters(&plan.table.schema, &plan.table.name);
    let migration = Arc::new(Migration::new(id, plan, Phase::Planned, settings, counters));
    // The member that starts a migration drives it (a new id: no one else holds its lock).
    if !follow::acquire(ctx, &migration, std::time::Duration::ZERO).await {
        return Err(format!(
            "migration {id} is recorded but another member of the fleet took it over first; `duet admin status` shows it"
        ));
    }
    ctx.migrations.insert(migration.clone());
    tracing::info!(migration = id, table = %migration.table_label(), strategy = migration.plan.kind.as_str(), "migration recorded");
    controller::spawn(ctx, &migration);
    bypass::spawn_sampler(ctx, &migration);
    Ok(migration)
}
