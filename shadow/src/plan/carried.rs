//! Objects bound to a table that a shadow migration carries over to the new shape at the flip
//! (and back to the old one at a revert): views and materialized views over the table (directly
//! or through each other), rules that read or write it through them, the table's own triggers,
//! and its row-level security (the `ENABLE`/`FORCE` flags and every policy).
//!
//! Each of them is bound to the table by identity — a view's query by the table's OID and column
//! numbers, a trigger or policy by the table it is on — so a swap by renames would leave them on
//! the side that is renamed away. They are read here, as they are when the migration is planned,
//! into the [`Carried`] part of the plan (the operator sees them in `plan`), and the flip's and the
//! revert's own transactions re-create them on the side that takes the table's name:
//!
//! - **views** are dropped and created again from their definition, in dependency order (a view
//!   over a view after it), with their options (`check_option`, `security_barrier`,
//!   `security_invoker`), owner, privileges (column privileges too), comments, column defaults,
//!   `INSTEAD OF` triggers and rules, and a materialized view's indexes. `CREATE OR REPLACE VIEW`
//!   could not do it: a view's column changes type with the table's (int → bigint). A
//!   materialized view is created `WITH NO DATA` and, when the dropped one held rows, refreshed
//!   (as its owner, as PostgreSQL refreshes) inside the flip: its query runs while clients are
//!   held, which `plan` warns about with its size;
//! - **the table's triggers** fire exactly once per application write in every phase: before the
//!   flip only the table has them (the shadow, written by the dual-writes and the safety net, has
//!   none); the flip creates them on the new table and disables them on the old one, which then
//!   receives only duet's reverse mirror; a revert enables them on the old table again (after its
//!   housekeeping, which must not fire them) and disables them on the new one. A shadow column's
//!   table keeps its triggers, but each is created again at the swap, so a column list
//!   (`UPDATE OF c`) or a `WHEN` clause names the column that now has the name;
//! - **row-level security**: a table that enforces it is mirrored by the safety net only (its
//!   writes are not rewritten, see [`crate::plan::Plan::writes_mirrored_by_net_only`]); its shadow
//!   enforces row-level security with no policy before the flip, so an application role sees
//!   and writes nothing there; the flip gives the new table the flags and every policy.
//!
//! Objects made *after* planning are not carried: the flip's transaction compares what is bound
//! to the table then with the plan ([`differences`], [`uncarried_dependents`]) and refuses, naming
//! them, rather than leave anything behind.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::ident::{quote_ident, QualifiedName};

use super::referencing::{self, ReferencingKey};
use super::steps::{step, BRIEF};
use super::{Step, StepLock};
use crate::check::LockMode;

/// What a shadow migration carries over from the old shape to the new one (and back at a revert),
/// as it was when the migration was planned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// Views and materialized views over the table, directly or through each other, each after
    /// every carried view it reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<CarriedView>,
    /// Rules other than a view's own definition that are dropped with a carried view or read or
    /// write the table or a carried view (on other relations than the table itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<CarriedRule>,
    /// The table's own triggers (not duet's safety net), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<CarriedTrigger>,
    /// The table's row-level security, when it is enabled or has policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_security: Option<RowSecurity>,
    /// Foreign keys of other tables referencing the table (a shadow table re-points them at the
    /// flip: [`super::referencing`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ReferencingKey>,
}

/// A view or materialized view, re-created under its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedView {
    /// Its name.
    pub name: QualifiedName,
    /// A materialized view.
    #[serde(default)]
    pub materialized: bool,
    /// `pg_get_viewdef`, every name schema-qualified (read with an empty `search_path`).
    pub definition: String,
    /// `reloptions` (`check_option=local`, `security_barrier=true`, a materialized view's storage
    /// parameters).
    #[serde(default)]
    pub options: Vec<String>,
    /// Its owner (quoted role name).
    pub owner: String,
    /// Statements that put its privileges back once it exists again: empty when it has the
    /// owner's default privileges only.
    #[serde(default)]
    pub privileges: Vec<String>,
    /// Statements re-creating what else belongs to it (column defaults, `INSTEAD OF` triggers, a
    /// materialized view's indexes, comments), in that order.
    #[serde(default)]
    pub attached: Vec<String>,
    /// A materialized view holding rows when planned; `false` for a view. Informational: the
    /// cutover refreshes the new one when the dropped one holds rows then.
    #[serde(default)]
    pub populated: bool,
}

impl CarriedView {
    fn kind(&self) -> &'static str {
        if self.materialized {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        }
    }
}

