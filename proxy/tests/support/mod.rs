//! What the proxy crate's integration tests share.

use std::time::Duration;

/// Whether the test server answers at 127.0.0.1:5432. Without one the test says SKIPPED and
/// passes — unless `DUET_REQUIRE_DATABASE=1` (CI), where it fails instead: a suite never skips
/// silently there.
pub fn server_reachable() -> bool {
    let reachable = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().expect("a socket address"),
        Duration::from_secs(2),
    )
    .is_ok();
    if !reachable {
        if database_required() {
            panic!("DUET_REQUIRE_DATABASE=1 but no PostgreSQL answers at 127.0.0.1:5432");
        }
        eprintln!(
            "SKIPPED: no PostgreSQL at 127.0.0.1:5432 (DUET_REQUIRE_DATABASE=1 makes this a failure)"
        );
    }
    reachable
}

/// Whether CI asked for every database-backed part to run (`DUET_REQUIRE_DATABASE=1`): a missing
/// server or client tool is then a failure, never a skip.
pub fn database_required() -> bool {
    std::env::var("DUET_REQUIRE_DATABASE").as_deref() == Ok("1")
}
