//! duet: an online schema-change proxy for PostgreSQL.
//!
//! This crate is the proxy and the `duet` binary's commands. The migration engine itself (parsing,
//! classification, planning, rewriting, copying) lives in the `duet-shadow` crate; the load
//! generator in `duet-harness`.
//!
//! The proxy, from the outside in: [`server`] binds the sockets and accepts clients, handing each to
//! one of the [`workers`] threads; each client is a [`session`] (startup and authentication relay,
//! then forwarding in both directions over the [`wire`] framing); sessions publish their state in [`session_registry`], pass the pause [`gate`] at
//! transaction boundaries, register their [`cancel`] keys and count into [`metrics`]; operators
//! drive it over the [`admin`] socket, including the online migrations it runs ([`control`]), which every duet in front of the database follows as one [`fleet`]; [`shutdown`] ends it gracefully.

pub mod admin;
pub mod backend;
pub mod backend_tls;
pub mod backend_url;
pub mod cancel;
pub mod cli;
pub mod client_stream;
pub mod config;
pub mod context;
pub mod control;
pub mod duration;
pub mod fleet;
pub mod gate;
pub mod metrics;
pub mod metrics_http;
pub mod pool;
pub mod rlimit;
pub mod role_paths;
pub mod routes;
pub mod server;
pub mod session;
pub mod session_registry;
pub mod shutdown;
pub mod socket_access;
pub mod socket_file;
pub mod status;
pub mod status_page;
pub mod tls;
pub mod wire;
pub mod workers;