/// A rule re-created on its relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedRule {
    /// The relation it is on.
    pub relation: QualifiedName,
    /// Its name.
    pub name: String,
    /// `pg_get_ruledef` (names schema-qualified), without the trailing `;`.
    pub definition: String,
    /// `COMMENT ON RULE …`, when it has a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A trigger of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedTrigger {
    /// Its name.
    pub name: String,
    /// `pg_get_triggerdef` (`CREATE [CONSTRAINT] TRIGGER … ON <schema>.<table> …`, names
    /// schema-qualified): the table it names is whichever side has the table's name when it runs.
    pub definition: String,
    /// `pg_trigger.tgenabled`: `O` (fires), `D` (disabled), `R` (replica only), `A` (always).
    pub enabled: String,
    /// `COMMENT ON TRIGGER …`, when it has a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl CarriedTrigger {
    /// Whether an `UPDATE` that sets none of the table's own columns fires it: it is enabled for
    /// ordinary sessions and fires on `UPDATE` without an `OF column` list (a shadow column's
    /// backfill sets only the shadow column, which no trigger can name).
    pub fn fires_on_any_update(&self) -> bool {
        if !matches!(self.enabled.as_str(), "O" | "A") {
            return false;
        }
        // `CREATE [CONSTRAINT] TRIGGER <name> {BEFORE|AFTER|INSTEAD OF} <events> ON …`: the
        // events are the words between the name and the first ` ON ` after it.
        let rest = self
            .definition
            .strip_prefix("CREATE CONSTRAINT TRIGGER ")
            .or_else(|| self.definition.strip_prefix("CREATE TRIGGER "))
            .unwrap_or(&self.definition);
        let after_name = rest
            .get(crate::ident::quote_ident(&self.name).len()..)
            .unwrap_or(rest);
        let events = after_name.split(" ON ").next().unwrap_or(after_name);
        let words: Vec<&str> = events.split_whitespace().collect();
        words
            .iter()
            .enumerate()
            .any(|(i, w)| *w == "UPDATE" && words.get(i + 1) != Some(&"OF"))
    }

    /// The `ALTER TABLE … TRIGGER` that gives the trigger on `table` its original state, if it is
    /// not the state a new trigger has (`O`).
    fn original_state(&self, table: &str) -> Option<String> {
        let action = match self.enabled.as_str() {
            "D" => "DISABLE",
            "R" => "ENABLE REPLICA",
            "A" => "ENABLE ALWAYS",
            _ => return None,
        };
        Some(format!(
            "ALTER TABLE {table} {action} TRIGGER {}",
            quote_ident(&self.name)
        ))
    }

    /// The `ALTER TABLE … TRIGGER` that restores the state of a trigger that was disabled.
    fn restore(&self, table: &str) -> Option<String> {
        let action = match self.enabled.as_str() {
            "D" => return None,
            "R" => "ENABLE REPLICA",
            "A" => "ENABLE ALWAYS",
            _ => "ENABLE",
        };
        Some(format!(
            "ALTER TABLE {table} {action} TRIGGER {}",
            quote_ident(&self.name)
        ))
    }

    fn create(&self, table: &str) -> String {
        let mut sql = self.definition.clone();
        for extra in self
            .original_state(table)
            .into_iter()
            .chain(self.comment.clone())
        {
            sql.push_str(";\n");
            sql.push_str(&extra);
        }
        sql
    }
}

/// The table's row-level security.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSecurity {
    /// `ENABLE ROW LEVEL SECURITY`.
    pub enabled: bool,
    /// `FORCE ROW LEVEL SECURITY` (the owner is subject to the policies too).
    pub forced: bool,
    /// Every policy, by name.
    #[serde(default)]
    pub policies: Vec<CarriedPolicy>,
}

