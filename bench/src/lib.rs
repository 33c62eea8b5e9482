//! duet's load benchmark.
//!
//! Speed claims about duet belong here, never in tests: this crate generates pgbench's workloads
//! (select-only, TPC-B-like) over tokio-postgres in the simple or extended protocol, records latency
//! in hdrhistograms, and runs side-by-side comparisons of a direct connection, duet and PgBouncer
//! against the same server. It also provides [`cluster`], a throwaway PostgreSQL used by the
//! benchmark, `duet demo` and tests. It talks to duet only through its public surfaces: the binary,
//! SQL connections and the admin socket.

pub mod backend;
pub mod cluster;
pub mod compare;
pub mod connections;
pub mod duet_proxy;
pub mod duration_arg;
pub mod launch;
pub mod load;
pub mod migrate;
pub mod migrate_report;
pub mod net;
pub mod pgbench_driver;
pub mod pgbouncer;
pub mod probe;
pub mod process;
pub mod report;
pub mod schema;
pub mod scratch;
pub mod workload;
