//! What the planner reads about the one table under migration: columns (types, NOT NULL,
//! defaults, identity, generated), the copy key, indexes, constraints, owned sequences, the
//! objects a shadow migration carries over ([`super::carried`]: views, triggers, row-level
//! security, foreign keys of other tables), and the facts the audit judges (rules, inheritance,
//! publications, what could not be carried).

use tokio_postgres::Client;

use crate::ident::QualifiedName;
use crate::migrate::key::{discover_copy_key, CopyKey};
use crate::migrate::MigrateError;

use super::carried::{self, Carried};
use super::PlanError;

/// One column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Name (unquoted).
    pub name: String,
    /// Full type with typmod, as `format_type` prints it (`character varying(20)`).
    pub full_type: String,
    /// Base type usable in a cast without typmod (`int4`, `varchar`, `public.mood`).
    pub base_type: String,
    /// `NOT NULL`.
    pub not_null: bool,
    /// The default expression, if any.
    pub default: Option<String>,
    /// `a` / `d` for identity columns, empty otherwise.
    pub identity: String,
    /// `s` for stored generated columns (`v` for virtual ones, PostgreSQL 18+), empty otherwise.
    pub generated: String,
    /// The sequence owned by this column (serial), qualified and quoted. Not an identity
    /// column's own sequence: that one is [`ColumnInfo::identity_sequence`].
    pub owned_sequence: Option<String>,
    /// An identity column's sequence and its options, as the flip re-creates them on the new
    /// table.
    pub identity_sequence: Option<IdentitySequence>,
    /// The columns a generated column's expression reads (unquoted), in attribute order.
    pub generated_from: Vec<String>,
}

impl ColumnInfo {
    /// An identity column (`GENERATED ALWAYS` or `BY DEFAULT AS IDENTITY`).
    pub fn is_identity(&self) -> bool {
        !self.identity.is_empty()
    }

    /// A generated column (`GENERATED ALWAYS AS (…) STORED`, or `VIRTUAL` on PostgreSQL 18+):
    /// its expression is [`ColumnInfo::default`].
    pub fn is_generated(&self) -> bool {
        !self.generated.is_empty()
    }
}

/// The sequence behind an identity column, with every option `ADD GENERATED … AS IDENTITY (…)`
/// takes, so the new table's identity generates exactly as the old one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySequence {
    /// The sequence.
    pub name: QualifiedName,
    /// Its data type (`integer`, `bigint`, `smallint`), as `format_type` prints it.
    pub data_type: String,
    /// `START WITH`.
    pub start: i64,
    /// `INCREMENT BY`.
    pub increment: i64,
    /// `MINVALUE`.
    pub min: i64,
    /// `MAXVALUE`.
    pub max: i64,
    /// `CACHE`.
    pub cache: i64,
    /// `CYCLE`.
    pub cycle: bool,
    /// `GRANT` statements re-creating the sequence's privileges on another sequence; `{}`
    /// stands for the sequence.
    pub grants: Vec<String>,
}

/// An index of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// Index name (unquoted).
    pub name: String,
    /// Everything after `ON <table>` in `pg_get_indexdef` (`USING btree (c) WHERE …`).
    pub tail: String,
    /// Unique index.
    pub unique: bool,
    /// The constraint it backs (`p`, `u`, `x`), if any.
    pub constraint: Option<char>,
    /// Columns it covers (expressions not listed).
    pub columns: Vec<String>,
}

/// A CHECK or FOREIGN KEY constraint of the table (those without an index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintInfo {
    /// Name (unquoted).
    pub name: String,
    /// `c` or `f`.
    pub kind: char,
    /// `pg_get_constraintdef` with every name schema-qualified (may end in `NOT VALID`).
    pub def: String,
    /// Validated.
    pub valid: bool,
    /// Columns it covers.
    pub columns: Vec<String>,
    /// A foreign key referencing the table itself: the table's name as `def` prints it (the
    /// shadow's copy of the key references the shadow, which becomes the table).
    pub self_reference: Option<String>,
}

