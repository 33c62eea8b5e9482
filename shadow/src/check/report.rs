//! The classifier's result as data: what the JSON output serializes (the stable contract in
//! `shadow/docs/check-json.md`) and what the other formats render.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::facts::ChangePhase;
use super::lock::LockMode;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing.
    Info,
    /// Likely to hurt under load.
    Warning,
    /// Will block production traffic, fail, or break clients.
    Error,
}

impl Level {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// Parses `info`, `warning` or `error`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// How much harm a statement can do to a running application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Blocks nobody.
    None,
    /// Blocks briefly, guarded by a lock timeout, or only touches small tables.
    Low,
    /// Blocks reads or writes briefly, or breaks clients.
    Medium,
    /// Blocks reads or writes for as long as it takes to scan or rewrite a table.
    High,
}

impl Risk {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Risk::None => "none",
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// One rule finding on a statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Rule id (`require-concurrent-index-creation`).
    pub rule: String,
    /// Level after configuration.
    pub level: Level,
    /// What is wrong, for this statement.
    pub message: String,
    /// The safe alternative, as SQL (or an instruction in an SQL comment).
    pub suggestion: Option<String>,
}

/// Everything duet knows about one statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementReport {
    /// File name as given.
    pub file: String,
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// 1-based column (characters) of the statement's first token.
    pub column: usize,
    /// The statement text (without the `;`).
    pub sql: String,
    /// Statement kind (`alter_table.add_column`, `create_index`, `unparsed`, …).
    pub kind: String,
    /// Relations it acts on.
    pub tables: Vec<String>,
    /// Strongest lock on a relation other sessions can see.
    pub lock: Option<LockMode>,
    /// Strongest lock per relation.
    pub locks: BTreeMap<String, LockMode>,
    /// Plain reads wait for it.
    pub blocks_reads: bool,
    /// Writes wait for it.
    pub blocks_writes: bool,
    /// Rewrites a table.
    pub rewrites_table: bool,
    /// Reads every row of a table.
    pub scans_table: bool,
    /// Expand/contract phase.
    pub phase: ChangePhase,
    /// Risk.
    pub risk: Risk,
    /// Rule findings.
    pub findings: Vec<Finding>,
    /// Caveats (what could not be known); shown by the human format only.
    #[serde(skip)]
    pub notes: Vec<String>,
    /// Ids of the facts that applied; not part of the JSON contract.
    #[serde(skip)]
    pub facts: Vec<&'static str>,
    /// The source line the statement starts on, for carets.
    #[serde(skip)]
    pub source_line: String,
}

/// The result of checking a set of migration files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always `postgres`.
    pub engine: &'static str,
    /// The version the verdicts are for (`"15"`).
    pub engine_version: String,
    /// Every statement, in execution order.
    pub statements: Vec<StatementReport>,
}

impl Report {
    /// The most serious finding level, if any.
    pub fn worst_level(&self) -> Option<Level> {
        self.statements
            .iter()
            .flat_map(|s| s.findings.iter().map(|f| f.level))
            .max()
    }

    /// Findings at or above `level`.
    pub fn count_at_least(&self, level: Level) -> usize {
        self.statements
            .iter()
            .flat_map(|s| &s.findings)
            .filter(|f| f.level >= level)
            .count()
    }
}