/// One policy of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedPolicy {
    /// Its name.
    pub name: String,
    /// What it does, for people (`permissive, FOR ALL, TO app`).
    pub summary: String,
    /// `CREATE POLICY … ON <table> …` (expressions from `pg_get_expr`, names schema-qualified).
    pub statement: String,
    /// `COMMENT ON POLICY …`, when it has a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Carried {
    /// Nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
            && self.rules.is_empty()
            && self.triggers.is_empty()
            && self.row_security.is_none()
            && self.foreign_keys.is_empty()
    }

    /// Whether the table enforces row-level security (its writes are then mirrored by the safety
    /// net only).
    pub fn enforces_row_security(&self) -> bool {
        self.row_security.as_ref().is_some_and(|r| r.enabled)
    }

    /// One line per carried object, for `plan` and messages.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in &self.views {
            out.push(format!(
                "{} {}{}",
                v.kind().to_lowercase(),
                v.name,
                if v.materialized {
                    " (refreshed inside the cutover when it holds rows)"
                } else {
                    ""
                }
            ));
        }
        for r in &self.rules {
            out.push(format!("rule {} on {}", quote_ident(&r.name), r.relation));
        }
        for t in &self.triggers {
            out.push(format!(
                "trigger {}{}",
                quote_ident(&t.name),
                match t.enabled.as_str() {
                    "D" => " (disabled)",
                    "R" => " (replica only)",
                    "A" => " (always)",
                    _ => "",
                }
            ));
        }
        if let Some(rls) = &self.row_security {
            let flags = match (rls.enabled, rls.forced) {
                (true, true) => "enabled and forced",
                (true, false) => "enabled",
                (false, true) => "not enabled (forced)",
                (false, false) => "not enabled",
            };
            out.push(format!("row-level security {flags}"));
            for p in &rls.policies {
                out.push(format!("policy {} ({})", quote_ident(&p.name), p.summary));
            }
        }
        for k in &self.foreign_keys {
            out.push(format!(
                "{} ({}){}",
                k.label(),
                k.definition,
                if k.valid { "" } else { " NOT VALID" }
            ));
        }
        out
    }

    /// The names of the carried views (quoted SQL), in dependency order.
    fn view_names(&self) -> Vec<String> {
        self.views.iter().map(|v| v.name.sql()).collect()
    }

    /// Steps that drop the carried rules and views from the side that has the table's name now
    /// (rules first: a rule may read a view dropped after it; views each before what it reads).
    pub(super) fn drop_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if !self.rules.is_empty() {
            steps.push(step(
                self.rules
                    .iter()
                    .map(|r| {
                        format!(
                            "DROP RULE {} ON {}",
                            quote_ident(&r.name),
                            r.relation.sql()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(";\n"),
                StepLock::new(LockMode::AccessExclusive, "on each rule's relation (brief)"),
                "rules reading the table or its views are bound to the side being renamed away; re-created below",
            ));
        }
        if !self.views.is_empty() {
            // Whether each materialized view holds rows right now decides whether the new one is
            // refreshed (below): it may have been refreshed since planning, or emptied.
            let populated = self
                .views
                .iter()
                .enumerate()
                .filter(|(_, v)| v.materialized)
                .map(|(i, v)| {
                    format!(
                        "SELECT pg_catalog.set_config('{}', c.relispopulated::text, true) FROM pg_catalog.pg_class c WHERE c.oid = {}::regclass",
                        populated_setting(i),
                        literal(&v.name.sql())
                    )
                });
            let drops = self
                .views
                .iter()
                .rev()
                .map(|v| format!("DROP {} {}", v.kind(), v.name.sql()));
            steps.push(step(
                populated.chain(drops).collect::<Vec<_>>().join(";\n"),
                StepLock::new(LockMode::AccessExclusive, "on each view (brief)"),
                "views follow the table's OID and column numbers: dropped here, re-created below over the side that has the table's name",
            ));
        }
        steps
    }

    /// Steps that create the carried views (each with everything that belongs to it) and rules
    /// again, reading whichever side has the table's name now.
    pub(super) fn create_view_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for (i, v) in self.views.iter().enumerate() {
            let name = v.name.sql();
            let options = if v.options.is_empty() {
                String::new()
            } else {
                format!(" WITH ({})", v.options.join(", "))
            };
            let mut sql = format!(
                "CREATE {} {name}{options} AS {}{};\nALTER {} {name} OWNER TO {}",
                v.kind(),
                v.definition,
                if v.materialized { " WITH NO DATA" } else { "" },
                v.kind(),
                v.owner
            );
            for extra in v.privileges.iter().chain(&v.attached) {
                sql.push_str(";\n");
                sql.push_str(extra);
            }
            let (lock, why) = if v.materialized {
                // Refreshed when the dropped one held rows, as its owner, in a restricted
                // security context, as PostgreSQL refreshes: its query never runs with duet's
                // rights.
                sql.push_str(&format!(
                    ";\nDO $duet$ BEGIN IF pg_catalog.current_setting('{}', true) = 'true' THEN REFRESH MATERIALIZED VIEW {name}; END IF; END $duet$",
                    populated_setting(i)
                ));
                (
                    StepLock::new(LockMode::AccessExclusive, "on the new materialized view; its query runs while clients are held"),
                    "the materialized view again, over the side that has the table's name, with its indexes, owner, privileges and comments, refreshed when the dropped one held rows",
                )
            } else {
                (
                    StepLock::new(LockMode::AccessExclusive, "on the new view (brief)"),
                    "the view again, over the side that has the table's name (its columns take the new types), with its options, owner, privileges, comments and triggers",
                )
            };
            steps.push(step(sql, lock, why));
        }
        if !self.rules.is_empty() {
            let mut sql = Vec::new();
            for r in &self.rules {
                sql.push(r.definition.clone());
                sql.extend(r.comment.clone());
            }
            steps.push(step(
                sql.join(";\n"),
                StepLock::new(LockMode::AccessExclusive, "on each rule's relation (brief)"),
                "the rules again, reading or writing the side that has the table's name",
            ));
        }
        steps
    }

    /// The flip of a shadow table: the new table (named `table` by now) gets the triggers, the
    /// row-level security and the policies; the old one (`old`) stops firing its triggers (it
    /// receives only duet's reverse mirror from now on); views and rules move to the new table.
    pub(super) fn shadow_table_flip(&self, table: &str, old: &str) -> Vec<Step> {
        let mut steps = self.drop_steps();
        if !self.triggers.is_empty() {
            steps.push(step(
                self.triggers
                    .iter()
                    .map(|t| {
                        format!(
                            "ALTER TABLE {old} DISABLE TRIGGER {}",
                            quote_ident(&t.name)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(";\n"),
                StepLock::new(LockMode::ShareRowExclusive, "on the old table (held already)"),
                "the old table's triggers stop firing: from now on it receives only duet's mirror of writes the new table's triggers already saw",
            ));
            for t in &self.triggers {
                steps.push(step(
                    t.create(table),
                    StepLock::new(LockMode::ShareRowExclusive, "on the new table (held already)"),
                    "the trigger on the new table: it fires once for every application write from now on",
                ));
            }
        }
        steps.extend(self.row_security_steps(table, false));
        steps.extend(self.create_view_steps());
        steps.extend(referencing::repoint_steps(&self.foreign_keys));
        steps
    }

    /// The steps that validate again, after a shadow table's flip or revert, the referencing
    /// foreign keys it re-created `NOT VALID` (those valid when planned).
    pub(super) fn validate_foreign_keys(&self) -> Vec<Step> {
        referencing::validate_steps(&self.foreign_keys)
    }

    /// The revert of a shadow table: the new table (parked as `parked`) stops firing its
    /// triggers, the old one (named `table` again) fires them as before; views and rules move
    /// back to the old table. Runs after the revert's housekeeping on the old table, which must
    /// not fire them.
    pub(super) fn shadow_table_revert(&self, table: &str, parked: &str) -> Vec<Step> {
        let mut steps = self.drop_steps();
        if !self.triggers.is_empty() {
            let mut sql: Vec<String> = self
                .triggers
                .iter()
                .map(|t| {
                    format!(
                        "ALTER TABLE {parked} DISABLE TRIGGER {}",
                        quote_ident(&t.name)
                    )
                })
                .collect();
            sql.extend(self.triggers.iter().filter_map(|t| t.restore(table)));
            steps.push(step(
                sql.join(";\n"),
                StepLock::new(LockMode::ShareRowExclusive, "on both tables (held already)"),
                "the old table's triggers fire again, as they did before the cutover; the new table's no longer",
            ));
        }
        steps.extend(self.create_view_steps());
        steps.extend(referencing::repoint_steps(&self.foreign_keys));
        steps
    }

    /// The swap of a shadow column (flip and revert alike): the table keeps its triggers and
    /// policies, but each is created again so that the columns it names are the ones that have
    /// those names now; views and rules likewise.
    pub(super) fn shadow_column_swap(&self, table: &str) -> Vec<Step> {
        let mut steps = self.drop_steps();
        for t in &self.triggers {
            steps.push(step(
                format!(
                    "DROP TRIGGER {} ON {table};\n{}",
                    quote_ident(&t.name),
                    t.create(table)
                ),
                StepLock::new(LockMode::ShareRowExclusive, "(held already)"),
                "the trigger again, so its column list and WHEN clause name the columns that have those names now",
            ));
        }
        steps.extend(self.row_security_steps(table, true));
        steps.extend(self.create_view_steps());
        steps
    }

    /// The row-level security of `table` and its policies (dropped first when `replace`: the
    /// policies are on the table already and must name its columns anew).
    fn row_security_steps(&self, table: &str, replace: bool) -> Vec<Step> {
        let Some(rls) = &self.row_security else {
            return Vec::new();
        };
        let mut sql = Vec::new();
        if !replace {
            if rls.enabled {
                sql.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
            }
            if rls.forced {
                sql.push(format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"));
            }
        }
        for p in &rls.policies {
            if replace {
                sql.push(format!("DROP POLICY {} ON {table}", quote_ident(&p.name)));
            }
            sql.push(p.statement.clone());
            sql.extend(p.comment.clone());
        }
        if sql.is_empty() {
            return Vec::new();
        }
        vec![step(
            sql.join(";\n"),
            BRIEF,
            "the table's row-level security and every policy, so each role sees and writes exactly the rows it did",
        )]
    }
}

/// The transaction-local setting that carries whether the `i`-th carried (materialized) view
/// held rows from the step that drops it to the step that creates it again.
fn populated_setting(i: usize) -> String {
    format!("duet.populated_{i}")
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What [`read`] found: what can be carried, and what cannot.
#[derive(Debug, Clone, Default)]
pub struct CarriedRead {
    /// What a shadow migration of the table carries over.
    pub carried: Carried,
    /// Why a shadow migration of the table cannot carry everything bound to it (one sentence
    /// each, saying what to do); empty when it can.
    pub blockers: Vec<String>,
    /// Why a shadow table could not re-point a foreign key of another table referencing the
    /// table (a shadow column leaves such keys alone), in the same form.
    pub foreign_key_blockers: Vec<String>,
    /// Materialized views and their size (estimated rows, bytes): refreshed inside the flip when
    /// they hold rows, while clients are held.
    pub refreshed: Vec<(QualifiedName, f32, i64)>,
}

/// Runs `read` with an empty `search_path`, so every name `pg_get_*def` prints is
/// schema-qualified (the definitions then mean the same on any connection), and puts the
/// session's path back afterwards, also on error.
pub(super) async fn with_qualified_names<C, T, F>(
    client: &C,
    read: F,
) -> Result<T, tokio_postgres::Error>
where
    C: GenericClient,
    F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    let saved: String = client
        .query_one("SELECT pg_catalog.current_setting('search_path')", &[])
        .await?
        .get(0);
    client
        .execute(
            "SELECT pg_catalog.set_config('search_path', '', false)",
            &[],
        )
        .await?;
    let result = read.await;
    client
        .execute(
            "SELECT pg_catalog.set_config('search_path', $1, false)",
            &[&saved],
        )
        .await?;
    result
}

/// Reads what a shadow migration of `table` would carry over, and what it could not.
pub async fn read<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
) -> Result<CarriedRead, tokio_postgres::Error> {
    with_qualified_names(client, read_qualified(client, table)).await
}

async fn read_qualified<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
) -> Result<CarriedRead, tokio_postgres::Error> {
    let t = table.sql();
    let mut out = CarriedRead::default();
    // Views over the table, directly or through other views, each at the length of its longest
    // path from the table: a view comes after every view it reads.
    let views = client
        .query(
            "WITH RECURSIVE over(oid, depth) AS (
                 SELECT r.ev_class, 1
                   FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
                  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass
                    AND d.refobjid = $1::text::regclass
                    AND r.rulename = '_RETURN' AND r.ev_class <> d.refobjid
               UNION ALL
                 SELECT r.ev_class, over.depth + 1
                   FROM over
                   JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass
                                              AND d.refobjid = over.oid
                                              AND d.classid = 'pg_catalog.pg_rewrite'::regclass
                   JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
                  WHERE r.rulename = '_RETURN' AND r.ev_class <> over.oid AND over.depth < 100
             )
             SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
                    c.relpersistence::text, pg_catalog.pg_has_role(c.relowner, 'USAGE'),
                    -- CREATE on the schema for duet's role (to create it) and for the owner (to
                    -- be given it), which a superuser needs neither of.
                    (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
                    OR (pg_catalog.has_schema_privilege(c.relnamespace, 'CREATE')
                        AND pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'CREATE')),
                    c.reltuples, pg_catalog.pg_total_relation_size(c.oid)
               FROM over
               JOIN pg_catalog.pg_class c ON c.oid = over.oid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              GROUP BY c.oid, n.nspname
              ORDER BY max(over.depth), n.nspname, c.relname",
            &[&t],
        )
        .await?;
    let mut view_oids: Vec<u32> = Vec::new();
    for row in &views {
        let oid: u32 = row.get(0);
        let name = QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2));
        let kind: String = row.get(3);
        let persistence: String = row.get(4);
        let may_own: bool = row.get(5);
        let may_create: bool = row.get(6);
        if persistence == "t" {
            out.blockers.push(format!(
                "temporary view {name} of another session reads {t}: it cannot be re-created at \
                 the cutover; end that session (or drop the view) and plan again"
            ));
            continue;
        }
        if !may_own || !may_create {
            out.blockers.push(format!(
                "view {name} reads {t}, and duet's role cannot re-create it at the cutover \
                 (it needs to be a member of the view's owner, and both need CREATE on its \
                 schema): grant that, or drop the view for the migration and re-create it \
                 after `complete`"
            ));
            continue;
        }
        let view = read_view(client, oid, name.clone(), kind == "m").await?;
        if view.materialized {
            out.refreshed.push((name, row.get(7), row.get(8)));
        }
        view_oids.push(oid);
        out.carried.views.push(view);
    }
    // Rules other than a view's definition: on a carried view (dropped with it), or reading or
    // writing the table or a carried view from another relation. The table's own rules are the
    // audit's business (refused).
    let rules = client
        .query(
            "SELECT DISTINCT n.nspname::text, c.relname::text, r.rulename::text,
                    pg_catalog.pg_get_ruledef(r.oid),
                    (SELECT 'COMMENT ON RULE ' || pg_catalog.quote_ident(r.rulename) || ' ON '
                            || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
                            || ' IS ' || pg_catalog.quote_literal(d.description)
                       FROM pg_catalog.pg_description d
                      WHERE d.classoid = 'pg_catalog.pg_rewrite'::regclass AND d.objoid = r.oid),
                    pg_catalog.pg_has_role(c.relowner, 'USAGE')
               FROM pg_catalog.pg_rewrite r
               JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE r.rulename <> '_RETURN' AND r.ev_class <> $1::text::regclass
                AND (r.ev_class = ANY($2::oid[])
                     OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                                   AND d.objid = r.oid
                                   AND d.refclassid = 'pg_catalog.pg_class'::regclass
                                   AND (d.refobjid = $1::text::regclass OR d.refobjid = ANY($2::oid[]))))
              ORDER BY 1, 2, 3",
            &[&t, &view_oids],
        )
        .await?;
    for row in &rules {
        let relation = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        let name: String = row.get(2);
        if !row.get::<_, bool>(5) {
            out.blockers.push(format!(
                "rule {} on {relation} reads or writes {t}, and duet's role cannot re-create it \
                 at the cutover (it needs to be a member of the owner of {relation}): grant that \
                 to duet's role, or drop the rule for the migration and re-create it after \
                 `complete`",
                quote_ident(&name)
            ));
            continue;
        }
        out.carried.rules.push(CarriedRule {
            relation,
            name,
            definition: trim_statement(row.get(3)),
            comment: row.get(4),
        });
    }
    let triggers = client
        .query(
            "SELECT g.tgname::text, pg_catalog.pg_get_triggerdef(g.oid), g.tgenabled::text,
                    (SELECT 'COMMENT ON TRIGGER ' || pg_catalog.quote_ident(g.tgname) || ' ON '
                            || $1 || ' IS ' || pg_catalog.quote_literal(d.description)
                       FROM pg_catalog.pg_description d
                      WHERE d.classoid = 'pg_catalog.pg_trigger'::regclass AND d.objoid = g.oid),
                    pg_catalog.has_function_privilege(g.tgfoid, 'EXECUTE')
               FROM pg_catalog.pg_trigger g
              WHERE g.tgrelid = $1::text::regclass AND NOT g.tgisinternal
                AND g.tgname NOT LIKE '~duet\\_net%'
              ORDER BY g.tgname",
            &[&t],
        )
        .await?;
    for row in &triggers {
        let name: String = row.get(0);
        if !row.get::<_, bool>(4) {
            out.blockers.push(format!(
                "trigger {} of {t} calls a function duet's role may not execute, so it cannot \
                 create the trigger on the new table: GRANT EXECUTE on the function to duet's \
                 role",
                quote_ident(&name)
            ));
            continue;
        }
        out.carried.triggers.push(CarriedTrigger {
            name,
            definition: row.get(1),
            enabled: row.get(2),
            comment: row.get(3),
        });
    }
    out.carried.row_security = read_row_security(client, &t).await?;
    let (foreign_keys, blockers) = referencing::read(client, &t).await?;
    out.carried.foreign_keys = foreign_keys;
    out.foreign_key_blockers = blockers;
    Ok(out)
}

