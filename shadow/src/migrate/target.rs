//! What is copied where: source table, shadow table, copy key and column mapping, and the SQL
//! fragments built from them (key ranges, checksums, the copy and repair statements).

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::ident::{quote_ident, QualifiedName, DELETED_COLUMN};
use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::key::{discover_copy_key, CopyKey, KeyValue};

pub use crate::rewrite::ColumnMapping;

/// Source, shadow, key and mapping of a shadow-table migration.
///
/// The key columns keep their names in the shadow, and the conversion must preserve their order
/// (int → bigint does), because chunk boundaries taken from one table bound the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyTarget {
    /// The table under migration.
    pub source: QualifiedName,
    /// Its shadow (`t__duet`).
    pub shadow: QualifiedName,
    /// The copy key.
    pub key: CopyKey,
    /// Key column types in the shadow.
    pub shadow_key_types: Vec<String>,
    /// Shadow columns and how to compute them.
    pub mapping: Vec<ColumnMapping>,
}

/// Which side of a comparison a key range applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Shadow,
}

/// A key range `(lower, upper]`; `None` means unbounded on that side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    /// Exclusive lower bound.
    pub lower: Option<KeyValue>,
    /// Inclusive upper bound.
    pub upper: Option<KeyValue>,
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.lower {
            Some(k) => write!(f, "({k}")?,
            None => write!(f, "(-inf")?,
        }
        match &self.upper {
            Some(k) => write!(f, " .. {k}]"),
            None => write!(f, " .. +inf)"),
        }
    }
}

impl CopyTarget {
    /// A shadow column's chunk statement (the backfill's, see `super::backfill`: source and
    /// shadow are the table, the mapping is the one column): set the column of the rows `pred`
    /// selects where it differs from the mapping's expression.
    pub(crate) fn column_update(&self, pred: &str) -> String {
        let (column, expr) = match self.mapping.first() {
            Some(m) => (quote_ident(&m.target), m.expr.as_str()),
            None => (String::new(), ""),
        };
        format!(
            "UPDATE {table} SET {column} = {expr} WHERE {pred} AND {column} IS DISTINCT FROM {expr}",
            table = self.source.sql(),
        )
    }

    /// Plan the shadow-table copy of `source` (before the shadow exists): discovers the key and
    /// checks that the mapping produces every key column under its own name.
    pub async fn plan(
        client: &impl GenericClient,
        source: QualifiedName,
        mapping: Vec<ColumnMapping>,
    ) -> Result<CopyTarget, MigrateError> {
        let key = discover_copy_key(client, &source).await?;
        if mapping.is_empty() {
            return Err(MigrateError::InvalidPlan("empty column mapping".into()));
        }
        for col in &key.columns {
            if !mapping.iter().any(|m| &m.target == col) {
                return Err(MigrateError::InvalidPlan(format!(
                    "key column {} of {source} is missing from the mapping",
                    quote_ident(col)
                )));
            }
        }
        if mapping.iter().any(|m| m.target == DELETED_COLUMN) {
            return Err(MigrateError::InvalidPlan(format!(
                "{DELETED_COLUMN} is reserved for tombstones"
            )));
        }
        let shadow = source.shadow();
        Ok(CopyTarget {
            shadow_key_types: key.source_types.clone(),
            source,
            shadow,
            key,
            mapping,
        })
    }

    /// Re-read the shadow's key column types from the catalog (after the shadow was created).
    pub async fn refresh_shadow_types(
        &mut self,
        client: &impl GenericClient,
    ) -> Result<(), MigrateError> {
        let mut types = Vec::with_capacity(self.key.columns.len());
        for col in &self.key.columns {
            let row = client
                .query_opt(
                    "SELECT format_type(atttypid, NULL) FROM pg_attribute
                     WHERE attrelid = $1::text::regclass AND attname = $2 AND NOT attisdropped",
                    &[&self.shadow.sql(), col],
                )
                .await
                .ctx(format!("reading the key types of {}", self.shadow))?;
            match row {
                Some(r) => types.push(r.get::<_, String>(0)),
                None => {
                    return Err(MigrateError::InvalidPlan(format!(
                        "shadow {} has no key column {}",
                        self.shadow,
                        quote_ident(col)
                    )))
                }
            }
        }
        self.shadow_key_types = types;
        Ok(())
    }

