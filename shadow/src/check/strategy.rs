//! The planner's question: for this change and the current schema, what is the cheapest safe way
//! to apply it — in place (guarded by lock_timeout, in its safe form), through a shadow column
//! (new column, dual writes, backfill, flip), or through a shadow table (copy, dual writes, flip)?

use serde::Serialize;

use super::classify::{classify, Classification, ClassifyContext};
use super::schema::Schema;
use super::version::EngineVersion;
use crate::parse::{parse_statement, statement_node, Parsed};

/// How a change should be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Run the statement (or its safe form) directly, with `lock_timeout` set and retries.
    InPlaceGuarded,
    /// Add a new column, dual-write it at the proxy, backfill in chunks, flip.
    ShadowColumn,
    /// Build a new table, copy in chunks with dual writes, flip.
    ShadowTable,
}

/// The planner's verdict for one change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The cheapest safe strategy.
    pub strategy: Strategy,
    /// Why, in one sentence.
    pub reason: String,
    /// Statements to run instead of the change when applying it in place (safe form), if any.
    pub safe_form: Vec<String>,
    /// What the change does when run as written.
    #[serde(skip)]
    pub classification: Classification,
}

/// Why no verdict could be given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StrategyError {
    /// The change does not parse.
    #[error("the change does not parse: {0}")]
    Unparsed(String),
    /// The text holds no statement, or more than one.
    #[error("expected exactly one statement, found {0}")]
    NotOneStatement(usize),
}

/// Decides the strategy for `change` (one SQL statement) against `schema`. Parsing deep input
/// needs a large stack: call it from the planner's big-stack thread (see `parse`).
pub fn strategy(
    change: &str,
    schema: &Schema,
    version: EngineVersion,
) -> Result<Verdict, StrategyError> {
    let stmts = match parse_statement(change) {
        Parsed::Statements(s) => s,
        Parsed::Unparsed { message } => return Err(StrategyError::Unparsed(message)),
    };
    if stmts.len() != 1 {
        return Err(StrategyError::NotOneStatement(stmts.len()));
    }
    let Some(node) = statement_node(&stmts[0]) else {
        return Err(StrategyError::NotOneStatement(0));
    };
    let class = classify(
        node,
        ClassifyContext {
            schema,
            version,
            tx: None,
            session_time_zone_utc: true,
        },
    );
    Ok(decide(change, class, version))
}

