//! The classifier: for one parsed statement, given the schema and the version, which facts apply —
//! and so which locks it takes on which relation, whether it rewrites or scans, and its phase.
//!
//! [`classify`] dispatches on the statement; each statement family is a file of its own:
//! `create` (`CREATE TABLE`), `alter_table` (each `ALTER TABLE` subcommand, with `add_column` and
//! `add_constraint`), `drop`, `rename`, `maintenance` (`VACUUM`, `REINDEX`) and `dml` (the locks
//! of data statements). The statements that only need a fact id are classified here.

use std::collections::BTreeMap;

use pg_query::protobuf::{self, node::Node as N, ObjectType};

use super::ast::{self};
use super::facts::{self, ChangePhase};
use super::lock::LockMode;
use super::schema::Schema;
use super::version::EngineVersion;

mod add_column;
mod add_constraint;
mod alter_table;
mod create;
mod dml;
mod drop;
mod maintenance;
mod rename;

use alter_table::alter_table;
use create::create_table;
use dml::{dml, lock_read_relations};
use drop::drop;
use maintenance::{reindex, vacuum};
use rename::rename;

/// What the classifier needs besides the statement.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyContext<'a> {
    /// Schema before the statement.
    pub schema: &'a Schema,
    /// Server version.
    pub version: EngineVersion,
    /// Transaction the statement runs in (None: autocommit).
    pub tx: Option<u64>,
    /// Whether the migration session runs with `TimeZone = UTC`.
    pub session_time_zone_utc: bool,
}

/// What one statement does.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Statement kind (`alter_table.add_column`, `create_index`, …).
    pub kind: String,
    /// Relations the statement acts on, in order of appearance.
    pub tables: Vec<String>,
    /// Strongest lock per relation.
    pub locks: BTreeMap<String, LockMode>,
    /// Relations created in the current transaction (invisible to other sessions).
    pub fresh: Vec<String>,
    /// Rewrites a pre-existing table.
    pub rewrites_table: bool,
    /// Reads every row of a pre-existing table.
    pub scans_table: bool,
    /// Expand/contract phase.
    pub phase: ChangePhase,
    /// Ids of the facts applied (see [`facts::FACTS`]).
    pub facts: Vec<&'static str>,
    /// Cannot run inside a transaction block.
    pub no_transaction_block: bool,
    /// Caveats about what the classifier could not know.
    pub notes: Vec<String>,
}

impl Classification {
    fn new(kind: impl Into<String>) -> Classification {
        Classification {
            kind: kind.into(),
            tables: Vec::new(),
            locks: BTreeMap::new(),
            fresh: Vec::new(),
            rewrites_table: false,
            scans_table: false,
            phase: ChangePhase::Neutral,
            facts: Vec::new(),
            no_transaction_block: false,
            notes: Vec::new(),
        }
    }

    /// The strongest lock on a relation other sessions can see.
    pub fn strongest_lock(&self) -> Option<LockMode> {
        self.locks
            .iter()
            .filter(|(r, _)| !self.fresh.contains(r))
            .map(|(_, m)| *m)
            .max()
    }

    /// Whether plain reads of some visible relation wait for this statement.
    pub fn blocks_reads(&self) -> bool {
        self.strongest_lock().is_some_and(LockMode::blocks_reads)
    }

    /// Whether writes to some visible relation wait for this statement.
    pub fn blocks_writes(&self) -> bool {
        self.strongest_lock().is_some_and(LockMode::blocks_writes)
    }

    /// Whether fact `id` applied.
    pub fn has_fact(&self, id: &str) -> bool {
        self.facts.contains(&id)
    }

    /// The classification of a statement that did not parse.
    pub fn unparsed() -> Classification {
        Classification::new("unparsed")
    }

    fn touch(&mut self, rel: &str) {
        if !rel.is_empty() && !self.tables.iter().any(|t| t == rel) {
            self.tables.push(rel.to_string());
        }
    }

    fn lock(&mut self, rel: &str, mode: LockMode) {
        if rel.is_empty() {
            return;
        }
        let e = self.locks.entry(rel.to_string()).or_insert(mode);
        if mode > *e {
            *e = mode;
        }
    }
}

struct Builder<'a> {
    cx: ClassifyContext<'a>,
    out: Classification,
}

