//! The schema model: what duet knows about tables when it judges the next statement.
//!
//! Built by replaying the migration files in order (or read from a live catalog with
//! `--database`), so that facts that depend on the current schema come out right: a `varchar`
//! widening is free, `SET NOT NULL` skips its scan behind a valid `CHECK (c IS NOT NULL)`, an index
//! on a table created in the same transaction blocks nobody.

use std::collections::{BTreeMap, BTreeSet};

use pg_query::protobuf::{self, node::Node as N, AlterTableType, ConstrType, ObjectType};

use super::ast::{self, ColumnType};
use super::partition::{self, KeyBound, PartitionKey};

/// Tables, indexes and constraints as known at one point of the migration.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Tables (and partitioned tables, materialized views) by model key.
    pub tables: BTreeMap<String, Table>,
    /// Indexes by model key. Change it through [`Schema::insert_index`] and
    /// [`Schema::remove_indexes`], which keep the per-table lookup in step.
    pub indexes: BTreeMap<String, Index>,
    /// Index keys per table key (lookups by table are on every ALTER; a scan of all indexes made
    /// large migration sets quadratic).
    by_table: BTreeMap<String, BTreeSet<String>>,
    /// Keys of tables that may hold a foreign key to a table key (a superset: answers are checked
    /// against the tables, see [`Schema::referencing_tables`]). DML and key-column changes ask
    /// who references a table; a scan of all tables made large migration sets quadratic.
    fk_referrers: BTreeMap<String, BTreeSet<String>>,
    /// The first schema of the last `SET search_path` when it is not `public`: unqualified names
    /// are created there and looked up there first (see [`Schema::resolve`]).
    pub search_schema: Option<String>,
    /// Domains with a CHECK or NOT NULL constraint, by lower-case unqualified name: a new column
    /// of such a type is checked row by row, so the table is rewritten.
    pub constrained_domains: BTreeSet<String>,
}

/// One table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Named constraints.
    pub constraints: Vec<Constraint>,
    /// The transaction that created it, if it was created by the migration being checked.
    pub created_in_tx: Option<u64>,
    /// Live-catalog size, when read from a database.
    pub stats: Option<TableStats>,
    /// Whether it is a partitioned table.
    pub partitioned: bool,
    /// Its partition key, when it is partitioned and the key was seen.
    pub partition_key: Option<PartitionKey>,
    /// Model key of its DEFAULT partition, if it has one.
    pub default_partition: Option<String>,
    /// Its table access method when not the default (`USING …`, `SET ACCESS METHOD`).
    pub access_method: Option<String>,
    /// Its tablespace when not the database's default.
    pub tablespace: Option<String>,
    /// `UNLOGGED`.
    pub unlogged: bool,
    /// For a materialized view (or a table made by CREATE TABLE AS): the relations its query
    /// reads, locked and read again by `REFRESH`.
    pub reads: Vec<String>,
}

/// Size of a live table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableStats {
    /// Planner's row estimate (`reltuples`).
    pub rows: f64,
    /// Total relation size in bytes (with indexes and TOAST).
    pub bytes: i64,
}

/// One column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type, when known.
    pub ty: Option<ColumnType>,
    /// `NOT NULL` (including via primary key).
    pub not_null: bool,
    /// Has a default.
    pub has_default: bool,
    /// Its collation when not the type's default (`COLLATE "C"`), lower-case.
    pub collation: Option<String>,
}

/// What a constraint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKind {
    /// `CHECK`; `not_null_of` is set for `CHECK (col IS NOT NULL)`.
    Check {
        /// The column the check proves non-null, if it is exactly `col IS NOT NULL`.
        not_null_of: Option<String>,
    },
    /// `FOREIGN KEY … REFERENCES referenced`.
    ForeignKey {
        /// Model key of the referenced table.
        referenced: String,
    },
    /// `UNIQUE`.
    Unique,
    /// `PRIMARY KEY`.
    PrimaryKey,
    /// `EXCLUDE`.
    Exclusion,
    /// A named `NOT NULL` constraint (PG 18).
    NotNull,
}