/// One carried view: its definition and everything that belongs to it, as statements.
async fn read_view<C: GenericClient>(
    client: &C,
    oid: u32,
    name: QualifiedName,
    materialized: bool,
) -> Result<CarriedView, tokio_postgres::Error> {
    let qualified = name.sql();
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_get_viewdef(c.oid), coalesce(c.reloptions::text[], '{}'),
                    pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner)),
                    c.relispopulated, c.relacl IS NOT NULL,
                    coalesce(array(
                      SELECT 'GRANT ' || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
                             || ' ON ' || $2 || ' TO '
                             || CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
                             || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                        FROM pg_catalog.aclexplode(c.relacl) a
                       GROUP BY a.grantee, a.is_grantable ORDER BY 1), '{}'),
                    coalesce(array(
                      SELECT 'GRANT ' || a.privilege_type || ' ('
                             || string_agg(pg_catalog.quote_ident(att.attname), ', ' ORDER BY att.attnum)
                             || ') ON ' || $2 || ' TO '
                             || CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
                             || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
                        FROM pg_catalog.pg_attribute att, pg_catalog.aclexplode(att.attacl) a
                       WHERE att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped
                       GROUP BY a.grantee, a.is_grantable, a.privilege_type ORDER BY 1), '{}')
               FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&oid, &qualified],
        )
        .await?;
    let mut privileges = Vec::new();
    if row.get::<_, bool>(4) {
        // Explicit privileges: the owner's own may have been narrowed too, so the new view's
        // default ones are taken away first and every entry granted as it was.
        privileges.push(format!(
            "REVOKE ALL ON {qualified} FROM {}",
            row.get::<_, String>(2)
        ));
        privileges.extend(row.get::<_, Vec<String>>(5));
    }
    privileges.extend(row.get::<_, Vec<String>>(6));
    let kind = if materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    };
    let attached: Vec<String> = client
        .query(
            "SELECT s FROM (
               SELECT 1 AS k, a.attnum::bigint AS o,
                      'ALTER VIEW ' || $2 || ' ALTER COLUMN ' || pg_catalog.quote_ident(a.attname)
                      || ' SET DEFAULT ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS s
                 FROM pg_catalog.pg_attrdef d
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                WHERE d.adrelid = $1
               UNION ALL
               SELECT 2, g.oid::bigint, pg_catalog.pg_get_triggerdef(g.oid)
                 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = $1 AND NOT g.tgisinternal
               UNION ALL
               SELECT 3, g.oid::bigint, 'COMMENT ON TRIGGER ' || pg_catalog.quote_ident(g.tgname) || ' ON '
                      || $2 || ' IS ' || pg_catalog.quote_literal(d.description)
                 FROM pg_catalog.pg_trigger g
                 JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_trigger'::regclass
                                                 AND d.objoid = g.oid
                WHERE g.tgrelid = $1 AND NOT g.tgisinternal
               UNION ALL
               SELECT 4, i.indexrelid::bigint, pg_catalog.pg_get_indexdef(i.indexrelid)
                 FROM pg_catalog.pg_index i WHERE i.indrelid = $1
               UNION ALL
               SELECT 5, i.indexrelid::bigint, 'COMMENT ON INDEX '
                      || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(ic.relname)
                      || ' IS ' || pg_catalog.quote_literal(d.description)
                 FROM pg_catalog.pg_index i
                 JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
                 JOIN pg_catalog.pg_description d ON d.classoid = 'pg_catalog.pg_class'::regclass
                                                 AND d.objoid = i.indexrelid AND d.objsubid = 0
                WHERE i.indrelid = $1
               UNION ALL
               SELECT 6, d.objsubid::bigint, CASE WHEN d.objsubid = 0
                        THEN 'COMMENT ON ' || $3 || ' ' || $2
                        ELSE 'COMMENT ON COLUMN ' || $2 || '.' || pg_catalog.quote_ident(a.attname) END
                      || ' IS ' || pg_catalog.quote_literal(d.description)
                 FROM pg_catalog.pg_description d
                 LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
                WHERE d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid = $1
             ) s ORDER BY k, o",
            &[&oid, &qualified, &kind],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(CarriedView {
        name,
        materialized,
        definition: trim_statement(row.get(0)),
        options: row.get(1),
        owner: row.get(2),
        privileges,
        attached,
        populated: materialized && row.get::<_, bool>(3),
    })
}

