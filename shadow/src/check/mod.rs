//! The schema-change classifier behind `duet check`.
//!
//! Stage 1 of every migration is knowing what a statement will do to production: which locks it
//! takes on which relation (PostgreSQL's own lock names), whether it blocks reads or writes,
//! rewrites or scans the table, where it sits in an expand/contract migration, and what the safe
//! alternative is. duet's migration planner asks the same engine ([`strategy`]) whether a change
//! can run in place or needs a shadow column or table.
//!
//! The pipeline, one module per concept:
//! [`walk`] (files in migration-runner order) → [`markers`] (no-transaction markers, down
//! sections) → [`psql`] (meta-commands and COPY data blanked) → [`split`] (statements,
//! positions, `-- duet:ignore`) → [`crate::parse`] (pg_query on a big stack) → [`classify`] (which
//! [`facts`] apply, given the [`schema`] model and [`transaction`] context) → [`rules`] →
//! [`risk`] → [`report`] → [`output`] (human, JSON, GitHub, SARIF). [`strategy`] answers the
//! planner; [`coercion`] decides which type changes rewrite; [`partition`] whether ATTACH PARTITION scans; [`ast`] reads parse trees.
//! [`live_schema`] reads the live schema and table sizes with `--database`.

pub mod ast;
pub mod classify;
pub mod coercion;
pub mod config;
pub mod engine;
pub mod facts;
pub mod live_schema;
pub mod lock;
pub mod markers;
pub mod output;
pub mod partition;
pub mod psql;
pub mod report;
pub mod risk;
pub mod rules;
pub mod schema;
pub mod split;
pub mod strategy;
pub mod transaction;
pub mod version;
pub mod walk;

use std::path::PathBuf;

pub use config::CheckConfig;
pub use engine::{check_files, SourceFile};
pub use lock::LockMode;
pub use report::{Finding, Level, Report, Risk, StatementReport};
pub use version::EngineVersion;

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("invalid configuration in {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The live catalog could not be read.
    #[error("cannot read the database catalog: {0}")]
    Catalog(String),
    /// The parser's thread could not run or panicked (a bug in duet).
    #[error("internal error: {0}")]
    Parser(#[from] crate::parse::ParserThreadError),
}

/// Reads migration files from disk in runner order (see [`walk`]).
pub fn read_sources(inputs: &[PathBuf]) -> Result<Vec<SourceFile>, CheckError> {
    walk::migration_files(inputs)?
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(|source| CheckError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(SourceFile {
                name: path.display().to_string(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
                no_transaction: walk::runner_no_transaction(&path),
            })
        })
        .collect()
}

/// Checks SQL text given in memory as one file named `name` (tests, the planner, the bench).
pub fn check_sql(name: &str, sql: &str, config: &CheckConfig) -> Result<Report, CheckError> {
    check_files(
        &[SourceFile {
            name: name.to_string(),
            text: sql.to_string(),
            no_transaction: None,
        }],
        config,
        schema::Schema::default(),
    )
}
