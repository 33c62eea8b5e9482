//! The backend connections of one (user, database) in transaction mode.
//!
//! At most `size` connections exist; a transaction takes an idle one (or opens one while fewer
//! than `size` exist) and waits up to `wait_timeout` when all are busy. Connections are logged in
//! by duet itself ([`super::auth::backend_login`]) with the user's password, or with the SCRAM
//! key the first client's proof revealed.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::backend_login::{log_in, BackendLoginError};
use super::auth::scram::ScramSecret;
use super::settings::Settings;
use super::statements::BackendStatements;
use crate::backend::{Backend, BackendStream, ConnectError};
use crate::wire::messages::{Message, ParameterStatus};

/// One pooled backend connection and what duet knows of its session.
#[derive(Debug)]
pub struct PooledConn {
    /// The connection.
    pub stream: BackendStream,
    /// Bytes read from it that no one has handled yet.
    pub buf: BytesMut,
    /// The backend's process id.
    pub pid: i32,
    /// Its cancel key.
    pub key: Bytes,
    /// The server's parameters as last reported (ParameterStatus).
    pub parameters: Vec<(String, String)>,
    /// The settings duet gave it.
    pub settings: Settings,
    /// The statements prepared on it.
    pub statements: BackendStatements,
}

impl PooledConn {
    /// Notes a ParameterStatus body (one that does not decode is ignored: the connection's
    /// parameters are what duet tells its clients at startup, never what it acts on).
    pub fn note_parameter(&mut self, body: &[u8]) {
        let Ok(status) = ParameterStatus::decode(body) else {
            return;
        };
        let name = String::from_utf8_lossy(status.name).into_owned();
        let value = String::from_utf8_lossy(status.value).into_owned();
        match self.parameters.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.parameters.push((name, value)),
        }
    }
}

