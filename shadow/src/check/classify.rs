//! The classifier: for one parsed statement, given the schema and the version, which facts apply —
//! and so which locks it takes on which relation, whether it rewrites or scans, and its phase.

use std::collections::BTreeMap;

use pg_query::protobuf::{self, node::Node as N, AlterTableType as At, ConstrType, ObjectType};

use super::ast::{self, ColumnType, DefaultKind};
use super::coercion::{self, CoercionContext, TypeChange};
use super::facts::{self, Phase};
use super::lock::LockMode;
use super::partition;
use super::schema::{ConstraintKind, Schema, Table};
use super::version::EngineVersion;

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
    pub phase: Phase,
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
            phase: Phase::Neutral,
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

fn create_table(b: &mut Builder<'_>, c: &protobuf::CreateStmt) {
    b.out.kind = "create_table".into();
    let rel = ast::optional_range_var_key(c.relation.as_ref());
    b.out.touch(&rel);
    let mut referenced = Vec::new();
    let mut collect = |con: &protobuf::Constraint| {
        if con.contype() == ConstrType::ConstrForeign {
            if let Some(pk) = con.pktable.as_ref() {
                let key = ast::range_var_key(pk);
                if key != rel {
                    referenced.push(key);
                }
            }
        }
    };
    for elt in &c.table_elts {
        match elt.node.as_ref() {
            Some(N::ColumnDef(col)) => ast::column_constraints(col).for_each(&mut collect),
            Some(N::Constraint(con)) => collect(con),
            _ => {}
        }
    }
    b.apply("create_table", None, &[]);
    if !referenced.is_empty() {
        b.apply("create_table.references", None, &referenced);
        for r in &referenced {
            b.out.touch(r);
        }
    }
    let like: Vec<String> = c
        .table_elts
        .iter()
        .filter_map(|e| match e.node.as_ref() {
            Some(N::TableLikeClause(l)) => l.relation.as_ref().map(ast::range_var_key),
            _ => None,
        })
        .collect();
    if !like.is_empty() {
        b.apply("create_table.like", None, &like);
        for l in &like {
            b.out.touch(l);
        }
    }
    let parents = range_vars(&c.inh_relations);
    if !parents.is_empty() {
        let id = if c.partbound.is_some() {
            "create_table.partition_of"
        } else {
            "create_table.inherits"
        };
        b.apply(id, None, &parents);
        for p in &parents {
            b.out.touch(p);
        }
    }
}

