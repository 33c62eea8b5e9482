//! The route table: which tables are under migration right now and how their writes are mirrored.
//!
//! The migration controller publishes a whole [`Routes`] value at once (an `ArcSwap`, so readers
//! never lock); sessions read the current value when they start a statement. Each publication gets
//! a new epoch, which keys the rewrite cache and tells a session that its prepared statements were
//! made under other routes. Publications that change what a table's statements mean (the flip,
//! revert, abort) happen while the pause gate holds every session at a transaction boundary, so no
//! transaction ever sees two route tables.

mod cache;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use duet_shadow::ident::QualifiedName;
use duet_shadow::rewrite::{Routes, TableRoute};

pub use cache::{Cached, RewriteCache};

/// One published route table.
#[derive(Debug, Default)]
pub struct Published {
    /// Increases with every publication (0: nothing ever published).
    pub epoch: u64,
    /// The routes.
    pub routes: Routes,
}

impl Published {
    /// Whether any table is under migration (the hot path's only question when none is).
    pub fn is_empty(&self) -> bool {
        self.routes.tables.is_empty()
    }
}

/// The proxy's current route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    current: ArcSwap<Published>,
    /// Serialises publishers so epochs are strictly increasing.
    publish_lock: std::sync::Mutex<()>,
    /// Per-table counters, keyed `schema.name`.
    counters: dashmap::DashMap<String, Arc<TableCounters>>,
    /// Whether the current publication has any table (the sessions' per-chunk question, answered
    /// without touching the `ArcSwap`).
    active: AtomicBool,
    /// The current publication's epoch (sessions compare it at transaction boundaries to decide
    /// whether their prepared statements need preparing again).
    epoch: AtomicU64,
    /// Rewrites already computed, shared by every session.
    cache: RewriteCache,
}

impl RouteTable {
    /// An empty table (epoch 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current routes.
    pub fn current(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// Whether any table is under migration right now (one atomic load: the hot path's check).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The current epoch (one atomic load).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The rewrite of `sql` under `published`, from the shared cache (computed on a miss).
    pub fn rewrite(
        &self,
        published: &Published,
        sql: &str,
        protocol: duet_shadow::rewrite::Protocol,
    ) -> Arc<Cached> {
        self.cache.get(self, published, sql, protocol)
    }

    /// Replaces every route of `schema.name` (removes it when `route` is `None`) and keeps the
    /// others; returns the new epoch. `server_version_num` is kept from the last publication when
    /// 0 is given.
    pub fn set_table(
        &self,
        schema: &str,
        name: &str,
        route: Option<TableRoute>,
        server_version_num: u32,
    ) -> u64 {
        self.set_table_mirrored(schema, name, route, false, server_version_num)
    }

    /// [`RouteTable::set_table`], and whether the table's writes are left to the safety net
    /// alone (`net_only`: forwarded as written, never rewritten; see
    /// [`duet_shadow::rewrite::Routes::net_only`]).
    pub fn set_table_mirrored(
        &self,
        schema: &str,
        name: &str,
        route: Option<TableRoute>,
        net_only: bool,
        server_version_num: u32,
    ) -> u64 {
        let _guard = self
            .publish_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = self.current.load();
        let mut tables: Vec<TableRoute> = old
            .routes
            .tables
            .iter()
            .filter(|t| !(t.schema == schema && t.name == name))
            .cloned()
            .collect();
        let mut mirrored: Vec<QualifiedName> = old
            .routes
            .net_only
            .iter()
            .filter(|t| !(t.schema == schema && t.name == name))
            .cloned()
            .collect();
        if net_only && route.is_some() {
            mirrored.push(QualifiedName::new(schema, name));
        }
        tables.extend(route);
        let epoch = old.epoch + 1;
        let server_version_num = if server_version_num == 0 {
            old.routes.server_version_num
        } else {
            server_version_num
        };
        let active = !tables.is_empty();
        self.current.store(Arc::new(Published {
            epoch,
            routes: Routes {
                tables,
                server_version_num,
                net_only: mirrored,
            },
        }));
        // After the store: a session that sees the new epoch or flag loads the new routes.
        self.epoch.store(epoch, Ordering::Release);
        self.active.store(active, Ordering::Release);
        epoch
    }
}

/// What the sessions counted for one table under migration (read by the controller's status).
#[derive(Debug, Default)]
pub struct TableCounters {
    /// Statements rewritten to dual-write.
    pub dual_writes: std::sync::atomic::AtomicU64,
    /// Statements refused (the client got an error).
    pub refusals: std::sync::atomic::AtomicU64,
    /// Statements written for the old shape and translated (after the flip of a rename).
    pub old_shape_statements: std::sync::atomic::AtomicU64,
    /// When the last old-shape statement arrived, as milliseconds since the Unix epoch (0: never).
    pub old_shape_last_seen_ms: std::sync::atomic::AtomicU64,
    /// Writes duet could not dual-write and forwarded unchanged (`[migration]
    /// unrewritable_writes = "pass"`): each may have left the shadow behind.
    pub unrewritten: std::sync::atomic::AtomicU64,
}

impl RouteTable {
    /// The counters of `schema.name` (created on first use; kept across publications).
    pub fn counters(&self, schema: &str, name: &str) -> Arc<TableCounters> {
        let key = format!("{schema}.{name}");
        self.counters
            .entry(key)
            .or_insert_with(|| Arc::new(TableCounters::default()))
            .clone()
    }

    /// Forgets the counters of `schema.name` (a new migration of the table starts from zero).
    pub fn reset_counters(&self, schema: &str, name: &str) {
        self.counters.remove(&format!("{schema}.{name}"));
    }
}
