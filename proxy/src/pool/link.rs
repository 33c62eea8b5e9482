//! The link between one client session and the pool: a backend connection per transaction.
//!
//! The session forwards to its [`Link`] exactly as it forwards to a backend of its own (the
//! pause gate, the dual-write hook and the statistics work the same in both modes): the link is
//! the session's backend stream, read and written by the session's own task, with no task or
//! pipe of its own. It attaches a pooled connection when a request arrives while none is
//! attached, and gives it back when the backend is ready for a new transaction with nothing
//! owed: no request unanswered, no extended-protocol batch open, no transaction block open.
//! Between the two it translates the client's messages ([`super::translate`]), replays the
//! client's settings on a connection that has others and reads them back after a transaction
//! that may have changed them ([`super::own_query`]), and keeps the answers in the order the
//! client expects ([`super::expect`]). Its waits — a connection to be free, duet's own round
//! trips — are steps the session's reads and writes drive, so they hold only this session.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::backend_pool::{BackendPool, Checkout};
use super::expect::{Kind, Owed};
use super::frames::{has_whole_message, next_message};
use super::own_query::{apply_settings, run_own_query};
use super::settings::{Settings, READ_BACK};
use super::statements::ClientStatements;
use super::translate::{answer_locally, translate, Position};
use super::Attachment;
use crate::session_registry::SessionInfo;
use crate::wire::backend as tag;
use crate::wire::error::{fatal, CONNECTION_FAILURE};
use crate::wire::frontend;
use crate::wire::messages::{Close, Message, Sync};

/// Read size from the backend.
const READ_SIZE: usize = 16 * 1024;
/// How much the link buffers each way before the side feeding it waits: the session's writes
/// while the backend does not read, the backend's answers while the session does not take them.
const HIGH_WATER: usize = 64 * 1024;

/// What a client session keeps between its transactions.
#[derive(Debug, Default)]
pub struct ClientState {
    /// What its startup packet asked for: what `RESET` returns to, as on a server of its own.
    pub startup: Settings,
    /// Its settings.
    pub settings: Settings,
    /// Its named prepared statements.
    pub statements: ClientStatements,
}

