//! `duet-bench migrate` with tiny sizes against the real `duet` binary and a throwaway cluster:
//! it completes with zero client errors and its report has every field. No timing assertions:
//! the numbers are the benchmark's business, not the test's.

mod support;

use std::time::Duration;

use duet_bench::migrate::{run_migrate, MigrateOptions};
use duet_harness::duet_process::duet_next_to_current_exe;

#[test]
fn migrate_scenario_with_tiny_sizes_reports_every_field() {
    if !support::binaries_available() {
        return;
    }
    let Some(duet_bin) = duet_next_to_current_exe() else {
        support::skip("no duet binary next to this test; run `cargo build -p duet-proxy` first");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = MigrateOptions {
        url: None,
        rows: 3000,
        clients: 3,
        window: Duration::from_millis(600),
        duet_bin,
        ready_timeout: Duration::from_secs(120),
        nice_ratio: Some(0.5),
        max_latency_factor: None,
        chunk_time: None,
        latency_max_pause: None,
        copy_held_for: None,
        proxies: 1,
    };
    let report =
        run_migrate(&opts, &rt, &mut |line| eprintln!("· {line}")).expect("the scenario runs");
    assert_eq!(report.migration_error, None, "{}", report.human());
    assert_eq!(report.client_errors, 0, "{}", report.human());
    let json = serde_json::to_value(&report).expect("the report serializes");
    for field in [
        "server",
        "rows",
        "clients",
        "phases",
        "timeline",
        "latency_before_us",
        "latency_during_copy_us",
        "latency_during_verify_us",
        "copy_p99_ratio",
        "latency_after_us",
        "flip",
        "client_errors",
        "errors",
        "reference_insert_select_rows_per_s",
        "copier_rows_per_s",
        "copier_ratio",
        "copier_alone_rows_per_s",
        "copier_alone_ratio",
        "writes_per_s_before",
        "writes_per_s_dual_writing",
        "write_ratio",
    ] {
        assert!(
            json.get(field).is_some(),
            "the report lacks {field}: {json}"
        );
    }
    for phase in [
        "load",
        "migrate",
        "ready",
        "cutover",
        "flipped",
        "completed",
        "end",
    ] {
        assert!(
            report.phases.iter().any(|m| m.name == phase),
            "phase {phase} not marked: {:?}",
            report.phases
        );
    }
    assert!(!report.timeline.is_empty());
    assert!(report.latency_before_us.count > 0 && report.latency_after_us.count > 0);
    assert!(report.flip.duet_stall_ms.is_some(), "{}", report.human());
    assert!(report.reference_insert_select_rows_per_s > 0.0);
    let text = report.human();
    for needle in [
        "throughput per second",
        "latency",
        "flip:",
        "client errors",
        "copier alone:",
        "copier under the client load:",
        "dual-writing",
    ] {
        assert!(
            text.contains(needle),
            "the readable report lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn migrate_scenario_through_a_fleet_of_three_loses_no_client_statement() {
    if !support::binaries_available() {
        return;
    }
    let Some(duet_bin) = duet_next_to_current_exe() else {
        support::skip("no duet binary next to this test; run `cargo build -p duet-proxy` first");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = MigrateOptions {
        url: None,
        rows: 3000,
        clients: 6,
        window: Duration::from_millis(600),
        duet_bin,
        ready_timeout: Duration::from_secs(120),
        nice_ratio: Some(0.5),
        max_latency_factor: Some(0.0),
        chunk_time: None,
        latency_max_pause: None,
        copy_held_for: None,
        proxies: 3,
    };
    let report =
        run_migrate(&opts, &rt, &mut |line| eprintln!("· {line}")).expect("the scenario runs");
    assert_eq!(report.migration_error, None, "{}", report.human());
    assert_eq!(report.client_errors, 0, "{}", report.human());
    assert!(
        report.server.contains("through 3 duet processes"),
        "{}",
        report.server
    );
    assert!(report.flip.statements > 0, "{}", report.human());
}
