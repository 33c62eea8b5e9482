//! Running PostgreSQL and duet for real, for whoever needs them running: `duet demo`, the
//! benchmark (`duet-bench`) and the test suites.
//!
//! - [`cluster`]: a throwaway PostgreSQL from the installed server binaries (temporary data
//!   directory, free port, a non-root OS user when run as root), removed on drop;
//! - [`duet_process`]: the `duet` binary started as a process in front of a server, with its admin
//!   socket; [`launch`], [`process`], [`probe`], [`net`], [`scratch`] are the plumbing both use;
//! - [`load`]: pgbench's workloads ([`workload`]: select-only, TPC-B-like) over tokio-postgres in
//!   the simple or extended protocol, with latency in hdrhistograms ([`report`]) on the tables
//!   [`schema`] creates; [`backend`] names the server a load runs against;
//! - [`duration_arg`]: `10s` / `500ms` on command lines.
//!
//! It talks to duet only through duet's public surfaces (the binary, SQL connections, the admin
//! socket), so the product can use it for `duet demo` without depending on the benchmark, and the
//! benchmark builds its comparisons on top of it.

pub mod backend;
pub mod cluster;
pub mod duet_process;
pub mod duration_arg;
pub mod launch;
pub mod load;
pub mod net;
pub mod probe;
pub mod process;
pub mod report;
pub mod schema;
pub mod scratch;
pub mod workload;
