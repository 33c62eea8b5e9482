//! The rules: one file per rule, each with its id, default level, documentation and a bad and a
//! good example (the examples are run by the tests: the rule must fire on `bad` and stay silent on
//! `good`). Rules read the classification (locks, scans, rewrites), the statement's syntax, the
//! schema before it and the transaction context; they never re-derive engine facts.
//!
//! The set covers ENGINE-FACTS.md, squawk's default rules, eugene's hints and strong_migrations'
//! PostgreSQL checks; each rule names the peer ids it corresponds to in `aliases`.

use pg_query::protobuf::node::Node as N;

use super::classify::Classification;
use super::report::Level;
use super::schema::Schema;
use super::transaction::TxState;
use super::version::EngineVersion;

mod adding_field_with_default;
mod adding_foreign_key_constraint;
mod adding_not_nullable_field;
mod adding_required_field;
mod adding_serial_primary_key_field;
mod attach_partition_scan;
mod backfill_in_ddl_transaction;
mod ban_alter_domain_with_add_constraint;
mod ban_alter_identity;
mod ban_char_field;
mod ban_concurrent_index_creation_in_transaction;
mod ban_create_domain_with_constraint;
mod ban_create_enum;
mod ban_drop_column;
mod ban_drop_constraint;
mod ban_drop_database;
mod ban_drop_generated_expression;
mod ban_drop_not_null;
mod ban_drop_object;
mod ban_drop_table;
mod ban_duplicate_column_assignments;
mod ban_exclusion_constraint;
mod ban_set_schema;
mod ban_truncate_cascade;
mod ban_uncommitted_transaction;
mod ban_vacuum_in_transaction;
mod changing_column_type;
mod combine_alter_table;
mod concurrent_index_pg14_bug;
mod constraint_missing_not_valid;
mod disallowed_unique_constraint;
mod drop_foreign_key_locks_referenced;
mod enum_add_value_in_transaction;
mod foreign_key_without_index;
mod identifier_too_long;
mod opaque_code;
mod prefer_bigint_over_int;
mod prefer_bigint_over_smallint;
mod prefer_identity;
mod prefer_jsonb;
mod prefer_robust_stmts;
mod prefer_text_field;
mod prefer_timestamptz;
mod primary_key_using_nullable_index;
mod renaming_column;
mod renaming_object;
mod renaming_table;
mod require_concurrent_index_creation;
mod require_concurrent_index_deletion;
mod require_concurrent_partition_detach;
mod require_concurrent_refresh;
mod require_concurrent_reindex;
mod require_enum_value_ordering;
mod require_lock_timeout;
mod require_statement_timeout;
mod require_table_schema;
mod rewrite_under_access_exclusive;
mod statements_after_access_exclusive;
pub mod syntax;
mod syntax_newer_than_engine;
mod transaction_nesting;
mod type_change_revalidates_checks;
mod unparsed_statement;
mod validate_in_locking_transaction;

/// Everything a rule may look at for one statement.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    /// The parsed statement (None when it did not parse).
    pub stmt: Option<&'a N>,
    /// The statement text.
    pub sql: &'a str,
    /// What the statement does.
    pub class: &'a Classification,
    /// The schema before the statement.
    pub schema: &'a Schema,
    /// Transaction context before the statement.
    pub tx: &'a TxState,
    /// Server version.
    pub version: EngineVersion,
}

impl RuleInput<'_> {
    /// Whether the statement's target is a table created in this transaction (harmless to lock).
    pub fn on_fresh_table(&self) -> bool {
        !self.class.tables.is_empty()
            && self
                .class
                .tables
                .iter()
                .all(|t| self.class.fresh.contains(t))
    }

    /// The first relation the statement acts on, for messages.
    pub fn table(&self) -> &str {
        self.class
            .tables
            .first()
            .map(String::as_str)
            .unwrap_or("the table")
    }
}

/// One finding a rule produced, before levels and ignores are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// What is wrong.
    pub message: String,
    /// The safe alternative as SQL.
    pub suggestion: Option<String>,
}

