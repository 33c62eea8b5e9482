//! The side-by-side machinery against real processes: PgBouncer in front of a throwaway cluster,
//! the real pgbench binary as driver, a whole (short) comparison, and duet launch failures
//! reported with duet's own output.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use duet_bench::compare::{run_compare, CompareOptions, Driver, Pooling, Scenario, Target};
use duet_bench::pgbench_driver::{find_pgbench, run_pgbench};
use duet_bench::pgbouncer::{PgBouncer, PgBouncerOptions};
use duet_harness::backend::Backend;
use duet_harness::cluster::Cluster;
use duet_harness::duet_process::{DuetProxy, DuetProxyOptions};
use duet_harness::launch::LaunchError;
use duet_harness::load::{init_tables, run_load, LoadOptions};
use duet_harness::workload::{Protocol, Workload};
use support::{binaries_available, cluster_or_skip, pgbouncer_installed, skip};

/// A throwaway cluster and the pgbench binary, or None (after [`skip`]) when either is missing.
fn cluster_and_pgbench() -> Option<(Cluster, PathBuf)> {
    let cluster = cluster_or_skip()?;
    let Some(pgbench) = find_pgbench() else {
        skip("pgbench is not installed (apt-get install postgresql-client)");
        return None;
    };
    Some((cluster, pgbench))
}

fn load(url: String, workload: Workload, protocol: Protocol) -> LoadOptions {
    LoadOptions {
        url,
        clients: 2,
        duration: Duration::from_millis(600),
        warmup: Duration::from_millis(200),
        workload,
        protocol,
        scale: None,
    }
}

#[test]
fn pgbouncer_forwards_both_protocols_in_both_pool_modes() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    if !pgbouncer_installed() {
        return;
    }
    let direct = cluster.url("postgres", None, "postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(init_tables(&direct, 1)).expect("init");
    for pool_mode in ["session", "transaction"] {
        let bouncer = PgBouncer::start(&PgBouncerOptions {
            backend: Backend::parse(&direct).expect("url"),
            pool_size: 4,
            bin: None,
            pool_mode,
        })
        .expect("pgbouncer starts");
        assert_ne!(bouncer.port(), cluster.port());
        // PgBouncer 1.18 (Debian 12) cannot carry named prepared statements across server
        // connections: in transaction mode only the simple protocol.
        let protocols: &[Protocol] = match pool_mode {
            "session" => &[Protocol::Simple, Protocol::Prepared],
            _ => &[Protocol::Simple],
        };
        forward(&rt, &bouncer, protocols);
    }
}

fn forward(rt: &tokio::runtime::Runtime, bouncer: &PgBouncer, protocols: &[Protocol]) {
    for &protocol in protocols {
        let report = rt
            .block_on(run_load(&load(
                bouncer.url(),
                Workload::ReadWrite,
                protocol,
            )))
            .expect("load through pgbouncer");
        assert!(report.transactions > 0, "{report:?}");
        assert_eq!(report.failures, 0, "{report:?}");
    }
}

#[test]
fn pgbench_driver_reports_like_the_builtin_one() {
    let Some((cluster, pgbench)) = cluster_and_pgbench() else {
        return;
    };
    let url = cluster.url("postgres", None, "postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(init_tables(&url, 1)).expect("init");
    let mut opts = load(url, Workload::SelectOnly, Protocol::Prepared);
    opts.duration = Duration::from_secs(1);
    opts.warmup = Duration::ZERO;
    let report = run_pgbench(&opts, Some(&pgbench)).expect("pgbench runs");
    assert_eq!(report.driver, "pgbench");
    assert!(report.transactions > 0, "{report:?}");
    assert_eq!(report.failures, 0, "{report:?}");
    // Every processed transaction is in the per-transaction log.
    assert_eq!(report.latency_us.count, report.transactions, "{report:?}");
    assert!(report.tps > 0.0);
}

#[test]
fn pgbench_driver_counts_aborted_clients_as_failures() {
    let Some((cluster, pgbench)) = cluster_and_pgbench() else {
        return;
    };
    let url = cluster.url("postgres", None, "postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        init_tables(&url, 1).await.expect("init");
        let client = duet_harness::load::connect(&url).await.expect("connect");
        client
            .batch_execute("ALTER TABLE pgbench_history ADD CHECK (delta > -2500)")
            .await
            .expect("constraint");
    });
    let mut opts = load(url, Workload::ReadWrite, Protocol::Prepared);
    opts.duration = Duration::from_secs(1);
    opts.warmup = Duration::ZERO;
    let report = run_pgbench(&opts, Some(&pgbench)).expect("pgbench runs");
    assert!(report.failures > 0, "{report:?}");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.message.contains("check constraint")),
        "{:?}",
        report.errors
    );
}