/// A connection taken from the pool, with its place in it.
#[derive(Debug)]
pub struct Checkout {
    /// The connection.
    pub conn: PooledConn,
    _slot: OwnedSemaphorePermit,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// All connections stayed busy.
    #[error("no backend connection of user {user:?} on database {database:?} became free within {waited:?} (all {size} in use): raise [pool] size or wait_timeout, or lower the load")]
    Timeout {
        /// The pool's user.
        user: String,
        /// The pool's database.
        database: String,
        /// How long the transaction waited.
        waited: Duration,
        /// The pool's size.
        size: usize,
    },
    /// The backend could not be reached.
    #[error("could not reach the backend: {0}")]
    Connect(#[from] ConnectError),
    /// The backend refused the login.
    #[error(transparent)]
    Login(#[from] BackendLoginError),
}

/// The pool of one (user, database).
#[derive(Debug)]
pub struct BackendPool {
    user: String,
    database: String,
    backend: Arc<Backend>,
    connect_timeout: Duration,
    wait_timeout: Duration,
    size: usize,
    secret: Mutex<Option<ScramSecret>>,
    idle: Mutex<Vec<PooledConn>>,
    slots: Arc<Semaphore>,
    open: AtomicUsize,
    /// Statements (by backend name) a connection of this pool has prepared without error, in the
    /// schema generation kept beside them: names of older generations are never asked for again
    /// (a Parse is always named in the current one), so they are dropped when it moves on.
    known: Mutex<(u64, HashSet<Bytes>)>,
    /// Connections opened since start.
    opened: AtomicUsize,
    /// Transactions (and new sessions) waiting for a connection now.
    waiting: AtomicUsize,
    /// Until when connections given back are closed rather than kept ([`Self::close_idle`]).
    closing_until: Mutex<Option<Instant>>,
}

/// How long PostgreSQL waits for other sessions to leave a database before `DROP DATABASE`,
/// `CREATE DATABASE … TEMPLATE` or `ALTER DATABASE … RENAME` gives up (`CountOtherDBBackends`:
/// 50 tries 100 ms apart).
const SERVER_WAITS_FOR_OTHER_SESSIONS: Duration = Duration::from_secs(5);

/// One pool as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolView {
    /// The pool's user.
    pub user: String,
    /// The pool's database.
    pub database: String,
    /// Its largest number of connections.
    pub size: usize,
    /// Connections open now.
    pub open: usize,
    /// Of those, attached to a client's transaction now.
    pub in_use: usize,
    /// Transactions waiting for a connection now.
    pub waiting: usize,
    /// Connections opened since start.
    pub opened_total: usize,
    /// Distinct statements prepared on its connections.
    pub statements: usize,
}

impl BackendPool {
    /// An empty pool.
    pub fn new(
        user: &str,
        database: &str,
        backend: Arc<Backend>,
        connect_timeout: Duration,
        wait_timeout: Duration,
        size: usize,
        secret: Option<ScramSecret>,
    ) -> BackendPool {
        BackendPool {
            user: user.to_owned(),
            database: database.to_owned(),
            backend,
            connect_timeout,
            wait_timeout,
            size,
            secret: Mutex::new(secret),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size)),
            open: AtomicUsize::new(0),
            known: Mutex::new((super::statements::schema_generation(), HashSet::new())),
            opened: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            closing_until: Mutex::new(None),
        }
    }

    /// Remembers how to log in when the pool had no secret yet (the first client's SCRAM key).
    pub fn learn_secret(&self, secret: ScramSecret) {
        let mut slot = self.secret.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(secret);
        }
    }

    /// A connection prepared `backend_name` without error.
    pub fn note_prepared(&self, backend_name: Bytes) {
        self.with_known(|known| known.insert(backend_name));
    }

    /// Whether a connection of this pool has prepared `backend_name` without error.
    pub fn is_known(&self, backend_name: &[u8]) -> bool {
        self.with_known(|known| known.contains(backend_name))
    }

    /// The known statements of the current schema generation.
    fn with_known<T>(&self, f: impl FnOnce(&mut HashSet<Bytes>) -> T) -> T {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let generation = super::statements::schema_generation();
        if known.0 != generation {
            *known = (generation, HashSet::new());
        }
        f(&mut known.1)
    }

    /// Connections open now (idle and busy).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// What `status` shows of this pool.
    pub fn view(&self) -> PoolView {
        PoolView {
            user: self.user.clone(),
            database: self.database.clone(),
            size: self.size,
            open: self.open.load(Ordering::Relaxed),
            in_use: self.size - self.slots.available_permits(),
            waiting: self.waiting.load(Ordering::Relaxed),
            opened_total: self.opened.load(Ordering::Relaxed),
            statements: self.with_known(|known| known.len()),
        }
    }

    /// Takes a connection for one transaction, waiting up to the pool's `wait_timeout` for one
    /// to be free.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout, PoolError> {
        // A free slot is taken at once; only a wait arms a timer (one per transaction was a
        // timer-wheel entry made and cleared each time, for nothing).
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => self.wait_for_slot().await?,
        };
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut conn) = idle else { break };
            if still_open(&mut conn).await {
                return Ok(Checkout { conn, _slot: slot });
            }
            // The server closed it while idle (restart, idle timeout, terminated): open another.
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        let conn = self.open_one().await?;
        self.open.fetch_add(1, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Checkout { conn, _slot: slot })
    }

    /// A connection for one transaction if one is free and open right now, without waiting
    /// (the common case, taken with no future of its own); `None` when the caller must
    /// [`checkout`](Self::checkout).
    pub fn checkout_now(&self, cx: &mut Context<'_>) -> Option<Checkout> {
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        loop {
            let mut conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            if is_open_now(&mut conn, cx) {
                return Some(Checkout { conn, _slot: slot });
            }
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Waits up to `wait_timeout` for a slot.
    async fn wait_for_slot(self: &Arc<Self>) -> Result<OwnedSemaphorePermit, PoolError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let acquired =
            tokio::time::timeout(self.wait_timeout, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match acquired {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(PoolError::Timeout {
                user: self.user.clone(),
                database: self.database.clone(),
                waited: self.wait_timeout,
                size: self.size,
            }),
        }
    }

    /// Gives a connection back after a transaction (closed instead while a client needs the
    /// database to itself: [`BackendPool::close_idle`]).
    pub fn checkin(&self, checkout: Checkout) {
        let closing = *self.closing_until.lock().unwrap_or_else(|p| p.into_inner());
        if closing.is_some_and(|until| Instant::now() < until) {
            self.discard(checkout);
            return;
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(checkout.conn);
    }

    /// Closes a connection that must not serve anyone again.
    pub fn discard(&self, checkout: Checkout) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let Checkout { conn, _slot: slot } = checkout;
        // The slot is given back once it is closed, so the pool never exceeds its size.
        say_goodbye(conn.stream, Some(slot));
    }

    /// Closes every idle connection, and each one given back for as long as the server waits
    /// for other sessions to leave (a client needs the database to itself:
    /// [`super::database_ddl`]); returns how many were idle.
    pub fn close_idle(&self) -> usize {
        *self.closing_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + SERVER_WAITS_FOR_OTHER_SESSIONS);
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        let n = idle.len();
        self.open.fetch_sub(n, Ordering::Relaxed);
        for conn in idle {
            say_goodbye(conn.stream, None);
        }
        n
    }

    /// The pool's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Opens and logs in one connection.
    async fn open_one(&self) -> Result<PooledConn, PoolError> {
        let mut stream = self
            .backend
            .open(self.backend.first_attempt(), self.connect_timeout)
            .await?;
        let startup = crate::wire::startup::encode_startup(&[
            ("user", &self.user),
            ("database", &self.database),
        ]);
        let secret = self
            .secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut buf = BytesMut::with_capacity(4096);
        let logged_in = tokio::time::timeout(
            self.connect_timeout,
            log_in(&mut stream, &mut buf, &startup, secret.as_ref()),
        )
        .await
        .map_err(|_| ConnectError::Timeout(self.connect_timeout))??;
        Ok(PooledConn {
            stream,
            buf,
            pid: logged_in.pid,
            key: logged_in.key,
            parameters: logged_in.parameters,
            settings: Settings::default(),
            statements: BackendStatements::default(),
        })
    }
}

/// Whether an idle connection is still open: the server sends nothing to an idle session unless
/// it is ending it (a FATAL, then EOF). The read is polled once, right now: a timer (even of zero)
/// would wait for the next tick of tokio's millisecond wheel on every checkout.
async fn still_open(conn: &mut PooledConn) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(is_open_now(conn, cx))).await
}

/// [`still_open`], polled with `cx`.
fn is_open_now(conn: &mut PooledConn, cx: &mut Context<'_>) -> bool {
    let mut probe = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut probe);
    // Bytes from an idle session are its end (a FATAL); no bytes are EOF: only nothing to read
    // means open.
    Pin::new(&mut conn.stream)
        .poll_read(cx, &mut buf)
        .is_pending()
}

/// Ends a pooled connection as a client does (the server rolls an open transaction back and ends
/// the session without logging an unexpected EOF); a connection already broken just closes.
/// `slot` is given back once it is closed.
fn say_goodbye(mut stream: BackendStream, slot: Option<OwnedSemaphorePermit>) {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stream
            .write_all(&[crate::wire::frontend::TERMINATE, 0, 0, 0, 4])
            .await;
        let _ = stream.shutdown().await;
        drop(slot);
    });
}
