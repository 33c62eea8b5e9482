//! Proof: every fact the classifier claims is checked against the real PostgreSQL.
//!
//! For each case a populated schema is built, the statement runs inside a transaction on the real
//! server, and what the server did — locks (`pg_locks`), rewrite (`relfilenode` changed), scan
//! (`seq_tup_read`/`idx_tup_fetch` in `pg_stat_xact_user_tables`) — is compared with what
//! `duet check` says for the same statement replayed over the same setup. Then it rolls back.
//!
//! Comparison: for every relation that existed before the statement, the strongest observed lock
//! on a table must equal the claimed one (an unclaimed ACCESS SHARE, e.g. a view's base table, is
//! allowed: it blocks nothing); claimed index locks must be observed; rewrite and scan must match.
//!
//! The server comes from `DUET_TEST_DATABASE_URL` (default postgres@127.0.0.1:5432). Without a
//! server the test skips loudly, or fails when `DUET_REQUIRE_DATABASE=1`.

mod migrate_support;

use std::collections::BTreeMap;

use migrate_support::TestDb;
use shadow::check::{self, CheckConfig, LockMode, SourceFile};
use tokio_postgres::{Client, NoTls};

const FIXTURE: &str = "
CREATE TABLE parent (id bigint PRIMARY KEY, code text);
INSERT INTO parent SELECT g, 'c' || g FROM generate_series(1, 2000) g;
CREATE TABLE t (id bigint PRIMARY KEY, parent_id bigint, name varchar(10), email text, amount numeric(10,2), at timestamp, n int, note text);
INSERT INTO t SELECT g, g, 'n' || (g % 100), 'e' || g, g, now(), g, 'x' FROM generate_series(1, 2000) g;
CREATE INDEX t_name_idx ON t (name);
";

