//! `ALTER TABLE` and each of its subcommands (columns, constraints, partitions, storage).

use pg_query::protobuf::{self, node::Node as N, AlterTableType as At, ObjectType};

use crate::check::ast::{self, ColumnType};
use crate::check::coercion::{self, CoercionContext, TypeChange};
use crate::check::partition;
use crate::check::schema::{ConstraintKind, Schema, Table};

use super::add_column::add_column;
use super::add_constraint::add_constraint;
use super::Builder;

pub(super) fn sub_kind(t: At) -> &'static str {
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

pub(super) fn alter_table(b: &mut Builder<'_>, a: &protobuf::AlterTableStmt) {
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
pub(super) fn is_plain_column_use(expr: &protobuf::Node, column: &str) -> bool {
    match expr.node.as_ref() {
        Some(N::TypeCast(cast)) => cast
            .arg
            .as_deref()
            .and_then(ast::column_ref_name)
            .is_some_and(|c| c == column),
        _ => ast::column_ref_name(expr).is_some_and(|c| c == column),
    }
}

pub(super) fn coldef(cmd: &protobuf::AlterTableCmd) -> Option<&protobuf::ColumnDef> {
    match cmd.def.as_ref()?.node.as_ref()? {
        N::ColumnDef(c) => Some(c),
        _ => None,
    }
}

pub(super) fn alter_cmd(b: &mut Builder<'_>, key: &str, cmd: &protobuf::AlterTableCmd) {
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
pub(super) fn fk_partners(schema: &Schema, key: &str, column: &str) -> Vec<String> {
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
pub(super) fn attach_partition(
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

pub(super) fn partition_name(cmd: &protobuf::AlterTableCmd) -> Vec<String> {
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