async fn read_row_security<C: GenericClient>(
    client: &C,
    table: &str,
) -> Result<Option<RowSecurity>, tokio_postgres::Error> {
    let flags = client
        .query_one(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_catalog.pg_class
              WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await?;
    let policies: Vec<CarriedPolicy> = client
        .query(
            "SELECT p.polname::text, p.polpermissive, p.polcmd::text,
                    array(SELECT CASE WHEN r = 0 THEN 'PUBLIC'
                                      ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END
                            FROM unnest(p.polroles) r ORDER BY 1),
                    pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                    pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid),
                    (SELECT 'COMMENT ON POLICY ' || pg_catalog.quote_ident(p.polname) || ' ON '
                            || $1 || ' IS ' || pg_catalog.quote_literal(d.description)
                       FROM pg_catalog.pg_description d
                      WHERE d.classoid = 'pg_catalog.pg_policy'::regclass AND d.objoid = p.oid)
               FROM pg_catalog.pg_policy p
              WHERE p.polrelid = $1::text::regclass
              ORDER BY p.polname",
            &[&table],
        )
        .await?
        .iter()
        .map(|row| {
            let name: String = row.get(0);
            let permissive = if row.get::<_, bool>(1) {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            };
            let command = match row.get::<_, String>(2).as_str() {
                "r" => "SELECT",
                "a" => "INSERT",
                "w" => "UPDATE",
                "d" => "DELETE",
                _ => "ALL",
            };
            let roles = row.get::<_, Vec<String>>(3).join(", ");
            let using: Option<String> = row.get(4);
            let check: Option<String> = row.get(5);
            let mut statement = format!(
                "CREATE POLICY {} ON {table} AS {permissive} FOR {command} TO {roles}",
                quote_ident(&name)
            );
            if let Some(using) = &using {
                statement.push_str(&format!(" USING ({using})"));
            }
            if let Some(check) = &check {
                statement.push_str(&format!(" WITH CHECK ({check})"));
            }
            let mut summary = format!("{}, FOR {command}, TO {roles}", permissive.to_lowercase());
            if let Some(using) = &using {
                summary.push_str(&format!(", USING ({using})"));
            }
            if let Some(check) = &check {
                summary.push_str(&format!(", WITH CHECK ({check})"));
            }
            CarriedPolicy {
                name,
                summary,
                statement,
                comment: row.get(6),
            }
        })
        .collect();
    let (enabled, forced): (bool, bool) = (flags.get(0), flags.get(1));
    if !enabled && !forced && policies.is_empty() {
        return Ok(None);
    }
    Ok(Some(RowSecurity {
        enabled,
        forced,
        policies,
    }))
}