/// Everything the planner needs about the table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The table.
    pub name: QualifiedName,
    /// `relkind` (`r` ordinary, `p` partitioned, …).
    pub relkind: char,
    /// Columns in attribute order.
    pub columns: Vec<ColumnInfo>,
    /// The copy key, or why there is none.
    pub key: Result<CopyKey, String>,
    /// Indexes.
    pub indexes: Vec<IndexInfo>,
    /// CHECK and FOREIGN KEY constraints.
    pub constraints: Vec<ConstraintInfo>,
    /// Non-internal triggers (`name`), except duet's own safety net
    /// ([`crate::rewrite::net`]: its triggers are named `~duet_net…`).
    pub triggers: Vec<String>,
    /// Rules.
    pub rules: Vec<String>,
    /// Views (and materialized views) depending on the table.
    pub views: Vec<String>,
    /// Why a shadow table could not re-point a foreign key of another table referencing this
    /// one ([`super::referencing`]); the keys it can are in `carried`.
    pub foreign_key_blockers: Vec<String>,
    /// Parent or child tables (inheritance or partitions).
    pub inheritance: Vec<String>,
    /// Publications containing the table.
    pub publications: Vec<String>,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// The table's owner (quoted role name).
    pub owner: String,
    /// `GRANT` statements re-creating the table's privileges on another table; `{}` stands for
    /// the table.
    pub grants: Vec<String>,
    /// Row-level security enabled or policies present.
    pub row_security: bool,
    /// Column-level privileges present.
    pub column_privileges: bool,
    /// What a shadow migration carries over to the new shape (views, triggers, row-level
    /// security), as it is now.
    pub carried: Carried,
    /// Why a shadow migration could not carry everything bound to the table (each says what to
    /// do): objects duet's role may not re-create, objects that depend on the table or a carried
    /// view and are not carried (`pg_describe_object` names), row-level security duet's role is
    /// subject to.
    pub carry_blockers: Vec<String>,
    /// Materialized views over the table and their size (estimated rows, bytes): a shadow
    /// migration refreshes them inside the flip when they hold rows.
    pub refreshed_views: Vec<(QualifiedName, f32, i64)>,
}

