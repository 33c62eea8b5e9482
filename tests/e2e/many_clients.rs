//! 1000 concurrent client sessions through one duet to a server that allows 1100: every one
//! connects, gets its own backend, and runs a query; duet counts them and lets them all go.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use duet_harness::cluster::ClusterOptions;
use serde_json::Value;

use crate::support::pg_client::{backend_pid, connect, Session};
use crate::support::{throwaway_cluster_or_skip, wait_for_async, DuetProcess};

const CLIENTS: usize = 1000;

/// Raises this process's soft RLIMIT_NOFILE (inherited by the duet it spawns) to `wanted`, or to the
/// hard limit if that is lower.
fn raise_open_files_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            0,
            "getrlimit"
        );
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit");
        }
    }
    limit.rlim_cur
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients() {
    let test = "a_thousand_concurrent_clients";
    let files = raise_open_files_limit(8192);
    assert!(
        // This process holds one socket per client; duet (which inherits the limit) two.
        files >= 2 * CLIENTS as u64 + 200,
        "RLIMIT_NOFILE hard limit {files} is too low for {CLIENTS} clients"
    );
    let options = ClusterOptions {
        max_connections: 1100,
        settings: vec![("shared_buffers".into(), "32MB".into())],
        ..ClusterOptions::default()
    };
    let Some(cluster) = throwaway_cluster_or_skip(test, options) else {
        return;
    };
    let duet = DuetProcess::start(&cluster.url("postgres", None, "postgres"), &[]);
    let config = duet.config("postgres", "postgres");

    // Connect all, 100 handshakes in flight at a time; keep every session open.
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let connecting: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let gate = Arc::clone(&gate);
            let config = config.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                connect(&config).await
            })
        })
        .collect();
    let mut sessions: Vec<Session> = Vec::with_capacity(CLIENTS);
    for task in connecting {
        sessions.push(task.await.expect("connect task"));
    }

    // All of them query at once; each has a backend of its own.
    let sessions = Arc::new(sessions);
    let querying: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let sessions = Arc::clone(&sessions);
            tokio::spawn(async move { backend_pid(&sessions[index].client).await })
        })
        .collect();
    let mut pids = HashSet::new();
    for task in querying {
        pids.insert(task.await.expect("query task"));
    }
    assert_eq!(
        pids.len(),
        CLIENTS,
        "every client must have its own backend"
    );

    wait_for_async(
        "duet to count 1000 clients",
        Duration::from_secs(60),
        || async {
            (duet.status_async().await.pointer("/clients/current")
                == Some(&Value::from(CLIENTS as u64)))
            .then_some(())
        },
    )
    .await;

    drop(sessions);
    wait_for_async(
        "all clients and their backend connections to be gone",
        Duration::from_secs(60),
        || async {
            let status = duet.status_async().await;
            (status.pointer("/clients/current") == Some(&Value::from(0))
                && status.pointer("/backend_connections/current") == Some(&Value::from(0)))
            .then_some(())
        },
    )
    .await;
    let status = duet.status_async().await;
    assert!(
        status["clients"]["total"]
            .as_u64()
            .is_some_and(|total| total >= CLIENTS as u64),
        "clients.total must count every session: {status}"
    );
    assert!(
        status["backend_connections"]["total"]
            .as_u64()
            .is_some_and(|total| total >= CLIENTS as u64),
        "backend_connections.total must count every backend: {status}"
    );
}
