//! What the migration controller publishes for the rewriter: which tables are under migration and
//! how each one's writes must be mirrored. The proxy swaps a whole [`Routes`] value atomically
//! (ArcSwap) between transactions; the rewriter only reads it.

/// Every table under migration plus the facts about the server that gate some rewrites.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// One entry per table under migration (at most one migration per table).
    pub tables: Vec<TableRoute>,
    /// `server_version_num` as reported by the server (e.g. `150018`); gates `MERGE … RETURNING`
    /// (17) and `RETURNING OLD` (18).
    pub server_version_num: u32,
}

/// One table under migration.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name (unquoted, exact spelling).
    pub name: String,
    /// Its declared base type without typmod, as a SQL type name usable in a cast (`int4`,
    /// `numeric`, `varchar`, `public.mood`). Used to pin duplicated `$n` parameters.
    pub base_type: String,
}

/// One column of a shadow table and how it is computed from the old row.
#[derive(Debug, Clone)]
pub struct ColumnMapping {
    /// Column of the shadow table (unquoted).
    pub target: String,
    /// SQL expression over the old row's columns, e.g. `"id"::bigint` (identifiers quoted).
    pub expr: String,
}

/// How writes to a table under migration are mirrored.
#[derive(Debug, Clone)]
pub enum Target {
    /// A shadow table in the same schema, kept in sync by a data-modifying CTE and one upsert.
    ShadowTable {
        /// Unquoted name of the shadow table (`t__duet` by convention).
        shadow: String,
        /// Every shadow column except `__duet_deleted`, in shadow column order.
        mapping: Vec<ColumnMapping>,
        /// The shadow's key columns (the `ON CONFLICT` arbiter), unquoted.
        shadow_key: Vec<String>,
    },
    /// A shadow column in the same table, kept in sync inline.
    ShadowColumn {
        /// The new column (`c__duet` by convention), unquoted.
        column: String,
        /// SQL expression over the source columns, e.g. `"amount"::bigint`.
        expr: String,
        /// The columns `expr` reads (unquoted); writes that assign none of them need nothing.
        sources: Vec<String>,
    },
    /// After the flip of a rename: statements written for the old names are translated.
    Renamed {
        /// `(old name, new name)` pairs, unquoted.
        columns: Vec<(String, String)>,
    },
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
}
