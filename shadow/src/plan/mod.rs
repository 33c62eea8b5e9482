//! The migration planner: from what the operator asked for (SQL `ALTER TABLE …` statements or a
//! pgroll-format operations file) and the live catalog, to a [`Plan`] — the strategy, why, and
//! every step's SQL with its expected lock — or a [`PlanError`] that says what to do, before
//! anything is touched.
//!
//! The controller in the proxy decides *when* each step runs (phases, the gate, retries); the plan
//! says *what* runs. A plan is stored as JSON in `duet.migrations.plan`, so a restarted proxy
//! resumes from exactly the plan it started with.

mod audit;
pub mod carried;
pub mod catalog;
pub mod group;
pub mod input;
pub mod lock;
pub mod names;
pub mod pgroll;
mod planner;
pub mod referencing;
pub mod steps;
mod strategies;
mod taken_names;

use serde::{Deserialize, Serialize};

use crate::ident::QualifiedName;
use crate::migrate::CopyTarget;

use crate::rewrite::TableRoute;
pub use carried::Carried;
pub use group::{plan_group, GroupOptions};
pub use lock::StepLock;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanInput {
    /// One or more SQL statements (`ALTER TABLE …`, `CREATE INDEX …`): on one table for [`plan`],
    /// on one or several for [`plan_group`].
    Sql {
        /// The statements as typed.
        sql: String,
        /// As `shadow_column` of `PlanInput::Pgroll`.
        #[serde(default, skip_serializing_if = "is_false")]
        shadow_column: bool,
    },
    /// A pgroll-format migration (YAML or JSON): operations on one table for [`plan`], on one or
    /// several for [`plan_group`].
    Pgroll {
        /// The file's contents.
        text: String,
        /// The file name, for messages (may be empty).
        #[serde(default)]
        file_name: String,
        /// The operator accepts a shadow column for a type change of one column without
        /// indexes or constraints (`--shadow-column`): only that column is copied, but clients
        /// see `c__duet` while it runs and the column ends up last, so positional `INSERT` and
        /// `COPY` change meaning. Without it such a change gets a shadow table, which keeps the
        /// column order.
        #[serde(default, skip_serializing_if = "is_false")]
        shadow_column: bool,
    },
}

impl PlanInput {
    /// SQL statements, planned with the default strategies.
    pub fn sql(sql: impl Into<String>) -> Self {
        PlanInput::Sql {
            sql: sql.into(),
            shadow_column: false,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How the change is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Cheap or in its safe form (CONCURRENTLY, NOT VALID + VALIDATE): run the `expand` steps
    /// guarded (lock_timeout, bounded retries with jitter), then done. No flip.
    InPlace,
    /// New column `c__duet` beside the old one, set by the safety net's trigger, backfilled in
    /// chunks, then swapped by renames at the flip. Only when the operator asks for it
    /// (`shadow_column` in [`PlanInput`]): it changes the table's visible shape.
    ShadowColumn,
    /// New table `t__duet`, dual-written by CTE + upsert, copied in chunks, swapped at the flip.
    ShadowTable,
    /// Column renames: nothing to copy; the flip renames and the proxy translates old names.
    Rename,
}

impl PlanKind {
    /// The stored spelling (`duet.migrations.strategy`).
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::InPlace => "in_place",
            PlanKind::ShadowColumn => "shadow_column",
            PlanKind::ShadowTable => "shadow_table",
            PlanKind::Rename => "rename",
        }
    }
}

/// One SQL step and what it is expected to lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The statement (one statement, identifiers quoted).
    pub sql: String,
    /// The strongest lock it takes on the table and what qualifies it; written as one string,
    /// e.g. `ACCESS EXCLUSIVE (brief, metadata only)`, `SHARE UPDATE EXCLUSIVE`, `none`.
    pub lock: StepLock,
    /// Why this step exists, in a few words.
    pub why: String,
    /// Must run outside a transaction block (`CREATE INDEX CONCURRENTLY`, `VALIDATE` is fine in one).
    #[serde(default)]
    pub outside_transaction: bool,
}

pub use crate::migrate::backfill::BackfillSpec;

