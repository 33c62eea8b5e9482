//! duet's load benchmark.
//!
//! Speed claims about duet belong here, never in tests: this crate generates pgbench's workloads
//! (select-only, TPC-B-like) over tokio-postgres in the simple or extended protocol, records latency
//! in hdrhistograms, and runs side-by-side comparisons of a direct connection, duet and PgBouncer
//! against the same server. What it runs on — throwaway clusters, duet as a process, the load
//! generator — is the harness crate (`bench/harness`, `duet_harness`), which `duet demo` and the
//! tests use too. It talks to duet only through its public surfaces: the binary,
//! SQL connections and the admin socket.

pub mod compare;
pub mod connections;
pub mod migrate;
pub mod migrate_report;
pub mod pgbench_driver;
pub mod pgbouncer;
pub mod pooling;

// The harness's modules under their old paths: the comparisons are built on them, and
// `duet_bench::cluster` etc. keep naming the same things.
pub use duet_harness::{
    backend, cluster, duet_process, duration_arg, launch, load, net, probe, process, report,
    schema, scratch, workload,
};
