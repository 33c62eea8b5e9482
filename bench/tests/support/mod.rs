//! What every bench test against real processes needs before it starts: the skip-or-fail policy
//! (the shared test kit's: a loud skip, or a failure with `DUET_REQUIRE_DATABASE=1`) and a
//! throwaway cluster.
#![allow(dead_code)]

use duet_harness::cluster::{find_server_binaries, Cluster, ClusterOptions};

/// Whether a missing database prerequisite fails the test instead of skipping it.
pub fn required() -> bool {
    duet_testkit::database_required()
}

/// Says loudly that a test skips because of `why`; fails instead when [`required`].
pub fn skip(why: &str) {
    let _: Option<()> = duet_testkit::skip_or_fail(test_name().as_str(), why);
}

/// The running test's name, as the harness names its thread.
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a bench test")
        .to_string()
}

/// Whether the PostgreSQL server binaries are installed; false (after [`skip`]) when they are not.
pub fn binaries_available() -> bool {
    if find_server_binaries().is_some() {
        return true;
    }
    skip(
        "no PostgreSQL server binaries (initdb, postgres) found; \
         install them (apt-get install postgresql) or set DUET_PG_BIN_DIR to run this test",
    );
    false
}

/// A started throwaway cluster, or None (after [`skip`]) when the server binaries are missing.
pub fn cluster_or_skip() -> Option<Cluster> {
    if !binaries_available() {
        return None;
    }
    Some(Cluster::start(ClusterOptions::default()).expect("cluster starts"))
}
