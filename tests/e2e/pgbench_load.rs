//! pgbench through duet: initialisation (COPY, DDL, VACUUM) and the TPC-B-like load in each of the
//! three query protocols pgbench speaks, several clients at once. A proxy that garbles one message
//! under concurrency shows up as a failed or aborted client.

use crate::support::tools::{parse_pgbench, pgbench};
use crate::support::{backend_or_skip, DuetProcess, TestDatabase};

#[test]
fn pgbench_init_and_all_query_modes_through_duet() {
    let Some(backend) = backend_or_skip("pgbench_init_and_all_query_modes_through_duet") else {
        return;
    };
    let db = TestDatabase::create(&backend, "pgbench_modes");
    let duet = DuetProcess::start(&backend.url(db.name()), &[]);
    let mut target = duet.target(&backend.user, db.name());
    if let Some(password) = &backend.password {
        target = target.with_password(password);
    }

    let init = pgbench(&target, &["-i", "-s", "2", "-q"]);
    init.assert_success();

    for mode in ["simple", "extended", "prepared"] {
        let run = pgbench(
            &target,
            &["-M", mode, "-c", "4", "-j", "2", "-T", "3", "-n"],
        );
        run.assert_success();
        let summary = parse_pgbench(&run);
        assert!(
            summary.processed > 0,
            "pgbench -M {mode} processed no transaction:\n{}",
            run.stdout_text()
        );
        assert_eq!(
            summary.failed,
            0,
            "pgbench -M {mode} had failed transactions:\n{}\n{}",
            run.stdout_text(),
            run.stderr
        );
        assert!(
            !run.stderr.contains("aborted") && !run.stderr.contains("error"),
            "pgbench -M {mode} reported client errors:\n{}",
            run.stderr
        );
    }
}