fn decide(change: &str, class: Classification, version: EngineVersion) -> Verdict {
    let has = |id: &str| class.has_fact(id);
    let table = class.tables.first().cloned().unwrap_or_default();
    let (strategy, reason, safe_form): (Strategy, String, Vec<String>) = if has("table_rewrite")
        || has("add_exclusion")
    {
        (
            Strategy::ShadowTable,
            format!("{} rewrites or rebuilds all of {table} under ACCESS EXCLUSIVE; only a copied table avoids blocking", class.kind),
            Vec::new(),
        )
    } else if has("alter_column_type.rewrite") || has("alter_column_type.rebuilds_indexes") {
        // A shadow column would be visible to clients and end up as the table's last column,
        // changing what `SELECT *` and positional INSERT/COPY mean; a shadow table keeps the order.
        (
            Strategy::ShadowTable,
            format!("{} rewrites every row of one column of {table} under ACCESS EXCLUSIVE: a shadow table (same column order) with dual writes and a chunked copy avoids the rewrite lock without moving the column", class.kind),
            Vec::new(),
        )
    } else if has("add_column.constrained_domain")
        || has("add_column.volatile_default")
        || has("add_column.serial_or_identity")
        || has("add_column.generated_stored")
        || has("add_column.default_before_11")
        || has("set_expression")
        || has("rename") && class.kind == "rename_column"
    {
        (
            Strategy::ShadowColumn,
            format!("{} changes every row (or every client's view) of one column of {table}: a shadow column with dual writes and a chunked backfill avoids the rewrite lock", class.kind),
            Vec::new(),
        )
    } else if has("set_not_null") {
        if version.at_least(12) {
            let cols = class.kind.clone();
            (
                Strategy::InPlaceGuarded,
                format!("{cols}: prove the column non-null with CHECK … NOT VALID + VALIDATE (no blocking), then SET NOT NULL skips its scan"),
                vec![
                    "ALTER TABLE <t> ADD CONSTRAINT <c>_not_null CHECK (<c> IS NOT NULL) NOT VALID".into(),
                    "ALTER TABLE <t> VALIDATE CONSTRAINT <c>_not_null".into(),
                    change.trim().trim_end_matches(';').to_string(),
                    "ALTER TABLE <t> DROP CONSTRAINT <c>_not_null".into(),
                ],
            )
        } else {
            (
                Strategy::ShadowColumn,
                "before PostgreSQL 12 SET NOT NULL always scans under ACCESS EXCLUSIVE".into(),
                Vec::new(),
            )
        }
    } else if has("add_column.references_validated") {
        (
            Strategy::InPlaceGuarded,
            "add the column without REFERENCES (the default is stored once), then the foreign key NOT VALID (brief lock) and VALIDATE it in its own transaction (no blocking)".into(),
            vec![
                format!("ALTER TABLE {table} ADD COLUMN <column> <type> DEFAULT <value>"),
                format!("ALTER TABLE {table} ADD CONSTRAINT <name> FOREIGN KEY (<column>) REFERENCES <referenced> (<key>) NOT VALID"),
                format!("ALTER TABLE {table} VALIDATE CONSTRAINT <name>"),
            ],
        )
    } else if has("add_check") || has("add_foreign_key") {
        (
            Strategy::InPlaceGuarded,
            "add the constraint NOT VALID (brief lock), then VALIDATE it in its own transaction (no blocking)".into(),
            vec![
                format!("{} NOT VALID", change.trim().trim_end_matches(';')),
                format!("ALTER TABLE {table} VALIDATE CONSTRAINT <name>"),
            ],
        )
    } else if has("create_index") {
        (
            Strategy::InPlaceGuarded,
            "build the index CONCURRENTLY outside a transaction block".into(),
            vec![change
                .trim()
                .trim_end_matches(';')
                .replacen("INDEX", "INDEX CONCURRENTLY", 1)],
        )
    } else if has("add_unique") {
        (
            Strategy::InPlaceGuarded,
            "build the unique index CONCURRENTLY, then ADD CONSTRAINT … USING INDEX (brief lock)"
                .into(),
            vec![
                format!("CREATE UNIQUE INDEX CONCURRENTLY <name> ON {table} (<columns>)"),
                format!("ALTER TABLE {table} ADD CONSTRAINT <name> UNIQUE USING INDEX <name>"),
            ],
        )
    } else {
        let why = if class.rewrites_table || class.scans_table {
            format!(
                "{} reads {table} under a lock that does not block clients",
                class.kind
            )
        } else {
            format!(
                "{} only changes the catalog; a short lock_timeout bounds the wait",
                class.kind
            )
        };
        (
            Strategy::InPlaceGuarded,
            why,
            vec![change.trim().trim_end_matches(';').to_string()],
        )
    };
    Verdict {
        strategy,
        reason,
        safe_form,
        classification: class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_with(sql: &str) -> Schema {
        let mut schema = Schema::default();
        if let Parsed::Statements(stmts) = parse_statement(sql) {
            for s in &stmts {
                if let Some(n) = statement_node(s) {
                    schema.apply(n, None);
                }
            }
        }
        schema
    }

    #[test]
    fn strategies_follow_the_facts() {
        let schema =
            schema_with("CREATE TABLE t (id int PRIMARY KEY, name varchar(10), email text)");
        let v = EngineVersion::major(15);
        let pick = |sql: &str| strategy(sql, &schema, v).map(|v| v.strategy);
        assert_eq!(
            pick("ALTER TABLE t ALTER COLUMN id TYPE bigint"),
            Ok(Strategy::ShadowTable)
        );
        assert_eq!(
            pick("ALTER TABLE t ALTER COLUMN email TYPE int USING length(email)"),
            Ok(Strategy::ShadowTable)
        );
        assert_eq!(
            pick("ALTER TABLE t ALTER COLUMN name TYPE varchar(20)"),
            Ok(Strategy::InPlaceGuarded)
        );
        assert_eq!(
            pick("ALTER TABLE t SET TABLESPACE fast_ssd"),
            Ok(Strategy::ShadowTable)
        );
        // The tablespace it already has: nothing moves.
        assert_eq!(
            pick("ALTER TABLE t SET TABLESPACE pg_default"),
            Ok(Strategy::InPlaceGuarded)
        );
        assert_eq!(
            pick("ALTER TABLE t ALTER COLUMN email SET NOT NULL"),
            Ok(Strategy::InPlaceGuarded)
        );
        assert_eq!(
            pick("CREATE INDEX ON t (email)"),
            Ok(Strategy::InPlaceGuarded)
        );
        assert!(matches!(
            pick("ALTER TABLE"),
            Err(StrategyError::Unparsed(_))
        ));
        assert_eq!(
            pick("SELECT 1; SELECT 2"),
            Err(StrategyError::NotOneStatement(2))
        );
    }
}
