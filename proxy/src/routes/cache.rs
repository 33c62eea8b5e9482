//! The rewrite cache: `duet_shadow::rewrite::rewrite` parses on a fresh big-stack thread per call, far
//! too slow to run per message, so every session shares one cache keyed by (epoch, protocol, SQL
//! text). An application sends the same few statement texts over and over, so the cache is small;
//! it is bounded anyway (cleared when it grows past [`MAX_ENTRIES`]) and cleared when the epoch
//! moves on, since entries of older epochs can never be hit again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use duet_shadow::rewrite::{Protocol, Refusal, Rewrite, Target};

use super::{Published, RouteTable, TableCounters};

/// Entries per protocol before the cache is cleared (a client generating unbounded distinct texts
/// must not grow the proxy without bound).
pub const MAX_ENTRIES: usize = 10_000;

/// One cached rewrite, with what the sessions need to count it cheaply.
#[derive(Debug)]
pub struct Cached {
    /// The epoch of the routes it was computed under.
    pub epoch: u64,
    /// The rewrite, or the refusal to send instead.
    pub result: Result<Rewrite, Refusal>,
    /// Counters of the routed tables the text mentions (computed once, on the miss).
    pub tables: Vec<Arc<TableCounters>>,
    /// Whether one of those tables has a `Target::Renamed` route (old-shape statements).
    pub renamed: bool,
    /// The schemas of the migrating tables the text names without a schema, when it was
    /// rewritten: the rewrite is used only by sessions whose `search_path` surely finds them.
    pub unqualified: Vec<String>,
}

impl Cached {
    /// Counts `statements` dual-writing statements executed from this text.
    pub fn count_dual_writes(&self, statements: u64) {
        if statements == 0 {
            return;
        }
        for table in &self.tables {
            table.dual_writes.fetch_add(statements, Ordering::Relaxed);
        }
        if self.renamed && matches!(self.result, Ok(Rewrite::Changed { .. })) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            for table in &self.tables {
                table
                    .old_shape_statements
                    .fetch_add(statements, Ordering::Relaxed);
                table.old_shape_last_seen_ms.store(now, Ordering::Relaxed);
            }
        }
    }

    /// Counts one write forwarded without its dual-write (`unrewritable_writes = "pass"`).
    pub fn count_unrewritten(&self) {
        for table in &self.tables {
            table.unrewritten.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one refusal sent to a client.
    pub fn count_refusal(&self) {
        for table in &self.tables {
            table.refusals.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many statements of the text were rewritten.
    pub fn rewritten_statements(&self) -> u64 {
        match &self.result {
            Ok(Rewrite::Changed { statements, .. }) => {
                statements.iter().filter(|s| s.rewritten).count() as u64
            }
            _ => 0,
        }
    }
}

/// The shared cache (one map per protocol, so lookups borrow the SQL text without building a key).
#[derive(Debug, Default)]
pub struct RewriteCache {
    /// The epoch the entries were computed under (entries of others are never hit).
    epoch: AtomicU64,
    simple: DashMap<Box<str>, Arc<Cached>>,
    extended: DashMap<Box<str>, Arc<Cached>>,
}

impl RewriteCache {
    fn map(&self, protocol: Protocol) -> &DashMap<Box<str>, Arc<Cached>> {
        match protocol {
            Protocol::Simple => &self.simple,
            Protocol::Extended => &self.extended,
        }
    }

    /// The rewrite of `sql` under `published` (computed and stored on a miss).
    pub(super) fn get(
        &self,
        table: &RouteTable,
        published: &Published,
        sql: &str,
        protocol: Protocol,
    ) -> Arc<Cached> {
        let map = self.map(protocol);
        if let Some(hit) = map.get(sql) {
            if hit.epoch == published.epoch {
                return hit.clone();
            }
        }
        let result = duet_shadow::rewrite::rewrite(sql, &published.routes, protocol);
        let mut tables = Vec::new();
        let mut renamed = false;
        for route in &published.routes.tables {
            let one = duet_shadow::rewrite::Routes {
                tables: vec![route.clone()],
                server_version_num: published.routes.server_version_num,
                net_only: published.routes.net_only.clone(),
            };
            if duet_shadow::rewrite::touches(sql, &one) {
                tables.push(table.counters(&route.schema, &route.name));
                renamed |= matches!(route.target, Target::Renamed { .. });
            }
        }
        let unqualified = match &result {
            Ok(duet_shadow::rewrite::Rewrite::Changed { .. }) => {
                duet_shadow::rewrite::search_path::unqualified_schemas(sql, &published.routes)
            }
            _ => Vec::new(),
        };
        let cached = Arc::new(Cached {
            epoch: published.epoch,
            result,
            tables,
            renamed,
            unqualified,
        });
        if self.epoch.swap(published.epoch, Ordering::AcqRel) != published.epoch {
            self.simple.clear();
            self.extended.clear();
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(sql.into(), cached.clone());
        cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_shadow::rewrite::{Column, ColumnMapping, TableRoute};

    fn route() -> TableRoute {
        TableRoute {
            schema: "public".into(),
            name: "items".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    base_type: "int4".into(),
                },
                Column {
                    name: "note".into(),
                    base_type: "text".into(),
                },
            ],
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "items__duet".into(),
                mapping: vec![
                    ColumnMapping {
                        target: "id".into(),
                        expr: "\"id\"::bigint".into(),
                    },
                    ColumnMapping {
                        target: "note".into(),
                        expr: "\"note\"".into(),
                    },
                ],
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        }
    }

    #[test]
    fn hits_within_an_epoch_and_misses_after_a_publication() {
        let table = RouteTable::new();
        table.set_table("public", "items", Some(route()), 150000);
        let published = table.current();
        let sql = "UPDATE items SET note = 'x' WHERE id = 1";
        let first = table.rewrite(&published, sql, Protocol::Simple);
        assert!(matches!(first.result, Ok(Rewrite::Changed { .. })));
        assert_eq!(first.tables.len(), 1);
        assert_eq!(first.rewritten_statements(), 1);
        let again = table.rewrite(&published, sql, Protocol::Simple);
        assert!(
            Arc::ptr_eq(&first, &again),
            "a hit returns the stored entry"
        );
        table.set_table("public", "items", None, 0);
        let cleared = table.current();
        let after = table.rewrite(&cleared, sql, Protocol::Simple);
        assert!(!Arc::ptr_eq(&first, &after));
        assert_eq!(after.result, Ok(Rewrite::Unchanged));
        assert!(!table.is_active());
    }

    #[test]
    fn counts_per_table() {
        let table = RouteTable::new();
        table.set_table("public", "items", Some(route()), 150000);
        let published = table.current();
        let merge = table.rewrite(
            &published,
            "MERGE INTO items USING (SELECT 1 AS id) s ON items.id = s.id WHEN MATCHED THEN DELETE",
            Protocol::Simple,
        );
        assert!(merge.result.is_err());
        merge.count_refusal();
        let update = table.rewrite(&published, "DELETE FROM items", Protocol::Simple);
        update.count_dual_writes(update.rewritten_statements());
        let counters = table.counters("public", "items");
        assert_eq!(counters.refusals.load(Ordering::Relaxed), 1);
        assert_eq!(counters.dual_writes.load(Ordering::Relaxed), 1);
        assert_eq!(counters.old_shape_statements.load(Ordering::Relaxed), 0);
    }
}