impl Builder<'_> {
    fn fresh(&self, rel: &str) -> bool {
        self.cx.schema.created_in(rel, self.cx.tx)
    }

    fn apply(&mut self, id: &'static str, target: Option<&str>, others: &[String]) {
        let fact = facts::fact(id);
        let mut visible = false;
        if let Some(t) = target {
            self.out.touch(t);
            if let Some(mode) = fact.lock {
                self.out.lock(t, mode);
            }
            if self.fresh(t) {
                if !self.out.fresh.iter().any(|x| x == t) {
                    self.out.fresh.push(t.to_string());
                }
            } else {
                visible = true;
            }
        }
        for o in others {
            if let Some(mode) = fact.other_lock {
                self.out.lock(o, mode);
            }
            if self.fresh(o) && !self.out.fresh.contains(o) {
                self.out.fresh.push(o.clone());
            }
        }
        if visible || target.is_none() {
            self.out.rewrites_table |= fact.rewrite;
            self.out.scans_table |= fact.scan;
        }
        self.out.phase = self.out.phase.max(fact.phase);
        self.out.no_transaction_block |= fact.no_transaction_block;
        if !self.out.facts.contains(&id) {
            self.out.facts.push(id);
        }
        if fact.since.is_some_and(|v| !self.cx.version.at_least(v)) {
            self.out.notes.push(format!(
                "this needs PostgreSQL {} or newer; the configured engine is {}",
                fact.since.unwrap_or_default(),
                self.cx.version
            ));
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.out.notes.push(note.into());
    }
}

