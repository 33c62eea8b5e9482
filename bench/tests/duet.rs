//! The duet launcher and the connections check against the real `duet` binary (the one cargo
//! built next to this test), driven only through the public contract.
//!
//! `cargo test -p duet-bench` alone does not build the `duet` binary; then these tests say so and
//! skip — or fail under `DUET_REQUIRE_DATABASE=1` (run `cargo build -p duet-proxy` first, or the whole
//! workspace's tests, as CI does).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use duet_bench::compare::{run_compare, CompareOptions, Driver, Pooling, Scenario, Target};
use duet_bench::connections::{run_connections, ConnectionsOptions};
use duet_harness::cluster::{Cluster, ClusterOptions};
use duet_harness::duet_process::{duet_next_to_current_exe, DuetProxy, DuetProxyOptions};
use duet_harness::load::{init_tables, run_load, LoadOptions};
use duet_harness::workload::{Protocol, Workload};

fn duet_or_skip() -> Option<PathBuf> {
    if !support::binaries_available() {
        return None;
    }
    let Some(duet) = duet_next_to_current_exe() else {
        support::skip(
            "no duet binary next to this test; run `cargo build -p duet-proxy` first \
             (`cargo test --workspace` builds it)",
        );
        return None;
    };
    Some(duet)
}

#[test]
fn load_through_duet_and_its_status_and_shutdown() {
    let Some(duet_bin) = duet_or_skip() else {
        return;
    };
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    let duet = DuetProxy::start(&DuetProxyOptions {
        duet_bin,
        backend_url: cluster.url("postgres", None, "postgres"),
        extra_args: Vec::new(),
    })
    .expect("duet starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(init_tables(&duet.url(), 1))
        .expect("init through duet");
    let mut committed = 0;
    for protocol in [Protocol::Simple, Protocol::Prepared] {
        let report = rt
            .block_on(run_load(&LoadOptions {
                url: duet.url(),
                clients: 3,
                duration: Duration::from_millis(700),
                warmup: Duration::from_millis(100),
                workload: Workload::ReadWrite,
                protocol,
                scale: None,
            }))
            .expect("load through duet");
        assert!(report.transactions > 0, "{report:?}");
        assert_eq!(report.failures, 0, "{report:?}");
        committed += report.transactions;
    }
    let status = duet.status().expect("status");
    assert!(
        status["clients"]["total"].as_u64().is_some_and(|n| n >= 6),
        "{status}"
    );
    // Each TPC-B transaction is 7 statements, all forwarded by duet.
    assert!(
        status["statements"]
            .as_u64()
            .is_some_and(|n| n >= committed * 7),
        "{status}"
    );
    assert!(duet.resident_kib().is_some_and(|kib| kib > 0));
    let pid = duet.pid().expect("running");
    let reply = duet.shutdown(Duration::from_secs(5)).expect("shutdown");
    assert_eq!(reply["shutting_down"], true, "{reply}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "duet exited"
    );
}

#[test]
fn connections_check_holds_every_session() {
    let Some(duet_bin) = duet_or_skip() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Session mode, then transaction mode with 4 server connections for the 60 clients.
    for pool_size in [None, Some(4)] {
        let report = run_connections(
            &ConnectionsOptions {
                count: 60,
                duet_bin: duet_bin.clone(),
                pool_size,
            },
            &rt,
            &mut |_| {},
        )
        .expect("connections run");
        assert_eq!(report.succeeded, 60, "{pool_size:?}: {report:?}");
        assert_eq!(report.failed, 0, "{pool_size:?}: {report:?}");
        assert_eq!(report.duet_clients_current, Some(60), "{report:?}");
        assert_eq!(report.duet_clients_after, Some(0), "{report:?}");
        assert!(report.rss_kib_with_clients.is_some());
    }
}

/// `duet-bench compare --pool-mode transaction`: duet and PgBouncer each share two server
/// connections among four clients; every cell runs without a failed transaction. (The simple
/// protocol: Debian's PgBouncer 1.18 has no named prepared statements in transaction mode.)
#[test]
fn compare_in_transaction_mode_pools_both_proxies() {
    let Some(duet_bin) = duet_or_skip() else {
        return;
    };
    let mut targets = vec![Target::Direct, Target::Duet];
    if support::pgbouncer_installed() {
        targets.push(Target::Pgbouncer);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = CompareOptions {
        url: None,
        init: false,
        scale: 1,
        duet_bin: Some(duet_bin),
        pgbouncer_bin: None,
        pgbench_bin: None,
        driver: Driver::Builtin,
        duration: Duration::from_millis(700),
        warmup: Duration::ZERO,
        scenarios: vec![Scenario {
            workload: Workload::ReadWrite,
            protocol: Protocol::Simple,
            clients: 4,
            reference: None,
        }],
        targets: targets.clone(),
        repeat: 1,
        pooling: Pooling::Transaction { size: 2 },
    };
    let comparison = run_compare(&opts, &rt, &mut |_| {}).expect("compare");
    for cell in &comparison.scenarios[0].cells {
        let report = cell
            .report
            .as_ref()
            .unwrap_or_else(|| panic!("{:?}: {:?}", cell.target, cell.error));
        assert!(report.transactions > 0, "{:?}: {report:?}", cell.target);
        assert_eq!(report.failures, 0, "{:?}: {report:?}", cell.target);
    }
    assert_eq!(comparison.scenarios[0].cells.len(), targets.len());
}
