//! tokio-postgres sessions for the tests, with bounded waits and the server's asynchronous
//! messages (notices, notifications, the final FATAL) made observable.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Config, Error, NoTls};

/// A connected client plus what its connection delivered besides query results.
pub struct Session {
    /// The client.
    pub client: Client,
    /// Notices and notifications, in arrival order.
    pub messages: mpsc::UnboundedReceiver<AsyncMessage>,
    /// Ends when the connection ends, with the error that ended it (e.g. a FATAL from duet).
    pub ended: JoinHandle<Option<Error>>,
    /// The ParameterStatus values received during startup (server_version, application_name, …).
    pub parameters: HashMap<String, String>,
}

/// The ParameterStatus names PostgreSQL reports at startup.
const REPORTED_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
];

/// Connects (failing the test after 20 s instead of hanging) and drives the connection on a task.
pub async fn connect(config: &Config) -> Session {
    try_connect(config).await.unwrap_or_else(|err| {
        panic!(
            "connecting with {config:?}: {}",
            super::database::describe(&err)
        )
    })
}

/// Like [`connect`] but returns the connection error (authentication tests expect some).
pub async fn try_connect(config: &Config) -> Result<Session, Error> {
    let (client, mut connection) =
        tokio::time::timeout(Duration::from_secs(20), config.connect(NoTls))
            .await
            .unwrap_or_else(|_| panic!("connecting with {config:?} did not finish within 20s"))?;
    let parameters = REPORTED_PARAMETERS
        .iter()
        .filter_map(|name| {
            connection
                .parameter(name)
                .map(|value| (name.to_string(), value.to_string()))
        })
        .collect();
    let (sender, messages) = mpsc::unbounded_channel();
    let ended = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(message)) => {
                    let _ = sender.send(message);
                }
                Some(Err(err)) => return Some(err),
                None => return None,
            }
        }
    });
    Ok(Session {
        client,
        messages,
        ended,
        parameters,
    })
}

/// The backend pid of a session (from the server itself, not from duet).
///
/// Simple protocol on purpose: a prepared `query_one` makes tokio-postgres close its statement
/// asynchronously afterwards, leaving a request in flight that would swallow the next unsolicited
/// message (like duet's FATAL when the backend dies).
pub async fn backend_pid(client: &Client) -> i32 {
    let messages = client
        .simple_query("SELECT pg_backend_pid()")
        .await
        .expect("SELECT pg_backend_pid()");
    messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                row.get(0).and_then(|pid| pid.parse().ok())
            }
            _ => None,
        })
        .expect("a pid row")
}

/// Awaits `future`, failing the test with `what` if it takes longer than `limit` (a hang bound,
/// never the property under test).
pub async fn bounded<F: std::future::Future>(what: &str, limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// The SQLSTATE of a failed call, or a panic naming what succeeded unexpectedly.
pub fn sqlstate<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) -> String {
    match result {
        Ok(value) => panic!("{what} succeeded ({value:?}) but was expected to fail"),
        Err(err) => match err.code() {
            Some(code) => code.code().to_string(),
            None => panic!(
                "{what} failed without a SQLSTATE: {}",
                super::database::describe(&err)
            ),
        },
    }
}