/// (fact the classifier must pick, extra setup, statement)
const CASES: &[(&str, &str, &str)] = &[
    ("add_column.plain", "", "ALTER TABLE t ADD COLUMN x int"),
    ("add_column.default", "", "ALTER TABLE t ADD COLUMN x int DEFAULT 0"),
    ("add_column.default", "", "ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0"),
    ("add_column.default", "", "ALTER TABLE t ADD COLUMN x timestamptz DEFAULT now()"),
    ("add_column.volatile_default", "", "ALTER TABLE t ADD COLUMN x uuid DEFAULT gen_random_uuid()"),
    ("add_column.volatile_default", "", "ALTER TABLE t ADD COLUMN x float8 DEFAULT random()"),
    ("add_column.serial_or_identity", "", "ALTER TABLE t ADD COLUMN x bigserial"),
    ("add_column.serial_or_identity", "", "ALTER TABLE t ADD COLUMN x bigint GENERATED ALWAYS AS IDENTITY"),
    ("add_column.generated_stored", "", "ALTER TABLE t ADD COLUMN x int GENERATED ALWAYS AS (n * 2) STORED"),
    ("add_column.check", "", "ALTER TABLE t ADD COLUMN x int CHECK (x > 0)"),
    ("add_column.references", "", "ALTER TABLE t ADD COLUMN x bigint REFERENCES parent (id)"),
    // Any DEFAULT clause (even NULL) makes the server validate the new foreign key: both read.
    ("add_column.references_validated", "", "ALTER TABLE t ADD COLUMN x bigint DEFAULT 1 REFERENCES parent (id)"),
    ("add_column.references_validated", "", "ALTER TABLE t ADD COLUMN x bigint DEFAULT NULL REFERENCES parent (id)"),
    ("add_column.references_validated", "", "ALTER TABLE t ADD COLUMN x bigint NOT NULL DEFAULT 1 REFERENCES parent (id) ON DELETE CASCADE"),
    ("add_column.unique", "", "ALTER TABLE t ADD COLUMN x int UNIQUE"),
    // A domain with CHECK or NOT NULL is checked row by row: rewrite. A default alone is not.
    ("add_column.constrained_domain", "CREATE DOMAIN pos AS int CHECK (VALUE > 0);", "ALTER TABLE t ADD COLUMN x pos"),
    ("add_column.constrained_domain", "CREATE DOMAIN pos AS int CHECK (VALUE > 0);", "ALTER TABLE t ADD COLUMN x pos DEFAULT 5"),
    ("add_column.constrained_domain", "CREATE DOMAIN nn AS int NOT NULL DEFAULT 0;", "ALTER TABLE t ADD COLUMN x nn"),
    ("add_column.constrained_domain", "CREATE DOMAIN d0 AS int; ALTER DOMAIN d0 ADD CONSTRAINT d0_pos CHECK (VALUE > 0);", "ALTER TABLE t ADD COLUMN x d0"),
    ("add_column.plain", "CREATE DOMAIN plaind AS int DEFAULT 3;", "ALTER TABLE t ADD COLUMN x plaind"),
    ("drop_column", "", "ALTER TABLE t DROP COLUMN note"),
    ("alter_column_type.no_rewrite", "", "ALTER TABLE t ALTER COLUMN name TYPE varchar(20)"),
    ("alter_column_type.no_rewrite", "", "ALTER TABLE t ALTER COLUMN email TYPE varchar"),
    ("alter_column_type.no_rewrite", "", "ALTER TABLE t ALTER COLUMN amount TYPE numeric(12,2)"),
    ("alter_column_type.no_rewrite", "", "ALTER TABLE t ALTER COLUMN at TYPE timestamptz"),
    ("alter_column_type.no_rewrite_rechecks", "ALTER TABLE t ADD CONSTRAINT t_name_check CHECK (name <> '');", "ALTER TABLE t ALTER COLUMN name TYPE varchar(30)"),
    // timestamp -> timestamptz under UTC (the session TimeZone of CASES): no table rewrite, but
    // an index on the column is rebuilt (its operator class changes), which reads the table.
    ("alter_column_type.rebuilds_indexes", "CREATE INDEX t_at_idx ON t (at);", "ALTER TABLE t ALTER COLUMN at TYPE timestamptz"),
    // A new collation on an indexed column rebuilds its indexes; unindexed it is catalog-only.
    // Without COLLATE the type's default collation is the new one.
    ("alter_column_type.rebuilds_indexes", "", "ALTER TABLE t ALTER COLUMN name TYPE varchar(10) COLLATE \"C\""),
    ("alter_column_type.rebuilds_indexes", "ALTER TABLE t ALTER COLUMN name TYPE varchar(10) COLLATE \"C\";", "ALTER TABLE t ALTER COLUMN name TYPE varchar(20)"),
    ("alter_column_type.no_rewrite", "ALTER TABLE t ALTER COLUMN name TYPE varchar(10) COLLATE \"C\";", "ALTER TABLE t ALTER COLUMN name TYPE varchar(20) COLLATE \"C\""),
    ("alter_column_type.noop", "", "ALTER TABLE t ALTER COLUMN email TYPE text COLLATE \"C\""),
    // A NOT VALID CHECK is re-added NOT VALID: no re-validation scan.
    ("alter_column_type.no_rewrite", "ALTER TABLE t ADD CONSTRAINT t_name_check CHECK (name <> '') NOT VALID;", "ALTER TABLE t ALTER COLUMN name TYPE varchar(30)"),
    ("alter_column_type.rewrite", "", "ALTER TABLE t ALTER COLUMN n TYPE bigint"),
    ("alter_column_type.rewrite", "", "ALTER TABLE t ALTER COLUMN name TYPE varchar(5)"),
    ("alter_column_type.rewrite", "", "ALTER TABLE t ALTER COLUMN email TYPE varchar(50)"),
    ("alter_column_type.rewrite", "", "ALTER TABLE t ALTER COLUMN amount TYPE numeric(10,3)"),
    ("set_default", "", "ALTER TABLE t ALTER COLUMN n SET DEFAULT 0"),
    ("drop_default", "ALTER TABLE t ALTER COLUMN n SET DEFAULT 0;", "ALTER TABLE t ALTER COLUMN n DROP DEFAULT"),
    ("set_not_null", "", "ALTER TABLE t ALTER COLUMN email SET NOT NULL"),
    ("set_not_null", "ALTER TABLE t ADD CONSTRAINT t_email_nn CHECK (email IS NOT NULL) NOT VALID;", "ALTER TABLE t ALTER COLUMN email SET NOT NULL"),
    ("set_not_null.proven_by_check", "ALTER TABLE t ADD CONSTRAINT t_email_nn CHECK (email IS NOT NULL);", "ALTER TABLE t ALTER COLUMN email SET NOT NULL"),
    ("drop_not_null", "ALTER TABLE t ALTER COLUMN email SET NOT NULL;", "ALTER TABLE t ALTER COLUMN email DROP NOT NULL"),
    ("add_check", "", "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0)"),
    ("add_check.not_valid", "", "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0) NOT VALID"),
    ("validate_constraint.check", "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0) NOT VALID;", "ALTER TABLE t VALIDATE CONSTRAINT t_n_positive"),
    ("add_foreign_key", "", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id)"),
    ("add_foreign_key.not_valid", "", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID"),
    ("validate_constraint.foreign_key", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;", "ALTER TABLE t VALIDATE CONSTRAINT t_parent_fk"),
    ("drop_constraint.foreign_key", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "ALTER TABLE t DROP CONSTRAINT t_parent_fk"),
    ("drop_constraint", "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0);", "ALTER TABLE t DROP CONSTRAINT t_n_positive"),
    ("add_unique", "", "ALTER TABLE t ADD CONSTRAINT t_email_key UNIQUE (email)"),
    ("add_unique", "ALTER TABLE parent DROP CONSTRAINT parent_pkey;", "ALTER TABLE parent ADD PRIMARY KEY (id)"),
    ("add_constraint.using_index", "CREATE UNIQUE INDEX t_email_uidx ON t (email);", "ALTER TABLE t ADD CONSTRAINT t_email_key UNIQUE USING INDEX t_email_uidx"),
    ("add_primary_key.using_index_nullable", "ALTER TABLE parent DROP CONSTRAINT parent_pkey; ALTER TABLE parent ALTER COLUMN id DROP NOT NULL; CREATE UNIQUE INDEX parent_id_uidx ON parent (id);", "ALTER TABLE parent ADD CONSTRAINT parent_pkey PRIMARY KEY USING INDEX parent_id_uidx"),
    ("add_exclusion", "", "ALTER TABLE t ADD CONSTRAINT t_n_excl EXCLUDE USING btree (n WITH =)"),
    ("create_index", "", "CREATE INDEX t_n_idx ON t (n)"),
    ("create_index", "", "CREATE UNIQUE INDEX t_email_uidx ON t (email)"),
    ("drop_index", "", "DROP INDEX t_name_idx"),
    ("reindex", "", "REINDEX INDEX t_name_idx"),
    ("reindex", "", "REINDEX TABLE t"),
    ("alter_composite_type", "CREATE TYPE comp AS (a int, b text);", "ALTER TYPE comp ALTER ATTRIBUTE a TYPE bigint"),
    ("alter_column_type.rewrite", "", "ALTER TABLE t ALTER COLUMN n TYPE int USING (n + 1)"),
    ("alter_column_type.rewrite", "", "ALTER TABLE t ALTER COLUMN name TYPE varchar(10) USING CASE WHEN name = '' THEN NULL ELSE name END"),
    ("alter_column_type.noop", "", "ALTER TABLE t ALTER COLUMN n TYPE int USING n"),
    ("alter_column_type.no_rewrite", "", "ALTER TABLE t ALTER COLUMN name TYPE varchar(20) USING name::varchar(20)"),
    ("rename_index", "", "ALTER INDEX t_name_idx RENAME TO t_name_idx2"),
    ("rename", "", "ALTER TABLE t RENAME TO t2"),
    ("rename", "", "ALTER TABLE t RENAME COLUMN note TO remark"),
    ("rename", "ALTER TABLE t ADD CONSTRAINT t_n_positive CHECK (n > 0);", "ALTER TABLE t RENAME CONSTRAINT t_n_positive TO t_n_pos"),
    ("set_schema", "CREATE SCHEMA other;", "ALTER TABLE t SET SCHEMA other"),
    ("catalog_option", "", "ALTER TABLE t SET (fillfactor = 70)"),
    ("catalog_option", "", "ALTER TABLE t SET (autovacuum_vacuum_scale_factor = 0.01)"),
    ("catalog_option", "", "ALTER TABLE t ALTER COLUMN n SET STATISTICS 500"),
    ("catalog_option", "", "COMMENT ON TABLE t IS 'people'"),
    ("catalog_option", "", "COMMENT ON COLUMN t.n IS 'a number'"),
    ("catalog_option", "", "CREATE STATISTICS t_stats ON n, parent_id FROM t"),
    ("catalog_option", "", "ALTER INDEX t_name_idx SET (fillfactor = 70)"),
    ("set_storage", "", "ALTER TABLE t ALTER COLUMN note SET STORAGE EXTERNAL"),
    ("set_storage", "", "ALTER TABLE t ALTER COLUMN note SET COMPRESSION pglz"),
    ("trigger_change", "CREATE FUNCTION trg_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;", "CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg_fn()"),
    ("trigger_change", "CREATE FUNCTION trg_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg_fn();", "ALTER TABLE t DISABLE TRIGGER trg"),
    ("access_exclusive_catalog", "CREATE FUNCTION trg_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg_fn();", "DROP TRIGGER trg ON t"),
    ("access_exclusive_catalog", "", "ALTER TABLE t ENABLE ROW LEVEL SECURITY"),
    ("access_exclusive_catalog", "", "CREATE POLICY p ON t USING (true)"),
    ("access_exclusive_catalog", "", "ALTER TABLE t REPLICA IDENTITY FULL"),
    ("table_rewrite", "", "ALTER TABLE t SET UNLOGGED"),
    ("table_rewrite", "ALTER TABLE t SET UNLOGGED;", "ALTER TABLE t SET LOGGED"),
    // Setting what the table already has changes nothing.
    ("table_rewrite.noop", "", "ALTER TABLE t SET ACCESS METHOD heap"),
    ("table_rewrite.noop", "", "ALTER TABLE t SET LOGGED"),
    ("table_rewrite.noop", "", "ALTER TABLE t SET TABLESPACE pg_default"),
    ("table_rewrite", "", "CLUSTER t USING t_pkey"),
    ("truncate", "", "TRUNCATE t"),
    ("refresh_materialized_view", "CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM t;", "REFRESH MATERIALIZED VIEW mv"),
    ("attach_partition", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 (id int, k int); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g;", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    // A valid CHECK that implies the bound, with NOT NULL on the key, spares the scan.
    ("attach_partition.proven_by_check", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 (id int, k int NOT NULL); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g; ALTER TABLE p1 ADD CONSTRAINT p1_k_range CHECK (k >= 0 AND k < 100000);", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    ("attach_partition.proven_by_check", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 (id int, k int); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g; ALTER TABLE p1 ADD CONSTRAINT p1_k_nn CHECK (k IS NOT NULL); ALTER TABLE p1 ADD CONSTRAINT p1_k_range CHECK (k BETWEEN 1 AND 5000);", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    ("attach_partition.proven_by_check", "CREATE TABLE pt (id int, r text) PARTITION BY LIST (r); CREATE TABLE p1 (id int, r text NOT NULL CHECK (r IN ('eu', 'us'))); INSERT INTO p1 SELECT g, 'eu' FROM generate_series(1, 2000) g;", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES IN ('eu', 'us', 'asia')"),
    ("attach_partition.proven_by_check", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 (id int, k int); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g; ALTER TABLE p1 ADD CONSTRAINT p1_k_range CHECK (k IS NOT NULL AND k >= 0 AND k < 100000);", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    // The same CHECK without NOT NULL on the key: a NULL key would pass the CHECK, so it scans.
    ("attach_partition", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 (id int, k int); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g; ALTER TABLE p1 ADD CONSTRAINT p1_k_range CHECK (k >= 0 AND k < 100000);", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    // A NOT VALID check proves nothing.
    ("attach_partition", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 (id int, k int NOT NULL); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g; ALTER TABLE p1 ADD CONSTRAINT p1_k_range CHECK (k >= 0 AND k < 100000) NOT VALID;", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    // A DEFAULT partition is scanned against its siblings' bounds. (duet always claims that
    // scan; the server skips it when the partition has no siblings or its CHECKs refute theirs.)
    ("attach_partition", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p0 PARTITION OF pt FOR VALUES FROM (-100) TO (-1); CREATE TABLE p1 (id int, k int NOT NULL); INSERT INTO p1 SELECT g, g FROM generate_series(1, 2000) g;", "ALTER TABLE pt ATTACH PARTITION p1 DEFAULT"),
    // With a DEFAULT partition on the parent, that one is locked and scanned instead.
    ("attach_partition.scans_default", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE pd PARTITION OF pt DEFAULT; INSERT INTO pt SELECT g, g + 200000 FROM generate_series(1, 2000) g; CREATE TABLE p1 (id int, k int NOT NULL CHECK (k >= 0 AND k < 100000));", "ALTER TABLE pt ATTACH PARTITION p1 FOR VALUES FROM (0) TO (100000)"),
    ("detach_partition", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 PARTITION OF pt FOR VALUES FROM (0) TO (100000); INSERT INTO pt SELECT g, g FROM generate_series(1, 2000) g;", "ALTER TABLE pt DETACH PARTITION p1"),
    ("enum_add_value", "CREATE TYPE mood AS ENUM ('sad');", "ALTER TYPE mood ADD VALUE 'happy'"),
    ("add_identity", "ALTER TABLE t ALTER COLUMN n SET NOT NULL;", "ALTER TABLE t ALTER COLUMN n ADD GENERATED ALWAYS AS IDENTITY"),
    ("drop_expression", "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED;", "ALTER TABLE t ALTER COLUMN g DROP EXPRESSION"),
    ("drop_table", "", "DROP TABLE t"),
    ("drop_table", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "DROP TABLE t"),
    ("lock_table", "", "LOCK TABLE t IN SHARE MODE"),
    ("create_table.references", "", "CREATE TABLE child (id bigint REFERENCES parent (id))"),
    ("create_table.partition_of", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k);", "CREATE TABLE p2 PARTITION OF pt FOR VALUES FROM (100000) TO (200000)"),
    ("create_table.inherits", "", "CREATE TABLE child () INHERITS (parent)"),
    ("create_view", "CREATE VIEW v AS SELECT id FROM t;", "CREATE OR REPLACE VIEW v AS SELECT id FROM t"),
    ("create_view.reads", "", "CREATE VIEW v AS SELECT t.id, p.code FROM t JOIN parent p ON p.id = t.parent_id"),
    ("create_view.reads", "", "CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM t WITH NO DATA"),
    ("create_table_as", "", "CREATE TABLE x AS SELECT * FROM t"),
    ("create_table_as", "", "CREATE MATERIALIZED VIEW mv AS SELECT t.id, p.code FROM t JOIN parent p ON p.id = t.parent_id"),
    ("create_table.like", "", "CREATE TABLE x (LIKE t INCLUDING ALL)"),
    ("dml.insert", "", "INSERT INTO t (id) VALUES (100000)"),
    ("dml.update", "", "UPDATE t SET n = n + 1"),
    // Tables read by DML are locked ACCESS SHARE (claimed, so the comparison requires them).
    ("dml.update", "", "UPDATE t SET note = p.code FROM parent p WHERE p.id = t.parent_id"),
    ("dml.insert", "", "INSERT INTO t (id) SELECT id + 100000 FROM parent WHERE id < 10"),
    ("dml.update", "", "DELETE FROM t USING parent WHERE parent.id = t.parent_id AND parent.code = 'none'"),
    ("dml.update", "", "DELETE FROM t WHERE n > 1000"),
    ("no_table_lock", "", "GRANT SELECT ON t TO PUBLIC"),
    ("set_not_null.already", "ALTER TABLE t ALTER COLUMN email SET NOT NULL;", "ALTER TABLE t ALTER COLUMN email SET NOT NULL"),
    ("owner_to", "", "ALTER TABLE t OWNER TO CURRENT_USER"),
    ("refresh_materialized_view.concurrently", "CREATE MATERIALIZED VIEW mv AS SELECT id, n FROM t; CREATE UNIQUE INDEX mv_id_uidx ON mv (id);", "REFRESH MATERIALIZED VIEW CONCURRENTLY mv"),
    ("enum_rename_value", "CREATE TYPE mood AS ENUM ('sad');", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'"),
    ("create_table", "", "CREATE TABLE x (id bigint PRIMARY KEY, note text)"),
    ("select", "", "SELECT count(*) FROM t JOIN parent p ON p.id = t.parent_id"),
    ("select", "", "SELECT 1"),
    ("transaction_control", "", "SET lock_timeout = '1s'"),
    ("alter_constraint", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "ALTER TABLE t ALTER CONSTRAINT t_parent_fk DEFERRABLE"),
    ("vacuum", "", "ANALYZE t"),
];

/// Cases under another session TimeZone, checked with duet's default (TimeZone unknown):
/// (TimeZone, fact, extra setup, statement). CASES run under UTC with `session_time_zone = "UTC"`.
const TIME_ZONE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "Europe/Paris",
        "alter_column_type.rewrite",
        "",
        "ALTER TABLE t ALTER COLUMN at TYPE timestamptz",
    ),
    (
        "America/New_York",
        "alter_column_type.rewrite",
        "CREATE INDEX t_at_idx ON t (at);",
        "ALTER TABLE t ALTER COLUMN at TYPE timestamptz",
    ),
];

/// Facts of later versions: (first major, fact, extra setup, statement); run when the server is
/// at least that version (e.g. `DUET_TEST_DATABASE_URL` pointing at PostgreSQL 18).
const VERSIONED_CASES: &[(u32, &str, &str, &str)] = &[
    (
        17,
        "set_expression",
        "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED;",
        "ALTER TABLE t ALTER COLUMN g SET EXPRESSION AS (n * 3)",
    ),
    (
        18,
        "add_column.generated_virtual",
        "",
        "ALTER TABLE t ADD COLUMN x int GENERATED ALWAYS AS (n * 2) VIRTUAL",
    ),
    (
        18,
        "add_not_null_constraint.not_valid",
        "",
        "ALTER TABLE t ADD CONSTRAINT t_email_nn NOT NULL email NOT VALID",
    ),
    (
        18,
        "set_not_null",
        "",
        "ALTER TABLE t ADD CONSTRAINT t_email_nn NOT NULL email",
    ),
];

async fn connect(conninfo: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

#[derive(Debug, Default, PartialEq)]
struct Observed {
    tables: BTreeMap<String, LockMode>,
    indexes: BTreeMap<String, LockMode>,
    rewrite: bool,
    scan: bool,
}

async fn relations(
    c: &Client,
) -> Result<BTreeMap<u32, (String, u32, String)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT c.oid, c.relname::text, c.relfilenode, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('public','other') AND c.relkind IN ('r','p','m','i','I','v','c')",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                (
                    r.get::<_, String>(1),
                    r.get::<_, u32>(2),
                    r.get::<_, String>(3),
                ),
            )
        })
        .collect())
}

async fn rows_read(c: &Client) -> Result<BTreeMap<u32, i64>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT relid, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get::<_, i64>(1)))
        .collect())
}

/// Runs `stmt` in a transaction after the setup was committed, observes, rolls back. Since
/// PostgreSQL 15 the "xact" statistics show the backend's pending counters (which may include
/// earlier transactions), so the scan is the difference measured inside the transaction.
async fn observe(c: &Client, stmt: &str) -> Result<Observed, String> {
    let e = |e: tokio_postgres::Error| e.to_string();
    let before = relations(c).await.map_err(e)?;
    c.batch_execute("BEGIN").await.map_err(e)?;
    let read_before = rows_read(c).await.map_err(e)?;
    if let Err(err) = c.batch_execute(stmt).await {
        let _ = c.batch_execute("ROLLBACK").await;
        return Err(format!("statement failed: {err}"));
    }
    let locks = c
        .query(
            "SELECT l.relation, l.mode FROM pg_locks l
              WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted",
            &[],
        )
        .await
        .map_err(e)?;
    let read_after = rows_read(c).await.map_err(e)?;
    let after = relations(c).await.map_err(e)?;
    c.batch_execute("ROLLBACK").await.map_err(e)?;
    let mut obs = Observed::default();
    for row in locks {
        let oid: u32 = row.get(0);
        let Some(mode) = LockMode::from_pg_locks_name(row.get::<_, &str>(1)) else {
            continue;
        };
        let Some((name, _, kind)) = before.get(&oid) else {
            continue;
        }; // created by the statement
        let map = if kind == "i" || kind == "I" {
            &mut obs.indexes
        } else {
            &mut obs.tables
        };
        let e = map.entry(name.clone()).or_insert(mode);
        if mode > *e {
            *e = mode;
        }
    }
    for (oid, read) in &read_after {
        let delta = read - read_before.get(oid).copied().unwrap_or(0);
        if before.contains_key(oid) && delta > 0 {
            obs.scan = true;
        }
    }
    for (oid, (_, node, kind)) in &before {
        if matches!(kind.as_str(), "r" | "m") {
            if let Some((_, node2, _)) = after.get(oid) {
                if node2 != node {
                    obs.rewrite = true;
                }
            }
        }
    }
    Ok(obs)
}

struct Claim {
    facts: Vec<&'static str>,
    tables: BTreeMap<String, LockMode>,
    indexes: BTreeMap<String, LockMode>,
    rewrite: bool,
    scan: bool,
}

fn claim(setup: &str, stmt: &str, major: u32, utc: bool) -> Result<Claim, String> {
    // The setup is committed before the statement, as on the server.
    let config = CheckConfig {
        assume_in_transaction: false,
        engine_version: check::EngineVersion::major(major),
        session_time_zone_utc: utc,
        ..CheckConfig::default()
    };
    let files = vec![
        SourceFile {
            name: "setup.sql".into(),
            text: format!("{FIXTURE}\n{setup}"),
            no_transaction: None,
        },
        SourceFile {
            name: "change.sql".into(),
            text: format!("{stmt};"),
            no_transaction: None,
        },
    ];
    let report = check::check_files(&files, &config, check::schema::Schema::default())
        .map_err(|e| e.to_string())?;
    let s = report.statements.last().ok_or("no statement")?;
    let mut tables = BTreeMap::new();
    let mut indexes = BTreeMap::new();
    for (rel, mode) in &s.locks {
        let name = rel.rsplit('.').next().unwrap_or(rel).to_string();
        if name.ends_with("_idx")
            || name.ends_with("_idx2")
            || name.ends_with("_pkey")
            || name.ends_with("_key")
            || name.ends_with("_uidx")
        {
            indexes.insert(name, *mode);
        } else {
            tables.insert(name, *mode);
        }
    }
    Ok(Claim {
        facts: s.facts.clone(),
        tables,
        indexes,
        rewrite: s.rewrites_table,
        scan: s.scans_table,
    })
}

#[tokio::test(flavor = "current_thread")]
async fn engine_facts_hold_on_the_real_server() {
    let Some(db) = TestDb::create("engine_facts").await else {
        return;
    };
    let client = db.connect().await;
    let version_num: String = client
        .query_one("SHOW server_version_num", &[])
        .await
        .expect("server version")
        .get(0);
    let major = version_num.parse::<u32>().unwrap_or(150000) / 10000;
    eprintln!("proving facts against PostgreSQL {major}");
    let cases: Vec<(&str, &str, &str, &str)> = CASES
        .iter()
        .map(|c| ("UTC", c.0, c.1, c.2))
        .chain(
            VERSIONED_CASES
                .iter()
                .filter(|c| major >= c.0)
                .map(|c| ("UTC", c.1, c.2, c.3)),
        )
        .chain(TIME_ZONE_CASES.iter().copied())
        .collect();
    let mut failures = Vec::new();
    for (time_zone, fact, setup, stmt) in &cases {
        if let Err(err) = client
            .batch_execute(&format!("SET TimeZone = '{time_zone}'"))
            .await
        {
            failures.push(format!("{stmt}: SET TimeZone failed: {err}"));
            continue;
        }
        let reset = format!("DROP SCHEMA IF EXISTS public CASCADE; DROP SCHEMA IF EXISTS other CASCADE; DROP TYPE IF EXISTS mood; CREATE SCHEMA public; {FIXTURE} {setup}");
        if let Err(err) = client.batch_execute(&reset).await {
            failures.push(format!("{stmt}: setup failed: {err}"));
            continue;
        }
        let observed = match observe(&client, stmt).await {
            Ok(o) => o,
            Err(err) => {
                failures.push(format!("{stmt}: {err}"));
                continue;
            }
        };
        let claimed = match claim(setup, stmt, major, *time_zone == "UTC") {
            Ok(c) => c,
            Err(err) => {
                failures.push(format!("{stmt}: classifier failed: {err}"));
                continue;
            }
        };
        let mut diffs = Vec::new();
        if !claimed.facts.contains(fact) {
            diffs.push(format!(
                "classifier applied {:?}, expected {fact}",
                claimed.facts
            ));
        }
        let observed_tables: BTreeMap<_, _> = observed
            .tables
            .iter()
            .filter(|(name, mode)| {
                **mode != LockMode::AccessShare || claimed.tables.contains_key(*name)
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if observed_tables != claimed.tables {
            diffs.push(format!(
                "table locks: server {observed_tables:?}, claimed {:?}",
                claimed.tables
            ));
        }
        for (idx, mode) in &claimed.indexes {
            if observed.indexes.get(idx) != Some(mode) {
                diffs.push(format!(
                    "index {idx}: claimed {mode}, server {:?}",
                    observed.indexes.get(idx)
                ));
            }
        }
        if observed.rewrite != claimed.rewrite {
            diffs.push(format!(
                "rewrite: server {}, claimed {}",
                observed.rewrite, claimed.rewrite
            ));
        }
        if observed.scan != claimed.scan {
            diffs.push(format!(
                "scan: server {}, claimed {}",
                observed.scan, claimed.scan
            ));
        }
        if diffs.is_empty() {
            eprintln!("ok   {fact:<40} {stmt}");
        } else {
            failures.push(format!("{stmt} [{fact}]: {}", diffs.join("; ")));
        }
    }
    drop(client);
    db.drop_db().await;
    assert!(
        failures.is_empty(),
        "{} of {} facts disagree with PostgreSQL {major}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// (fact, extra setup, statement that cannot run in a transaction block, blocker SQL run in a
/// second session so the statement waits while holding its locks)
const CONCURRENT_CASES: &[(&str, &str, &str, &str)] = &[
    ("create_index.concurrently", "", "CREATE INDEX CONCURRENTLY t_n_idx ON t (n)", "UPDATE t SET n = n WHERE id = 1"),
    ("drop_index.concurrently", "", "DROP INDEX CONCURRENTLY t_name_idx", "SELECT 1 FROM t LIMIT 1"),
    ("reindex.concurrently", "", "REINDEX INDEX CONCURRENTLY t_name_idx", "UPDATE t SET n = n WHERE id = 1"),
    (
        "detach_partition.concurrently",
        "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 PARTITION OF pt FOR VALUES FROM (0) TO (100000); INSERT INTO pt SELECT g, g FROM generate_series(1, 2000) g;",
        "ALTER TABLE pt DETACH PARTITION p1 CONCURRENTLY",
        // Holding the partition makes the first phase wait with the parent's lock granted.
        "LOCK TABLE p1 IN SHARE UPDATE EXCLUSIVE MODE",
    ),
];

/// CONCURRENTLY statements run outside a transaction block, so their locks are read from a third
/// session while a second one makes them wait (as CREATE INDEX CONCURRENTLY waits for writers).
/// Rewrite is checked by relfilenode; their scans are not measured here (other backends' row
/// counts are only visible after an asynchronous statistics flush).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_facts_hold_on_the_real_server() {
    let Some(db) = TestDb::create("concurrent_facts").await else {
        return;
    };
    let info = db.url();
    let mut failures = Vec::new();
    for (fact, setup, stmt, blocker_sql) in CONCURRENT_CASES {
        let runner = connect(&info).await.expect("connect");
        let blocker = connect(&info).await.expect("connect");
        let watcher = connect(&info).await.expect("connect");
        let reset = format!(
            "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public; {FIXTURE} {setup}"
        );
        runner.batch_execute(&reset).await.expect("setup");
        let before = relations(&watcher).await.expect("relations");
        let pid: i32 = runner
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        blocker
            .batch_execute(&format!("BEGIN; {blocker_sql}"))
            .await
            .expect("blocker");
        let stmt_owned = stmt.to_string();
        let task =
            tokio::spawn(async move { runner.batch_execute(&stmt_owned).await.map(|_| runner) });
        let mut observed: BTreeMap<String, LockMode> = BTreeMap::new();
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let waiting: bool = watcher
                .query_one("SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .await
                .map(|r| r.get(0))
                .unwrap_or(false);
            if !waiting {
                continue;
            }
            let rows = watcher
                .query("SELECT relation, mode FROM pg_locks WHERE pid = $1 AND locktype = 'relation' AND granted", &[&pid])
                .await
                .expect("pg_locks");
            for row in rows {
                let oid: u32 = row.get(0);
                let (Some((name, _, _)), Some(mode)) = (
                    before.get(&oid),
                    LockMode::from_pg_locks_name(row.get::<_, &str>(1)),
                ) else {
                    continue;
                };
                let e = observed.entry(name.clone()).or_insert(mode);
                if mode > *e {
                    *e = mode;
                }
            }
            break;
        }
        blocker
            .batch_execute("COMMIT")
            .await
            .expect("release blocker");
        let done = task.await.expect("join");
        if let Err(err) = done {
            failures.push(format!("{stmt}: failed on the server: {err}"));
            continue;
        }
        let after = relations(&watcher).await.expect("relations");
        let rewrite = before.iter().any(|(oid, (_, node, kind))| {
            matches!(kind.as_str(), "r" | "m")
                && after.get(oid).is_some_and(|(_, n2, _)| n2 != node)
        });
        let config = CheckConfig {
            assume_in_transaction: false,
            ..CheckConfig::default()
        };
        let files = vec![
            SourceFile {
                name: "setup.sql".into(),
                text: format!("{FIXTURE}\n{setup}"),
                no_transaction: None,
            },
            SourceFile {
                name: "change.sql".into(),
                text: format!("{stmt};"),
                no_transaction: None,
            },
        ];
        let report =
            check::check_files(&files, &config, check::schema::Schema::default()).expect("check");
        let Some(s) = report.statements.last() else {
            failures.push(format!("{stmt}: no report"));
            continue;
        };
        let claimed: BTreeMap<String, LockMode> = s.locks.clone();
        let mut diffs = Vec::new();
        if !s.facts.contains(fact) {
            diffs.push(format!("classifier applied {:?}, expected {fact}", s.facts));
        }
        // While it waits, every lock it holds must be the claimed one (locks still being
        // acquired are not visible yet).
        if observed.is_empty()
            || observed
                .iter()
                .any(|(rel, mode)| claimed.get(rel) != Some(mode))
        {
            diffs.push(format!(
                "locks while waiting: server {observed:?}, claimed {claimed:?}"
            ));
        }
        if rewrite != s.rewrites_table {
            diffs.push(format!(
                "rewrite: server {rewrite}, claimed {}",
                s.rewrites_table
            ));
        }
        if diffs.is_empty() {
            eprintln!("ok   {fact:<40} {stmt}");
        } else {
            failures.push(format!("{stmt} [{fact}]: {}", diffs.join("; ")));
        }
    }
    db.drop_db().await;
    assert!(
        failures.is_empty(),
        "{} concurrent facts disagree with the server:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Facts measured on the server but not replayable as one statement on the populated fixture.
const NOT_REPLAYED: &[(&str, &str)] = &[
    (
        "add_column.not_null_without_default",
        "fails on any non-empty table, so there is nothing to measure",
    ),
    (
        "create_index.new_table",
        "the table is created in the same transaction: no other session can see it",
    ),
];

/// Every fact that claims to be measured (`probe-PG15`, for a version the server has) is proven
/// by a case above, so a new fact cannot skip its proof.
#[test]
fn every_measured_fact_has_a_proof() {
    let proven: Vec<&str> = CASES
        .iter()
        .map(|c| c.0)
        .chain(CONCURRENT_CASES.iter().map(|c| c.0))
        .chain(TIME_ZONE_CASES.iter().map(|c| c.1))
        .chain(VERSIONED_CASES.iter().map(|c| c.1))
        .chain(NOT_REPLAYED.iter().map(|c| c.0))
        .collect();
    let missing: Vec<&str> = check::facts::FACTS
        .iter()
        .filter(|f| f.evidence == "probe-PG15" && f.since.is_none_or(|v| v <= 15))
        .map(|f| f.id)
        .filter(|id| !proven.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "facts without a proof case: {missing:?}"
    );
}
