//! The harness of the end-to-end suite.
//!
//! Every test drives the real `duet` binary (spawned as a child process, [`DuetProcess`]) in front
//! of a real PostgreSQL: the server named by `DUET_TEST_DATABASE_URL` (each test in its own
//! database, [`TestDatabase`]) or a throwaway cluster ([`throwaway_cluster_or_skip`]). Clients are real
//! ones: psql, pgbench, python/psycopg ([`tools`]) and tokio-postgres ([`pg_client`]); raw protocol
//! bytes for the robustness tests come from [`wire`]; the metrics listener is read over raw HTTP
//! ([`http`]) and in a headless chromium ([`browser`]).
//!
//! When no server is reachable the tests skip loudly, or fail when `DUET_REQUIRE_DATABASE=1`
//! ([`environment`]). The policy, the databases, the temporary directories and the raw protocol
//! bytes come from the shared test kit (`tests/testkit`, crate `duet_testkit`), as for every suite.

pub mod browser;
pub mod cluster;
pub mod duet_process;
pub mod http;
pub mod load;
pub mod migration;
pub mod pg_client;
pub mod scenario;
pub mod tools;
pub mod writes;

pub use duet_testkit::{database, environment, temp_dir, wire};

pub use database::TestDatabase;
pub use duet_process::DuetProcess;
pub use duet_testkit::cluster::throwaway_cluster_or_skip;
pub use environment::{backend_or_skip, skip_or_fail, Backend};
pub use temp_dir::TempDir;

use std::time::{Duration, Instant};

/// Polls `condition` every 50 ms until it returns `Some`, or panics naming `what` after `limit`.
///
/// This waits for a state to be reached (a client counted, a process gone); the limit only keeps
/// a broken proxy from hanging the suite, it is never the thing under test.
pub fn wait_for<T>(what: &str, limit: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The async twin of [`wait_for`]: the condition is an async block, the wait does not block the
/// runtime's worker thread.
pub async fn wait_for_async<T, F, Fut>(what: &str, limit: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released; the tiny race with other processes is
/// accepted). Shared with the throwaway clusters' ports, so no two callers in this test process
/// are given the same one.
pub fn free_port() -> u16 {
    duet_harness::net::free_port().expect("binding an ephemeral port on 127.0.0.1")
}

/// The path of a file in the repository's `tests/` folder (python scripts, fixtures).
pub fn tests_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join(relative)
}
