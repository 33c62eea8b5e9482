//! duet's migration engine, with no networking of the proxy in it.
//!
//! - [`check`]: the schema-change classifier behind `duet check` (what a statement locks,
//!   rewrites and scans; expand/contract phase; rules and safe alternatives) and the strategy
//!   verdict the migration planner asks for.
//! - [`rewrite`]: dual-write statement rewriting — pure functions from an application's statement
//!   and the published routes to the statement that also writes the shadow (or a refusal).
//! - [`ident`]: identifier quoting and the shadow naming convention shared by all parts, and
//!   [`parse`]: PostgreSQL's own grammar (pg_query) run safely — the bottom layer every other
//!   part builds on.
//! - [`migrate`]: the migration's own work over tokio-postgres: the state store (schema `duet`),
//!   guarded DDL, the chunked copier, verification, repair and the tombstone sweep.
//!
//! - [`plan`]: the migration planner — from SQL or a pgroll file plus the live catalog to a
//!   [`plan::Plan`] (strategy, every step's SQL and lock). The controller that runs it lives in the
//!   proxy (`duet_proxy::migration`).

pub mod check;
pub mod ident;
pub mod migrate;
pub mod parse;
pub mod plan;
pub mod rewrite;
