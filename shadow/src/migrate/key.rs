//! The copy key: the primary key, or else a unique NOT NULL key; and key values.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::ident::{quote_ident, QualifiedName};
use crate::migrate::error::{DbContext, MigrateError};

/// The value of a (possibly composite) key, one text rendering per key column, in key order.
///
/// Text is what the server's `::text` gives and what `'…'::text::type` reads back, so any key type
/// works without driver-side type support. Stored as a JSON array in the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue(pub Vec<String>);

impl KeyValue {
    /// JSON text of the key (stored form).
    pub fn to_json(&self) -> String {
        serde_json::Value::from(self.0.clone()).to_string()
    }

    /// Read the stored form.
    pub fn from_json(text: &str) -> Result<Self, MigrateError> {
        serde_json::from_str(text)
            .map(KeyValue)
            .map_err(|e| MigrateError::CorruptState(format!("key {text:?}: {e}")))
    }
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({})", self.0.join(", "))
    }
}

/// The key the copier orders by and the shadow uses as `ON CONFLICT` arbiter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyKey {
    /// Key columns in index order.
    pub columns: Vec<String>,
    /// Their types in the source table (no typmod: `'…'::text::type` must never truncate).
    pub source_types: Vec<String>,
    /// The index the key came from.
    pub index_name: String,
    /// True for a primary key, false for a unique NOT NULL key.
    pub is_primary: bool,
}

/// Find the copy key of `table`: its primary key, else the narrowest valid, immediate, non-partial
/// unique index on plain NOT NULL columns. A table with neither is refused, with the reason.
pub async fn discover_copy_key(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<CopyKey, MigrateError> {
    let rows = client
        .query(
            "SELECT c.relname::text, i.indisprimary, i.indisvalid AND i.indimmediate,
                    i.indpred IS NULL, i.indexprs IS NULL,
                    coalesce(bool_and(a.attnotnull), false),
                    array_agg(a.attname::text ORDER BY k.ord),
                    array_agg(format_type(a.atttypid, NULL) ORDER BY k.ord)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = $1::text::regclass AND i.indisunique
               AND k.ord <= i.indnkeyatts
             GROUP BY c.relname, i.indisprimary, i.indisvalid, i.indimmediate, i.indpred,
                      i.indexprs, i.indnkeyatts, c.oid
             ORDER BY i.indisprimary DESC, i.indnkeyatts, c.oid",
            &[&table.sql()],
        )
        .await
        .ctx(format!("reading the keys of {table}"))?;
    let mut rejected = Vec::new();
    for row in &rows {
        let name: String = row.get(0);
        let is_primary: bool = row.get(1);
        let valid_immediate: bool = row.get(2);
        let whole_table: bool = row.get(3);
        let plain_columns: bool = row.get(4);
        let not_null: bool = row.get(5);
        let columns: Vec<Option<String>> = row.get(6);
        let types: Vec<Option<String>> = row.get(7);
        let why_not = if !valid_immediate {
            Some("invalid or deferrable")
        } else if !whole_table {
            Some("partial")
        } else if !plain_columns || columns.iter().any(Option::is_none) {
            Some("on expressions")
        } else if !not_null && !is_primary {
            Some("on nullable columns")
        } else {
            None
        };
        match why_not {
            Some(why) => rejected.push(format!("unique index {} is {why}", quote_ident(&name))),
            None => {
                return Ok(CopyKey {
                    columns: columns.into_iter().flatten().collect(),
                    source_types: types.into_iter().flatten().collect(),
                    index_name: name,
                    is_primary,
                })
            }
        }
    }
    let mut reason = "no primary key and no unique index on NOT NULL columns to order the copy \
                      by and to use as the shadow's ON CONFLICT arbiter"
        .to_string();
    if !rejected.is_empty() {
        reason.push_str(&format!(" ({})", rejected.join(", ")));
    }
    Err(MigrateError::NoUsableKey {
        table: table.to_string(),
        reason,
    })
}
