//! duet: an online schema-change proxy for PostgreSQL.
//!
//! This crate is the proxy and the `duet` binary's commands. The migration engine itself (parsing,
//! classification, planning, rewriting, copying) lives in the `duet-shadow` crate; the load
//! generator in `duet-bench`.

pub mod cli;