/// Why a link ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No backend connection became free in time, or none could be opened.
    #[error(transparent)]
    Pool(#[from] super::backend_pool::PoolError),
    /// The backend connection failed.
    #[error("the backend connection failed: {0}")]
    Backend(std::io::Error),
    /// The backend closed the connection.
    #[error("the backend closed the connection")]
    BackendClosed,
    /// The backend sent what is not a protocol message.
    #[error("the backend broke the protocol: {0}")]
    BackendProtocol(&'static str),
    /// The backend sent a message duet reads that does not decode.
    #[error("the backend broke the protocol: {0}")]
    BackendMessage(#[from] crate::wire::messages::DecodeError),
    /// The session forwarded a message with an impossible length (its scan refuses those
    /// first, so this is a bug in duet, reported rather than forwarded).
    #[error("the session forwarded an invalid message length")]
    SessionMessage,
    /// The server refused duet's own statement (replaying the client's settings, reading
    /// them back): its own SQLSTATE and text.
    #[error("{message}")]
    Refused {
        /// The SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
}

/// An asynchronous step of the link, polled by whichever half the session polls.
type Step<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A step that must wait, driven by the session's reads and writes.
enum Waiting {
    /// A connection is taken from the pool and given the client's settings.
    Attach(Step<Result<Checkout, LinkError>>),
    /// The released connection's settings are read back.
    ReadBack(Step<(Checkout, Result<Settings, LinkError>)>),
}

/// The connection serving the session now, and where it stands.
struct Attached {
    checkout: Checkout,
    at: Position,
    /// The backend's bytes not yet matched against what is owed.
    down: BytesMut,
}

/// One session's link to its pool. The session reads and writes it through [`Link::halves`].
pub struct Link {
    state: Mutex<LinkState>,
}

struct LinkState {
    pool: Arc<BackendPool>,
    client: ClientState,
    info: Arc<SessionInfo>,
    attachment: Arc<Attachment>,
    attached: Option<Attached>,
    waiting: Option<Waiting>,
    /// The session's bytes not yet translated: an incomplete message, or requests waiting for
    /// a connection.
    up: BytesMut,
    /// Translated bytes not yet written to the backend.
    to_backend: BytesMut,
    /// Bytes for the client the session has not read yet.
    out: BytesMut,
    /// The session sent Terminate: the link ends once what came before it is written.
    terminating: bool,
    /// The link is over: once `out` is read the session reads EOF, and its writes fail.
    ended: bool,
    /// The reading half waits for `out` (or the end). Both halves are polled by the session's
    /// task, but each only when its own future is: what one half's poll makes ready for the
    /// other must wake it.
    reader: Option<Waker>,
    /// The writing half waits for room, or for its bytes to reach the backend.
    writer: Option<Waker>,
}

impl Link {
    /// A link for a session whose client keeps `client` between transactions; `attachment`
    /// tells cancel requests which connection serves it.
    pub fn new(
        pool: Arc<BackendPool>,
        client: ClientState,
        info: Arc<SessionInfo>,
        attachment: Arc<Attachment>,
    ) -> Link {
        Link {
            state: Mutex::new(LinkState {
                pool,
                client,
                info,
                attachment,
                attached: None,
                waiting: None,
                up: BytesMut::new(),
                to_backend: BytesMut::new(),
                out: BytesMut::new(),
                terminating: false,
                ended: false,
                reader: None,
                writer: None,
            }),
        }
    }

    /// The reading half (the backend's answers, for the client) and the writing half (the
    /// client's requests), both polled by the session's task.
    pub fn halves(&mut self) -> (LinkRead<'_>, LinkWrite<'_>) {
        (LinkRead(&self.state), LinkWrite(&self.state))
    }
}

/// The reading half of a [`Link`].
pub struct LinkRead<'a>(&'a Mutex<LinkState>);

/// The writing half of a [`Link`].
pub struct LinkWrite<'a>(&'a Mutex<LinkState>);

/// The state, locked: both halves are polled by one task, so the lock is never contended.
fn lock(state: &Mutex<LinkState>) -> MutexGuard<'_, LinkState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the pooled connection is gone")
}

impl AsyncRead for LinkRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = lock(self.0);
        if state.out.is_empty() {
            state.progress(cx);
        }
        let poll = if !state.out.is_empty() {
            let n = state.out.len().min(buf.remaining());
            buf.put_slice(&state.out[..n]);
            state.out.advance(n);
            // More may be readable now that `out` has room.
            if n > 0 && !state.ended {
                state.progress(cx);
            }
            Poll::Ready(Ok(()))
        } else if state.ended {
            // EOF: the session reads the link's end as its backend's.
            Poll::Ready(Ok(()))
        } else {
            wait_here(&mut state.reader, cx);
            Poll::Pending
        };
        state.wake_writer();
        poll
    }
}

/// Notes `cx`'s waker as the one to wake.
fn wait_here(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl AsyncWrite for LinkWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(self.0);
        state.progress(cx);
        let poll = if state.ended || state.terminating {
            Poll::Ready(Err(broken_pipe()))
        } else if !state.accepts_more() {
            wait_here(&mut state.writer, cx);
            Poll::Pending
        } else {
            state.up.extend_from_slice(buf);
            state.progress(cx);
            Poll::Ready(Ok(buf.len()))
        };
        state.wake_reader();
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(self.0);
        state.progress(cx);
        let poll = if state.ended && !state.terminating {
            Poll::Ready(Err(broken_pipe()))
        } else if state.to_backend.is_empty() || state.ended {
            Poll::Ready(Ok(()))
        } else {
            wait_here(&mut state.writer, cx);
            Poll::Pending
        };
        state.wake_reader();
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The session is done with its backend: what the link holds is let go when it drops.
        let mut state = lock(self.0);
        state.progress(cx);
        state.wake_reader();
        Poll::Ready(Ok(()))
    }
}

impl LinkState {
    /// Wakes the reading half if what it waits for is there.
    fn wake_reader(&mut self) {
        if !self.out.is_empty() || self.ended {
            if let Some(waker) = self.reader.take() {
                waker.wake();
            }
        }
    }