    /// `"k1", "k2"` (optionally qualified by an alias).
    pub(crate) fn key_list(&self, alias: Option<&str>) -> String {
        self.key
            .columns
            .iter()
            .map(|c| match alias {
                Some(a) => format!("{a}.{}", quote_ident(c)),
                None => quote_ident(c),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `"k1"::text AS "__duet_k0", …` — aliased, so an `ORDER BY "k1"` in the same query still
    /// sorts by the typed column and not by its text rendering.
    pub(crate) fn key_text_list(&self, alias: Option<&str>) -> String {
        self.key
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| match alias {
                Some(a) => format!("{a}.{}::text AS \"__duet_k{i}\"", quote_ident(c)),
                None => format!("{}::text AS \"__duet_k{i}\"", quote_ident(c)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `"k1" DESC, "k2" DESC` or ascending.
    pub(crate) fn key_order(&self, descending: bool) -> String {
        let dir = if descending { " DESC" } else { "" };
        self.key
            .columns
            .iter()
            .map(|c| format!("{}{dir}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `"schema"."table"."k1", …` in ascending order: the key columns qualified by `table`, so an
    /// `ORDER BY` in an `INSERT … SELECT` whose output columns reuse the key's names (`"id"::bigint
    /// AS "id"`) sorts by the table's own column, which its key index already returns in order,
    /// instead of by the converted output, which would need a sort of the whole chunk.
    pub(crate) fn key_order_of(&self, table: &QualifiedName) -> String {
        let table = table.sql();
        self.key
            .columns
            .iter()
            .map(|c| format!("{table}.{}", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The quoted key column when the key is one column of an integer type in the source and the
    /// shadow (`smallint`, `integer`, `bigint`): chunks can then be key intervals.
    pub(crate) fn single_integer_key(&self) -> Option<String> {
        let integer = |ty: &String| matches!(ty.as_str(), "smallint" | "integer" | "bigint");
        match (
            self.key.columns.as_slice(),
            self.key.source_types.as_slice(),
            self.shadow_key_types.as_slice(),
        ) {
            ([column], [source], [shadow]) if integer(source) && integer(shadow) => {
                Some(quote_ident(column))
            }
            _ => None,
        }
    }

    /// `($n::text::type, …)` for a key value bound as text parameters starting at `$first`.
    pub(crate) fn key_params(&self, side: Side, first: usize) -> String {
        let types = match side {
            Side::Source => &self.key.source_types,
            Side::Shadow => &self.shadow_key_types,
        };
        let items = types
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("${}::text::{ty}", first + i))
            .collect::<Vec<_>>()
            .join(", ");
        format!("({items})")
    }

    /// A key-range predicate (`TRUE` when unbounded) and its parameter count; parameters are the
    /// lower bound's columns then the upper bound's, starting at `$first`.
    pub(crate) fn range_predicate(
        &self,
        side: Side,
        alias: Option<&str>,
        range: &KeyRange,
        first: usize,
    ) -> (String, usize) {
        let mut parts = Vec::new();
        let mut next = first;
        let cols = format!("({})", self.key_list(alias));
        if range.lower.is_some() {
            parts.push(format!("{cols} > {}", self.key_params(side, next)));
            next += self.key.columns.len();
        }
        if range.upper.is_some() {
            parts.push(format!("{cols} <= {}", self.key_params(side, next)));
            next += self.key.columns.len();
        }
        if parts.is_empty() {
            ("TRUE".to_string(), 0)
        } else {
            (parts.join(" AND "), next - first)
        }
    }

    /// The text parameters for [`Self::range_predicate`].
    pub(crate) fn range_params(range: &KeyRange) -> Vec<String> {
        let mut params = Vec::new();
        if let Some(k) = &range.lower {
            params.extend(k.0.iter().cloned());
        }
        if let Some(k) = &range.upper {
            params.extend(k.0.iter().cloned());
        }
        params
    }

    /// `"c1", "c2"` — the shadow's mapped columns.
    pub(crate) fn target_list(&self) -> String {
        self.mapping
            .iter()
            .map(|m| quote_ident(&m.target))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `expr1, expr2` — the mapping expressions over the source row.
    pub(crate) fn expr_list(&self) -> String {
        self.mapping
            .iter()
            .map(|m| m.expr.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `SET "c" = EXCLUDED."c", …` for every non-key mapped column.
    pub(crate) fn excluded_assignments(&self) -> String {
        self.mapping
            .iter()
            .filter(|m| !self.key.columns.contains(&m.target))
            .map(|m| format!("{0} = EXCLUDED.{0}", quote_ident(&m.target)))
            .chain(std::iter::once(format!(
                "{} = false",
                quote_ident(DELETED_COLUMN)
            )))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The tombstone column, quoted.
    pub(crate) fn deleted(&self) -> String {
        quote_ident(DELETED_COLUMN)
    }
}

/// Convert text parameters to the driver's parameter slice.
pub(crate) fn as_params(params: &[String]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}