/// How the existing rows reach the new shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CopySpec {
    /// Shadow table: `duet_shadow::migrate::copier` + `verify` + `repair` + `sweep`.
    Table(CopyTarget),
    /// Shadow column: `duet_shadow::migrate::backfill`.
    Column(BackfillSpec),
}

/// A validated migration of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The table.
    pub table: QualifiedName,
    /// The strategy.
    pub kind: PlanKind,
    /// Why this strategy, in one or two sentences (from the classifier's verdict).
    pub reason: String,
    /// The operator's input, as given (for `status` and the event log).
    pub input: PlanInput,
    /// Guarded DDL before dual-writes start: create the shadow table / add the shadow column /
    /// the in-place statements themselves. Each step is retried on lock timeout.
    pub expand: Vec<Step>,
    /// The route published once `expand` is done (dual-writes on); `None` for in-place and rename.
    pub dual_write_route: Option<TableRoute>,
    /// How existing rows are copied; `None` for in-place and rename.
    pub copy: Option<CopySpec>,
    /// After copy and verify, before `ready`: build what the new shape needs to go live (indexes
    /// CONCURRENTLY, CHECK … NOT VALID + VALIDATE for NOT NULL columns). Guarded, retried.
    pub prepare_flip: Vec<Step>,
    /// The flip: one transaction, run while the gate holds every session, with a short
    /// lock_timeout. A failure rolls it back entirely and the migration stays `ready`.
    pub flip: Vec<Step>,
    /// The route published in the same gate hold as `flip` (reverse dual-writes into the old shape
    /// so `revert` loses nothing, or the old-name translation of a rename).
    pub flipped_route: Option<TableRoute>,
    /// Back to the old shape after a flip: one transaction under the gate (then routes cleared).
    pub revert: Vec<Step>,
    /// Guarded clean-up after `revert` committed and routes are cleared (drop the new shape).
    pub after_revert: Vec<Step>,
    /// Contract: guarded, after routes are cleared (drop the old shape).
    pub complete: Vec<Step>,
    /// Before a flip: guarded, after routes are cleared (drop the shadow). Idempotent (IF EXISTS).
    pub abort: Vec<Step>,
    /// What the catalog audit found that the operator should know (not refusals).
    pub warnings: Vec<String>,
    /// Views, triggers and row-level security bound to the table when the migration was
    /// planned, which the flip re-creates on the new shape and a revert on the old one
    /// ([`carried`]); objects made after planning make the flip refuse instead.
    #[serde(default, skip_serializing_if = "Carried::is_empty")]
    pub carried: Carried,
    /// The tables of a migration of several ([`group`]), this one's included, in the order their
    /// flips run in the one transaction; empty for a migration of one table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<QualifiedName>,
}

impl Plan {
    /// Whether the table's writes are left to the safety net alone, not rewritten: a shadow
    /// table of a table that enforces row-level security. A rewritten write asks for `RETURNING`
    /// rows, which PostgreSQL checks against the SELECT policies too (so a write the policies
    /// allow could fail, or skip rows), and it would write the shadow with the writer's rights;
    /// the net mirrors every write as duet's own role instead, and the shadow (which enforces
    /// row-level security with no policy until the flip) stays out of the application's reach.
    pub fn writes_mirrored_by_net_only(&self) -> bool {
        self.kind == PlanKind::ShadowTable && self.carried.enforces_row_security()
    }
}

/// Why a migration cannot be planned. Every message says what to do instead; nothing was touched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The input does not parse (SQL or pgroll file).
    #[error("{0}")]
    Invalid(String),
    /// A table, column or type that does not exist.
    #[error("{0}")]
    Unknown(String),
    /// duet cannot run this change online (with the reason and the alternative).
    #[error("{0}")]
    Unsupported(String),
    /// The catalog audit found something that would let writes escape the dual-write.
    #[error("{0}")]
    Audit(String),
    /// Talking to the database failed.
    #[error("reading the catalog failed: {0}")]
    Database(String),
}

/// Plans `input` against the live catalog reachable through `client`. Reads only: nothing is
/// created, and a refusal says what to do instead.
pub async fn plan(client: &tokio_postgres::Client, input: &PlanInput) -> Result<Plan, PlanError> {
    planner::plan(client, input).await
}
