//! What every bench test against real processes needs before it starts: whether a missing
//! prerequisite is a failure (`DUET_REQUIRE_DATABASE=1`) or a loud skip, and a throwaway cluster.
#![allow(dead_code)]

use duet_bench::cluster::{find_server_binaries, Cluster, ClusterOptions};

/// Whether a missing database prerequisite fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("DUET_REQUIRE_DATABASE").as_deref() == Ok("1")
}

/// Says loudly that a test skips because of `why`; fails instead when [`required`].
pub fn skip(why: &str) {
    assert!(!required(), "DUET_REQUIRE_DATABASE=1 but {why}");
    eprintln!("SKIPPED: {why}");
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