/// A definition as `pg_get_*def` prints it, without the trailing `;` (the statement it goes in
/// continues after it).
fn trim_statement(text: String) -> String {
    text.trim_end().trim_end_matches(';').trim_end().to_owned()
}

/// Why duet's own role could not copy, verify and mirror every row of `table` when row-level
/// security applies to it: `None` when it bypasses the policies (a superuser, a role with
/// `BYPASSRLS`, or the owner's privileges while the table does not `FORCE` row-level security).
pub async fn row_security_blocker<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
) -> Result<Option<String>, tokio_postgres::Error> {
    let t = table.sql();
    let row = client
        .query_one(
            "SELECT c.relrowsecurity, c.relforcerowsecurity,
                    r.rolsuper OR r.rolbypassrls, pg_catalog.pg_has_role(c.relowner, 'USAGE'),
                    current_user::text
               FROM pg_catalog.pg_class c, pg_catalog.pg_roles r
              WHERE c.oid = $1::text::regclass AND r.rolname = current_user",
            &[&t],
        )
        .await?;
    let (enabled, forced, bypass, owner): (bool, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let role: String = row.get(4);
    if !enabled || bypass || (owner && !forced) {
        return Ok(None);
    }
    Ok(Some(format!(
        "{t} enforces row-level security{} and duet's role {} is subject to it: the copy, the \
         verification and the safety net would see only the rows the policies allow. Give the \
         role BYPASSRLS (ALTER ROLE {} BYPASSRLS){}",
        if forced {
            " on its owner too (FORCE)"
        } else {
            ""
        },
        quote_ident(&role),
        quote_ident(&role),
        if forced {
            ""
        } else {
            ", or run duet as the table's owner"
        }
    )))
}

/// What depends on `table` or on a carried view and is not carried: objects bound to the table
/// by identity that the swap would leave on the side renamed away (a rule, a policy of another
/// table reading it, a `BEGIN ATOMIC` function), or that would keep a carried view from being
/// dropped (a function or column of its row type, a view over it made after planning). Each as
/// `pg_describe_object` names it. Foreign keys of other tables referencing the table are
/// [`differences`]' business (a shadow table carries them; one made after planning is named
/// there).
pub async fn uncarried_dependents<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
    carried: &Carried,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let views = carried.view_names();
    let rule_relations: Vec<String> = carried.rules.iter().map(|r| r.relation.sql()).collect();
    let rule_names: Vec<String> = carried.rules.iter().map(|r| r.name.clone()).collect();
    let triggers: Vec<String> = carried.triggers.iter().map(|t| t.name.clone()).collect();
    let policies: Vec<String> = carried
        .row_security
        .iter()
        .flat_map(|r| r.policies.iter().map(|p| p.name.clone()))
        .collect();
    let rows = client
        .query(
            "WITH carried_views AS (
                 SELECT pg_catalog.to_regclass(v)::oid AS oid FROM unnest($2::text[]) v
             ), carried_rules AS (
                 SELECT r.oid FROM pg_catalog.pg_rewrite r
                  WHERE (r.rulename = '_RETURN' AND r.ev_class IN (SELECT oid FROM carried_views))
                     OR (r.ev_class, r.rulename::text) IN (
                          SELECT pg_catalog.to_regclass(x.rel)::oid, x.name
                            FROM unnest($3::text[], $4::text[]) AS x(rel, name))
             ), watched(classid, oid) AS (
                 SELECT 'pg_catalog.pg_class'::regclass, $1::text::regclass::oid
                 UNION ALL
                 SELECT 'pg_catalog.pg_class'::regclass, oid FROM carried_views WHERE oid IS NOT NULL
                 UNION ALL
                 SELECT 'pg_catalog.pg_type'::regclass, c.reltype
                   FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT oid FROM carried_views)
             )
             SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
               FROM pg_catalog.pg_depend d
               JOIN watched w ON d.refclassid = w.classid AND d.refobjid = w.oid
              WHERE d.deptype = 'n'
                AND NOT (d.classid = 'pg_catalog.pg_rewrite'::regclass
                         AND d.objid IN (SELECT oid FROM carried_rules))
                -- The table's own constraints are the plan's business (it re-creates them).
                AND NOT (d.classid = 'pg_catalog.pg_constraint'::regclass AND EXISTS (
                         SELECT 1 FROM pg_catalog.pg_constraint k
                          WHERE k.oid = d.objid
                            AND (k.conrelid = $1::text::regclass
                                 OR (k.contype = 'f' AND k.confrelid = $1::text::regclass))))
                -- So are its generated columns' expressions (the shadow declares them).
                AND NOT (d.classid = 'pg_catalog.pg_attrdef'::regclass AND EXISTS (
                         SELECT 1 FROM pg_catalog.pg_attrdef a
                          WHERE a.oid = d.objid AND a.adrelid = $1::text::regclass))
                AND NOT (d.classid = 'pg_catalog.pg_trigger'::regclass AND EXISTS (
                         SELECT 1 FROM pg_catalog.pg_trigger g
                          WHERE g.oid = d.objid
                            AND ((g.tgrelid = $1::text::regclass AND g.tgname::text = ANY($5::text[]))
                                 OR g.tgrelid IN (SELECT oid FROM carried_views))))
                AND NOT (d.classid = 'pg_catalog.pg_policy'::regclass AND EXISTS (
                         SELECT 1 FROM pg_catalog.pg_policy p
                          WHERE p.oid = d.objid AND p.polrelid = $1::text::regclass
                            AND p.polname::text = ANY($6::text[])))
              ORDER BY 1",
            &[
                &table.sql(),
                &views,
                &rule_relations,
                &rule_names,
                &triggers,
                &policies,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How what is bound to `table` now differs from what the plan carries (each difference as a
/// sentence naming the object), read in the flip's transaction before anything is renamed: a
/// view, trigger, policy or rule made, dropped or changed straight on PostgreSQL since planning
/// would otherwise be left behind, or re-created as planned and the change lost. With
/// `definitions` false only what exists is compared, not how it is defined (at a revert, the
/// objects were re-created over the new shape by the flip, and their definitions print with the
/// new types).
pub async fn differences<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
    planned: &Carried,
    definitions: bool,
) -> Result<Vec<String>, tokio_postgres::Error> {
    differences_ignoring(client, table, planned, definitions, &[]).await
}

/// [`differences`], leaving out foreign keys of the tables in `ignored`: the shadow tables of the
/// other tables of the same migration, whose keys to `table` the migration made itself (and
/// re-points at the flip).
pub async fn differences_ignoring<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
    planned: &Carried,
    definitions: bool,
    ignored: &[QualifiedName],
) -> Result<Vec<String>, tokio_postgres::Error> {
    // The common case in one round trip (the flip's transaction runs while clients are held):
    // nothing planned, nothing bound now.
    if planned.is_empty() && !anything_bound(client, table).await? {
        return Ok(Vec::new());
    }
    let mut now = read(client, table).await?.carried;
    let mut planned = planned.clone();
    // A materialized view refreshed or emptied since planning is carried as it is then.
    for v in now.views.iter_mut().chain(planned.views.iter_mut()) {
        v.populated = false;
    }
    if !definitions {
        now.forget_definitions();
        planned.forget_definitions();
    }
    let planned = &planned;
    let t = table.sql();
    let mut out = Vec::new();
    compare(&mut out, "view", &planned.views, &now.views, |v| {
        v.name.to_string()
    });
    compare(&mut out, "rule", &planned.rules, &now.rules, |r| {
        format!("{} on {}", quote_ident(&r.name), r.relation)
    });
    compare(&mut out, "trigger", &planned.triggers, &now.triggers, |g| {
        format!("{} on {t}", quote_ident(&g.name))
    });
    let policies = |c: &Carried| {
        c.row_security
            .iter()
            .flat_map(|r| r.policies.clone())
            .collect::<Vec<_>>()
    };
    compare(
        &mut out,
        "policy",
        &policies(planned),
        &policies(&now),
        |p| format!("{} on {t}", quote_ident(&p.name)),
    );
    // A referencing column may change type in the same migration (a group): compared by name,
    // definition and validity only.
    let keys = |c: &Carried| -> Vec<ReferencingKey> {
        c.foreign_keys
            .iter()
            .filter(|k| !ignored.contains(&k.table))
            .cloned()
            .map(|mut k| {
                k.columns.clear();
                k
            })
            .collect()
    };
    compare(&mut out, "foreign key", &keys(planned), &keys(&now), |k| {
        format!("{} on {}", quote_ident(&k.name), k.table)
    });
    let flags = |c: &Carried| {
        c.row_security
            .as_ref()
            .map(|r| (r.enabled, r.forced))
            .unwrap_or_default()
    };
    if flags(planned) != flags(&now) {
        out.push(format!(
            "the row-level security of {t} was switched (ENABLE/FORCE)"
        ));
    }
    Ok(out)
}

