//! What the migration controller publishes for the rewriter: which tables are under migration and
//! how each one's writes must be mirrored. The proxy swaps a whole [`Routes`] value atomically
//! (ArcSwap) between transactions; the rewriter only reads it.

use serde::{Deserialize, Serialize};

use crate::ident::QualifiedName;

/// Every table under migration plus the facts about the server that gate some rewrites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    /// One entry per table under migration (at most one migration per table).
    pub tables: Vec<TableRoute>,
    /// `server_version_num` as reported by the server (e.g. `150018`); gates `MERGE … RETURNING`
    /// (17) and `RETURNING OLD` (18).
    pub server_version_num: u32,
    /// Tables among `tables` whose writes are not rewritten but forwarded as written, every row
    /// mirrored by the safety net ([`super::net`]): tables that enforce row-level security. A
    /// rewritten write asks for `RETURNING` rows, which PostgreSQL checks against the SELECT
    /// policies as well (a write the policies allow could fail or skip rows), and writes the
    /// shadow with the writer's rights; the net writes it as duet's role. DDL on them is still
    /// refused and GRANTs still carried over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net_only: Vec<QualifiedName>,
}

/// One table under migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRoute {
    /// Schema of the table (unquoted, exact spelling, e.g. `public`).
    pub schema: String,
    /// Name of the table (unquoted, exact spelling, e.g. `orders`).
    pub name: String,
    /// The table's columns in attribute order (dropped columns excluded).
    pub columns: Vec<Column>,
    /// The key columns (primary key, or the unique NOT NULL key used as arbiter).
    pub key: Vec<String>,
    /// How writes to the table are mirrored.
    pub target: Target,
}

/// A column of a table under migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name (unquoted, exact spelling).
    pub name: String,
    /// Its declared base type without typmod, as a SQL type name usable in a cast (`int4`,
    /// `numeric`, `varchar`, `public.mood`). Used to pin duplicated `$n` parameters.
    pub base_type: String,
}

/// One shadow column: its name and the SQL expression over the *old* row that produces it
/// (e.g. `"id"::bigint`). Listed in shadow column order. The rewrite, the safety net and the
/// copier all compute the shadow from the same list, so a plan hands one list to all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Shadow column name (unquoted).
    pub target: String,
    /// SQL expression over the source row's (quoted) columns.
    pub expr: String,
}

impl ColumnMapping {
    /// A mapping entry.
    pub fn new(target: impl Into<String>, expr: impl Into<String>) -> Self {
        ColumnMapping {
            target: target.into(),
            expr: expr.into(),
        }
    }
}

/// How writes to a table under migration are mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A shadow table in the same schema, kept in sync by a data-modifying CTE and one upsert.
    ShadowTable {
        /// Unquoted name of the shadow table (`t__duet` by convention).
        shadow: String,
        /// Every shadow column except `__duet_deleted`, in shadow column order.
        mapping: Vec<ColumnMapping>,
        /// The shadow's key columns (the `ON CONFLICT` arbiter), unquoted.
        shadow_key: Vec<String>,
        /// A predicate over the written row's (quoted) columns: rows for which it is true are not
        /// mirrored. After the flip of a widening (int4 → int8 key), rows the old shape cannot
        /// hold must not fail the application's write; the plan's revert refuses while such rows
        /// exist, so nothing is lost silently.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip_when: Option<String>,
        /// Mirror deletes as plain DELETEs instead of tombstones. Tombstones are needed only
        /// while a copier runs (a stale copied row must not resurrect a deleted key); once the copy
        /// is done — and on the reverse mirror after the flip — a tombstone row would only break
        /// the shadow's NOT NULL, unique and foreign-key constraints. Requires the `duet.row_sink`
        /// view (created with schema `duet`), which keeps the client's `DELETE n` count exact.
        #[serde(default)]
        plain_deletes: bool,
    },
    /// A shadow column in the same table, kept in sync inline.
    ShadowColumn {
        /// The new column (`c__duet` by convention), unquoted.
        column: String,
        /// SQL expression over the source columns, e.g. `"amount"::bigint`.
        expr: String,
        /// A predicate over the written row's (quoted) columns: for rows where it is true the
        /// column is set to NULL instead of `expr`. After the flip of a widening (int4 → int8),
        /// a value the old type cannot hold must not fail the application's write; the plan's
        /// revert refuses while such rows exist, so nothing is lost silently.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        skip_when: Option<String>,
        /// After the flip (`column` is then the parked old column): how an `INSERT` that put its
        /// value into the parked column instead of the new one gets it back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recover: Option<ParkedValue>,
    },
    /// After the flip of a rename: statements written for the old names are translated.
    Renamed {
        /// `(old name, new name)` pairs, unquoted.
        columns: Vec<(String, String)>,
    },
}

/// After a shadow column's flip the parked old column sits where the column was and the new one
/// is last, so a positional `INSERT` or `COPY` that bypasses duet (a direct connection, a
/// function) writes the parked column and leaves the new one NULL; the safety net would then
/// overwrite the parked value from the NULL, and the write would be lost. An `INSERT` row whose
/// parked column holds a value while the new one is NULL (nothing else writes the parked column)
/// gets the new column computed from it, as the dual-writes computed it before the flip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedValue {
    /// The new column (the application's name for it), unquoted.
    pub column: String,
    /// The migration's expression for the new column over the application's columns, the old
    /// column's value under its own name.
    pub expr: String,
}

impl TableRoute {
    /// The column named `name`, if the table has one.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether a relation reference `(schema, name)` as written in a statement names this table.
    /// An unqualified name is assumed to resolve through `search_path` to this table.
    pub fn is_named(&self, schema: &str, name: &str) -> bool {
        name == self.name && (schema.is_empty() || schema == self.schema)
    }
}

impl Routes {
    /// The route of the relation `(schema, name)` as written in a statement.
    pub fn find(&self, schema: &str, name: &str) -> Option<&TableRoute> {
        self.tables.iter().find(|r| r.is_named(schema, name))
    }

    /// Whether `route`'s writes are left to the safety net (see [`Routes::net_only`]).
    pub fn mirrored_by_net_only(&self, route: &TableRoute) -> bool {
        self.net_only
            .iter()
            .any(|t| t.schema == route.schema && t.name == route.name)
    }
}
