//! The migration control plane: drives online schema changes planned by [`duet_shadow::plan`] through
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
//! [`duet_shadow::migrate::state::transition`]) in the same transaction as the step it records where
//! that step is transactional; the in-memory phase follows the stored one.
//!
//! # The order of the files
//!
//! Data flows one way — admin request → [`commands`] (start, settings) → the plan's steps in
//! [`controller`] (expand, copy, [`verify`]) → [`flip`] (cutover, revert, complete, abort) — and
//! each file refers only to files below it in this list (a test in this module fails on a cycle):
//!
//! 1. [`follow`], [`resume`] — the fleet's follower and startup: adopt stored migrations and
//!    drive them (they start the controller and finish commands);
//! 2. [`commands`] — `migrate` (record, register, start) and `set`;
//! 3. [`controller`] — the background task that runs a migration's steps up to `ready` (and
//!    its automatic cutover);
//! 4. [`flip`] — the operator's route-changing commands, under the fleet's hold;
//! 5. [`verify`] — verification and repair until clean;
//! 6. [`status`], [`bypass`] — what `status` shows and the heartbeat reports; writers around duet;
//! 7. [`error`] — [`error::MigrationError`] and [`error::CommandError`];
//! 8. [`driver`] — the driver lock and the fleet's barrier;
//! 9. this module — the registry and what every file shares ([`Migration`], [`FlipRecord`]);
//! 10. [`connection`], [`settings`], [`latency`] — control connections and guarded steps; run
//!     settings; the clients' latency.
//!
//! Errors are typed all the way down: a failed step keeps its [`duet_shadow::migrate::MigrateError`]
//! or `tokio_postgres::Error` as the source, and its message already carries what the operator
//! reads in `status` and in the admin reply.

pub mod bypass;
pub mod commands;
pub mod connection;
pub mod controller;
pub mod driver;
pub mod error;
pub mod flip;
pub mod follow;
pub mod latency;
pub mod resume;
pub mod settings;
pub mod status;
pub mod verify;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use duet_shadow::migrate::copier::CopierControl;
use duet_shadow::migrate::latency::{LatencyGate, LatencyThrottle};
use duet_shadow::migrate::Phase;
use duet_shadow::plan::Plan;
use tokio::task::JoinHandle;

use crate::admin::protocol::Selector;
use crate::context::ProxyContext;
pub use settings::RunSettings;

/// How many finished migrations `status` keeps showing.
const RECENT_FINISHED: usize = 10;

/// Why no migration, or more than one, matches what a command names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No migration has this id here.
    #[error("no migration {0} is known to this proxy")]
    UnknownId(i64),
    /// No active migration of the named table (`active` lists the others, if any).
    #[error("no active migration of table {table}{active}")]
    NoneOfTable {
        /// The table as named.
        table: String,
        /// `; active: …` naming the active migrations, or empty.
        active: String,
    },
    /// Several active migrations match the named table.
    #[error("several active migrations match {table}: {matching}; pass --id")]
    SeveralOfTable {
        /// The table as named.
        table: String,
        /// The matching migrations, described.
        matching: String,
    },
    /// Nothing named, and no migration is active.
    #[error("no active migration; start one with `duet admin migrate`")]
    NoneActive,
    /// Nothing named, and several unrelated migrations are active.
    #[error("several migrations are active: {active}; pass --table or --id")]
    Several {
        /// The active migrations, described.
        active: String,
    },
}