/// Whether anything [`read`] would carry is bound to `table`: a trigger (not duet's), a policy,
/// row-level security switched on, a foreign key of another table, or a rule (a view's
/// included) reading it.
async fn anything_bound<C: GenericClient>(
    client: &C,
    table: &QualifiedName,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                             WHERE g.tgrelid = $1::text::regclass AND NOT g.tgisinternal
                               AND g.tgname NOT LIKE '~duet\\_net%')
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = $1::text::regclass)
                 OR (SELECT c.relrowsecurity OR c.relforcerowsecurity FROM pg_catalog.pg_class c
                      WHERE c.oid = $1::text::regclass)
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                             WHERE k.confrelid = $1::text::regclass AND k.contype = 'f'
                               AND k.conrelid <> k.confrelid)
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                              JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
                             WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                               AND d.refclassid = 'pg_catalog.pg_class'::regclass
                               AND d.refobjid = $1::text::regclass
                               AND r.ev_class <> d.refobjid)",
            &[&table.sql()],
        )
        .await?
        .get(0))
}

impl Carried {
    /// Keeps only what identifies each object (for [`differences`] by existence).
    fn forget_definitions(&mut self) {
        for v in &mut self.views {
            *v = CarriedView {
                name: v.name.clone(),
                materialized: v.materialized,
                definition: String::new(),
                options: Vec::new(),
                owner: String::new(),
                privileges: Vec::new(),
                attached: Vec::new(),
                populated: false,
            };
        }
        for r in &mut self.rules {
            r.definition.clear();
            r.comment = None;
        }
        for t in &mut self.triggers {
            t.definition.clear();
            t.enabled.clear();
            t.comment = None;
        }
        if let Some(rls) = &mut self.row_security {
            for p in &mut rls.policies {
                p.summary.clear();
                p.statement.clear();
                p.comment = None;
            }
        }
        for k in &mut self.foreign_keys {
            k.forget_definition();
        }
    }
}

