//! The built-in load driver: N tokio-postgres connections each running the workload in a loop.
//!
//! Like pgbench, all clients connect first, then the clock starts: a warm-up (not measured, so
//! caches and plans settle), then the measured window. Each client records per-transaction latency
//! in its own hdrhistogram (no shared lock on the hot path); histograms are merged at the end.
//! A failed transaction is rolled back, counted with its message, and the client carries on
//! (reconnecting if its connection died) — failures are reported, never hidden.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, NoTls, Statement};

use crate::report::{new_latency_histogram as new_histogram, top_errors, LatencySummary, Report};
use crate::schema;
use crate::workload::{select_only_literal, sql, Protocol, SplitMix64, TxValues, Workload};

/// Distinct error messages kept in a report.
const ERRORS_REPORTED: usize = 10;
/// Pause before trying to reconnect a client whose connection died.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// libpq-style URL of the server or proxy to load.
    pub url: String,
    /// Concurrent client connections.
    pub clients: u32,
    /// Measured window.
    pub duration: Duration,
    /// Unmeasured run before the window.
    pub warmup: Duration,
    /// The script.
    pub workload: Workload,
    /// How statements are sent.
    pub protocol: Protocol,
    /// Scale of the pgbench tables; `None` = detect it like pgbench (rows in pgbench_branches).
    pub scale: Option<u32>,
}

/// Why a run could not happen at all (individual transaction failures are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The control connection (scale detection) failed.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// Where (password removed).
        target: String,
        /// Why.
        message: String,
    },
    /// The pgbench tables are missing.
    #[error("the pgbench tables do not exist at {target}: create them with `duet-bench run --init --scale N` (or pgbench -i)")]
    NoTables {
        /// Where (password removed).
        target: String,
    },
    /// Scale detection or table creation failed.
    #[error("{what} at {target}: {message}")]
    Sql {
        /// What was being done.
        what: &'static str,
        /// Where (password removed).
        target: String,
        /// Why.
        message: String,
    },
    /// Nonsense options.
    #[error("{0}")]
    Options(String),
    /// Not a single client could connect.
    #[error("none of the {clients} clients could connect to {target}: {message}")]
    NoClients {
        /// How many tried.
        clients: u32,
        /// Where (password removed).
        target: String,
        /// The first error.
        message: String,
    },
}

/// Creates the pgbench tables at `scale` at `url` (replacing existing ones).
pub async fn init_tables(url: &str, scale: u32) -> Result<(), LoadError> {
    let client = connect(url).await.map_err(|err| LoadError::Connect {
        target: redact(url),
        message: describe(&err),
    })?;
    schema::init(&client, scale)
        .await
        .map_err(|err| LoadError::Sql {
            what: "creating the pgbench tables",
            target: redact(url),
            message: describe(&err),
        })
}

/// Runs the load described by `opts` and reports what it measured.
pub async fn run_load(opts: &LoadOptions) -> Result<Report, LoadError> {
    if opts.clients == 0 {
        return Err(LoadError::Options("--clients must be at least 1".into()));
    }
    if opts.duration.is_zero() {
        return Err(LoadError::Options(
            "--duration must be longer than 0".into(),
        ));
    }
    let scale = match opts.scale {
        Some(scale) => scale.max(1),
        None => detect_scale(&opts.url).await?,
    };

    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(opts.clients as usize);
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let shared = Arc::new(opts.clone());
    let mut tasks = Vec::with_capacity(opts.clients as usize);
    for id in 0..opts.clients {
        let shared = Arc::clone(&shared);
        let ready_tx = ready_tx.clone();
        let start_rx = start_rx.clone();
        tasks.push(tokio::spawn(run_client(
            id, shared, scale, ready_tx, start_rx,
        )));
    }
    drop(ready_tx);
    // Every client reports once it has connected (or failed to); then the clock starts.
    while ready_rx.recv().await.is_some() {}
    let start = Instant::now();
    let measure_from = start + opts.warmup;
    let _ = start_tx.send(Some(start));

    let mut histogram = new_histogram();
    let mut transactions = 0u64;
    let mut failures = 0u64;
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut connected = 0u32;
    for task in tasks {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(join_error) => ClientOutcome::failed(format!("client task died: {join_error}")),
        };
        if outcome.connected {
            connected += 1;
        }
        // Both histograms have the same bounds, so adding cannot fail; a failure would only
        // drop latency samples, never counts.
        let _ = histogram.add(&outcome.histogram);
        transactions += outcome.transactions;
        failures += outcome.failures;
        for (message, count) in outcome.errors {
            *errors.entry(message).or_default() += count;
        }
    }
    let measured = Instant::now().saturating_duration_since(measure_from);
    if connected == 0 {
        let message = errors.keys().next().cloned().unwrap_or_default();
        return Err(LoadError::NoClients {
            clients: opts.clients,
            target: redact(&opts.url),
            message,
        });
    }
    let duration_secs = measured.as_secs_f64().max(f64::EPSILON);
    Ok(Report {
        driver: "builtin".into(),
        workload: opts.workload,
        protocol: opts.protocol,
        clients: opts.clients,
        duration_secs,
        transactions,
        failures,
        tps: transactions as f64 / duration_secs,
        latency_us: LatencySummary::from_histogram(&histogram),
        errors: top_errors(errors, ERRORS_REPORTED),
    })
}

async fn detect_scale(url: &str) -> Result<u32, LoadError> {
    let client = connect(url).await.map_err(|err| LoadError::Connect {
        target: redact(url),
        message: describe(&err),
    })?;
    schema::detect_scale(&client)
        .await
        .map_err(|err| LoadError::Sql {
            what: "reading the pgbench scale",
            target: redact(url),
            message: describe(&err),
        })?
        .ok_or_else(|| LoadError::NoTables {
            target: redact(url),
        })
}

