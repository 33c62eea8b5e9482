//! duet's migration engine, with no networking of the proxy in it.
//!
//! - [`check`]: the schema-change classifier behind `duet check` (what a statement locks,
//!   rewrites and scans; expand/contract phase; rules and safe alternatives) and the strategy
//!   verdict the migration planner asks for.
//! - [`rewrite`]: dual-write statement rewriting — pure functions from an application's statement
//!   and the published routes to the statement that also writes the shadow (or a refusal).
//! - [`ident`]: identifier quoting and the shadow naming convention shared by all parts.
//! - [`migrate`]: the migration's own work over tokio-postgres: the state store (schema `duet`),
//!   guarded DDL, the chunked copier, verification, repair and the tombstone sweep.
//!
//! Not yet here: the migration planner/controller that drives these steps from the admin socket
//! (see docs/online-migrations.md).

pub mod check;
pub mod ident;
pub mod migrate;
pub mod rewrite;