#[test]
fn compare_runs_every_cell_and_reports_a_missing_duet() {
    if !binaries_available() {
        return;
    }
    let mut targets = vec![Target::Direct, Target::Duet];
    if pgbouncer_installed() {
        targets.push(Target::Pgbouncer);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = CompareOptions {
        url: None,
        init: false,
        scale: 1,
        duet_bin: Some(PathBuf::from("/nonexistent/duet")),
        pgbouncer_bin: None,
        pgbench_bin: None,
        driver: Driver::Builtin,
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        scenarios: vec![Scenario {
            workload: Workload::SelectOnly,
            protocol: Protocol::Simple,
            clients: 2,
            reference: None,
        }],
        targets: targets.clone(),
        repeat: 2,
        pooling: Pooling::Session,
    };
    let mut lines = Vec::new();
    let comparison = run_compare(&opts, &rt, &mut |line| lines.push(line)).expect("compare");
    let cells = &comparison.scenarios[0].cells;
    assert_eq!(cells.len(), targets.len());
    assert_eq!(cells[0].tps_ratio_to_direct, Some(1.0));
    let duet = &cells[1];
    assert!(duet.report.is_none());
    assert!(
        duet.error
            .as_deref()
            .is_some_and(|e| e.contains("/nonexistent/duet")),
        "{duet:?}"
    );
    // Every round ran every target, and the order rotated: each target came first once.
    assert_eq!(cells[0].tps_runs.len(), 2);
    assert!(
        cells[0].tps_runs.iter().all(Option::is_some),
        "{:?}",
        cells[0]
    );
    assert_eq!(duet.tps_runs, [None, None]);
    let firsts: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("(round 1/2)") || l.contains("(round 2/2)"))
        .collect();
    assert!(
        firsts[0].contains("direct") && firsts[0].contains("round 1/2"),
        "{lines:?}"
    );
    let round_two_first = lines
        .iter()
        .find(|l| l.contains("(round 2/2)"))
        .expect("a second round");
    assert!(!round_two_first.contains(": direct"), "{lines:?}");
    if let Some(bouncer) = cells.get(2) {
        let report = bouncer.report.as_ref().expect("pgbouncer measured");
        assert_eq!(report.failures, 0);
        assert!(bouncer.tps_ratio_to_direct.is_some_and(|r| r > 0.0));
        assert!(bouncer.tps_spread.is_some());
    }
    // No duet run: nothing to judge against PgBouncer.
    assert_eq!(comparison.scenarios[0].duet_vs_pgbouncer, None);
    assert!(lines.iter().any(|l| l.contains("throwaway")), "{lines:?}");
}

#[test]
fn a_duet_that_exits_is_reported_with_its_output() {
    let err = DuetProxy::start(&DuetProxyOptions {
        duet_bin: PathBuf::from("/bin/false"),
        backend_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        extra_args: Vec::new(),
    })
    .expect_err("/bin/false is no proxy");
    assert!(
        matches!(&err, LaunchError::NotReady { reason, .. } if reason.contains("exited")),
        "{err}"
    );
}