impl Hit {
    /// A hit with a suggestion.
    pub fn new(message: impl Into<String>, suggestion: impl Into<String>) -> Hit {
        Hit {
            message: message.into(),
            suggestion: Some(suggestion.into()),
        }
    }

    /// A hit without a suggestion.
    pub fn bare(message: impl Into<String>) -> Hit {
        Hit {
            message: message.into(),
            suggestion: None,
        }
    }
}

/// A rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Level unless configured otherwise.
    pub level: Level,
    /// Off unless enabled in the configuration.
    pub opt_in: bool,
    /// One line: what it catches.
    pub summary: &'static str,
    /// Why it matters and what to do instead.
    pub docs: &'static str,
    /// A migration the rule fires on.
    pub bad: &'static str,
    /// The safe way to do the same.
    pub good: &'static str,
    /// Ids of the same check in squawk, eugene or strong_migrations.
    pub aliases: &'static [&'static str],
    /// The check.
    pub check: fn(&RuleInput<'_>) -> Vec<Hit>,
}

/// Every rule, in id order.
pub fn all() -> Vec<&'static Rule> {
    let mut rules = vec![
        &adding_field_with_default::RULE,
        &adding_foreign_key_constraint::RULE,
        &adding_not_nullable_field::RULE,
        &adding_required_field::RULE,
        &adding_serial_primary_key_field::RULE,
        &attach_partition_scan::RULE,
        &backfill_in_ddl_transaction::RULE,
        &ban_alter_domain_with_add_constraint::RULE,
        &ban_alter_identity::RULE,
        &ban_char_field::RULE,
        &ban_concurrent_index_creation_in_transaction::RULE,
        &ban_create_domain_with_constraint::RULE,
        &ban_create_enum::RULE,
        &ban_drop_column::RULE,
        &ban_drop_constraint::RULE,
        &ban_drop_database::RULE,
        &ban_drop_generated_expression::RULE,
        &ban_drop_not_null::RULE,
        &ban_drop_object::RULE,
        &ban_drop_table::RULE,
        &ban_duplicate_column_assignments::RULE,
        &ban_exclusion_constraint::RULE,
        &ban_set_schema::RULE,
        &ban_truncate_cascade::RULE,
        &ban_vacuum_in_transaction::RULE,
        &ban_uncommitted_transaction::RULE,
        &changing_column_type::RULE,
        &combine_alter_table::RULE,
        &concurrent_index_pg14_bug::RULE,
        &constraint_missing_not_valid::RULE,
        &disallowed_unique_constraint::RULE,
        &drop_foreign_key_locks_referenced::RULE,
        &enum_add_value_in_transaction::RULE,
        &foreign_key_without_index::RULE,
        &identifier_too_long::RULE,
        &opaque_code::RULE,
        &prefer_bigint_over_int::RULE,
        &prefer_bigint_over_smallint::RULE,
        &prefer_identity::RULE,
        &prefer_jsonb::RULE,
        &prefer_robust_stmts::RULE,
        &prefer_text_field::RULE,
        &prefer_timestamptz::RULE,
        &primary_key_using_nullable_index::RULE,
        &renaming_column::RULE,
        &renaming_object::RULE,
        &renaming_table::RULE,
        &require_concurrent_index_creation::RULE,
        &require_concurrent_index_deletion::RULE,
        &require_concurrent_partition_detach::RULE,
        &require_concurrent_refresh::RULE,
        &require_concurrent_reindex::RULE,
        &require_enum_value_ordering::RULE,
        &require_lock_timeout::RULE,
        &require_statement_timeout::RULE,
        &require_table_schema::RULE,
        &rewrite_under_access_exclusive::RULE,
        &statements_after_access_exclusive::RULE,
        &syntax_newer_than_engine::RULE,
        &transaction_nesting::RULE,
        &type_change_revalidates_checks::RULE,
        &unparsed_statement::RULE,
        &validate_in_locking_transaction::RULE,
    ];
    rules.sort_by_key(|r| r.id);
    rules
}

/// A rule by id.
pub fn by_id(id: &str) -> Option<&'static Rule> {
    all().into_iter().find(|r| r.id == id)
}

/// Quotes an identifier for suggestions when needed.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
