//! What each kind of schema change does to a live PostgreSQL, as data.
//!
//! One entry per fact of ENGINE-FACTS.md (measured on PostgreSQL 15; version notes from the
//! documentation), each proven again by `tests/engine_facts.rs` against the real server: the locks
//! (`pg_locks`), the rewrite (a changed `relfilenode`) and the scan (`seq_tup_read` in
//! `pg_stat_xact_user_tables`). The classifier picks the fact that applies to a statement, given
//! the schema and the version; the rules turn facts into advice.

use serde::Serialize;

use super::lock::LockMode;

/// Where a change sits in an expand/contract migration (not a running migration's
/// phase, `migrate::Phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangePhase {
    /// Changes nothing clients can observe (`SET`, `COMMENT`, `ANALYZE`, …).
    Neutral,
    /// Adds something old clients keep working with (new nullable column, new index, new table).
    Expand,
    /// Reads or writes data (`UPDATE`, `INSERT`, backfills, `TRUNCATE`).
    Data,
    /// Removes something only old clients used (drop column/table/index, drop NOT NULL).
    Contract,
    /// Changes something in place that running clients rely on (rename, type change, SET NOT NULL).
    Breaking,
}

impl ChangePhase {
    /// Lower-case name, as in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ChangePhase::Neutral => "neutral",
            ChangePhase::Expand => "expand",
            ChangePhase::Data => "data",
            ChangePhase::Contract => "contract",
            ChangePhase::Breaking => "breaking",
        }
    }
}

/// What one kind of change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    /// Stable id (`add_column.volatile_default`).
    pub id: &'static str,
    /// Lock on the altered relation (None: no table lock).
    pub lock: Option<LockMode>,
    /// Lock on the other relations involved (referenced table, indexes, partition).
    pub other_lock: Option<LockMode>,
    /// Whether the table's storage is rewritten (new relfilenode).
    pub rewrite: bool,
    /// Whether every row is read.
    pub scan: bool,
    /// Expand/contract phase.
    pub phase: ChangePhase,
    /// First major version this fact describes (None: all modelled).
    pub since: Option<u32>,
    /// Cannot run inside a transaction block.
    pub no_transaction_block: bool,
    /// One-line explanation shown to users.
    pub summary: &'static str,
    /// Where the fact comes from: `probe-PG15` (measured here), `doc`, or `assumed` (conservative).
    pub evidence: &'static str,
}

use ChangePhase::*;
use LockMode::*;

const fn f(
    id: &'static str,
    lock: Option<LockMode>,
    other_lock: Option<LockMode>,
    rewrite: bool,
    scan: bool,
    phase: ChangePhase,
    summary: &'static str,
) -> Fact {
    Fact {
        id,
        lock,
        other_lock,
        rewrite,
        scan,
        phase,
        since: None,
        no_transaction_block: false,
        summary,
        evidence: "probe-PG15",
    }
}

const fn since(mut fact: Fact, major: u32) -> Fact {
    fact.since = Some(major);
    fact
}

const fn no_tx(mut fact: Fact) -> Fact {
    fact.no_transaction_block = true;
    fact
}

const fn evidence(mut fact: Fact, e: &'static str) -> Fact {
    fact.evidence = e;
    fact
}

const AEL: Option<LockMode> = Some(AccessExclusive);
const SUE: Option<LockMode> = Some(ShareUpdateExclusive);
const SRE: Option<LockMode> = Some(ShareRowExclusive);
const S: Option<LockMode> = Some(Share);