/// Appends to `out` what of `planned` is gone or changed in `now`, and what is new there.
fn compare<T: PartialEq>(
    out: &mut Vec<String>,
    what: &str,
    planned: &[T],
    now: &[T],
    name: impl Fn(&T) -> String,
) {
    for p in planned {
        match now.iter().find(|n| name(n) == name(p)) {
            None => out.push(format!("{what} {} no longer exists", name(p))),
            Some(n) if n != p => out.push(format!("{what} {} was changed", name(p))),
            Some(_) => {}
        }
    }
    for n in now {
        if !planned.iter().any(|p| name(p) == name(n)) {
            out.push(format!("{what} {} was made", name(n)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(enabled: &str) -> CarriedTrigger {
        CarriedTrigger {
            name: "audit".into(),
            definition: "CREATE TRIGGER audit AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()".into(),
            enabled: enabled.into(),
            comment: None,
        }
    }

    #[test]
    fn triggers_keep_their_state() {
        assert_eq!(trigger("O").original_state("t"), None);
        assert_eq!(
            trigger("A").original_state("t").as_deref(),
            Some("ALTER TABLE t ENABLE ALWAYS TRIGGER \"audit\"")
        );
        assert_eq!(trigger("D").restore("t"), None);
        assert_eq!(
            trigger("O").restore("t").as_deref(),
            Some("ALTER TABLE t ENABLE TRIGGER \"audit\"")
        );
    }

    #[test]
    fn views_are_dropped_in_reverse_and_created_in_order() {
        let view = |name: &str, materialized: bool| CarriedView {
            name: QualifiedName::new("public", name),
            materialized,
            definition: "SELECT 1".into(),
            options: vec!["security_barrier=true".into()],
            owner: "\"app\"".into(),
            privileges: vec![],
            attached: vec![],
            populated: materialized,
        };
        let carried = Carried {
            views: vec![view("v", false), view("mv", true)],
            ..Carried::default()
        };
        let drops = carried.drop_steps();
        assert_eq!(
            drops[0].sql,
            "SELECT pg_catalog.set_config('duet.populated_1', c.relispopulated::text, true) FROM pg_catalog.pg_class c WHERE c.oid = '\"public\".\"mv\"'::regclass;\nDROP MATERIALIZED VIEW \"public\".\"mv\";\nDROP VIEW \"public\".\"v\""
        );
        let creates = carried.create_view_steps();
        assert!(creates[0]
            .sql
            .starts_with("CREATE VIEW \"public\".\"v\" WITH (security_barrier=true) AS SELECT 1;"));
        assert!(creates[1].sql.contains("AS SELECT 1 WITH NO DATA;"));
        assert!(creates[1].sql.ends_with(
            "IF pg_catalog.current_setting('duet.populated_1', true) = 'true' THEN REFRESH MATERIALIZED VIEW \"public\".\"mv\"; END IF; END $duet$"
        ));
    }
}
