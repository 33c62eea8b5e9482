//! What the proxy crate's integration tests share: the shared test kit's skip-or-fail policy,
//! applied in the name of the running test.
#![allow(dead_code)]

use duet_testkit::Backend;

/// The running test's name (the test harness names each test's thread after it), for the kit's
/// skip message.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a proxy test")
        .to_string()
}

/// The test server (`DUET_TEST_DATABASE_URL`), or `None` after the kit's loud SKIPPED message —
/// unless `DUET_REQUIRE_DATABASE=1` (CI), where the test fails instead: a suite never skips
/// silently there.
pub fn backend_or_skip() -> Option<Backend> {
    duet_testkit::backend_or_skip(&current_test())
}

/// Whether the test server answers ([`backend_or_skip`] for the tests that need only that).
pub fn server_reachable() -> bool {
    backend_or_skip().is_some()
}

/// Whether CI asked for every database-backed part to run (`DUET_REQUIRE_DATABASE=1`): a missing
/// server or client tool is then a failure, never a skip.
pub fn database_required() -> bool {
    duet_testkit::database_required()
}