/// A table of a migration of several whose migration this member does not know (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("migration {id} is planned together with {table}, whose migration this proxy does not know (yet): retry in a moment, or run the command on the member that started it")]
pub struct GroupError {
    /// The migration the command named.
    pub id: i64,
    /// The table planned with it.
    pub table: String,
}

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
    pub(crate) starting: AtomicU32,
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
    pub fn select(&self, selector: &Selector) -> Result<Arc<Migration>, SelectError> {
        let entries = self.lock();
        if let Some(id) = selector.id {
            return entries
                .iter()
                .find(|m| m.id == id)
                .cloned()
                .ok_or(SelectError::UnknownId(id));
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
                [] => Err(SelectError::NoneOfTable {
                    table: table.clone(),
                    active: if active.is_empty() {
                        String::new()
                    } else {
                        format!("; active: {}", describe(&active))
                    },
                }),
                several => Err(SelectError::SeveralOfTable {
                    table: table.clone(),
                    matching: describe(several),
                }),
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
            [] => Err(SelectError::NoneActive),
            several => Err(SelectError::Several {
                active: describe(several),
            }),
        }
    }

    /// The migrations a command on `m` acts on: `m` alone, or — for a migration of several
    /// tables — the migration of each of its tables, in flip order (finished ones included, so
    /// a command that stopped half-way can be run again for the rest).
    pub fn group(&self, m: &Arc<Migration>) -> Result<Vec<Arc<Migration>>, GroupError> {
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
                    .ok_or_else(|| GroupError {
                        id: m.id,
                        table: table.to_string(),
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

/// How a cutover attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipOutcome {
    /// The tables flipped.
    Flipped,
    /// Sessions did not reach a transaction boundary within the budget.
    BudgetMissed,
    /// Other fleet members could not hold their clients in time.
    MembersMissed,
    /// The flip's transaction could not take its lock in time.
    LockTimeout,
    /// Anything else (the message says what).
    Error,
}

impl FlipOutcome {
    /// The outcome's name, as `status` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FlipOutcome::Flipped => "flipped",
            FlipOutcome::BudgetMissed => "budget_missed",
            FlipOutcome::MembersMissed => "members_missed",
            FlipOutcome::LockTimeout => "lock_timeout",
            FlipOutcome::Error => "error",
        }
    }
}

