//! Another ecosystem: a psycopg 3 application (tests/python/psycopg_session.py) through duet.
//!
//! psycopg drives libpq differently from psql and tokio-postgres (pipeline mode, server-side
//! cursors, its own COPY and notification loops), so it finds different proxy bugs.

use crate::support::tools::python;
use crate::support::{backend_or_skip, skip_or_fail, tests_path, DuetProcess, TestDatabase};

#[test]
fn psycopg_application_session_through_duet() {
    let Some(backend) = backend_or_skip("psycopg_application_session_through_duet") else {
        return;
    };
    let db = TestDatabase::create(&backend, "psycopg_session");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let password = backend
        .password
        .as_ref()
        .map(|password| format!(" password={password}"))
        .unwrap_or_default();
    let through = format!(
        "host=127.0.0.1 port={} user={} dbname={} connect_timeout=10{password}",
        duet.port(),
        backend.user,
        db.name()
    );
    let direct = format!(
        "host={} port={} user={} dbname={} connect_timeout=10{password}",
        backend.host,
        backend.port,
        backend.user,
        db.name()
    );
    let output = python(
        &tests_path("python/psycopg_session.py"),
        &[],
        &[
            ("DUET_DSN", through.as_str()),
            ("DIRECT_DSN", direct.as_str()),
        ],
    );
    if output.code() == Some(77) {
        let why = format!(
            "python3 cannot import psycopg ({}); install it with: pip install 'psycopg[binary]'",
            output.stderr.trim()
        );
        // Fails instead of skipping when DUET_REQUIRE_DATABASE=1.
        let _: Option<()> = skip_or_fail("psycopg_application_session_through_duet", &why);
        return;
    }
    output.assert_success();
    let stdout = output.stdout_text();
    assert!(
        stdout.contains("ALL OK"),
        "the psycopg script did not finish:\n{stdout}"
    );
}
