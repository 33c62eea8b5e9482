//! The state of one session that both forwarding directions share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::dual_write::HookContext;
use super::track::Tracker;
use crate::context::ProxyContext;
use crate::session_registry::SessionInfo;

/// The session's state both forwarding directions share: its protocol position and the
/// dual-write hook (one lock, taken once per chunk), and the flags that let the downstream scan
/// skip that lock while nothing concerns it.
pub(super) struct Shared<'a> {
    /// The proxy: configuration, routes, gate, metrics.
    pub(super) ctx: &'a ProxyContext,
    /// The session as `status` and the metrics see it.
    pub(super) info: &'a SessionInfo,
    /// What the hook consults of the proxy and the session.
    pub(super) hook_context: HookContext<'a>,
    /// The protocol position and the dual-write hook.
    pub(super) tracker: Mutex<Tracker>,
    /// The hook queued changes to the backend's answers (the downstream loop looks closer only
    /// then; both loops run in one task, so relaxed loads and stores are exact).
    pub(super) expecting: AtomicBool,
    /// The session has named prepared statements the hook remembers (the downstream loop then
    /// watches errors for "cached plan must not change result type").
    pub(super) remembers: AtomicBool,
    /// The backend sent a FATAL (or PANIC) ErrorResponse: whatever follows is its connection
    /// closing, which the client must see as the plain EOF PostgreSQL gives, not as a lost backend.
    pub(super) backend_said_fatal: AtomicBool,
    /// The session is connected to the database duet migrates (the backend URL's): routes name
    /// tables of that database only, so a same-named table in another database is never
    /// rewritten.
    pub(super) routed: bool,
}

impl<'a> Shared<'a> {
    /// The state of a session that has just finished its startup.
    pub(super) fn new(ctx: &'a ProxyContext, info: &'a SessionInfo) -> Self {
        let mut tracker = Tracker::new();
        if let Some(identity) = info.identity() {
            // A path the startup packet did not set is the role's (or database's, or server's)
            // default, as PostgreSQL gives it to this session.
            let path = match &identity.search_path {
                duet_shadow::rewrite::search_path::SearchPath::Default => {
                    ctx.role_paths.for_user(&identity.user)
                }
                set => set.clone(),
            };
            tracker.hook.names.search_path = path.clone();
            tracker.hook.names.at_startup = path;
        }
        // (A session always has its identity once started; without one — a unit test's bare
        // session — there is no other database to tell apart.)
        let routed = info
            .identity()
            .is_none_or(|identity| identity.database == ctx.config.backend.dbname);
        Shared {
            routed,
            hook_context: HookContext {
                routes: &ctx.routes,
                policy: ctx.config.migration.unrewritable_writes,
                session: info.id,
            },
            ctx,
            info,
            tracker: Mutex::new(tracker),
            expecting: AtomicBool::new(false),
            remembers: AtomicBool::new(false),
            backend_said_fatal: AtomicBool::new(false),
        }
    }
}

impl Shared<'_> {
    /// The protocol position and the hook, locked (both loops run in one task: never contended).
    pub(super) fn tracker(&self) -> MutexGuard<'_, Tracker> {
        // Nothing panics while holding the lock; recover the data if that ever changes.
        self.tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adds to one of the session's own counters. Only this session's task writes them (`status` and
/// the metrics endpoint only read), so a plain load and store is exact and avoids the locked
/// read-modify-write a `fetch_add` costs on every chunk.
pub(super) fn add_own(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}
