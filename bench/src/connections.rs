//! Many idle clients through one duet: does every session work, and what does it cost in memory?
//!
//! Session mode means one backend connection per client, so the server is a throwaway cluster with
//! room for all of them; in transaction mode (`pool_size`) the clients share that many. duet's resident memory (VmRSS) is read before the clients connect, while
//! N of them sit idle after one query each, and after they have all left (to see it come back).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::backend::Backend;
use crate::cluster::{Cluster, ClusterError, ClusterOptions};
use crate::duet_process::{DuetProxy, DuetProxyOptions};
use crate::launch::LaunchError;
use crate::load::{connect, describe};
use crate::pooling::{pool_config_file, POOLED_PASSWORD};
use crate::report::{top_errors, ErrorCount};

/// Connection attempts in flight at once (the server forks a backend per connection).
const CONNECT_CONCURRENCY: usize = 64;

/// What to run.
#[derive(Debug, Clone)]
pub struct ConnectionsOptions {
    /// Client connections to hold open at once.
    pub count: u32,
    /// The `duet` executable.
    pub duet_bin: PathBuf,
    /// Transaction mode with this many pooled server connections (`None`: session mode).
    pub pool_size: Option<u32>,
}

/// What was seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionsReport {
    /// Connections attempted.
    pub count: u32,
    /// Connections that connected and answered `SELECT 1` correctly.
    pub succeeded: u32,
    /// Connections that failed (to connect or to query).
    pub failed: u32,
    /// The distinct errors.
    pub errors: Vec<ErrorCount>,
    /// Seconds to open all connections.
    pub connect_secs: f64,
    /// duet's VmRSS before any client, KiB.
    pub rss_kib_idle_no_clients: Option<u64>,
    /// duet's VmRSS with all clients connected and idle, KiB.
    pub rss_kib_with_clients: Option<u64>,
    /// duet's VmRSS after the clients disconnected, KiB.
    pub rss_kib_after: Option<u64>,
    /// Current clients according to duet's `status` while all were connected.
    pub duet_clients_current: Option<u64>,
    /// Current clients according to duet's `status` after they left.
    pub duet_clients_after: Option<u64>,
}

impl ConnectionsReport {
    /// Memory per client connection, KiB (with-clients minus none, divided by the successes).
    pub fn kib_per_client(&self) -> Option<f64> {
        let with = self.rss_kib_with_clients?;
        let without = self.rss_kib_idle_no_clients?;
        (self.succeeded > 0).then(|| (with as f64 - without as f64) / f64::from(self.succeeded))
    }

    /// Human rendering.
    pub fn human(&self) -> String {
        let kib =
            |v: Option<u64>| v.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} connections through duet: {} succeeded, {} failed (opened in {:.1}s)",
            self.count, self.succeeded, self.failed, self.connect_secs
        );
        let _ = writeln!(
            out,
            "duet resident memory: {} with no clients, {} with {} idle clients, {} after they left",
            kib(self.rss_kib_idle_no_clients),
            kib(self.rss_kib_with_clients),
            self.succeeded,
            kib(self.rss_kib_after)
        );
        if let Some(per) = self.kib_per_client() {
            let _ = writeln!(out, "≈ {per:.1} KiB per idle client session");
        }
        let _ = writeln!(
            out,
            "duet status: clients.current = {} while connected, {} after",
            self.duet_clients_current
                .map_or("?".into(), |n| n.to_string()),
            self.duet_clients_after
                .map_or("?".into(), |n| n.to_string())
        );
        for error in &self.errors {
            let _ = writeln!(out, "  error ×{}: {}", error.count, error.message);
        }
        out
    }
}

/// Why the run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionsError {
    /// The cluster did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// duet did not start.
    #[error(transparent)]
    Duet(#[from] LaunchError),
    /// The transaction-mode config could not be written.
    #[error("{0}")]
    Setup(String),
}