/// Classifies one parsed statement.
pub fn classify(stmt: &N, cx: ClassifyContext<'_>) -> Classification {
    let mut b = Builder {
        cx,
        out: Classification::new("other"),
    };
    match stmt {
        N::AlterTableStmt(a) => alter_table(&mut b, a),
        N::IndexStmt(i) => {
            b.out.kind = "create_index".into();
            let table = ast::optional_range_var_key(i.relation.as_ref());
            if b.fresh(&table) && !i.concurrent {
                b.apply("create_index.new_table", Some(&table), &[]);
                b.out.lock(&table, LockMode::Share);
            } else if i.concurrent {
                b.apply("create_index.concurrently", Some(&table), &[]);
            } else {
                b.apply("create_index", Some(&table), &[]);
            }
        }
        N::CreateStmt(c) => create_table(&mut b, c),
        N::CreateTableAsStmt(c) => {
            b.out.kind = if c.objtype() == ObjectType::ObjectMatview {
                "create_materialized_view".into()
            } else {
                "create_table_as".into()
            };
            b.apply("create_table", None, &[]);
            let reads = c
                .query
                .as_ref()
                .and_then(|q| q.node.as_ref())
                .map(ast::read_relations)
                .unwrap_or_default();
            let skip_data = c.into.as_ref().is_some_and(|i| i.skip_data);
            let scans_visible = reads.iter().any(|r| !b.fresh(r));
            if !reads.is_empty() {
                b.apply(
                    if skip_data || !scans_visible {
                        "create_view.reads"
                    } else {
                        "create_table_as"
                    },
                    None,
                    &reads,
                );
                for r in &reads {
                    b.out.touch(r);
                }
            }
        }
        N::DropStmt(d) => drop(&mut b, d),
        N::RenameStmt(r) => rename(&mut b, r),
        N::AlterObjectSchemaStmt(s) => {
            b.out.kind = "set_schema".into();
            let rel = s.relation.as_ref().map(ast::range_var_key);
            if let Some(rel) = rel {
                b.apply("set_schema", Some(&rel), &[]);
            } else {
                b.apply("set_schema", None, &[]);
            }
        }
        N::AlterOwnerStmt(_) => {
            b.out.kind = "owner_to".into();
            b.apply("no_table_lock", None, &[]);
        }
        N::CommentStmt(c) => {
            b.out.kind = "comment".into();
            let target = comment_target(c);
            match target {
                Some(t) => b.apply("catalog_option", Some(&t), &[]),
                None => b.apply("no_table_lock", None, &[]),
            }
        }
        N::CreateStatsStmt(s) => {
            b.out.kind = "create_statistics".into();
            let rels: Vec<String> = s
                .relations
                .iter()
                .filter_map(|r| match r.node.as_ref() {
                    Some(N::RangeVar(rv)) => Some(ast::range_var_key(rv)),
                    _ => None,
                })
                .collect();
            for r in rels {
                b.apply("catalog_option", Some(&r), &[]);
            }
        }
        N::CreateTrigStmt(t) => {
            b.out.kind = "create_trigger".into();
            let rel = ast::optional_range_var_key(t.relation.as_ref());
            b.apply("trigger_change", Some(&rel), &[]);
        }
        N::CreatePolicyStmt(p) => {
            b.out.kind = "create_policy".into();
            let rel = ast::optional_range_var_key(p.table.as_ref());
            b.apply("access_exclusive_catalog", Some(&rel), &[]);
        }
        N::AlterPolicyStmt(p) => {
            b.out.kind = "alter_policy".into();
            let rel = ast::optional_range_var_key(p.table.as_ref());
            b.apply("access_exclusive_catalog", Some(&rel), &[]);
        }
        N::ClusterStmt(c) => {
            b.out.kind = "cluster".into();
            match c.relation.as_ref() {
                Some(rv) => b.apply("table_rewrite", Some(&ast::range_var_key(rv)), &[]),
                None => b.apply("table_rewrite", None, &[]),
            }
        }
        N::VacuumStmt(v) => vacuum(&mut b, v),
        N::RefreshMatViewStmt(r) => {
            b.out.kind = "refresh_materialized_view".into();
            let rel = ast::optional_range_var_key(r.relation.as_ref());
            // Its query reads the base tables under ACCESS SHARE.
            let reads =
                b.cx.schema
                    .table(&rel)
                    .map(|t| t.reads.clone())
                    .unwrap_or_default();
            if r.concurrent {
                b.apply("refresh_materialized_view.concurrently", Some(&rel), &reads);
            } else {
                b.apply("refresh_materialized_view", Some(&rel), &reads);
            }
            for t in &reads {
                b.out.touch(t);
            }
            if b.cx.schema.table(&rel).is_none() {
                b.note("the materialized view is unknown: the tables its query reads are locked ACCESS SHARE too");
            }
        }
        N::ReindexStmt(r) => reindex(&mut b, r),
        N::TruncateStmt(t) => {
            b.out.kind = "truncate".into();
            for rel in range_vars(&t.relations) {
                b.apply("truncate", Some(&rel), &[]);
            }
        }
        N::LockStmt(l) => {
            b.out.kind = "lock_table".into();
            let mode =
                LockMode::from_lock_statement_code(l.mode).unwrap_or(LockMode::AccessExclusive);
            for rel in range_vars(&l.relations) {
                b.apply("lock_table", None, &[]);
                b.out.touch(&rel);
                b.out.lock(&rel, mode);
                if b.fresh(&rel) {
                    b.out.fresh.push(rel);
                }
            }
        }
        N::AlterEnumStmt(e) => {
            if e.old_val.is_empty() {
                b.out.kind = "alter_enum.add_value".into();
                b.apply("enum_add_value", None, &[]);
            } else {
                b.out.kind = "alter_enum.rename_value".into();
                b.apply("enum_rename_value", None, &[]);
            }
        }
        N::InsertStmt(i) => dml(&mut b, stmt, "insert", "dml.insert", i.relation.as_ref()),
        N::UpdateStmt(u) => dml(&mut b, stmt, "update", "dml.update", u.relation.as_ref()),
        N::DeleteStmt(d) => dml(&mut b, stmt, "delete", "dml.update", d.relation.as_ref()),
        N::MergeStmt(m) => dml(&mut b, stmt, "merge", "dml.update", m.relation.as_ref()),
        N::CopyStmt(c) => {
            b.out.kind = "copy".into();
            let rel = ast::optional_range_var_key(c.relation.as_ref());
            if c.is_from {
                b.apply("dml.insert", Some(&rel), &[]);
            } else {
                b.apply("select", Some(&rel), &[]);
            }
        }
        N::SelectStmt(_) => {
            b.out.kind = "select".into();
            b.apply("select", None, &[]);
            // What it reads is locked ACCESS SHARE and, in a migration, read in full (measured:
            // the differential harness saw `SELECT count(*) FROM t` scan t).
            lock_read_relations(&mut b, stmt, "");
        }
        N::TransactionStmt(t) => {
            use protobuf::TransactionStmtKind as K;
            b.out.kind = match t.kind() {
                K::TransStmtBegin | K::TransStmtStart => "begin",
                K::TransStmtCommit | K::TransStmtCommitPrepared => "commit",
                K::TransStmtRollback | K::TransStmtRollbackPrepared => "rollback",
                K::TransStmtSavepoint => "savepoint",
                K::TransStmtRelease => "release_savepoint",
                K::TransStmtRollbackTo => "rollback_to_savepoint",
                K::TransStmtPrepare => "prepare_transaction",
                K::Undefined => "transaction",
            }
            .into();
            b.apply("transaction_control", None, &[]);
        }
        N::VariableSetStmt(v) => {
            b.out.kind = if v.kind() == protobuf::VariableSetKind::VarReset
                || v.kind() == protobuf::VariableSetKind::VarResetAll
            {
                "reset".into()
            } else {
                "set".into()
            };
            b.apply("transaction_control", None, &[]);
        }
        N::DoStmt(_) => {
            b.out.kind = "do".into();
            b.apply("opaque_code", None, &[]);
        }
        N::CallStmt(_) => {
            b.out.kind = "call".into();
            b.apply("opaque_code", None, &[]);
        }
        N::ViewStmt(v) => {
            b.out.kind = "create_view".into();
            let reads = v
                .query
                .as_ref()
                .and_then(|q| q.node.as_ref())
                .map(ast::read_relations)
                .unwrap_or_default();
            if v.replace {
                let rel = ast::optional_range_var_key(v.view.as_ref());
                b.apply("create_view", Some(&rel), &reads);
            } else {
                b.apply("create_table", None, &[]);
                if !reads.is_empty() {
                    b.apply("create_view.reads", None, &reads);
                }
            }
            for r in &reads {
                b.out.touch(r);
            }
        }
        other => {
            b.out.kind = other_kind(other).into();
            let phase_expand = matches!(
                other,
                N::CreateFunctionStmt(_)
                    | N::CreateSeqStmt(_)
                    | N::CreateEnumStmt(_)
                    | N::CreateDomainStmt(_)
                    | N::CreateExtensionStmt(_)
                    | N::CreateSchemaStmt(_)
                    | N::CompositeTypeStmt(_)
            );
            b.apply(
                if phase_expand {
                    "create_table"
                } else {
                    "no_table_lock"
                },
                None,
                &[],
            );
        }
    }
    b.out
}