fn drop(b: &mut Builder<'_>, d: &protobuf::DropStmt) {
    let objtype = d.remove_type();
    let names: Vec<Vec<String>> = d
        .objects
        .iter()
        .filter_map(|o| match o.node.as_ref() {
            Some(N::List(l)) => Some(ast::strings(&l.items)),
            Some(N::String(s)) => Some(vec![s.sval.clone()]),
            Some(N::TypeName(t)) => Some(ast::strings(&t.names)),
            Some(N::ObjectWithArgs(o)) => Some(ast::strings(&o.objname)),
            _ => None,
        })
        .collect();
    b.out.kind = format!("drop_{}", object_type_name(objtype));
    match objtype {
        ObjectType::ObjectTable | ObjectType::ObjectMatview | ObjectType::ObjectView => {
            for n in &names {
                let key = ast::qualified_key(n);
                let referenced: Vec<String> = b
                    .cx
                    .schema
                    .table(&key)
                    .map(|t| {
                        t.constraints
                            .iter()
                            .filter_map(|c| match &c.kind {
                                ConstraintKind::ForeignKey { referenced } if *referenced != key => {
                                    Some(referenced.clone())
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                b.apply("drop_table", Some(&key), &referenced);
            }
        }
        ObjectType::ObjectIndex => {
            for n in &names {
                let key = ast::qualified_key(n);
                let table = b.cx.schema.indexes.get(&key).map(|i| i.table.clone());
                let id = if d.concurrent {
                    "drop_index.concurrently"
                } else {
                    "drop_index"
                };
                match table {
                    Some(t) => {
                        b.apply(id, Some(&t), std::slice::from_ref(&key));
                        // An index of a table created in this transaction is as invisible as
                        // its table.
                        if b.fresh(&t) && !b.out.fresh.contains(&key) {
                            b.out.fresh.push(key.clone());
                        }
                    }
                    None => {
                        b.apply(id, None, std::slice::from_ref(&key));
                        b.out.touch(&key);
                        b.note(format!(
                            "the table of index {key} is unknown; it is locked like the index"
                        ));
                    }
                }
            }
        }
        ObjectType::ObjectTrigger | ObjectType::ObjectPolicy | ObjectType::ObjectRule => {
            for n in &names {
                let table = ast::qualified_key(&n[..n.len().saturating_sub(1)]);
                b.apply("access_exclusive_catalog", Some(&table), &[]);
                b.out.phase = b.out.phase.max(Phase::Contract);
            }
        }
        _ => {
            b.apply("no_table_lock", None, &[]);
            b.out.phase = Phase::Contract;
        }
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

fn rename(b: &mut Builder<'_>, r: &protobuf::RenameStmt) {
    let t = r.rename_type();
    b.out.kind = format!("rename_{}", object_type_name(t));
    let rel = r.relation.as_ref().map(ast::range_var_key);
    match (t, rel) {
        (ObjectType::ObjectIndex, Some(idx)) => {
            if b.cx.schema.tables.contains_key(&idx) {
                // `ALTER INDEX <table> RENAME` still takes ACCESS EXCLUSIVE.
                b.apply("rename", Some(&idx), &[]);
            } else {
                b.apply("rename_index", None, std::slice::from_ref(&idx));
                b.out.touch(&idx);
            }
        }
        (
            ObjectType::ObjectTable
            | ObjectType::ObjectColumn
            | ObjectType::ObjectTabconstraint
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectSequence
            | ObjectType::ObjectTrigger
            | ObjectType::ObjectPolicy
            | ObjectType::ObjectRule
            | ObjectType::ObjectForeignTable,
            Some(rel),
        ) => b.apply("rename", Some(&rel), &[]),
        _ => b.apply("enum_rename_value", None, &[]),
    }
}

fn vacuum(b: &mut Builder<'_>, v: &protobuf::VacuumStmt) {
    let full = v.options.iter().any(|o| match o.node.as_ref() {
        Some(N::DefElem(d)) => d.defname == "full",
        _ => false,
    });
    b.out.kind = if !v.is_vacuumcmd {
        "analyze"
    } else if full {
        "vacuum_full"
    } else {
        "vacuum"
    }
    .into();
    let rels: Vec<String> = v
        .rels
        .iter()
        .filter_map(|r| match r.node.as_ref() {
            Some(N::VacuumRelation(vr)) => vr.relation.as_ref().map(ast::range_var_key),
            _ => None,
        })
        .collect();
    let id = if full { "table_rewrite" } else { "vacuum" };
    if rels.is_empty() {
        b.apply(id, None, &[]);
    }
    for r in rels {
        b.apply(id, Some(&r), &[]);
    }
    if v.is_vacuumcmd {
        b.out.no_transaction_block = true;
    }
}

fn reindex(b: &mut Builder<'_>, r: &protobuf::ReindexStmt) {
    b.out.kind = "reindex".into();
    let concurrent = r.params.iter().any(|p| match p.node.as_ref() {
        Some(N::DefElem(d)) => d.defname == "concurrently",
        _ => false,
    });
    let id = if concurrent {
        "reindex.concurrently"
    } else {
        "reindex"
    };
    let rel = r.relation.as_ref().map(ast::range_var_key);
    match (r.kind(), rel) {
        (protobuf::ReindexObjectType::ReindexObjectIndex, Some(idx)) => {
            let table = b.cx.schema.indexes.get(&idx).map(|i| i.table.clone());
            match table {
                Some(t) => b.apply(id, Some(&t), std::slice::from_ref(&idx)),
                None => {
                    b.apply(id, None, std::slice::from_ref(&idx));
                    b.out.touch(&idx);
                    b.note(format!("the table of index {idx} is unknown"));
                }
            }
        }
        (protobuf::ReindexObjectType::ReindexObjectTable, Some(t)) => {
            let idx: Vec<String> = b.cx.schema.indexes_of(&t).cloned().collect();
            b.apply(id, Some(&t), &idx);
        }
        _ => b.apply(id, None, &[]),
    }
}

fn sub_kind(t: At) -> &'static str {
    match t {
        At::AtAddColumn => "add_column",
        At::AtDropColumn => "drop_column",
        At::AtAlterColumnType => "alter_column_type",
        At::AtColumnDefault | At::AtCookedColumnDefault => "set_default",
        At::AtSetNotNull => "set_not_null",
        At::AtDropNotNull => "drop_not_null",
        At::AtAddConstraint => "add_constraint",
        At::AtValidateConstraint => "validate_constraint",
        At::AtDropConstraint => "drop_constraint",
        At::AtAlterConstraint => "alter_constraint",
        At::AtSetStatistics => "set_statistics",
        At::AtSetOptions | At::AtResetOptions => "set_column_options",
        At::AtSetStorage => "set_storage",
        At::AtSetCompression => "set_compression",
        At::AtSetLogged => "set_logged",
        At::AtSetUnLogged => "set_unlogged",
        At::AtSetTableSpace => "set_tablespace",
        At::AtSetAccessMethod => "set_access_method",
        At::AtSetRelOptions | At::AtResetRelOptions | At::AtReplaceRelOptions => {
            "set_storage_parameters"
        }
        At::AtEnableTrig
        | At::AtEnableAlwaysTrig
        | At::AtEnableReplicaTrig
        | At::AtEnableTrigAll
        | At::AtEnableTrigUser => "enable_trigger",
        At::AtDisableTrig | At::AtDisableTrigAll | At::AtDisableTrigUser => "disable_trigger",
        At::AtEnableRule | At::AtEnableAlwaysRule | At::AtEnableReplicaRule | At::AtDisableRule => {
            "alter_rule"
        }
        At::AtAddInherit => "inherit",
        At::AtDropInherit => "no_inherit",
        At::AtAddOf | At::AtDropOf => "of_type",
        At::AtReplicaIdentity => "replica_identity",
        At::AtEnableRowSecurity | At::AtForceRowSecurity => "enable_row_security",
        At::AtDisableRowSecurity | At::AtNoForceRowSecurity => "disable_row_security",
        At::AtAttachPartition => "attach_partition",
        At::AtDetachPartition | At::AtDetachPartitionFinalize => "detach_partition",
        At::AtAddIdentity => "add_identity",
        At::AtSetIdentity => "set_identity",
        At::AtDropIdentity => "drop_identity",
        At::AtDropExpression => "drop_expression",
        At::AtSetExpression => "set_expression",
        At::AtChangeOwner => "owner_to",
        At::AtClusterOn | At::AtDropCluster => "cluster_on",
        At::AtGenericOptions => "generic_options",
        _ => "other",
    }
}

fn alter_table(b: &mut Builder<'_>, a: &protobuf::AlterTableStmt) {
    let key = a
        .relation
        .as_ref()
        .map(|rv| b.cx.schema.resolve(&ast::range_var_key(rv)))
        .unwrap_or_default();
    let prefix = match a.objtype() {
        ObjectType::ObjectIndex => "alter_index",
        ObjectType::ObjectView => "alter_view",
        ObjectType::ObjectMatview => "alter_materialized_view",
        ObjectType::ObjectSequence => "alter_sequence",
        ObjectType::ObjectForeignTable => "alter_foreign_table",
        ObjectType::ObjectType => "alter_type",
        _ => "alter_table",
    };
    let cmds: Vec<&protobuf::AlterTableCmd> = a
        .cmds
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(N::AlterTableCmd(c)) => Some(c.as_ref()),
            _ => None,
        })
        .collect();
    let mut subs: Vec<&str> = Vec::new();
    for cmd in &cmds {
        let s = match cmd.subtype() {
            At::AtColumnDefault if cmd.def.is_none() => "drop_default",
            other => sub_kind(other),
        };
        if !subs.contains(&s) {
            subs.push(s);
        }
    }
    b.out.kind = format!(
        "{prefix}.{}",
        if subs.is_empty() {
            "other".to_string()
        } else {
            subs.join("+")
        }
    );
    b.out.touch(&key);
    if a.objtype() == ObjectType::ObjectType {
        // ALTER TYPE … ADD/DROP/ALTER ATTRIBUTE: a composite type has no rows to rewrite or scan.
        b.apply("alter_composite_type", Some(&key), &[]);
        return;
    }
    if a.objtype() == ObjectType::ObjectIndex {
        // ALTER INDEX … SET (…) / SET STATISTICS: SHARE UPDATE EXCLUSIVE on the index.
        let all_options = cmds.iter().all(|c| {
            matches!(
                c.subtype(),
                At::AtSetRelOptions | At::AtResetRelOptions | At::AtSetStatistics
            )
        });
        b.apply(
            if all_options {
                "catalog_option"
            } else {
                "alter_table.other"
            },
            Some(&key),
            &[],
        );
        return;
    }
    for cmd in cmds {
        alter_cmd(b, &key, cmd);
    }
}

/// Whether a `USING` expression is just `col` or `col::type`.
fn is_plain_column_use(expr: &protobuf::Node, column: &str) -> bool {
    match expr.node.as_ref() {
        Some(N::TypeCast(cast)) => cast
            .arg
            .as_deref()
            .and_then(ast::column_ref_name)
            .is_some_and(|c| c == column),
        _ => ast::column_ref_name(expr).is_some_and(|c| c == column),
    }
}

fn coldef(cmd: &protobuf::AlterTableCmd) -> Option<&protobuf::ColumnDef> {
    match cmd.def.as_ref()?.node.as_ref()? {
        N::ColumnDef(c) => Some(c),
        _ => None,
    }
}

fn alter_cmd(b: &mut Builder<'_>, key: &str, cmd: &protobuf::AlterTableCmd) {
    let v = b.cx.version;
    let table = b.cx.schema.table(key).cloned();
    match cmd.subtype() {
        At::AtAddColumn => {
            if let Some(col) = coldef(cmd) {
                add_column(b, key, col);
            }
        }
        At::AtDropColumn => b.apply("drop_column", Some(key), &[]),
        At::AtAlterColumnType => {
            let Some(col) = coldef(cmd) else { return };
            let new = col.type_name.as_ref().map(ColumnType::from_type_name);
            let old = table
                .as_ref()
                .and_then(|t| t.column(&cmd.name))
                .and_then(|c| c.ty.clone());
            let indexes: Vec<String> =
                b.cx.schema
                    .indexes_on_column(key, &cmd.name)
                    .cloned()
                    .collect();
            let change = match (&old, &new) {
                (Some(o), Some(n)) => coercion::type_change(
                    o,
                    n,
                    CoercionContext {
                        version: v,
                        session_time_zone_utc: b.cx.session_time_zone_utc,
                        column_indexed: !indexes.is_empty(),
                    },
                ),
                _ => {
                    b.note(format!(
                        "the current type of {key}.{} is unknown, so a rewrite is assumed",
                        cmd.name
                    ));
                    TypeChange::Rewrite
                }
            };
            // USING: PostgreSQL skips the rewrite only when the expression is the column
            // itself (a cast to the new type is then the same coercion as without USING);
            // anything else (CASE, functions, other columns) converts every row, even when the
            // type stays the same.
            let change = match col.raw_default.as_deref() {
                Some(using) if !is_plain_column_use(using, &cmd.name) => TypeChange::Rewrite,
                _ => change,
            };
            if change == TypeChange::Rewrite
                && !b.cx.session_time_zone_utc
                && v.at_least(12)
                && matches!((&old, &new), (Some(o), Some(n)) if coercion::depends_on_time_zone(o, n))
            {
                b.note("duet cannot know the migration session's TimeZone: timestamp <-> timestamptz rewrites the table unless it is UTC, so a rewrite is assumed (set `session_time_zone = \"UTC\"` in [check] when the runner's session is UTC; indexes on the column are rebuilt even then)");
            }
            // The new collation is the COLLATE clause or the type's default: when it differs from
            // the column's, its indexes are rebuilt in the new order (no table rewrite).
            let old_collation = table
                .as_ref()
                .and_then(|t| t.column(&cmd.name))
                .map(|c| c.collation.clone());
            let new_collation = ast::collation(col.coll_clause.as_deref());
            let change = match change {
                TypeChange::NoOp | TypeChange::NoRewrite
                    if !indexes.is_empty()
                        && old_collation.as_ref().is_none_or(|o| *o != new_collation) =>
                {
                    TypeChange::RebuildsIndexes
                }
                other => other,
            };
            let id = match change {
                TypeChange::NoOp => "alter_column_type.noop",
                TypeChange::RebuildsIndexes => "alter_column_type.rebuilds_indexes",
                TypeChange::NoRewrite
                    if table.as_ref().is_some_and(|t| t.has_check_on(&cmd.name)) =>
                {
                    "alter_column_type.no_rewrite_rechecks"
                }
                TypeChange::NoRewrite => "alter_column_type.no_rewrite",
                TypeChange::Rewrite => "alter_column_type.rewrite",
            };
            // Foreign keys on the column (either side) are dropped and re-created, which takes
            // ACCESS EXCLUSIVE on the table at the other end, even when the type does not change
            // (measured by the differential harness).
            let mut others = indexes;
            for other in fk_partners(b.cx.schema, key, &cmd.name) {
                b.out.touch(&other);
                others.push(other);
            }
            b.apply(id, Some(key), &others);
        }
        At::AtColumnDefault | At::AtCookedColumnDefault => {
            b.apply(
                if cmd.def.is_some() {
                    "set_default"
                } else {
                    "drop_default"
                },
                Some(key),
                &[],
            );
        }
        At::AtSetNotNull => {
            let col = table.as_ref().and_then(|t| t.column(&cmd.name));
            let id = if col.is_some_and(|c| c.not_null) {
                "set_not_null.already"
            } else if v.at_least(12)
                && table
                    .as_ref()
                    .is_some_and(|t| t.has_valid_not_null_check(&cmd.name))
            {
                "set_not_null.proven_by_check"
            } else {
                "set_not_null"
            };
            b.apply(id, Some(key), &[]);
        }
        At::AtDropNotNull => b.apply("drop_not_null", Some(key), &[]),
        At::AtAddConstraint => {
            if let Some(N::Constraint(con)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                add_constraint(b, key, con);
            }
        }
        At::AtValidateConstraint => match b
            .cx
            .schema
            .constraint(key, &cmd.name)
            .map(|c| c.kind.clone())
        {
            Some(ConstraintKind::ForeignKey { referenced }) => {
                b.apply("validate_constraint.foreign_key", Some(key), &[referenced])
            }
            Some(_) => b.apply("validate_constraint.check", Some(key), &[]),
            None => {
                b.apply("validate_constraint.check", Some(key), &[]);
                b.note("the constraint is unknown; if it is a foreign key, the referenced table also gets ROW SHARE");
            }
        },
        At::AtDropConstraint => match b
            .cx
            .schema
            .constraint(key, &cmd.name)
            .map(|c| c.kind.clone())
        {
            Some(ConstraintKind::ForeignKey { referenced }) => {
                b.apply("drop_constraint.foreign_key", Some(key), &[referenced])
            }
            Some(_) => b.apply("drop_constraint", Some(key), &[]),
            None => {
                b.apply("drop_constraint", Some(key), &[]);
                b.note("the constraint is unknown; if it is a foreign key, the referenced table is locked ACCESS EXCLUSIVE too");
            }
        },
        At::AtAlterConstraint => b.apply("alter_constraint", Some(key), &[]),
        At::AtSetStatistics
        | At::AtSetOptions
        | At::AtResetOptions
        | At::AtSetRelOptions
        | At::AtResetRelOptions
        | At::AtClusterOn
        | At::AtDropCluster => b.apply("catalog_option", Some(key), &[]),
        At::AtReplaceRelOptions => b.apply("alter_table.other", Some(key), &[]),
        At::AtSetStorage | At::AtSetCompression => b.apply("set_storage", Some(key), &[]),
        At::AtSetLogged | At::AtSetUnLogged | At::AtSetTableSpace | At::AtSetAccessMethod => {
            // Setting what the table already has is a no-op on the server; a table the model
            // does not know is assumed to change (the safe side).
            let unchanged = table.as_ref().is_some_and(|t| match cmd.subtype() {
                At::AtSetLogged => !t.unlogged,
                At::AtSetUnLogged => t.unlogged,
                At::AtSetTableSpace => t.tablespace == ast::tablespace(&cmd.name),
                _ => t.access_method == ast::access_method(&cmd.name),
            });
            b.apply(
                if unchanged {
                    "table_rewrite.noop"
                } else {
                    "table_rewrite"
                },
                Some(key),
                &[],
            )
        }
        At::AtEnableTrig
        | At::AtEnableAlwaysTrig
        | At::AtEnableReplicaTrig
        | At::AtDisableTrig
        | At::AtEnableTrigAll
        | At::AtDisableTrigAll
        | At::AtEnableTrigUser
        | At::AtDisableTrigUser => b.apply("trigger_change", Some(key), &[]),
        At::AtEnableRule
        | At::AtEnableAlwaysRule
        | At::AtEnableReplicaRule
        | At::AtDisableRule
        | At::AtAddInherit
        | At::AtDropInherit
        | At::AtAddOf
        | At::AtDropOf
        | At::AtReplicaIdentity
        | At::AtEnableRowSecurity
        | At::AtDisableRowSecurity
        | At::AtForceRowSecurity
        | At::AtNoForceRowSecurity
        | At::AtGenericOptions
        | At::AtSetIdentity
        | At::AtDropIdentity => b.apply("access_exclusive_catalog", Some(key), &[]),
        At::AtAttachPartition => {
            let part = partition_name(cmd);
            if !v.at_least(12) {
                b.apply("attach_partition.before_12", Some(key), &part);
            } else {
                attach_partition(b, key, cmd, table.as_ref(), &part);
            }
            for p in &part {
                b.out.touch(p);
            }
        }
        At::AtDetachPartition | At::AtDetachPartitionFinalize => {
            let part = partition_name(cmd);
            let concurrent = cmd.subtype() == At::AtDetachPartitionFinalize
                || matches!(cmd.def.as_ref().and_then(|d| d.node.as_ref()), Some(N::PartitionCmd(p)) if p.concurrent);
            let id = if concurrent {
                "detach_partition.concurrently"
            } else {
                "detach_partition"
            };
            // With a DEFAULT partition, its implied constraint changes: ACCESS EXCLUSIVE on it
            // too (CONCURRENTLY is refused then).
            let mut others = part.clone();
            if let Some(default) = table.as_ref().and_then(|t| t.default_partition.clone()) {
                if !part.contains(&default) {
                    others.push(default);
                }
            }
            b.apply(id, Some(key), &others);
            for p in &others {
                b.out.touch(p);
            }
        }
        At::AtAddIdentity => b.apply("add_identity", Some(key), &[]),
        At::AtDropExpression => b.apply("drop_expression", Some(key), &[]),
        At::AtSetExpression => b.apply("set_expression", Some(key), &[]),
        At::AtChangeOwner => b.apply("owner_to", Some(key), &[]),
        _ => b.apply("alter_table.other", Some(key), &[]),
    }
}

/// Tables at the other end of a foreign key that `column` of `key` takes part in: the tables it
/// references, and — when it is part of a primary key or unique constraint or index, which is what
/// foreign keys reference — every table referencing `key`.
fn fk_partners(schema: &Schema, key: &str, column: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(table) = schema.table(key) else {
        return out;
    };
    for c in &table.constraints {
        if let ConstraintKind::ForeignKey { referenced } = &c.kind {
            if c.columns.iter().any(|x| x == column) && referenced != key {
                out.push(referenced.clone());
            }
        }
    }
    let keyed = table.constraints.iter().any(|c| {
        matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
            && c.columns.iter().any(|x| x == column)
    }) || schema
        .indexes_on_column(key, column)
        .any(|i| schema.indexes.get(i).is_some_and(|i| i.unique));
    if keyed {
        for other in schema.referencing_tables(key) {
            if !out.contains(other) {
                out.push(other.clone());
            }
        }
    }
    out
}

/// ATTACH PARTITION on 12+: the partition is scanned unless its valid CHECK constraints (and NOT
/// NULL on the key) imply the bound; a DEFAULT partition of the parent is locked and scanned too.
fn attach_partition(
    b: &mut Builder<'_>,
    key: &str,
    cmd: &protobuf::AlterTableCmd,
    parent: Option<&Table>,
    part: &[String],
) {
    let bound = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
        Some(N::PartitionCmd(p)) => p.bound.as_ref(),
        _ => None,
    };
    let is_default = bound.is_some_and(|bd| bd.is_default);
    let partition = part.first().and_then(|p| b.cx.schema.table(p));
    let proven = match (
        parent.and_then(|t| t.partition_key.as_ref()),
        bound,
        partition,
    ) {
        (Some(pk), Some(bd), Some(pt)) => {
            let key_not_null = pk.column.as_deref().is_some_and(|c| {
                pt.column(c).is_some_and(|col| col.not_null) || pt.has_valid_not_null_check(c)
            });
            let bounds: Vec<partition::KeyBound> = pt
                .constraints
                .iter()
                .filter(|c| c.valid)
                .flat_map(|c| c.bounds.iter().cloned())
                .collect();
            partition::bound_implied(pk, bd, &bounds, key_not_null)
        }
        _ => false,
    };
    b.apply(
        if proven {
            "attach_partition.proven_by_check"
        } else {
            "attach_partition"
        },
        Some(key),
        part,
    );
    if !proven && !is_default && parent.is_some_and(|t| t.partition_key.is_none()) {
        b.note("the parent's partition key is unknown, so the partition is assumed to be scanned");
    }
    if let Some(default) = parent.and_then(|t| t.default_partition.clone()) {
        if !is_default && !part.contains(&default) {
            b.apply(
                "attach_partition.scans_default",
                Some(key),
                std::slice::from_ref(&default),
            );
            b.out.touch(&default);
        }
    }
}

/// INSERT, UPDATE, DELETE and MERGE: the same steps for each — name the statement, apply the
/// write rule to the target relation, then take ACCESS SHARE on every relation it reads.
fn dml(
    b: &mut Builder<'_>,
    stmt: &N,
    kind: &str,
    rule: &'static str,
    target: Option<&protobuf::RangeVar>,
) {
    b.out.kind = kind.into();
    let rel = ast::optional_range_var_key(target);
    b.apply(rule, Some(&rel), &[]);
    lock_read_relations(b, stmt, &rel);
    // Foreign-key triggers: new keys are looked up in the referenced tables, and removed or
    // changed keys in the referencing ones (changed there with ON DELETE/UPDATE actions).
    let table = b.cx.schema.table(&rel).cloned();
    if kind != "delete" {
        let referenced: Vec<String> = table
            .iter()
            .flat_map(|t| &t.constraints)
            .filter_map(|c| match &c.kind {
                ConstraintKind::ForeignKey { referenced } if *referenced != rel => {
                    Some(referenced.clone())
                }
                _ => None,
            })
            .collect();
        if !referenced.is_empty() {
            b.apply("dml.references", None, &referenced);
        }
    }
    if kind != "insert" {
        let referencing: Vec<String> = b.cx.schema.referencing_tables(&rel).cloned().collect();
        if !referencing.is_empty() {
            b.apply("dml.referenced_by", None, &referencing);
        }
    }
}

/// ACCESS SHARE on every relation a DML statement reads (`INSERT … SELECT … FROM`, `UPDATE …
/// FROM`, `DELETE … USING`, subqueries), which are read and so count as scanned. The written
/// table keeps its stronger lock; names of CTEs are not relations.
fn lock_read_relations(b: &mut Builder<'_>, stmt: &N, target: &str) {
    for key in ast::read_relations(stmt) {
        if key == target {
            continue;
        }
        b.out.lock(&key, LockMode::AccessShare);
        if b.fresh(&key) {
            if !b.out.fresh.contains(&key) {
                b.out.fresh.push(key);
            }
        } else {
            // Reading a table others can see is a scan of it (INSERT … SELECT reads the
            // source rows; proven in engine_facts).
            b.out.scans_table = true;
        }
    }
}

fn partition_name(cmd: &protobuf::AlterTableCmd) -> Vec<String> {
    match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
        Some(N::PartitionCmd(p)) => p
            .name
            .as_ref()
            .map(ast::range_var_key)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn add_column(b: &mut Builder<'_>, key: &str, col: &protobuf::ColumnDef) {
    let v = b.cx.version;
    let ty = col.type_name.as_ref().map(ColumnType::from_type_name);
    let mut default = col.raw_default.as_deref().map(ast::default_kind);
    let mut not_null = col.is_not_null;
    let mut applied = false;
    let mut generates_values = ty.as_ref().is_some_and(|t| t.is_serial());
    let mut referenced: Vec<String> = Vec::new();
    for con in ast::column_constraints(col) {
        match con.contype() {
            ConstrType::ConstrDefault => default = con.raw_expr.as_deref().map(ast::default_kind),
            ConstrType::ConstrNotnull => not_null = true,
            ConstrType::ConstrIdentity => generates_values = true,
            ConstrType::ConstrGenerated => {
                applied = true;
                if con.generated_kind == "v" && v.at_least(18) {
                    b.apply("add_column.generated_virtual", Some(key), &[]);
                } else {
                    b.apply("add_column.generated_stored", Some(key), &[]);
                }
            }
            ConstrType::ConstrCheck => {
                applied = true;
                b.apply("add_column.check", Some(key), &[]);
            }
            ConstrType::ConstrForeign => {
                applied = true;
                referenced.extend(con.pktable.as_ref().map(ast::range_var_key));
            }
            ConstrType::ConstrPrimary | ConstrType::ConstrUnique => {
                applied = true;
                not_null |= con.contype() == ConstrType::ConstrPrimary;
                b.apply("add_column.unique", Some(key), &[]);
            }
            _ => {}
        }
    }
    if generates_values {
        applied = true;
        b.apply("add_column.serial_or_identity", Some(key), &[]);
    }
    if !referenced.is_empty() {
        // With any DEFAULT clause (even DEFAULT NULL) or generated values PostgreSQL validates
        // the new foreign key by reading both tables; without one the column is all NULL and
        // the check is skipped (measured in tests/engine_facts.rs).
        let validated =
            default.is_some() || generates_values || b.out.has_fact("add_column.generated_stored");
        b.apply(
            if validated {
                "add_column.references_validated"
            } else {
                "add_column.references"
            },
            Some(key),
            &referenced,
        );
        for r in &referenced {
            b.out.touch(r);
        }
    }
    if ty
        .as_ref()
        .is_some_and(|t| b.cx.schema.is_constrained_domain(t))
    {
        applied = true;
        b.apply("add_column.constrained_domain", Some(key), &[]);
    }
    match default {
        Some(DefaultKind::Volatile) => {
            applied = true;
            b.apply("add_column.volatile_default", Some(key), &[]);
        }
        Some(DefaultKind::NonVolatile) => {
            applied = true;
            b.apply(
                if v.at_least(11) {
                    "add_column.default"
                } else {
                    "add_column.default_before_11"
                },
                Some(key),
                &[],
            );
        }
        Some(DefaultKind::Null) | None => {
            if not_null && !generates_values && !b.out.has_fact("add_column.generated_stored") {
                applied = true;
                b.apply("add_column.not_null_without_default", Some(key), &[]);
            }
        }
    }
    if !applied {
        b.apply("add_column.plain", Some(key), &[]);
    }
}

fn add_constraint(b: &mut Builder<'_>, key: &str, con: &protobuf::Constraint) {
    let table = b.cx.schema.table(key).cloned();
    match con.contype() {
        ConstrType::ConstrCheck => b.apply(
            if con.skip_validation {
                "add_check.not_valid"
            } else {
                "add_check"
            },
            Some(key),
            &[],
        ),
        ConstrType::ConstrForeign => {
            let referenced: Vec<String> = con
                .pktable
                .as_ref()
                .map(ast::range_var_key)
                .into_iter()
                .filter(|r| r != key)
                .collect();
            b.apply(
                if con.skip_validation {
                    "add_foreign_key.not_valid"
                } else {
                    "add_foreign_key"
                },
                Some(key),
                &referenced,
            );
            for r in &referenced {
                b.out.touch(r);
            }
        }
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique => {
            if con.indexname.is_empty() {
                b.apply("add_unique", Some(key), &[]);
            } else {
                let index_cols =
                    b.cx.schema
                        .indexes
                        .get(&Schema::index_key_on(key, &con.indexname))
                        .map(|i| i.columns.clone())
                        .unwrap_or_default();
                let nullable = con.contype() == ConstrType::ConstrPrimary
                    && match &table {
                        Some(t) if !index_cols.is_empty() => index_cols
                            .iter()
                            .any(|c| t.column(c).is_none_or(|c| !c.not_null)),
                        _ => {
                            b.note("the index columns are unknown; if any is nullable, SET NOT NULL scans the table");
                            false
                        }
                    };
                b.apply(
                    if nullable {
                        "add_primary_key.using_index_nullable"
                    } else {
                        "add_constraint.using_index"
                    },
                    Some(key),
                    &[],
                );
            }
        }
        ConstrType::ConstrExclusion => b.apply("add_exclusion", Some(key), &[]),
        ConstrType::ConstrNotnull => {
            let col = ast::strings(&con.keys)
                .into_iter()
                .next()
                .unwrap_or_default();
            if con.skip_validation {
                b.apply("add_not_null_constraint.not_valid", Some(key), &[]);
            } else if table
                .as_ref()
                .and_then(|t| t.column(&col))
                .is_some_and(|c| c.not_null)
            {
                b.apply("set_not_null.already", Some(key), &[]);
            } else if b.cx.version.at_least(12)
                && table
                    .as_ref()
                    .is_some_and(|t| t.has_valid_not_null_check(&col))
            {
                b.apply("set_not_null.proven_by_check", Some(key), &[]);
            } else {
                b.apply("set_not_null", Some(key), &[]);
            }
        }
        _ => b.apply("alter_table.other", Some(key), &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_id_used_here_exists() {
        let src = include_str!("classify.rs");
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
