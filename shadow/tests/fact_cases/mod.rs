//! The statements that prove each fact of `shadow/src/check/facts.rs` on the real server, shared
//! by `engine_facts.rs` (exact agreement, one statement at a time) and `differential.rs` (the
//! same cases replayed as two-file migration histories, judged for false "safe" verdicts).

pub const FIXTURE: &str = "
CREATE TABLE parent (id bigint PRIMARY KEY, code text);
INSERT INTO parent SELECT g, 'c' || g FROM generate_series(1, 2000) g;
CREATE TABLE t (id bigint PRIMARY KEY, parent_id bigint, name varchar(10), email text, amount numeric(10,2), at timestamp, n int, note text);
INSERT INTO t SELECT g, g, 'n' || (g % 100), 'e' || g, g, now(), g, 'x' FROM generate_series(1, 2000) g;
CREATE INDEX t_name_idx ON t (name);
";

/// (fact the classifier must pick, extra setup, statement)
pub const CASES: &[(&str, &str, &str)] = &[
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
    // A foreign key on the column is re-created: ACCESS EXCLUSIVE on the other table, even when
    // the type stays the same (found by the differential harness).
    ("alter_column_type.noop", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "ALTER TABLE t ALTER COLUMN parent_id TYPE bigint"),
    ("alter_column_type.rewrite", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "ALTER TABLE t ALTER COLUMN parent_id TYPE int"),
    ("alter_column_type.noop", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "ALTER TABLE parent ALTER COLUMN id TYPE bigint"),
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
    // A DEFAULT partition's implied constraint changes: it is locked ACCESS EXCLUSIVE too.
    ("detach_partition", "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k); CREATE TABLE p1 PARTITION OF pt FOR VALUES FROM (0) TO (100000); CREATE TABLE pd PARTITION OF pt DEFAULT; INSERT INTO pt SELECT g, g FROM generate_series(1, 2000) g;", "ALTER TABLE pt DETACH PARTITION p1"),
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
    // Foreign-key triggers lock the other side of the key.
    ("dml.references", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "INSERT INTO t (id, parent_id) SELECT id + 100000, id FROM parent"),
    ("dml.references", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);", "UPDATE t SET parent_id = 7 WHERE id = 3"),
    ("dml.referenced_by", "ALTER TABLE t ADD CONSTRAINT t_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE;", "DELETE FROM parent WHERE id = 1999"),
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
pub const TIME_ZONE_CASES: &[(&str, &str, &str, &str)] = &[
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
pub const VERSIONED_CASES: &[(u32, &str, &str, &str)] = &[
    // SET ACCESS METHOD is PostgreSQL 15 syntax.
    (
        15,
        "table_rewrite.noop",
        "",
        "ALTER TABLE t SET ACCESS METHOD heap",
    ),
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