    /// Wakes the writing half if what it waits for is there: room, or its bytes written.
    fn wake_writer(&mut self) {
        if self.ended || self.to_backend.is_empty() || self.accepts_more() {
            if let Some(waker) = self.writer.take() {
                waker.wake();
            }
        }
    }

    /// The session may write more: the backend is taking what was translated, and the requests
    /// waiting for a connection are few (or the first of them is not whole yet).
    fn accepts_more(&self) -> bool {
        self.to_backend.len() < HIGH_WATER
            && (self.up.len() < HIGH_WATER || !has_whole_message(&self.up))
    }

    /// Does everything that can be done now: the waiting step, attaching for a whole request,
    /// translating, writing to the backend, reading its answers into `out`, releasing. Returns
    /// when nothing more can be done without waiting; every wait has `cx`'s waker registered.
    fn progress(&mut self, cx: &mut Context<'_>) {
        while !self.ended {
            if self.waiting.is_some() {
                if self.poll_waiting(cx).is_pending() {
                    return;
                }
                continue;
            }
            if self.attached.is_none() {
                // Detached: the session's next request, whole, takes a connection.
                if !has_whole_message(&self.up) {
                    return;
                }
                if self.up[0] == frontend::TERMINATE {
                    self.up.clear();
                    self.ended = true;
                    return;
                }
                if let Some(answers) = answer_locally(&mut self.up, &mut self.client, &self.pool) {
                    self.out.extend_from_slice(&answers);
                    continue;
                }
                // A free connection with the client's settings attaches at once; otherwise a
                // step waits for one, or gives it the client's settings first.
                let free = match self.pool.checkout_now(cx) {
                    Some(checkout) if !checkout.conn.settings.differs(&self.client.settings) => {
                        self.attach(checkout);
                        continue;
                    }
                    free => free,
                };
                let pool = self.pool.clone();
                let wanted = self.client.settings.clone();
                self.waiting = Some(Waiting::Attach(Box::pin(take_connection(
                    pool, free, wanted,
                ))));
                continue;
            }
            match self.serve(cx) {
                Ok(true) => continue,
                Ok(false) => return,
                Err(err) => {
                    tracing::debug!(session = self.info.id, %err, "pooled backend connection lost");
                    if let Some((checkout, _)) = self.detach() {
                        self.pool.discard(checkout);
                    }
                    // EOF tells the session its backend is gone (08006), unless the backend said
                    // why with a FATAL the client already has.
                    self.ended = true;
                    return;
                }
            }
        }
    }

