//! `duet demo`, the README's quick start: with nothing configured it must start a throwaway
//! PostgreSQL, put duet in front of it, run both workloads through it with zero failures, run the
//! online migrations under load with zero failures, report duet's own status, and leave nothing
//! behind.

use std::process::Command;
use std::time::Duration;

use crate::support::duet_process::DUET_BIN;
use crate::support::tools::run;
use crate::support::{skip_or_fail, TempDir};

#[test]
fn the_quick_start_runs_and_leaves_nothing_behind() {
    const TEST: &str = "demo::the_quick_start_runs_and_leaves_nothing_behind";
    if duet_harness::cluster::find_server_binaries().is_none() {
        let _: Option<()> = skip_or_fail(TEST, "no PostgreSQL server binaries (initdb, postgres)");
        return;
    }
    // The demo keeps its cluster and proxy files under the temporary directory: give it its own,
    // so that "nothing left behind" can be checked exactly.
    let scratch = TempDir::new("demo");
    let mut command = Command::new(DUET_BIN);
    command
        .args(["demo", "--duration", "1s", "--clients", "2"])
        .env("TMPDIR", scratch.path());
    let output = run(command, None, Duration::from_secs(180));
    output.assert_success();
    let said = format!("{}{}", output.stdout_text(), output.stderr);
    for workload in ["read-write (2 clients", "select-only (2 clients"] {
        let line = said
            .lines()
            .find(|line| line.starts_with(workload))
            .unwrap_or_else(|| panic!("no `{workload}` report in:\n{said}"));
        assert!(line.contains(" 0 failed"), "failures reported: {line}");
    }
    // duet's main job, under the read-write load: both online changes, with zero failures.
    let during = said
        .lines()
        .find(|line| line.starts_with("during the online migrations: read-write"))
        .unwrap_or_else(|| panic!("no report of the load during the migrations in:\n{said}"));
    assert!(during.contains(" 0 failed"), "failures reported: {during}");
    for step in [
        "migration 1 flipped; clients were held",
        "migration 1: completed",
        "migration 2 flipped; clients were held",
        "refused, as it should be — complete: statements written for the old shape",
        "migration 2: reverted",
    ] {
        assert!(said.contains(step), "no `{step}` in:\n{said}");
    }
    assert!(
        said.contains("duet's own view"),
        "no duet status in:\n{said}"
    );
    assert!(
        said.contains("nothing left running"),
        "no clean-up line in:\n{said}"
    );
    let scratch_path = scratch.path().display().to_string();
    assert!(
        said.contains(&format!("data in {scratch_path}")),
        "the demo's cluster did not live under {scratch_path}, so the check below would prove \
         nothing:\n{said}"
    );
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("reading the demo's temporary directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}