/// How the last cutover attempt ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlipRecord {
    /// `flipped`, `budget_missed`, `members_missed`, `lock_timeout` or `error`.
    pub outcome: FlipOutcome,
    /// How long clients were held (gate pause start to resume), in milliseconds.
    pub stall_ms: u64,
    /// The sessions that kept the proxy from being quiet (budget missed).
    pub blocked_by: Vec<BlockingSession>,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A session named in a missed flip budget.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockingSession {
    /// duet's session id.
    pub id: u64,
    /// The user.
    pub user: String,
    /// What it was doing (`idle in transaction`, …).
    pub state: String,
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
    /// One run-settings change at a time (see [`commands::change_settings`]).
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

    /// The error that stopped the migration's work, if one did.
    pub(crate) fn error(&self) -> Option<String> {
        self.live().error.clone()
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
    /// [`commands::change_settings`]'s part).
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
        // The copy and the verification run while the migration dual-writes: the throttle
        // measures what those alone cost the clients, so `status` can say when they leave the
        // copier no room under the limit.
        let gate = LatencyGate::new(
            live.settings.throttles().latency_limit(),
            live.settings.latency_baseline(),
        )
        .measuring_dual_writes();
        let throttle = LatencyThrottle::new(Arc::new(latency::FleetLatency::new(ctx)), gate);
        live.latency = Some(throttle.clone());
        throttle
    }

    pub(crate) fn set_task(&self, task: JoinHandle<()>) {
        let mut slot = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }

    /// Whether the background task is still at work (not ended, with or without an error).
    pub(crate) fn task_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|task| !task.is_finished())
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
    pub(crate) fn route_for(&self, phase: Phase) -> Option<duet_shadow::rewrite::TableRoute> {
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
        route: Option<duet_shadow::rewrite::TableRoute>,
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
    pub(crate) fn dual_write_route_in(
        &self,
        phase: Phase,
    ) -> Option<duet_shadow::rewrite::TableRoute> {
        let mut route = self.plan.dual_write_route.clone()?;
        if matches!(phase, Phase::Verifying | Phase::Ready | Phase::Flipping) {
            if let duet_shadow::rewrite::Target::ShadowTable { plain_deletes, .. } =
                &mut route.target
            {
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
        route: Option<duet_shadow::rewrite::TableRoute>,
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

#[cfg(test)]
mod layers {
    //! The files of `control/` point one way (see the module docs): this reads their sources
    //! and fails when their references to each other form a cycle, naming it.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// A file's code, without its tests (where `super` is the file itself) and comments.
    fn code(source: &str) -> String {
        let without_tests = source.split("#[cfg(test)]").next().unwrap_or_default();
        without_tests
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first path segment of each item a `use` group (`{a, b::c, d}`) names.
    fn group_heads(group: &str) -> Vec<String> {
        let mut heads = Vec::new();
        let mut depth = 0;
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => heads.push(std::mem::take(&mut item)),
                _ if depth == 0 => item.push(c),
                _ => {}
            }
        }
        heads.push(item);
        heads
            .iter()
            .filter_map(|item| {
                let head = item.trim().split("::").next()?.trim().to_owned();
                (!head.is_empty()).then_some(head)
            })
            .collect()
    }

    /// The names `code` reaches after `prefix` (`super::`, `crate::control::`).
    fn names_after(code: &str, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = matching_brace(group);
                names.extend(group_heads(&group[..end]));
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        }
        names
    }

    fn matching_brace(group: &str) -> usize {
        let mut depth = 1;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
        }
        group.len()
    }

    /// Which files each file of `control/` refers to (`mod` is `mod.rs`: the registry and
    /// the types every file shares).
    fn references(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut sources = BTreeMap::new();
        for entry in std::fs::read_dir(dir).expect("migration/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("a file name")
                    .to_owned();
                let text = std::fs::read_to_string(&path).expect("a source file");
                sources.insert(name, code(&text));
            }
        }
        let modules: BTreeSet<String> = sources.keys().filter(|n| *n != "mod").cloned().collect();
        let mut edges = BTreeMap::new();
        for (name, code) in &sources {
            let mut to = BTreeSet::new();
            let mut reached = names_after(code, "crate::control::");
            if name == "mod" {
                // mod.rs reaches its children by their bare names.
                for module in &modules {
                    if code.contains(&format!("{module}::"))
                        && code.match_indices(&format!("{module}::")).any(|(at, _)| {
                            !code[..at]
                                .ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                        })
                    {
                        reached.push(module.clone());
                    }
                }
            } else {
                reached.extend(names_after(code, "super::"));
            }
            for target in reached {
                let target = if modules.contains(&target) {
                    target
                } else {
                    "mod".to_owned()
                };
                if &target != name {
                    to.insert(target);
                }
            }
            edges.insert(name.clone(), to);
        }
        edges
    }

    /// A cycle among `edges`, as the files around it, if there is one.
    fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            node: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(start) = path.iter().position(|n| n == node) {
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            if done.contains(node) {
                return None;
            }
            path.push(node.to_owned());
            for next in edges.get(node).into_iter().flatten() {
                if let Some(cycle) = visit(next, edges, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.insert(node.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        edges
            .keys()
            .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
    }

    #[test]
    fn the_files_of_control_refer_to_each_other_without_a_cycle() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control");
        let edges = references(&dir);
        assert!(
            edges["controller"].contains("verify") && edges["flip"].contains("driver"),
            "the reader must see the references it checks: {edges:?}"
        );
        if let Some(cycle) = find_cycle(&edges) {
            panic!(
                "control/ files refer to each other in a cycle: {} — move what both need into a \
                 lower module (see the order in control/mod.rs)",
                cycle.join(" → ")
            );
        }
    }

    #[test]
    fn the_reader_finds_a_cycle_when_there_is_one() {
        let mut edges = BTreeMap::new();
        edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
        edges.insert("b".to_owned(), BTreeSet::from(["mod".to_owned()]));
        edges.insert("mod".to_owned(), BTreeSet::from(["a".to_owned()]));
        assert!(find_cycle(&edges).is_some());
        assert_eq!(
            group_heads("connection::{self, ControlError}, driver, Migration"),
            ["connection", "driver", "Migration"]
        );
        assert_eq!(
            names_after("use super::{a, b::c};\nsuper::d::e();", "super::"),
            ["a", "b", "d"]
        );
    }
}
