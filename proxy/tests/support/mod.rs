//! What the proxy crate's integration tests share: the shared test kit's skip-or-fail policy.
#![allow(dead_code)]

/// Whether the test server (`DUET_TEST_DATABASE_URL`) answers. Without one the test says SKIPPED
/// and passes — unless `DUET_REQUIRE_DATABASE=1` (CI), where it fails instead: a suite never
/// skips silently there.
pub fn server_reachable() -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("a proxy test")
        .to_string();
    duet_testkit::backend_or_skip(&test).is_some()
}

/// Whether CI asked for every database-backed part to run (`DUET_REQUIRE_DATABASE=1`): a missing
/// server or client tool is then a failure, never a skip.
pub fn database_required() -> bool {
    duet_testkit::database_required()
}