impl TableInfo {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column, or [`PlanError::Unknown`] naming the table's columns.
    pub fn require_column(&self, name: &str) -> Result<&ColumnInfo, PlanError> {
        self.column(name).ok_or_else(|| {
            PlanError::Unknown(format!(
                "column {} does not exist in {}; its columns are: {}",
                crate::ident::quote_ident(name),
                self.name,
                self.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Whether `col` is a key column.
    pub fn is_key_column(&self, col: &str) -> bool {
        self.key
            .as_ref()
            .map(|k| k.columns.iter().any(|c| c == col))
            .unwrap_or(false)
    }
}

fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> PlanError + '_ {
    move |e| PlanError::Database(format!("{what}: {e}"))
}

/// Resolve `schema.name` (schema empty: through `search_path`) to the table, or
/// [`PlanError::Unknown`].
pub async fn resolve_table(
    client: &Client,
    schema: &str,
    name: &str,
) -> Result<QualifiedName, PlanError> {
    let text = if schema.is_empty() {
        crate::ident::quote_ident(name)
    } else {
        QualifiedName::new(schema, name).sql()
    };
    let row = client
        .query_one(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = to_regclass($1)",
            &[&text],
        )
        .await;
    match row {
        Ok(r) => {
            let kind: String = r.get(2);
            if kind != "r" && kind != "p" {
                return Err(PlanError::Unsupported(format!(
                    "{text} is not a table (relkind {kind}); duet migrates tables only"
                )));
            }
            Ok(QualifiedName::new(
                r.get::<_, String>(0),
                r.get::<_, String>(1),
            ))
        }
        Err(_) => Err(PlanError::Unknown(format!(
            "table {text} does not exist (checked through the search_path of the planning \
             connection); name it as schema.table"
        ))),
    }
}

/// Read everything about `table`.
pub async fn read_table(client: &Client, table: &QualifiedName) -> Result<TableInfo, PlanError> {
    let t = table.sql();
    let relkind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE oid = $1::text::regclass",
            &[&t],
        )
        .await
        .map_err(db("reading the table"))?
        .get(0);
    let server_version_num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(db("reading the server version"))?
        .get(0);
    let columns = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                    CASE WHEN tn.nspname = 'pg_catalog' THEN ty.typname::text
                         ELSE quote_ident(tn.nspname) || '.' || quote_ident(ty.typname) END,
                    a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
                    a.attgenerated::text,
                    (SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname)
                       FROM pg_depend dep JOIN pg_class s ON s.oid = dep.objid
                       JOIN pg_namespace sn ON sn.oid = s.relnamespace
                      WHERE dep.classid = 'pg_class'::regclass AND dep.refobjid = a.attrelid
                        AND dep.refobjsubid = a.attnum AND s.relkind = 'S' AND dep.deptype = 'a'
                      LIMIT 1),
                    coalesce(array(SELECT r.attname::text FROM pg_depend dep
                       JOIN pg_attribute r ON r.attrelid = dep.refobjid AND r.attnum = dep.refobjsubid
                      WHERE a.attgenerated <> '' AND dep.classid = 'pg_attrdef'::regclass
                        AND dep.objid = d.oid AND dep.refobjid = a.attrelid
                        AND dep.refobjsubid <> a.attnum ORDER BY r.attnum), '{}')
             FROM pg_attribute a
             JOIN pg_type ty ON ty.oid = a.atttypid JOIN pg_namespace tn ON tn.oid = ty.typnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&t],
        )
        .await
        .map_err(db("reading the columns"))?
        .into_iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            full_type: r.get(1),
            base_type: r.get(2),
            not_null: r.get(3),
            default: r.get(4),
            identity: r.get(5),
            generated: r.get(6),
            owned_sequence: r.get(7),
            identity_sequence: None,
            generated_from: r.get(8),
        })
        .collect::<Vec<_>>();
    let mut columns = columns;
    for r in client
        .query(
            "SELECT a.attname::text, sn.nspname::text, s.relname::text,
                    format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax,
                    q.seqcache, q.seqcycle,
                    coalesce(array(SELECT 'GRANT ' || p.privilege_type || ' ON SEQUENCE {} TO '
                        || CASE WHEN p.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(p.grantee)) END
                        || CASE WHEN p.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                      FROM aclexplode(s.relacl) p WHERE p.grantee <> s.relowner ORDER BY 1), '{}')
               FROM pg_attribute a
               JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.refobjid = a.attrelid
                AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'
               JOIN pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
               JOIN pg_namespace sn ON sn.oid = s.relnamespace
               JOIN pg_sequence q ON q.seqrelid = s.oid
              WHERE a.attrelid = $1::text::regclass AND a.attidentity <> '' AND NOT a.attisdropped",
            &[&t],
        )
        .await
        .map_err(db("reading the identity sequences"))?
    {
        let column: String = r.get(0);
        if let Some(c) = columns.iter_mut().find(|c| c.name == column) {
            c.identity_sequence = Some(IdentitySequence {
                name: QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                data_type: r.get(3),
                start: r.get(4),
                increment: r.get(5),
                min: r.get(6),
                max: r.get(7),
                cache: r.get(8),
                cycle: r.get(9),
                grants: r.get(10),
            });
        }
    }
    let key = match discover_copy_key(client, table).await {
        Ok(k) => Ok(k),
        Err(MigrateError::NoUsableKey { reason, .. }) => Err(reason),
        Err(e) => return Err(PlanError::Database(e.to_string())),
    };
    let indexes = client
        .query(
            "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisunique,
                    (SELECT k.contype::text FROM pg_constraint k WHERE k.conindid = i.indexrelid
                       AND k.conrelid = i.indrelid LIMIT 1),
                    quote_ident(n.nspname) || '.' || quote_ident(tc.relname),
                    coalesce(array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) u
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u), '{}')
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = tc.relnamespace
             WHERE i.indrelid = $1::text::regclass ORDER BY ic.relname",
            &[&t],
        )
        .await
        .map_err(db("reading the indexes"))?
        .into_iter()
        .map(|r| {
            let def: String = r.get(1);
            let on: String = r.get(4);
            let tail = def
                .find(&format!(" ON {on} "))
                .or_else(|| def.find(&format!(" ON ONLY {on} ")))
                .map(|at| {
                    let rest = &def[at + 4..];
                    let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
                    rest[on.len()..].trim_start().to_string()
                })
                .unwrap_or_default();
            IndexInfo {
                name: r.get(0),
                tail,
                unique: r.get(2),
                constraint: r.get::<_, Option<String>>(3).and_then(|s| s.chars().next()),
                columns: r.get(5),
            }
        })
        .collect();
    // Definitions with every name schema-qualified: the shadow's constraints are created on the
    // control connection, whose search_path may differ from this one.
    let constraints = carried::with_qualified_names(
        client,
        client.query(
            "SELECT k.conname::text, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid),
                    k.convalidated,
                    coalesce(array(SELECT a.attname::text FROM unnest(k.conkey) u
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u), '{}'),
                    CASE WHEN k.contype = 'f' AND k.confrelid = k.conrelid
                         THEN pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) END
             FROM pg_catalog.pg_constraint k
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE k.conrelid = $1::text::regclass AND k.contype IN ('c', 'f')
            ORDER BY k.conname",
            &[&t],
        ),
    )
    .await
    .map_err(db("reading the constraints"))?
    .into_iter()
    .map(|r| ConstraintInfo {
        name: r.get(0),
        kind: r.get::<_, String>(1).chars().next().unwrap_or('c'),
        def: r.get(2),
        valid: r.get(3),
        columns: r.get(4),
        self_reference: r.get(5),
    })
    .collect();
    let names = |sql: &'static str, what: &'static str| {
        let t = t.clone();
        async move {
            client
                .query(sql, &[&t])
                .await
                .map_err(db(what))
                .map(|rows| {
                    rows.into_iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>()
                })
        }
    };
    let triggers = names(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal AND tgname NOT LIKE '~duet\\_net%' ORDER BY 1",
        "reading the triggers",
    )
    .await?;
    let rules = names(
        "SELECT rulename::text FROM pg_rewrite WHERE ev_class = $1::text::regclass AND rulename <> '_RETURN' ORDER BY 1",
        "reading the rules",
    )
    .await?;
    let views = names(
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
           JOIN pg_class v ON v.oid = r.ev_class
          WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
            AND d.refobjid = $1::text::regclass AND v.oid <> d.refobjid ORDER BY 1",
        "reading the views",
    )
    .await?;
    let inheritance = names(
        "SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = $1::text::regclass
         UNION ALL SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::text::regclass",
        "reading inheritance",
    )
    .await?;
    let publications = names(
        "SELECT pubname::text FROM pg_publication_tables
          WHERE (quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass = $1::text::regclass
          ORDER BY 1",
        "reading publications",
    )
    .await?;
    let acl = client
        .query_one(
            "SELECT quote_ident(pg_get_userbyid(c.relowner)),
                    coalesce(array(SELECT 'GRANT ' || a.privilege_type || ' ON {} TO '
                        || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
                        || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                      FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner
                      ORDER BY 1), '{}'),
                    c.relrowsecurity OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid),
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL)
               FROM pg_class c WHERE c.oid = $1::text::regclass",
            &[&t],
        )
        .await
        .map_err(db("reading the table's privileges"))?;
    let mut read = carried::read(client, table).await.map_err(db(
        "reading the views, triggers and policies bound to the table",
    ))?;
    let uncarried = carried::uncarried_dependents(client, table, &read.carried)
        .await
        .map_err(db("reading what depends on the table"))?;
    if !uncarried.is_empty() {
        read.blockers.push(format!(
            "objects depend on {t} that duet does not carry over to the new shape ({}): they \
             are bound to the table itself (or to a view over it) and would stay with the side \
             the cutover renames away. Drop them for the migration and re-create them after \
             `complete`",
            uncarried.join(", ")
        ));
    }
    if let Some(blocker) = carried::row_security_blocker(client, table)
        .await
        .map_err(db("reading the row-level security of the table"))?
    {
        read.blockers.push(blocker);
    }
    Ok(TableInfo {
        carried: read.carried,
        carry_blockers: read.blockers,
        foreign_key_blockers: read.foreign_key_blockers,
        refreshed_views: read.refreshed,
        owner: acl.get(0),
        grants: acl.get(1),
        row_security: acl.get(2),
        column_privileges: acl.get(3),
        name: table.clone(),
        relkind: relkind.chars().next().unwrap_or('r'),
        columns,
        key,
        indexes,
        constraints,
        triggers,
        rules,
        views,
        inheritance,
        publications,
        server_version_num: u32::try_from(server_version_num).unwrap_or(0),
    })
}
