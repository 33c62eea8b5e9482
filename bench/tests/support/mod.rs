//! What every bench test against real processes needs before it starts: the shared test kit's
//! skip-or-fail policy (a loud skip, or a failure with `DUET_REQUIRE_DATABASE=1`) and its
//! throwaway clusters, in the name of the running test.
#![allow(dead_code)]

use duet_harness::cluster::{Cluster, ClusterOptions};

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

/// Whether the PostgreSQL server binaries are installed; false (after the kit's skip) when they
/// are not.
pub fn binaries_available() -> bool {
    duet_testkit::server_binaries_or_skip(&test_name())
}

/// A started throwaway cluster, or None after the kit's skip when this machine cannot run one.
pub fn cluster_or_skip() -> Option<Cluster> {
    duet_testkit::throwaway_cluster_or_skip(&test_name(), ClusterOptions::default())
}

/// Whether PgBouncer is installed (on PATH or Debian's path); false after the kit's skip when it
/// is not. CI installs it (`.ci/run`): the comparisons the README reports must run there.
pub fn pgbouncer_installed() -> bool {
    let found = duet_bench::pgbouncer::find_on_path("pgbouncer").is_some()
        || std::path::Path::new(duet_bench::pgbouncer::DEFAULT_PGBOUNCER).is_file();
    if !found {
        skip("pgbouncer is not installed (apt-get install pgbouncer)");
    }
    found
}