/// Runs the connections check. `progress` receives one line per step.
pub fn run_connections(
    opts: &ConnectionsOptions,
    rt: &tokio::runtime::Runtime,
    progress: &mut dyn FnMut(String),
) -> Result<ConnectionsReport, ConnectionsError> {
    let max_connections = opts.pool_size.unwrap_or(opts.count) + 50;
    progress(format!(
        "starting a throwaway cluster with max_connections = {max_connections}"
    ));
    let cluster = Cluster::start(ClusterOptions {
        max_connections,
        ..ClusterOptions::default()
    })?;
    let backend_url = cluster.url("postgres", None, "postgres");
    let pool_config = match opts.pool_size {
        Some(size) => {
            let backend = Backend::parse(&backend_url).map_err(ConnectionsError::Setup)?;
            Some(pool_config_file(&backend, size).map_err(ConnectionsError::Setup)?)
        }
        None => None,
    };
    progress("starting duet".into());
    let duet = DuetProxy::start(&DuetProxyOptions {
        duet_bin: opts.duet_bin.clone(),
        backend_url,
        extra_args: pool_config
            .as_ref()
            .map(|(_, path)| vec!["--config".to_owned(), path.display().to_string()])
            .unwrap_or_default(),
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = duet.resident_kib();
    let url = match opts.pool_size {
        Some(_) => duet.url_for("postgres", Some(POOLED_PASSWORD), "postgres"),
        None => duet.url(),
    };

    progress(format!("opening {} connections through duet", opts.count));
    let started = Instant::now();
    let (clients, mut errors) = rt.block_on(open_all(&url, opts.count));
    let connect_secs = started.elapsed().as_secs_f64();
    progress("running SELECT 1 on each".into());
    let query_errors = rt.block_on(query_all(&clients));
    let failed_queries = query_errors.len() as u32;
    for message in query_errors {
        *errors.entry(message).or_default() += 1;
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_with = duet.resident_kib();
    let current_with = clients_current(&duet);

    progress("closing the connections".into());
    let connected = clients.len() as u32;
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut current_after = clients_current(&duet);
    while current_after.is_some_and(|n| n > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        current_after = clients_current(&duet);
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = duet.resident_kib();
    progress("stopping duet and the cluster".into());
    let _ = duet.shutdown(Duration::from_secs(5));
    drop(cluster);

    let succeeded = connected.saturating_sub(failed_queries);
    Ok(ConnectionsReport {
        count: opts.count,
        succeeded,
        failed: opts.count - succeeded,
        errors: top_errors(errors, 10),
        connect_secs,
        rss_kib_idle_no_clients: rss_before,
        rss_kib_with_clients: rss_with,
        rss_kib_after: rss_after,
        duet_clients_current: current_with,
        duet_clients_after: current_after,
    })
}

fn clients_current(duet: &DuetProxy) -> Option<u64> {
    duet.status().ok()?["clients"]["current"].as_u64()
}

async fn open_all(
    url: &str,
    count: u32,
) -> (
    Vec<tokio_postgres::Client>,
    std::collections::HashMap<String, u64>,
) {
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let gate = Arc::clone(&gate);
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            connect(&url).await.map_err(|err| describe(&err))
        }));
    }
    let mut clients = Vec::with_capacity(count as usize);
    let mut errors = std::collections::HashMap::new();
    for task in tasks {
        match task.await {
            Ok(Ok(client)) => clients.push(client),
            Ok(Err(message)) => *errors.entry(message).or_default() += 1,
            Err(join) => *errors.entry(format!("task died: {join}")).or_default() += 1,
        }
    }
    (clients, errors)
}

/// Runs `SELECT 1` on every client concurrently; returns the error of each one that failed.
async fn query_all(clients: &[tokio_postgres::Client]) -> Vec<String> {
    let queries = clients.iter().map(|client| async move {
        match client.query_one("SELECT 1::int4", &[]).await {
            Ok(row) if row.get::<_, i32>(0) == 1 => None,
            Ok(_) => Some("SELECT 1 returned something else".to_string()),
            Err(err) => Some(describe(&err)),
        }
    });
    let results = futures_util::future::join_all(queries).await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_memory_and_rendering() {
        let report = ConnectionsReport {
            count: 1000,
            succeeded: 1000,
            failed: 0,
            errors: Vec::new(),
            connect_secs: 3.2,
            rss_kib_idle_no_clients: Some(4096),
            rss_kib_with_clients: Some(4096 + 50_000),
            rss_kib_after: Some(6000),
            duet_clients_current: Some(1000),
            duet_clients_after: Some(0),
        };
        assert_eq!(report.kib_per_client(), Some(50.0));
        let text = report.human();
        assert!(text.contains("1000 succeeded, 0 failed"), "{text}");
        assert!(
            text.contains("≈ 50.0 KiB per idle client session"),
            "{text}"
        );
        assert!(
            text.contains("clients.current = 1000 while connected, 0 after"),
            "{text}"
        );
    }
}