/// Every fact duet knows.
pub const FACTS: &[Fact] = &[
    f("add_column.plain", AEL, None, false, false, Expand, "adding a nullable column without default only changes the catalog"),
    since(f("add_column.default", AEL, None, false, false, Expand, "a constant or stable default is stored once as the column's missing value (PostgreSQL 11+)"), 11),
    evidence(f("add_column.default_before_11", AEL, None, true, true, Expand, "before PostgreSQL 11 any non-null default rewrites the table"), "doc"),
    f("add_column.volatile_default", AEL, Some(Share), true, true, Expand, "a volatile default is evaluated for every row: the table and all its indexes are rewritten"),
    f("add_column.serial_or_identity", AEL, None, true, true, Expand, "a serial or identity column calls nextval() for every row: the table is rewritten"),
    since(f("add_column.generated_stored", AEL, None, true, true, Expand, "a stored generated column is computed for every row: the table is rewritten"), 12),
    since(evidence(f("add_column.generated_virtual", AEL, None, false, false, Expand, "a virtual generated column is computed on read"), "doc"), 18),
    f("add_column.check", AEL, None, false, true, Expand, "an inline CHECK is evaluated for every row while ACCESS EXCLUSIVE is held"),
    f("add_column.not_null_without_default", AEL, None, false, true, Breaking, "NOT NULL without a default fails on any non-empty table and breaks old INSERTs"),
    f("add_column.references", AEL, SRE, false, false, Expand, "REFERENCES also takes SHARE ROW EXCLUSIVE on the referenced table"),
    f("add_column.references_validated", AEL, SRE, false, true, Expand, "a DEFAULT on a new REFERENCES column makes PostgreSQL validate the foreign key: both tables are read while ACCESS EXCLUSIVE is held"),
    f("add_column.unique", AEL, None, false, true, Expand, "an inline UNIQUE/PRIMARY KEY builds an index while ACCESS EXCLUSIVE is held"),
    f("add_column.constrained_domain", AEL, None, true, true, Expand, "a column whose type is a domain with CHECK or NOT NULL constraints is checked row by row: the table and its indexes are rewritten"),
    f("drop_column", AEL, None, false, false, Contract, "dropping a column is catalog-only, but breaks clients still using it"),
    f("alter_column_type.noop", AEL, AEL, false, false, Neutral, "the type does not change (ACCESS EXCLUSIVE still taken, and on the other end of a foreign key on the column, which is re-created)"),
    f("alter_column_type.no_rewrite", AEL, AEL, false, false, Expand, "binary-coercible type change: catalog only, indexes kept (ACCESS EXCLUSIVE on the column's indexes too)"),
    f("alter_column_type.no_rewrite_rechecks", AEL, AEL, false, true, Expand, "binary-coercible, but the column's CHECK constraints are re-validated: full scan"),
    f("alter_column_type.rebuilds_indexes", AEL, AEL, false, true, Expand, "no table rewrite, but the column's indexes are rebuilt (timestamp <-> timestamptz changes the operator class, a new collation the order): the table is read under ACCESS EXCLUSIVE"),
    f("alter_column_type.rewrite", AEL, AEL, true, true, Breaking, "the type change converts every row: table and indexes are rewritten under ACCESS EXCLUSIVE"),
    f("set_default", AEL, None, false, false, Neutral, "changing a default affects future rows only"),
    f("drop_default", AEL, None, false, false, Contract, "dropping a default affects future rows only (old INSERTs relying on it change behaviour)"),
    f("set_not_null", AEL, None, false, true, Breaking, "SET NOT NULL scans the whole table while ACCESS EXCLUSIVE is held"),
    since(f("set_not_null.proven_by_check", AEL, None, false, false, Breaking, "a valid CHECK (col IS NOT NULL) proves the column non-null: no scan (PostgreSQL 12+)"), 12),
    f("set_not_null.already", AEL, None, false, false, Neutral, "the column is already NOT NULL: nothing to check"),
    f("drop_not_null", AEL, None, false, false, Contract, "dropping NOT NULL lets NULLs reach clients that never expected them"),
    f("add_check", AEL, None, false, true, Expand, "a new CHECK is validated against every row while ACCESS EXCLUSIVE is held"),
    f("add_check.not_valid", AEL, None, false, false, Expand, "CHECK … NOT VALID only checks new writes: brief ACCESS EXCLUSIVE, no scan"),
    f("validate_constraint.check", SUE, None, false, true, Neutral, "VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE: reads and writes continue"),
    f("add_foreign_key", SRE, SRE, false, true, Expand, "a new foreign key blocks writes on both tables while every row is checked"),
    f("add_foreign_key.not_valid", SRE, SRE, false, false, Expand, "FOREIGN KEY … NOT VALID: brief SHARE ROW EXCLUSIVE on both tables, no scan"),
    f("validate_constraint.foreign_key", SUE, Some(RowShare), false, true, Neutral, "validating a foreign key scans under SHARE UPDATE EXCLUSIVE (ROW SHARE on the referenced table)"),
    f("drop_constraint.foreign_key", AEL, AEL, false, false, Contract, "dropping a foreign key takes ACCESS EXCLUSIVE on both the referencing and the referenced table"),
    f("drop_constraint", AEL, None, false, false, Contract, "dropping a constraint is catalog-only"),
    f("add_unique", AEL, None, false, true, Expand, "ADD UNIQUE/PRIMARY KEY builds its index while ACCESS EXCLUSIVE is held"),
    f("add_constraint.using_index", AEL, None, false, false, Expand, "ADD CONSTRAINT … USING INDEX reuses an existing index: brief ACCESS EXCLUSIVE"),
    f("add_primary_key.using_index_nullable", AEL, None, false, true, Expand, "PRIMARY KEY USING INDEX on nullable columns implies SET NOT NULL: full scan"),
    f("add_exclusion", AEL, None, false, true, Expand, "ADD EXCLUDE builds its index under ACCESS EXCLUSIVE and cannot be NOT VALID"),
    since(evidence(f("add_not_null_constraint.not_valid", AEL, None, false, false, Expand, "NOT NULL … NOT VALID (PostgreSQL 18) only checks new writes"), "doc"), 18),
    f("create_index", S, None, false, true, Expand, "CREATE INDEX takes SHARE: reads continue, writes wait for the whole build"),
    no_tx(f("create_index.concurrently", SUE, None, false, true, Expand, "CREATE INDEX CONCURRENTLY: reads and writes continue; two scans; cannot run in a transaction block")),
    f("create_index.new_table", None, None, false, false, Expand, "index on a table created in the same transaction: no other session can see it yet"),
    f("drop_index", AEL, AEL, false, false, Contract, "DROP INDEX takes ACCESS EXCLUSIVE on the table and the index"),
    no_tx(f("drop_index.concurrently", SUE, SUE, false, false, Contract, "DROP INDEX CONCURRENTLY waits for users of the table instead of blocking them")),
    f("reindex", S, AEL, false, true, Neutral, "REINDEX blocks writes on the table and all use of the index"),
    since(no_tx(f("reindex.concurrently", SUE, SUE, false, true, Neutral, "REINDEX CONCURRENTLY builds a new index without blocking reads or writes")), 12),
    f("rename_index", None, SUE, false, false, Breaking, "renaming an index takes SHARE UPDATE EXCLUSIVE on the index"),
    f("alter_composite_type", AEL, None, false, false, Breaking, "ALTER TYPE on a composite type changes no table storage (it fails while a table column uses the type); functions using it may break"),
    f("rename", AEL, None, false, false, Breaking, "renaming breaks every client that uses the old name"),
    f("set_schema", AEL, None, false, false, Breaking, "moving to another schema breaks every client that uses the old name"),
    f("owner_to", AEL, None, false, false, Neutral, "changing the owner takes ACCESS EXCLUSIVE briefly"),
    f("catalog_option", SUE, None, false, false, Neutral, "storage parameters, statistics targets and comments take SHARE UPDATE EXCLUSIVE"),
    f("set_storage", AEL, None, false, false, Neutral, "SET STORAGE/COMPRESSION applies to new values only"),
    f("trigger_change", SRE, None, false, false, Neutral, "CREATE/ENABLE/DISABLE TRIGGER take SHARE ROW EXCLUSIVE: writes wait"),
    f("access_exclusive_catalog", AEL, None, false, false, Neutral, "takes ACCESS EXCLUSIVE briefly (trigger drop, row security, policies, replica identity, inheritance)"),
    f("table_rewrite", AEL, None, true, true, Neutral, "rewrites the whole table and its indexes under ACCESS EXCLUSIVE"),
    f("table_rewrite.noop", AEL, None, false, false, Neutral, "SET ACCESS METHOD / TABLESPACE / LOGGED / UNLOGGED to what the table already has changes nothing (brief ACCESS EXCLUSIVE)"),
    f("truncate", AEL, None, true, false, Data, "TRUNCATE swaps in a new empty file under ACCESS EXCLUSIVE"),
    f("refresh_materialized_view", AEL, Some(AccessShare), true, true, Data, "REFRESH MATERIALIZED VIEW blocks readers of the view while it is rebuilt"),
    f("refresh_materialized_view.concurrently", Some(Exclusive), Some(AccessShare), false, true, Data, "REFRESH … CONCURRENTLY lets readers continue (needs a unique index)"),
    since(f("attach_partition", SUE, AEL, false, true, Expand, "ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the parent and scans the partition unless a valid CHECK implies the bound (PostgreSQL 12+)"), 12),
    since(f("attach_partition.proven_by_check", SUE, AEL, false, false, Expand, "valid CHECK constraints (and NOT NULL on the key) on the partition imply its bound: no scan (PostgreSQL 12+)"), 12),
    since(f("attach_partition.scans_default", SUE, AEL, false, true, Expand, "the parent has a DEFAULT partition: it is locked ACCESS EXCLUSIVE and scanned for rows that now belong to the new partition"), 12),
    evidence(f("attach_partition.before_12", AEL, AEL, false, true, Expand, "before PostgreSQL 12 ATTACH PARTITION takes ACCESS EXCLUSIVE on the parent"), "doc"),
    f("detach_partition", AEL, AEL, false, false, Contract, "DETACH PARTITION takes ACCESS EXCLUSIVE on the parent and the partition"),
    since(no_tx(f("detach_partition.concurrently", SUE, SUE, false, false, Contract, "DETACH PARTITION CONCURRENTLY (PostgreSQL 14+): SHARE UPDATE EXCLUSIVE, two transactions")), 14),
    f("enum_add_value", None, None, false, false, Expand, "adding an enum value takes no table lock"),
    f("enum_rename_value", None, None, false, false, Breaking, "renaming an enum value breaks clients that use the old label"),
    f("add_identity", AEL, None, false, false, Neutral, "ADD GENERATED AS IDENTITY on an existing NOT NULL column only attaches a sequence"),
    since(f("drop_expression", AEL, None, false, false, Contract, "DROP EXPRESSION turns a generated column into a plain one (PostgreSQL 13+)"), 13),
    since(evidence(f("set_expression", AEL, None, true, true, Breaking, "SET EXPRESSION recomputes every row (PostgreSQL 17+)"), "doc"), 17),
    f("drop_table", AEL, AEL, false, false, Contract, "DROP TABLE takes ACCESS EXCLUSIVE (and on tables its foreign keys reference)"),
    f("lock_table", AEL, None, false, false, Neutral, "LOCK TABLE takes the named lock until the transaction ends"),
    f("no_table_lock", None, None, false, false, Neutral, "takes no table lock"),
    f("create_table", None, None, false, false, Expand, "a new table is invisible to other sessions until commit"),
    f("create_table.references", None, SRE, false, false, Expand, "a new table with a foreign key takes SHARE ROW EXCLUSIVE on the referenced table"),
    f("create_table.partition_of", None, AEL, false, false, Expand, "CREATE TABLE … PARTITION OF takes ACCESS EXCLUSIVE on the parent"),
    f("create_table.inherits", None, SUE, false, false, Expand, "CREATE TABLE … INHERITS takes SHARE UPDATE EXCLUSIVE on the parent"),
    f("create_view", AEL, Some(AccessShare), false, false, Expand, "CREATE OR REPLACE VIEW takes ACCESS EXCLUSIVE on the view (and ACCESS SHARE on the relations it reads)"),
    f("create_view.reads", None, Some(AccessShare), false, false, Expand, "CREATE VIEW (or a query WITH NO DATA) takes ACCESS SHARE on the relations it reads: only ACCESS EXCLUSIVE waits"),
    f("create_table_as", None, Some(AccessShare), false, true, Expand, "CREATE TABLE AS / CREATE MATERIALIZED VIEW runs its query: every table it reads is scanned under ACCESS SHARE"),
    f("create_table.like", None, Some(AccessShare), false, false, Expand, "CREATE TABLE … (LIKE other) takes ACCESS SHARE on the table it copies the definition of"),
    f("dml.insert", Some(RowExclusive), None, false, false, Data, "INSERT takes ROW EXCLUSIVE"),
    f("dml.update", Some(RowExclusive), None, false, true, Data, "UPDATE/DELETE take ROW EXCLUSIVE and row locks on every row they change"),
    f("dml.references", None, Some(RowShare), false, false, Data, "INSERT/UPDATE on a table with foreign keys look the new keys up in the referenced tables (ROW SHARE and FOR KEY SHARE row locks)"),
    f("dml.referenced_by", None, Some(RowExclusive), false, false, Data, "UPDATE/DELETE on a referenced table check the referencing tables (ROW SHARE), and change them with ON DELETE/UPDATE actions (ROW EXCLUSIVE)"),
    f("select", Some(AccessShare), None, false, false, Neutral, "SELECT takes ACCESS SHARE on what it reads (and reads it: counted as a scan)"),
    f("vacuum", SUE, None, false, false, Neutral, "VACUUM/ANALYZE take SHARE UPDATE EXCLUSIVE (they read pages, but no row scan shows in the statistics; measured)"),
    evidence(f("alter_constraint", AEL, None, false, false, Neutral, "ALTER CONSTRAINT changes deferrability (ACCESS EXCLUSIVE assumed)"), "assumed"),
    evidence(f("alter_table.other", AEL, None, false, false, Neutral, "other ALTER TABLE forms are assumed to take ACCESS EXCLUSIVE"), "assumed"),
    f("transaction_control", None, None, false, false, Neutral, "transaction control and session settings"),
    evidence(f("opaque_code", None, None, false, false, Neutral, "DO blocks and function calls cannot be inspected: their effects are unknown"), "assumed"),
];

/// The fact with `id`. Every id the classifier uses exists (a unit test checks), so a miss is a
/// bug; it falls back to the conservative "other ALTER TABLE" fact rather than panicking.
pub fn fact(id: &str) -> &'static Fact {
    FACTS
        .iter()
        .find(|f| f.id == id)
        .or_else(|| FACTS.iter().find(|f| f.id == "alter_table.other"))
        .unwrap_or(&FACTS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = FACTS.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
