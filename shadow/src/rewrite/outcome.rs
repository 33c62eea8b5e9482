//! What [`super::rewrite`] returns: the statement unchanged, rewritten with the per-statement
//! patches the proxy applies to the server's answers, or refused with a SQLSTATE.

use std::fmt;

/// Which protocol carried the statement: a simple Query may hold several statements; an extended
/// Parse holds one and may use `$n` parameters (never added or renumbered by a rewrite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Simple query protocol (`Query` message).
    Simple,
    /// Extended query protocol (`Parse` message).
    Extended,
}

/// The result of rewriting a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Forward the client's bytes as they are.
    Unchanged,
    /// Forward `sql` instead and apply `statements[i]` to the i-th statement's answer.
    Changed {
        /// The rewritten query string (client text kept around the spliced parts).
        sql: String,
        /// One entry per statement of the query string, in order.
        statements: Vec<StatementPatch>,
    },
}

/// What the proxy must change in the answer to one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementPatch {
    /// Whether this statement was rewritten at all.
    pub rewritten: bool,
    /// The CommandComplete tag to restore (the CTE form reports `INSERT 0 n` or `SELECT n`).
    pub command_tag: Option<TagVerb>,
    /// Whose answer this statement's is: the client's, or one of the statements a staged
    /// `COPY FROM` expands into.
    pub answer: Answer,
}

/// Who the answer to one statement of a rewritten query string is for. A `COPY … FROM` on a
/// table under migration becomes four statements (create a staging table, copy into it, insert
/// from it with the usual dual-write, drop it); the client must see the answer of its one COPY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Answer {
    /// The client's own statement: its answer is forwarded (with `command_tag` restored).
    #[default]
    Client,
    /// A statement duet added: drop its CommandComplete.
    Added,
    /// The COPY into the staging table: its CopyInResponse goes to the client, its
    /// CommandComplete (`COPY n`) is held back for [`Answer::StagedInsert`], and in its errors the
    /// context line `COPY <staging>, line …` names the client's table instead.
    StagedCopy {
        /// The staging table's name as the server reports it in an error context.
        staging: String,
        /// The client's table's name (unqualified, as the server reports it).
        table: String,
    },
    /// The INSERT that moves the staged rows into the table (and the shadow): its
    /// CommandComplete is replaced by the held `COPY n`.
    StagedInsert,
}

/// The command verb the client expects in CommandComplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagVerb {
    /// `INSERT 0 n`
    Insert,
    /// `UPDATE n`
    Update,
    /// `DELETE n`
    Delete,
}

impl TagVerb {
    /// The tag the client expects, given the tag the server sent for the rewritten statement
    /// (the row count is its last word). `None` when the server's tag carries no count.
    pub fn restore(self, server_tag: &str) -> Option<String> {
        let count: u64 = server_tag.rsplit(' ').next()?.parse().ok()?;
        Some(match self {
            TagVerb::Insert => format!("INSERT 0 {count}"),
            TagVerb::Update => format!("UPDATE {count}"),
            TagVerb::Delete => format!("DELETE {count}"),
        })
    }
}

/// A statement duet will not forward while a migration is active, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SQLSTATE for the ErrorResponse: `0A000` (feature_not_supported) or `55000`
    /// (object_not_in_prerequisite_state).
    pub sqlstate: &'static str,
    /// What was refused and why.
    pub message: String,
    /// What the client or operator can do instead.
    pub hint: String,
}

/// `0A000`: the statement shape cannot be dual-written (yet or on this server version).
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `55000`: the statement is valid but not while the table is being migrated (e.g. DDL).
pub const NOT_IN_PREREQUISITE_STATE: &str = "55000";

impl Refusal {
    /// A `0A000` refusal.
    pub fn unsupported(message: impl Into<String>, hint: impl Into<String>) -> Refusal {
        Refusal {
            sqlstate: FEATURE_NOT_SUPPORTED,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Whether this refuses a write duet cannot rewrite (`0A000`), which may be forwarded
    /// unchanged for the safety net to mirror — as opposed to a statement that must not run
    /// during the migration (`55000`) or the server's own error for a bad statement.
    pub fn is_write(&self) -> bool {
        self.sqlstate == FEATURE_NOT_SUPPORTED
    }

    /// A `55000` refusal.
    pub fn not_now(message: impl Into<String>, hint: impl Into<String>) -> Refusal {
        Refusal {
            sqlstate: NOT_IN_PREREQUISITE_STATE,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}); hint: {}",
            self.message, self.sqlstate, self.hint
        )
    }
}

impl std::error::Error for Refusal {}