fn other_kind(n: &N) -> &'static str {
    match n {
        N::CreateFunctionStmt(f) if f.is_procedure => "create_procedure",
        N::CreateFunctionStmt(_) => "create_function",
        N::CreateSeqStmt(_) => "create_sequence",
        N::AlterSeqStmt(_) => "alter_sequence",
        N::CreateEnumStmt(_) => "create_enum",
        N::CreateDomainStmt(_) => "create_domain",
        N::AlterDomainStmt(_) => "alter_domain",
        N::CreateExtensionStmt(_) => "create_extension",
        N::AlterExtensionStmt(_) => "alter_extension",
        N::CreateSchemaStmt(_) => "create_schema",
        N::CompositeTypeStmt(_) => "create_type",
        N::GrantStmt(g) if g.is_grant => "grant",
        N::GrantStmt(_) => "revoke",
        N::GrantRoleStmt(_) => "grant_role",
        N::CreateRoleStmt(_) => "create_role",
        N::AlterRoleStmt(_) => "alter_role",
        N::DropdbStmt(_) => "drop_database",
        N::CreatedbStmt(_) => "create_database",
        N::AlterDatabaseSetStmt(_) | N::AlterDatabaseStmt(_) => "alter_database",
        N::AlterSystemStmt(_) => "alter_system",
        N::ExplainStmt(_) => "explain",
        N::NotifyStmt(_) => "notify",
        N::AlterFunctionStmt(_) => "alter_function",
        N::AlterTypeStmt(_) => "alter_type",
        N::DefineStmt(_) => "define",
        N::RuleStmt(_) => "create_rule",
        N::CreateEventTrigStmt(_) => "create_event_trigger",
        N::VariableShowStmt(_) => "show",
        N::CheckPointStmt(_) => "checkpoint",
        N::DiscardStmt(_) => "discard",
        N::CreatePublicationStmt(_) | N::AlterPublicationStmt(_) => "publication",
        N::CreateSubscriptionStmt(_) | N::AlterSubscriptionStmt(_) => "subscription",
        N::AlterDefaultPrivilegesStmt(_) => "alter_default_privileges",
        N::CreateCastStmt(_) => "create_cast",
        N::CreateTableSpaceStmt(_) => "create_tablespace",
        N::SecLabelStmt(_) => "security_label",
        N::ExecuteStmt(_) => "execute",
        N::PrepareStmt(_) => "prepare",
        N::DeallocateStmt(_) => "deallocate",
        N::ListenStmt(_) => "listen",
        _ => "other",
    }
}