/// One table constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Name (generated names are guessed the way PostgreSQL does, `<table>_<col>_fkey` etc.).
    pub name: String,
    /// Kind.
    pub kind: ConstraintKind,
    /// Columns it covers.
    pub columns: Vec<String>,
    /// Whether it is validated (`NOT VALID` constraints are not).
    pub valid: bool,
    /// For a CHECK: the constant bounds it puts on columns (used to prove partition bounds).
    pub bounds: Vec<KeyBound>,
}

/// One index.
#[derive(Debug, Clone)]
pub struct Index {
    /// Model key of its table.
    pub table: String,
    /// Indexed columns (plain column references only).
    pub columns: Vec<String>,
    /// Unique.
    pub unique: bool,
}

impl Table {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// Whether a valid `CHECK (col IS NOT NULL)` exists for `col`.
    pub fn has_valid_not_null_check(&self, col: &str) -> bool {
        self.constraints.iter().any(|c| {
            c.valid && matches!(&c.kind, ConstraintKind::Check { not_null_of: Some(n) } if n == col)
        })
    }

    /// Whether some valid CHECK constraint mentions `col`: a type change re-adds it and so
    /// re-validates it against every row (a NOT VALID one is re-added NOT VALID, with no scan;
    /// proven in `tests/engine_facts.rs`).
    pub fn has_check_on(&self, col: &str) -> bool {
        self.constraints.iter().any(|c| {
            c.valid
                && matches!(c.kind, ConstraintKind::Check { .. })
                && c.columns.iter().any(|x| x == col)
        })
    }
}

/// The model name of a domain: its unqualified name, lower-case (as column types are read).
fn domain_name(names: &[protobuf::Node]) -> String {
    ast::strings(names)
        .last()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default()
}

impl Schema {
    /// Whether a column type is a domain with constraints (adding such a column rewrites).
    pub fn is_constrained_domain(&self, ty: &ColumnType) -> bool {
        !ty.array && self.constrained_domains.contains(&ty.name)
    }

    /// The column `column` of the table `key`, when both are known.
    fn table_column_mut(&mut self, key: &str, column: &str) -> Option<&mut Column> {
        self.tables.get_mut(key).and_then(|t| t.column_mut(column))
    }

    /// A table by model key (resolved through the search path, see [`Schema::resolve`]).
    pub fn table(&self, key: &str) -> Option<&Table> {
        self.tables
            .get(key)
            .or_else(|| self.tables.get(&self.resolve(key)))
    }

    /// The model key a relation name refers to, as PostgreSQL resolves it: after
    /// `SET search_path TO app, public` an unqualified `t` is `app.t` when that exists, and
    /// `app.t` written out is the same table as an unqualified `t` created before the model knew
    /// the search path. Names the model does not know come back unchanged.
    pub fn resolve(&self, key: &str) -> String {
        if self.tables.contains_key(key) {
            return key.to_string();
        }
        let Some(search) = self.search_schema.as_deref() else {
            return key.to_string();
        };
        match key.split_once('.') {
            None => {
                let qualified = format!("{search}.{key}");
                if self.tables.contains_key(&qualified) {
                    qualified
                } else {
                    key.to_string()
                }
            }
            Some((schema_name, name))
                if schema_name == search && self.tables.contains_key(name) =>
            {
                name.to_string()
            }
            Some(_) => key.to_string(),
        }
    }

    /// The model key of an index or constraint-backed index called `name` on table `table_key`:
    /// indexes live in their table's schema.
    pub fn index_key_on(table_key: &str, name: &str) -> String {
        match table_key.rsplit_once('.') {
            Some((schema_name, _)) => ast::relation_key(schema_name, name),
            None => name.to_string(),
        }
    }

    /// The key a new relation named by `rv` gets: an unqualified name goes to the search schema.
    fn creation_key(&self, rv: &protobuf::RangeVar) -> String {
        match (rv.schemaname.is_empty(), self.search_schema.as_deref()) {
            (true, Some(search)) => ast::relation_key(search, &rv.relname),
            _ => ast::range_var_key(rv),
        }
    }