    /// Polls the waiting step and takes its outcome: `Pending` while it waits.
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.waiting.as_mut() {
            None => {}
            Some(Waiting::Attach(step)) => {
                let taken = ready!(step.as_mut().poll(cx));
                self.waiting = None;
                match taken {
                    Ok(checkout) => self.attach(checkout),
                    Err(err) => {
                        tracing::warn!(session = self.info.id, %err, "no backend connection for a transaction");
                        self.out
                            .extend_from_slice(&fatal(CONNECTION_FAILURE, &format!("duet: {err}")));
                        self.ended = true;
                    }
                }
            }
            Some(Waiting::ReadBack(step)) => {
                let (checkout, read) = ready!(step.as_mut().poll(cx));
                self.waiting = None;
                match read {
                    Ok(settings) => {
                        // A server of its own would reset to the startup packet's values (they
                        // are the session's defaults there); here they were set for the
                        // session, so a RESET dropped them: the client keeps them under what it
                        // set since.
                        let mut wanted = self.client.startup.clone();
                        for (name, value) in settings.pairs() {
                            wanted.set(name.clone(), value.clone());
                        }
                        self.client.settings = wanted;
                        self.pool.checkin(checkout);
                    }
                    Err(err) => {
                        tracing::debug!(session = self.info.id, %err, "pooled backend connection lost");
                        self.pool.discard(checkout);
                        self.ended = true;
                    }
                }
            }
        }
        Poll::Ready(())
    }

    /// A connection serves the session from now on.
    fn attach(&mut self, mut checkout: Checkout) {
        let mut at = Position::new();
        // A connection past its statement limit closes its oldest first, in a batch of duet's
        // own ahead of the client's (nothing of it reaches the client).
        let evicted = checkout.conn.statements.evict();
        if !evicted.is_empty() {
            for name in &evicted {
                Close::statement(name).encode(&mut self.to_backend);
                at.owing.push(Owed::Own(Kind::Close));
            }
            Sync.encode(&mut self.to_backend);
            at.owing.push(Owed::Own(Kind::UntilReady));
        }
        tracing::trace!(
            session = self.info.id,
            pid = checkout.conn.pid,
            "pooled connection attached"
        );
        self.attachment
            .attach(checkout.conn.pid, checkout.conn.key.clone());
        self.info.set_backend_pid(checkout.conn.pid);
        let down = std::mem::take(&mut checkout.conn.buf);
        self.attached = Some(Attached { checkout, at, down });
    }

    /// One round on the attached connection: translate what the session sent, write it, read
    /// and match the backend's answers. `Ok(true)` when the connection was released (or the
    /// session ended) and there may be more to do, `Ok(false)` when it waits.
    fn serve(&mut self, cx: &mut Context<'_>) -> Result<bool, LinkError> {
        let Some(attached) = self.attached.as_mut() else {
            return Ok(true);
        };
        let conn = &mut attached.checkout.conn;
        if !self.terminating {
            self.terminating = translate(
                &mut self.up,
                &mut self.to_backend,
                conn,
                &mut self.client,
                &mut attached.at,
            )?;
        }
        attached.at.owing.take_synthetic(&mut self.out);
        // Write what is translated; a write that waits leaves the reads below to go on, so a
        // backend blocked on writing a large result never waits for duet.
        while !self.to_backend.is_empty() {
            match Pin::new(&mut conn.stream).poll_write(cx, &self.to_backend) {
                Poll::Ready(Ok(0)) => {
                    return Err(LinkError::Backend(io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    self.to_backend.advance(n);
                    if self.to_backend.is_empty() {
                        // Free on TCP; pushes a TLS record out.
                        if let Poll::Ready(Err(err)) = Pin::new(&mut conn.stream).poll_flush(cx) {
                            return Err(LinkError::Backend(err));
                        }
                    }
                }
                Poll::Ready(Err(err)) => return Err(LinkError::Backend(err)),
                Poll::Pending => break,
            }
        }
        if self.terminating && self.to_backend.is_empty() {
            // Terminate is not forwarded: the connection is the pool's. One left mid-request
            // or in a transaction must not reach the next client: it goes, and the server rolls
            // it back.
            if let Some((checkout, at)) = self.detach() {
                if at.is_idle() {
                    self.pool.checkin(checkout);
                } else {
                    self.pool.discard(checkout);
                }
            }
            self.ended = true;
            return Ok(true);
        }
        // Read and match the backend's answers while the session has room for them.
        loop {
            while let Some((message, len)) = next_message(&attached.down)? {
                // Read in place and skipped: splitting each message off would make the buffer
                // a shared one (an allocation) and take a reference count per message.
                let frame = &attached.down[..len];
                let verdict = attached.at.owing.answer(message);
                if let Some(prepared) = verdict.prepared {
                    self.pool.note_prepared(prepared);
                }
                for (backend_name, client_name) in verdict.lost {
                    conn.statements.remove(&backend_name);
                    if let Some(name) = client_name {
                        self.client.statements.forget_if(&name, &backend_name);
                    }
                }
                match message {
                    tag::READY_FOR_QUERY => {
                        attached.at.status = frame.get(5).copied().unwrap_or(b'I');
                    }
                    tag::PARAMETER_STATUS => {
                        conn.note_parameter(&frame[5..]);
                        // A reported setting changed where the text showed no sign of it (a
                        // function that calls set_config, a SECURITY DEFINER … SET): read the
                        // settings back before the connection serves anyone else.
                        attached.at.settings_dirty = true;
                    }
                    _ => {}
                }
                if verdict.forward {
                    self.out.extend_from_slice(frame);
                }
                attached.down.advance(len);
                attached.at.owing.take_synthetic(&mut self.out);
                if self.out.len() >= HIGH_WATER {
                    break;
                }
            }
            // Released once a ReadyForQuery left nothing owed and every answer read is matched
            // (a round cut short by a full `out` goes on where it stopped): a connection attached
            // for a request keeps it until the request is answered.
            if attached.at.is_idle()
                && self.to_backend.is_empty()
                && !has_whole_message(&attached.down)
                && !has_whole_message(&self.up)
            {
                self.release();
                return Ok(true);
            }
            if self.out.len() >= HIGH_WATER {
                // The session reads `out` first, and comes back.
                return Ok(false);
            }
            if attached.down.capacity() - attached.down.len() < READ_SIZE / 4 {
                attached.down.reserve(READ_SIZE);
            }
            match poll_read_buf(&mut conn.stream, cx, &mut attached.down) {
                Poll::Pending => {
                    tracing::trace!(pid = conn.pid, owing = ?attached.at.owing, in_batch = attached.at.in_batch, status = attached.at.status, up = self.up.len(), "pooled connection waits");
                    return Ok(false);
                }
                Poll::Ready(Ok(0)) => return Err(LinkError::BackendClosed),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return Err(LinkError::Backend(err)),
            }
        }
    }

    /// The transaction ended with nothing owed: the connection goes back to the pool, after its
    /// settings are read back when a statement may have changed them.
    fn release(&mut self) {
        let Some((checkout, at)) = self.detach() else {
            return;
        };
        if at.schema_changed {
            // Committed (or rolled back) now: what was parsed meanwhile may predate it.
            super::statements::schema_changed();
        }
        if at.settings_dirty {
            self.waiting = Some(Waiting::ReadBack(Box::pin(read_back(checkout))));
        } else {
            self.pool.checkin(checkout);
        }
    }

    /// The attached connection no longer serves the session: cancel requests stop reaching it,
    /// and the backend's bytes not yet read go back with it. Returns it and where it stood.
    fn detach(&mut self) -> Option<(Checkout, Position)> {
        let Attached {
            mut checkout,
            at,
            down,
        } = self.attached.take()?;
        self.attachment.detach();
        checkout.conn.buf = down;
        Some((checkout, at))
    }
}

impl Drop for LinkState {
    fn drop(&mut self) {
        // The session ended without Terminate: a connection it held mid-transaction goes (the
        // server rolls it back); one still being attached or read back finishes first.
        if let Some((checkout, _)) = self.detach() {
            self.pool.discard(checkout);
        }
        if let Some(waiting) = self.waiting.take() {
            let pool = self.pool.clone();
            let finish = async move {
                match waiting {
                    Waiting::Attach(step) => {
                        if let Ok(checkout) = step.await {
                            pool.checkin(checkout);
                        }
                    }
                    Waiting::ReadBack(step) => match step.await {
                        (checkout, Ok(_)) => pool.checkin(checkout),
                        (checkout, Err(_)) => pool.discard(checkout),
                    },
                }
            };
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(finish);
            }
        }
    }
}