fn range_vars(nodes: &[protobuf::Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(N::RangeVar(rv)) => Some(ast::range_var_key(rv)),
            _ => None,
        })
        .collect()
}

fn comment_target(c: &protobuf::CommentStmt) -> Option<String> {
    let names = match c.object.as_ref()?.node.as_ref()? {
        N::List(l) => ast::strings(&l.items),
        _ => return None,
    };
    match c.objtype() {
        ObjectType::ObjectTable | ObjectType::ObjectMatview | ObjectType::ObjectView => {
            Some(ast::qualified_key(&names))
        }
        ObjectType::ObjectColumn => {
            Some(ast::qualified_key(&names[..names.len().saturating_sub(1)]))
        }
        _ => None,
    }
}

/// Lower-case name of an object type for kinds (`drop_table`, `rename_column`).
pub fn object_type_name(t: ObjectType) -> &'static str {
    match t {
        ObjectType::ObjectTable => "table",
        ObjectType::ObjectIndex => "index",
        ObjectType::ObjectColumn => "column",
        ObjectType::ObjectView => "view",
        ObjectType::ObjectMatview => "materialized_view",
        ObjectType::ObjectSequence => "sequence",
        ObjectType::ObjectType => "type",
        ObjectType::ObjectDomain => "domain",
        ObjectType::ObjectFunction => "function",
        ObjectType::ObjectProcedure => "procedure",
        ObjectType::ObjectRoutine => "routine",
        ObjectType::ObjectSchema => "schema",
        ObjectType::ObjectExtension => "extension",
        ObjectType::ObjectTrigger => "trigger",
        ObjectType::ObjectPolicy => "policy",
        ObjectType::ObjectRule => "rule",
        ObjectType::ObjectTabconstraint => "constraint",
        ObjectType::ObjectDomconstraint => "domain_constraint",
        ObjectType::ObjectDatabase => "database",
        ObjectType::ObjectRole => "role",
        ObjectType::ObjectForeignTable => "foreign_table",
        ObjectType::ObjectAggregate => "aggregate",
        ObjectType::ObjectCollation => "collation",
        ObjectType::ObjectStatisticExt => "statistics",
        ObjectType::ObjectPublication => "publication",
        ObjectType::ObjectSubscription => "subscription",
        ObjectType::ObjectTablespace => "tablespace",
        ObjectType::ObjectEventTrigger => "event_trigger",
        ObjectType::ObjectOperator => "operator",
        ObjectType::ObjectCast => "cast",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_id_used_here_exists() {
        let src = [
            include_str!("mod.rs"),
            include_str!("create.rs"),
            include_str!("drop.rs"),
            include_str!("rename.rs"),
            include_str!("maintenance.rs"),
            include_str!("alter_table.rs"),
            include_str!("add_column.rs"),
            include_str!("add_constraint.rs"),
            include_str!("dml.rs"),
        ]
        .concat();
        let mut missing = Vec::new();
        for piece in src.split('"').skip(1).step_by(2) {
            let looks_like_fact = piece.contains('.') || facts::FACTS.iter().any(|f| f.id == piece);
            if looks_like_fact
                && piece
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.' || c.is_ascii_digit())
                && !piece.starts_with('.')
                && !piece.ends_with('.')
                && facts::FACTS.iter().all(|f| f.id != piece)
            {
                missing.push(piece.to_string());
            }
        }
        // Statement kinds that look like fact ids, and this file's own name.
        missing.retain(|m| !m.starts_with("alter_enum.") && !m.ends_with(".rs"));
        assert!(missing.is_empty(), "unknown fact ids: {missing:?}");
    }
}