/// What one client did.
struct ClientOutcome {
    connected: bool,
    histogram: Histogram<u64>,
    transactions: u64,
    failures: u64,
    errors: HashMap<String, u64>,
}

impl ClientOutcome {
    fn new() -> ClientOutcome {
        ClientOutcome {
            connected: false,
            histogram: new_histogram(),
            transactions: 0,
            failures: 0,
            errors: HashMap::new(),
        }
    }

    fn failed(message: String) -> ClientOutcome {
        let mut outcome = ClientOutcome::new();
        outcome.fail(message);
        outcome
    }

    fn fail(&mut self, message: String) {
        self.failures += 1;
        *self.errors.entry(message).or_default() += 1;
    }
}

async fn run_client(
    id: u32,
    opts: Arc<LoadOptions>,
    scale: u32,
    ready: mpsc::Sender<()>,
    mut start: watch::Receiver<Option<Instant>>,
) -> ClientOutcome {
    let mut outcome = ClientOutcome::new();
    let session = Session::open(&opts.url, opts.protocol).await;
    let _ = ready.send(()).await;
    drop(ready);
    let mut session = match session {
        Ok(session) => {
            outcome.connected = true;
            Some(session)
        }
        Err(err) => {
            outcome.fail(describe(&err));
            return outcome;
        }
    };
    let Ok(start_at) = start.wait_for(Option::is_some).await.map(|v| *v) else {
        return outcome;
    };
    let Some(start_at) = start_at else {
        return outcome;
    };
    let measure_from = start_at + opts.warmup;
    let end = measure_from + opts.duration;
    let mut rng = SplitMix64::new(0x5eed_0000_0000_0000 ^ (u64::from(id) << 20) ^ now_nanos());

    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        let Some(live) = session.as_ref().filter(|s| !s.client.is_closed()) else {
            session = match Session::open(&opts.url, opts.protocol).await {
                Ok(fresh) => Some(fresh),
                Err(err) => {
                    outcome.fail(format!("reconnect: {}", describe(&err)));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    None
                }
            };
            continue;
        };
        let values = TxValues::draw(&mut rng, scale);
        match live.run(opts.workload, values).await {
            Ok(()) => {
                if began >= measure_from {
                    let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                    outcome.histogram.saturating_record(micros.max(1));
                    outcome.transactions += 1;
                }
            }
            Err(err) => {
                outcome.fail(describe(&err));
                live.rollback_after_error().await;
            }
        }
    }
    outcome
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The statements of the workloads, prepared once per connection.
struct Prepared {
    select: Statement,
    begin: Statement,
    update_account: Statement,
    update_teller: Statement,
    update_branch: Statement,
    insert_history: Statement,
    end: Statement,
}

/// One client connection and, in prepared mode, its statements.
struct Session {
    client: Client,
    prepared: Option<Prepared>,
}

impl Session {
    async fn open(url: &str, protocol: Protocol) -> Result<Session, tokio_postgres::Error> {
        let client = connect(url).await?;
        let prepared = match protocol {
            Protocol::Simple => None,
            Protocol::Prepared => Some(Prepared {
                select: client.prepare(sql::SELECT_BALANCE).await?,
                begin: client.prepare(sql::BEGIN).await?,
                update_account: client.prepare(sql::UPDATE_ACCOUNT).await?,
                update_teller: client.prepare(sql::UPDATE_TELLER).await?,
                update_branch: client.prepare(sql::UPDATE_BRANCH).await?,
                insert_history: client.prepare(sql::INSERT_HISTORY).await?,
                end: client.prepare(sql::END).await?,
            }),
        };
        Ok(Session { client, prepared })
    }

    async fn run(&self, workload: Workload, v: TxValues) -> Result<(), tokio_postgres::Error> {
        let c = &self.client;
        match (&self.prepared, workload) {
            (None, Workload::SelectOnly) => {
                c.simple_query(&select_only_literal(v.aid)).await?;
            }
            (None, Workload::ReadWrite) => {
                for statement in v.read_write_literal() {
                    c.simple_query(&statement).await?;
                }
            }
            (Some(p), Workload::SelectOnly) => {
                c.query(&p.select, &[&v.aid]).await?;
            }
            (Some(p), Workload::ReadWrite) => {
                c.execute(&p.begin, &[]).await?;
                c.execute(&p.update_account, &[&v.delta, &v.aid]).await?;
                c.query(&p.select, &[&v.aid]).await?;
                c.execute(&p.update_teller, &[&v.delta, &v.tid]).await?;
                c.execute(&p.update_branch, &[&v.delta, &v.bid]).await?;
                c.execute(&p.insert_history, &[&v.tid, &v.bid, &v.aid, &v.delta])
                    .await?;
                c.execute(&p.end, &[]).await?;
            }
        }
        Ok(())
    }

    /// After a failed statement the session may sit in an aborted transaction: leave it.
    async fn rollback_after_error(&self) {
        if !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
    }
}

/// Opens a connection and drives it on its own task.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // The connection ends with the client; its error surfaces on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// A one-line description of a client error: SQLSTATE and message from the server when there is
/// one, else the error and its cause.
pub fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{}: {}", db.code().code(), db.message());
    }
    match std::error::Error::source(err) {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    }
}

/// The URL with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &url[scheme_end + 3 + at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@127.0.0.1:5432/db"),
            "postgres://app:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact("postgres://app@127.0.0.1/db"),
            "postgres://app@127.0.0.1/db"
        );
        assert_eq!(redact("host=/tmp user=x"), "host=/tmp user=x");
        assert_eq!(
            redact("postgresql://u:p@h/db?host=/x@y"),
            "postgresql://u:***@h/db?host=/x@y"
        );
    }
}
