//! The built-in driver against a real (throwaway) PostgreSQL: tables created like pgbench's,
//! both protocols, the TPC-B invariant holds, and failed transactions are counted and rolled back.

mod support;

use std::time::Duration;

use duet_harness::load::{connect, init_tables, run_load, LoadOptions};
use duet_harness::workload::{Protocol, Workload};
use support::cluster_or_skip;

fn options(url: &str, workload: Workload, protocol: Protocol) -> LoadOptions {
    LoadOptions {
        url: url.to_string(),
        clients: 3,
        duration: Duration::from_millis(700),
        warmup: Duration::from_millis(200),
        workload,
        protocol,
        scale: None,
    }
}

/// sum(abalance) over accounts, tellers and branches, and sum(delta) over history: TPC-B keeps
/// them all equal when every transaction is atomic.
async fn balances(url: &str) -> (i64, i64, i64, i64, i64) {
    let client = connect(url).await.expect("connect");
    let row = client
        .query_one(
            "SELECT (SELECT coalesce(sum(abalance), 0)::int8 FROM pgbench_accounts), \
                    (SELECT coalesce(sum(tbalance), 0)::int8 FROM pgbench_tellers), \
                    (SELECT coalesce(sum(bbalance), 0)::int8 FROM pgbench_branches), \
                    (SELECT coalesce(sum(delta), 0)::int8 FROM pgbench_history), \
                    (SELECT count(*) FROM pgbench_history)",
            &[],
        )
        .await
        .expect("balances");
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[test]
fn workloads_run_in_both_protocols_and_keep_tpcb_consistent() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let url = cluster.url("postgres", None, "postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        init_tables(&url, 1).await.expect("init");
        let client = connect(&url).await.expect("connect");
        let accounts: i64 = client
            .query_one("SELECT count(*) FROM pgbench_accounts", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(accounts, 100_000);

        let mut committed = 0;
        for protocol in [Protocol::Simple, Protocol::Prepared] {
            for workload in [Workload::SelectOnly, Workload::ReadWrite] {
                let report = run_load(&options(&url, workload, protocol))
                    .await
                    .expect("run");
                assert!(report.transactions > 0, "{report:?}");
                assert_eq!(report.failures, 0, "{report:?}");
                assert_eq!(report.latency_us.count, report.transactions);
                assert!(report.latency_us.p50 <= report.latency_us.max);
                if workload == Workload::ReadWrite {
                    committed += report.transactions;
                }
            }
        }
        let (accounts, tellers, branches, history, rows) = balances(&url).await;
        assert_eq!(accounts, history);
        assert_eq!(tellers, history);
        assert_eq!(branches, history);
        // Warm-up transactions commit too, so history holds at least the measured ones.
        assert!(
            rows as u64 >= committed,
            "{rows} history rows < {committed}"
        );
    });
}

#[test]
fn failed_transactions_are_counted_and_rolled_back() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let url = cluster.url("postgres", None, "postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        init_tables(&url, 1).await.expect("init");
        let client = connect(&url).await.expect("connect");
        // About a quarter of the TPC-B transactions now fail at their last INSERT.
        client
            .batch_execute(
                "ALTER TABLE pgbench_history ADD CONSTRAINT no_big_withdrawals \
                 CHECK (delta > -2500)",
            )
            .await
            .expect("constraint");
        for protocol in [Protocol::Simple, Protocol::Prepared] {
            let report = run_load(&options(&url, Workload::ReadWrite, protocol))
                .await
                .expect("run");
            assert!(report.failures > 0, "{report:?}");
            assert!(report.transactions > 0, "{report:?}");
            assert!(
                report.errors.iter().any(|e| e.message.starts_with("23514")),
                "{:?}",
                report.errors
            );
        }
        let (accounts, tellers, branches, history, _) = balances(&url).await;
        assert_eq!(
            accounts, history,
            "failed transactions left no partial updates"
        );
        assert_eq!(tellers, history);
        assert_eq!(branches, history);
    });
}

#[test]
fn missing_tables_and_unreachable_servers_are_errors() {
    let Some(cluster) = cluster_or_skip() else {
        return;
    };
    let url = cluster.url("postgres", None, "postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let err = run_load(&options(&url, Workload::SelectOnly, Protocol::Prepared))
            .await
            .expect_err("no tables yet");
        assert!(err.to_string().contains("--init"), "{err}");
        let port = duet_harness::net::free_port().expect("port");
        let nowhere = format!("postgres://postgres:secret@127.0.0.1:{port}/postgres");
        let err = run_load(&options(&nowhere, Workload::SelectOnly, Protocol::Prepared))
            .await
            .expect_err("nothing listens there");
        let message = err.to_string();
        assert!(message.contains("cannot connect"), "{message}");
        assert!(!message.contains("secret"), "password leaked: {message}");
    });
}
