//! duet's migration engine, with no networking of the proxy in it.
//!
//! - [`check`]: the schema-change classifier behind `duet check` (what a statement locks,
//!   rewrites and scans; expand/contract phase; rules and safe alternatives).
//!
//! Later: the migration planner, statement rewrite rules, the copier, verification and the
//! state store.

pub mod check;
pub mod migrate;