    /// Whether `key` is a table created in transaction `tx` (so it is invisible to others, and empty
    /// as far as locking is concerned).
    pub fn created_in(&self, key: &str, tx: Option<u64>) -> bool {
        tx.is_some() && self.table(key).and_then(|t| t.created_in_tx) == tx
    }

    /// Indexes of `table` covering `column`.
    pub fn indexes_on_column<'a>(
        &'a self,
        table: &'a str,
        column: &'a str,
    ) -> impl Iterator<Item = &'a String> + 'a {
        self.indexes_of(table).filter(move |k| {
            self.indexes
                .get(*k)
                .is_some_and(|i| i.columns.iter().any(|c| c == column))
        })
    }

    /// Indexes of `table`.
    pub fn indexes_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.by_table.get(table).into_iter().flatten()
    }

    /// Adds (or replaces) an index.
    pub fn insert_index(&mut self, key: String, index: Index) {
        if let Some(old) = self.indexes.get(&key) {
            if let Some(set) = self.by_table.get_mut(&old.table) {
                set.remove(&key);
            }
        }
        self.by_table
            .entry(index.table.clone())
            .or_default()
            .insert(key.clone());
        self.indexes.insert(key, index);
    }

    /// Removes one index by key.
    pub fn remove_index(&mut self, key: &str) -> Option<Index> {
        let i = self.indexes.remove(key)?;
        if let Some(set) = self.by_table.get_mut(&i.table) {
            set.remove(key);
        }
        Some(i)
    }

    /// Removes the indexes for which `drop` says so.
    pub fn remove_indexes(&mut self, mut drop: impl FnMut(&str, &Index) -> bool) {
        let doomed: Vec<String> = self
            .indexes
            .iter()
            .filter(|(k, i)| drop(k, i))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(i) = self.indexes.remove(&k) {
                if let Some(set) = self.by_table.get_mut(&i.table) {
                    set.remove(&k);
                }
            }
        }
    }

    /// Removes the indexes of one table for which `drop` says so.
    fn remove_table_indexes(&mut self, table: &str, mut drop: impl FnMut(&Index) -> bool) {
        let keys: Vec<String> = self.indexes_of(table).cloned().collect();
        for k in keys {
            if self.indexes.get(&k).is_some_and(&mut drop) {
                self.indexes.remove(&k);
                if let Some(set) = self.by_table.get_mut(table) {
                    set.remove(&k);
                }
            }
        }
    }

    /// Records that table `referrer` holds a foreign key to `referenced`. Every foreign key added
    /// to a table must be recorded (the model's replay and the live-catalog reader do), or
    /// [`Schema::referencing_tables`] misses it.
    pub fn note_foreign_key(&mut self, referrer: &str, referenced: &str) {
        self.fk_referrers
            .entry(referenced.to_string())
            .or_default()
            .insert(referrer.to_string());
    }

    /// Tables other than `key` holding a foreign key to `key`, in key order.
    pub fn referencing_tables<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.fk_referrers
            .get(key)
            .into_iter()
            .flatten()
            .filter(move |other| {
                other.as_str() != key
                    && self.tables.get(other.as_str()).is_some_and(|t| {
                        t.constraints.iter().any(|c| {
                            matches!(&c.kind, ConstraintKind::ForeignKey { referenced } if referenced == key)
                        })
                    })
            })
    }

    /// Finds the table holding constraint `name` on `table`.
    pub fn constraint(&self, table: &str, name: &str) -> Option<&Constraint> {
        self.tables
            .get(table)?
            .constraints
            .iter()
            .find(|c| c.name == name)
    }

    /// Replays one parsed statement into the model. `tx` is the transaction it runs in (None when
    /// it autocommits).
    pub fn apply(&mut self, stmt: &N, tx: Option<u64>) {
        match stmt {
            N::CreateStmt(c) => self.apply_create(c, tx),
            N::VariableSetStmt(v) if v.name == "search_path" => {
                let first = v.args.iter().find_map(|a| match a.node.as_ref() {
                    Some(N::AConst(c)) => match c.val.as_ref() {
                        Some(protobuf::a_const::Val::Sval(s)) if s.sval != "$user" => {
                            Some(s.sval.clone())
                        }
                        _ => None,
                    },
                    _ => None,
                });
                self.search_schema = first.filter(|s| s != "public");
            }
            N::AlterTableStmt(a) => {
                let Some(rv) = a.relation.as_ref() else {
                    return;
                };
                let key = self.resolve(&ast::range_var_key(rv));
                if a.objtype() == ObjectType::ObjectTable {
                    // A table the migration alters exists, even if it was created before the
                    // checked files: remember what is learned about it.
                    self.tables.entry(key.clone()).or_default();
                }
                for cmd in &a.cmds {
                    if let Some(N::AlterTableCmd(cmd)) = cmd.node.as_ref() {
                        self.apply_alter(&key, cmd);
                    }
                }
            }
            N::IndexStmt(i) => {
                let Some(rv) = i.relation.as_ref() else {
                    return;
                };
                let table = self.resolve(&ast::range_var_key(rv));
                let columns = ast::index_columns(&i.index_params);
                let name = if i.idxname.is_empty() {
                    // An index lives in its table's schema, named or not.
                    ast::relation_key(
                        &rv.schemaname,
                        &format!("{}_{}_idx", rv.relname, columns.join("_")),
                    )
                } else {
                    ast::relation_key(&rv.schemaname, &i.idxname)
                };
                self.insert_index(
                    name,
                    Index {
                        table,
                        columns,
                        unique: i.unique,
                    },
                );
            }
            N::DropStmt(d) => {
                for obj in &d.objects {
                    let names = match obj.node.as_ref() {
                        Some(N::List(l)) => ast::strings(&l.items),
                        _ => continue,
                    };
                    let key = ast::qualified_key(&names);
                    match d.remove_type() {
                        ObjectType::ObjectTable | ObjectType::ObjectMatview => {
                            self.tables.remove(&key);
                            self.remove_table_indexes(&key, |_| true);
                        }
                        ObjectType::ObjectIndex => {
                            self.remove_index(&key);
                        }
                        _ => {}
                    }
                }
                if d.remove_type() == ObjectType::ObjectDomain {
                    for obj in &d.objects {
                        if let Some(N::TypeName(t)) = obj.node.as_ref() {
                            self.constrained_domains.remove(&domain_name(&t.names));
                        }
                    }
                }
            }
            N::RenameStmt(r) => self.apply_rename(r),
            N::CreateDomainStmt(d) => {
                let constrained = d.constraints.iter().any(|c| {
                    matches!(c.node.as_ref(), Some(N::Constraint(con))
                        if matches!(con.contype(), ConstrType::ConstrCheck | ConstrType::ConstrNotnull))
                });
                let name = domain_name(&d.domainname);
                if constrained {
                    self.constrained_domains.insert(name);
                } else {
                    self.constrained_domains.remove(&name);
                }
            }
            // ADD CONSTRAINT (`C`) and SET NOT NULL (`O`); dropping one may leave others, so
            // a domain stays constrained (the safe side).
            N::AlterDomainStmt(d) if d.subtype == "C" || d.subtype == "O" => {
                self.constrained_domains.insert(domain_name(&d.type_name));
            }
            N::CreateTableAsStmt(c) => {
                if let Some(rel) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.tables.insert(
                        ast::range_var_key(rel),
                        Table {
                            created_in_tx: tx,
                            reads: c
                                .query
                                .as_ref()
                                .and_then(|q| q.node.as_ref())
                                .map(ast::read_relations)
                                .unwrap_or_default(),
                            ..Table::default()
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn apply_create(&mut self, c: &protobuf::CreateStmt, tx: Option<u64>) {
        let Some(rv) = c.relation.as_ref() else {
            return;
        };
        let key = self.creation_key(rv);
        if c.if_not_exists && self.tables.contains_key(&key) {
            return;
        }
        let mut table = Table {
            created_in_tx: tx,
            partitioned: c.partspec.is_some(),
            partition_key: c.partspec.as_ref().map(partition::partition_key),
            access_method: ast::access_method(&c.access_method),
            tablespace: ast::tablespace(&c.tablespacename),
            unlogged: rv.relpersistence == "u",
            ..Table::default()
        };
        if c.partbound.as_ref().is_some_and(|b| b.is_default) {
            if let Some(parent) = c.inh_relations.first().and_then(|n| match n.node.as_ref() {
                Some(N::RangeVar(rv)) => Some(ast::range_var_key(rv)),
                _ => None,
            }) {
                if let Some(p) = self.tables.get_mut(&parent) {
                    p.default_partition = Some(key.clone());
                }
            }
        }
        let mut table_constraints = Vec::new();
        for elt in &c.table_elts {
            match elt.node.as_ref() {
                Some(N::ColumnDef(col)) => {
                    let ty = col.type_name.as_ref().map(ColumnType::from_type_name);
                    let mut column = Column {
                        name: col.colname.clone(),
                        not_null: col.is_not_null,
                        has_default: col.raw_default.is_some()
                            || ty.as_ref().is_some_and(|t| t.is_serial()),
                        ty,
                        collation: ast::collation(col.coll_clause.as_deref()),
                    };
                    for con in ast::column_constraints(col) {
                        match con.contype() {
                            ConstrType::ConstrNotnull
                            | ConstrType::ConstrPrimary
                            | ConstrType::ConstrIdentity => column.not_null = true,
                            ConstrType::ConstrDefault | ConstrType::ConstrGenerated => {
                                column.has_default = true
                            }
                            _ => {}
                        }
                        table_constraints.push((con.clone(), vec![col.colname.clone()]));
                    }
                    table.columns.push(column);
                }
                Some(N::Constraint(con)) => {
                    table_constraints.push((con.as_ref().clone(), Vec::new()))
                }
                _ => {}
            }
        }
        self.tables.insert(key.clone(), table);
        for (con, cols) in table_constraints {
            self.add_constraint(&key, &rv.relname, &con, &cols);
        }
    }

    fn apply_alter(&mut self, key: &str, cmd: &protobuf::AlterTableCmd) {
        let relname = key.rsplit('.').next().unwrap_or(key).to_string();
        match cmd.subtype() {
            AlterTableType::AtAddColumn => {
                let Some(N::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
                    return;
                };
                let ty = col.type_name.as_ref().map(ColumnType::from_type_name);
                let mut column = Column {
                    name: col.colname.clone(),
                    not_null: col.is_not_null,
                    has_default: col.raw_default.is_some()
                        || ty.as_ref().is_some_and(|t| t.is_serial()),
                    ty,
                    collation: ast::collation(col.coll_clause.as_deref()),
                };
                let cons: Vec<_> = ast::column_constraints(col).cloned().collect();
                for con in &cons {
                    match con.contype() {
                        ConstrType::ConstrNotnull
                        | ConstrType::ConstrPrimary
                        | ConstrType::ConstrIdentity => column.not_null = true,
                        ConstrType::ConstrDefault | ConstrType::ConstrGenerated => {
                            column.has_default = true
                        }
                        _ => {}
                    }
                }
                if let Some(t) = self.tables.get_mut(key) {
                    if !(cmd.missing_ok && t.column(&col.colname).is_some()) {
                        t.columns.push(column);
                    }
                }
                for con in cons {
                    self.add_constraint(key, &relname, &con, std::slice::from_ref(&col.colname));
                }
            }
            AlterTableType::AtDropColumn => {
                if let Some(t) = self.tables.get_mut(key) {
                    t.columns.retain(|c| c.name != cmd.name);
                    t.constraints.retain(|c| !c.columns.contains(&cmd.name));
                }
                self.indexes
                    .retain(|_, i| !(i.table == key && i.columns.contains(&cmd.name)));
            }
            AlterTableType::AtAlterColumnType => {
                let Some(N::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
                    return;
                };
                if let Some(c) = self.table_column_mut(key, &cmd.name) {
                    c.ty = col.type_name.as_ref().map(ColumnType::from_type_name);
                    c.collation = ast::collation(col.coll_clause.as_deref());
                }
            }
            AlterTableType::AtAttachPartition | AlterTableType::AtDetachPartition => {
                let Some(N::PartitionCmd(pc)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
                else {
                    return;
                };
                let part = pc.name.as_ref().map(ast::range_var_key);
                if let Some(t) = self.tables.get_mut(key) {
                    if cmd.subtype() == AlterTableType::AtDetachPartition {
                        if t.default_partition == part {
                            t.default_partition = None;
                        }
                    } else if pc.bound.as_ref().is_some_and(|b| b.is_default) {
                        t.default_partition = part;
                    }
                }
            }
            AlterTableType::AtSetAccessMethod => {
                if let Some(t) = self.tables.get_mut(key) {
                    t.access_method = ast::access_method(&cmd.name);
                }
            }
            AlterTableType::AtSetTableSpace => {
                if let Some(t) = self.tables.get_mut(key) {
                    t.tablespace = ast::tablespace(&cmd.name);
                }
            }
            AlterTableType::AtSetLogged | AlterTableType::AtSetUnLogged => {
                if let Some(t) = self.tables.get_mut(key) {
                    t.unlogged = cmd.subtype() == AlterTableType::AtSetUnLogged;
                }
            }
            AlterTableType::AtSetNotNull => {
                if let Some(c) = self.table_column_mut(key, &cmd.name) {
                    c.not_null = true;
                }
            }
            AlterTableType::AtDropNotNull => {
                if let Some(c) = self.table_column_mut(key, &cmd.name) {
                    c.not_null = false;
                }
            }
            AlterTableType::AtColumnDefault => {
                if let Some(c) = self.table_column_mut(key, &cmd.name) {
                    c.has_default = cmd.def.is_some();
                }
            }
            AlterTableType::AtAddConstraint => {
                if let Some(N::Constraint(con)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                    self.add_constraint(key, &relname, con, &[]);
                }
            }
            AlterTableType::AtValidateConstraint => {
                if let Some(t) = self.tables.get_mut(key) {
                    for c in t.constraints.iter_mut().filter(|c| c.name == cmd.name) {
                        c.valid = true;
                    }
                }
            }
            AlterTableType::AtDropConstraint => {
                if let Some(t) = self.tables.get_mut(key) {
                    t.constraints.retain(|c| c.name != cmd.name);
                }
                let index = Schema::index_key_on(key, &cmd.name);
                if self.indexes.get(&index).is_some_and(|i| i.table == key) {
                    self.remove_index(&index);
                }
            }
            _ => {}
        }
    }

    fn add_constraint(
        &mut self,
        key: &str,
        relname: &str,
        con: &protobuf::Constraint,
        column_of: &[String],
    ) {
        let mut columns = ast::strings(&con.keys);
        if columns.is_empty() {
            columns = ast::strings(&con.fk_attrs);
        }
        if columns.is_empty() {
            columns = column_of.to_vec();
        }
        let mut bounds = Vec::new();
        let (kind, suffix) = match con.contype() {
            ConstrType::ConstrCheck => {
                bounds = con
                    .raw_expr
                    .as_deref()
                    .map(partition::check_bounds)
                    .unwrap_or_default();
                let not_null_of = con.raw_expr.as_deref().and_then(ast::is_not_null_check);
                if let Some(e) = con.raw_expr.as_deref() {
                    let mut cols = Vec::new();
                    ast::referenced_columns(e, &mut cols);
                    columns = cols;
                }
                (ConstraintKind::Check { not_null_of }, "check")
            }
            ConstrType::ConstrForeign => {
                let referenced = ast::optional_range_var_key(con.pktable.as_ref());
                (ConstraintKind::ForeignKey { referenced }, "fkey")
            }
            ConstrType::ConstrUnique => (ConstraintKind::Unique, "key"),
            ConstrType::ConstrPrimary => (ConstraintKind::PrimaryKey, "pkey"),
            ConstrType::ConstrExclusion => (ConstraintKind::Exclusion, "excl"),
            ConstrType::ConstrNotnull if !con.conname.is_empty() => {
                (ConstraintKind::NotNull, "not_null")
            }
            _ => return,
        };
        let name = if con.conname.is_empty() {
            match kind {
                ConstraintKind::PrimaryKey => format!("{relname}_pkey"),
                _ => format!("{relname}_{}_{suffix}", columns.join("_")),
            }
        } else {
            con.conname.clone()
        };
        let Some(table) = self.tables.get_mut(key) else {
            return;
        };
        if matches!(kind, ConstraintKind::PrimaryKey) {
            for c in &columns {
                if let Some(col) = table.column_mut(c) {
                    col.not_null = true;
                }
            }
        }
        if matches!(kind, ConstraintKind::NotNull) && !con.skip_validation {
            for c in &columns {
                if let Some(col) = table.column_mut(c) {
                    col.not_null = true;
                }
            }
        }
        let builds_index = matches!(
            kind,
            ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclusion
        );
        let referenced = match &kind {
            ConstraintKind::ForeignKey { referenced } => Some(referenced.clone()),
            _ => None,
        };
        table.constraints.push(Constraint {
            name: name.clone(),
            kind,
            columns: columns.clone(),
            valid: !con.skip_validation,
            bounds,
        });
        if let Some(referenced) = referenced {
            self.note_foreign_key(key, &referenced);
        }
        if builds_index {
            let index_name = if con.indexname.is_empty() {
                name
            } else {
                con.indexname.clone()
            };
            let index_name = Schema::index_key_on(key, &index_name);
            self.insert_index(
                index_name,
                Index {
                    table: key.to_string(),
                    columns,
                    unique: true,
                },
            );
        }
    }

    fn apply_rename(&mut self, r: &protobuf::RenameStmt) {
        match r.rename_type() {
            ObjectType::ObjectTable | ObjectType::ObjectMatview => {
                let Some(rv) = r.relation.as_ref() else {
                    return;
                };
                let old = ast::range_var_key(rv);
                let new = ast::relation_key(&rv.schemaname, &r.newname);
                if let Some(t) = self.tables.remove(&old) {
                    for referenced in t.constraints.iter().filter_map(|c| match &c.kind {
                        ConstraintKind::ForeignKey { referenced } => Some(referenced.clone()),
                        _ => None,
                    }) {
                        self.note_foreign_key(&new, &referenced);
                    }
                    self.tables.insert(new.clone(), t);
                    let keys: Vec<String> = self.indexes_of(&old).cloned().collect();
                    for k in keys {
                        if let Some(mut i) = self.indexes.get(&k).cloned() {
                            i.table = new.clone();
                            self.insert_index(k, i);
                        }
                    }
                }
            }
            ObjectType::ObjectColumn => {
                let Some(rv) = r.relation.as_ref() else {
                    return;
                };
                let key = ast::range_var_key(rv);
                if let Some(t) = self.tables.get_mut(&key) {
                    if let Some(c) = t.column_mut(&r.subname) {
                        c.name = r.newname.clone();
                    }
                    for con in &mut t.constraints {
                        for col in con.columns.iter_mut().filter(|c| **c == r.subname) {
                            *col = r.newname.clone();
                        }
                        if let ConstraintKind::Check {
                            not_null_of: Some(n),
                        } = &mut con.kind
                        {
                            if *n == r.subname {
                                *n = r.newname.clone();
                            }
                        }
                    }
                }
                let keys: Vec<String> = self.indexes_of(&key).cloned().collect();
                for k in keys {
                    if let Some(i) = self.indexes.get_mut(&k) {
                        for col in i.columns.iter_mut().filter(|c| **c == r.subname) {
                            *col = r.newname.clone();
                        }
                    }
                }
            }
            ObjectType::ObjectIndex => {
                let Some(rv) = r.relation.as_ref() else {
                    return;
                };
                let old = ast::range_var_key(rv);
                if let Some(i) = self.remove_index(&old) {
                    self.insert_index(ast::relation_key(&rv.schemaname, &r.newname), i);
                }
            }
            ObjectType::ObjectTabconstraint => {
                let Some(rv) = r.relation.as_ref() else {
                    return;
                };
                if let Some(t) = self.tables.get_mut(&ast::range_var_key(rv)) {
                    for c in t.constraints.iter_mut().filter(|c| c.name == r.subname) {
                        c.name = r.newname.clone();
                    }
                }
            }
            _ => {}
        }
    }
}