/// Reads what has arrived into the spare room of `buf`, as `read_buf` does, polled once.
fn poll_read_buf<R: AsyncRead + Unpin>(
    stream: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    std::pin::pin!(stream.read_buf(buf)).poll(cx)
}

/// Takes a connection from `pool` (unless one is `free` already) and gives it the client's
/// settings.
async fn take_connection(
    pool: Arc<BackendPool>,
    free: Option<Checkout>,
    wanted: Settings,
) -> Result<Checkout, LinkError> {
    let mut checkout = match free {
        Some(checkout) => checkout,
        None => pool.checkout().await?,
    };
    if let Err(err) = apply_settings(&mut checkout.conn, &wanted).await {
        pool.discard(checkout);
        return Err(err);
    }
    Ok(checkout)
}

/// Reads the settings of a connection a statement may have changed.
async fn read_back(mut checkout: Checkout) -> (Checkout, Result<Settings, LinkError>) {
    let read = run_own_query(&mut checkout.conn, READ_BACK)
        .await
        .map(|rows| {
            Settings::from_pairs(rows.into_iter().filter_map(|row| {
                let mut row = row.into_iter();
                Some((row.next()??, row.next()??))
            }))
        });
    if let Ok(settings) = &read {
        checkout.conn.settings = settings.clone();
    }
    (checkout, read)
}
