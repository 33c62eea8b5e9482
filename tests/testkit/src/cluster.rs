//! A throwaway PostgreSQL cluster for one test (`duet_harness::cluster`), or a loud skip — a
//! failure with `DUET_REQUIRE_DATABASE=1` — when this machine cannot run one.
//!
//! What the machine lacks (the server binaries, or an unprivileged account to run the server as
//! when the tests run as root) is a skip; a cluster that fails to start although the machine has
//! what it needs (initdb or the server failing, a filesystem error) fails the test: that is a
//! broken harness or server, which a skip would hide.

use duet_harness::cluster::{
    find_server_binaries, Cluster, ClusterError, ClusterOptions, PG_BIN_DIR_ENV,
};

use crate::environment::skip_or_fail;

/// Whether the PostgreSQL server binaries (`initdb`, `postgres`) are installed; `false` after a
/// loud skip of `test` (a failure when the database is required) when they are not.
pub fn server_binaries_or_skip(test: &str) -> bool {
    if find_server_binaries().is_some() {
        return true;
    }
    let why = format!(
        "no PostgreSQL server binaries (initdb, postgres) found; \
         install them (apt-get install postgresql) or set {PG_BIN_DIR_ENV} to run this test"
    );
    let _: Option<()> = skip_or_fail(test, &why);
    false
}

/// A started throwaway cluster with `options` (stopped and removed when dropped), or `None`
/// after a loud skip of `test` (a failure when the database is required) when this machine
/// cannot run one. Panics when the cluster fails to start although the machine could run one.
pub fn throwaway_cluster_or_skip(test: &str, options: ClusterOptions) -> Option<Cluster> {
    match Cluster::start(options) {
        Ok(cluster) => Some(cluster),
        Err(missing @ (ClusterError::NoBinaries { .. } | ClusterError::NoServerUser(_))) => {
            skip_or_fail(
                test,
                &format!("cannot start a throwaway PostgreSQL: {missing}"),
            )
        }
        Err(err) => panic!("{test}: the throwaway PostgreSQL did not start: {err}"),
    }
}
