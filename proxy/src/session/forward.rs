//! The forwarding phase: two independent loops, one per direction, in one task.
//!
//! Each loop reads whatever has arrived, walks the message headers in it (streaming messages larger
//! than the buffer), updates the session's protocol position, and writes the chunk on in one write.
//! The directions never wait for each other: a client pipelining a large COPY while the backend
//! streams results back cannot deadlock the proxy. Only a held transaction start (the pause gate)
//! stops the client→backend loop, and only that loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::dual_write::BackendHook;
use super::hook::{Edit, MAX_HELD};
use super::track::Tracker;
use super::{close_with_fatal, lost_backend, protocol_violation, Established};
use crate::backend::BackendStream;
use crate::client_stream::ClientStream;
use crate::context::ProxyContext;
use crate::routes::Published;
use crate::sessions::{SessionInfo, SessionState};
use crate::shutdown::Phase;
use crate::wire::error::{self, ADMIN_SHUTDOWN};
use crate::wire::frame::FrameScanner;
use crate::wire::messages::{Describe, Message, Parse, Query, ReadyForQuery, TransactionStatus};
use crate::wire::{backend, frontend};

/// Read size per direction: large enough for big result sets, small enough for 1000 sessions.
const READ_SIZE: usize = 16 * 1024;
/// Buffer capacity kept by an idle client→backend loop (more was only needed to hold a large
/// statement whole for the dual-write hook).
const MAX_IDLE_BUFFER: usize = 1 << 20;
/// Largest message a client may send (PostgreSQL's limit, 1 GB - 1).
const MAX_CLIENT_MESSAGE: usize = 0x3fff_ffff;
/// How long a backend that refused a write gets to deliver a FATAL it sent before going.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Largest message accepted from the backend (the length field's range).
const MAX_BACKEND_MESSAGE: usize = i32::MAX as usize;

/// How a session's forwarding phase ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client sent Terminate.
    ClientTerminated,
    /// The client closed its connection.
    ClientClosed,
    /// The client's connection failed.
    ClientError(String),
    /// The client sent a malformed message (it got FATAL 08P01).
    ClientMalformed(String),
    /// The backend closed or failed without a word (the client got FATAL 08006).
    BackendLost(String),
    /// The backend ended the session with its own FATAL ErrorResponse (administrator command,
    /// idle timeout, …), which the client got as its last message, and then closed: the client
    /// gets nothing more, exactly as direct.
    BackendEnded(String),
    /// The proxy shut down (the client got FATAL 57P01).
    Shutdown,
}

/// What the client→backend loop does with a scanned chunk.
#[derive(Debug, PartialEq, Eq)]
enum ClientStep {
    /// Forward this many bytes, then read more.
    Forward(usize),
    /// Forward this many bytes, wait for the gate to open, then scan the rest again.
    Hold(usize),
    /// Forward this many bytes (ending with Terminate), then stop.
    Terminate(usize),
    /// A malformed message: stop and tell the client.
    Malformed(String),
    /// Forward this many bytes, then read until the message starting there, `.1` bytes long, is
    /// whole (the dual-write hook checks Query and Parse messages whole).
    Wait(usize, usize),
}

/// State both directions share.
pub(super) struct Shared<'a> {
    pub(super) ctx: &'a ProxyContext,
    pub(super) info: &'a SessionInfo,
    pub(super) tracker: Mutex<Tracker>,
    /// The hook queued changes to the backend's answers (the downstream loop looks closer only
    /// then; both loops run in one task, so relaxed loads and stores are exact).
    pub(super) expecting: AtomicBool,
    /// The session has named prepared statements the hook remembers (the downstream loop then
    /// watches errors for "cached plan must not change result type").
    pub(super) remembers: AtomicBool,
    /// The backend sent a FATAL (or PANIC) ErrorResponse: whatever follows is its connection
    /// closing, which the client must see as the plain EOF PostgreSQL gives, not as a lost backend.
    pub(super) backend_said_fatal: AtomicBool,
    /// The session is connected to the database duet migrates (the backend URL's): routes name
    /// tables of that database only, so a same-named table in another database is never
    /// rewritten.
    pub(super) routed: bool,
}

impl<'a> Shared<'a> {
    pub(super) fn new(ctx: &'a ProxyContext, info: &'a SessionInfo) -> Self {
        let mut tracker = Tracker::new();
        if let Some(identity) = info.identity() {
            // A path the startup packet did not set is the role's (or database's, or server's)
            // default, as PostgreSQL gives it to this session.
            let path = match &identity.search_path {
                shadow::rewrite::search_path::SearchPath::Default => {
                    ctx.role_paths.for_user(&identity.user)
                }
                set => set.clone(),
            };
            tracker.hook.names.search_path = path.clone();
            tracker.hook.names.at_startup = path;
        }
        // (A session always has its identity once started; without one — a unit test's bare
        // session — there is no other database to tell apart.)
        let routed = info
            .identity()
            .is_none_or(|identity| identity.database == ctx.config.backend.dbname);
        Shared {
            routed,
            ctx,
            info,
            tracker: Mutex::new(tracker),
            expecting: AtomicBool::new(false),
            remembers: AtomicBool::new(false),
            backend_said_fatal: AtomicBool::new(false),
        }
    }
}

impl Shared<'_> {
    pub(super) fn tracker(&self) -> MutexGuard<'_, Tracker> {
        // Nothing panics while holding the lock; recover the data if that ever changes.
        self.tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// [`Shared::scan_client_into`] without edits (tests of the unrouted path).
    #[cfg(test)]
    fn scan_client(&self, scanner: &mut FrameScanner, chunk: &[u8]) -> ClientStep {
        let mut edits = Vec::new();
        let step = self.scan_client_into(scanner, chunk, &mut edits);
        assert!(edits.is_empty(), "no routes, no edits");
        step
    }

    /// Walks a chunk from the client: counts statements, opens requests, applies the gate at
    /// transaction boundaries, and — while tables are under migration — lets the dual-write hook
    /// replace messages (`edits`, in chunk order, all before the returned forward count).
    fn scan_client_into(
        &self,
        scanner: &mut FrameScanner,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> ClientStep {
        let mut tracker = self.tracker();
        // One atomic load per chunk: with nothing routed, the loop below is exactly the plain
        // forwarding scan (the hook's branches are all behind `active` or a remembered statement).
        let active = self.routed && self.ctx.routes.is_active();
        let mut published: Option<Arc<Published>> = None;
        let mut pos = 0;
        if tracker.hook.discard > 0 && !self.discard(&mut tracker, chunk, &mut pos, edits) {
            return ClientStep::Forward(chunk.len());
        }
        let mut statements = 0u64;
        let mut read_at: Option<Instant> = None;
        let step = loop {
            let frame = match scanner.next_frame(chunk, &mut pos, MAX_CLIENT_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break ClientStep::Forward(pos),
                Err(err) => break ClientStep::Malformed(err.to_string()),
            };
            match frame.tag {
                frontend::QUERY
                | frontend::PARSE
                | frontend::BIND
                | frontend::DESCRIBE
                | frontend::EXECUTE
                | frontend::CLOSE
                | frontend::SYNC
                | frontend::FUNCTION_CALL => {
                    let whole = frame.bytes(chunk).is_some();
                    if !whole
                        && frame.wire_len <= MAX_HELD
                        && ((active && self.needs_whole(&tracker, frame.tag))
                            || frame.tag == frontend::DESCRIBE)
                    {
                        break ClientStep::Wait(frame.start, frame.wire_len);
                    }
                    if frame.tag == frontend::DESCRIBE {
                        if let Some(Ok(describe)) = frame.body(chunk).map(Describe::decode) {
                            tracker.hook.described(&describe);
                        }
                    }
                    // Followed with or without a migration: a session sets its search_path
                    // long before one starts.
                    let mut path_moved = false;
                    if matches!(frame.tag, frontend::QUERY | frontend::PARSE) {
                        let text = frame.body(chunk).and_then(|body| {
                            if frame.tag == frontend::QUERY {
                                Query::decode(body).ok().map(|query| query.text)
                            } else {
                                Parse::decode(body).ok().map(|parse| parse.text)
                            }
                        });
                        if let Some(text) = text.and_then(|t| std::str::from_utf8(t).ok()) {
                            // The server analyses its prepared statements again under the new
                            // path; duet decides them again too, at the next boundary after this
                            // statement (not ahead of it: the path has not moved yet there).
                            path_moved = tracker.hook.names.follow(text)
                                && !tracker.hook.prepared.is_empty();
                        }
                    }
                    if tracker.is_quiet() {
                        if tracker.at_boundary() {
                            if !self.ctx.gate.try_begin(self.info) {
                                break ClientStep::Hold(frame.start);
                            }
                            if tracker.hook.stale
                                || tracker.hook.path_moved
                                || (!tracker.hook.prepared.is_empty()
                                    && tracker.hook.epoch != self.ctx.routes.epoch())
                            {
                                self.reprepare(&mut tracker, frame.start, edits);
                            }
                        }
                        let now = *read_at.get_or_insert_with(Instant::now);
                        self.info.set_state_at(SessionState::Active, now);
                    }
                    if path_moved {
                        tracker.hook.path_moved = true;
                    }
                    if active {
                        if self.hook_client_frame(
                            &mut tracker,
                            &mut published,
                            &frame,
                            chunk,
                            edits,
                        ) {
                            // An oversized statement was replaced; the rest of it is dropped.
                            if frame.tag == frontend::QUERY {
                                let at = *read_at.get_or_insert_with(Instant::now);
                                tracker.request(frame.tag, at);
                                statements += 1;
                            } else {
                                tracker.extended(frame.tag);
                            }
                            pos = chunk.len();
                            break ClientStep::Forward(pos);
                        }
                    } else if whole
                        && match frame.tag {
                            frontend::PARSE => true,
                            frontend::CLOSE | frontend::QUERY => !tracker.hook.prepared.is_empty(),
                            _ => false,
                        }
                    {
                        self.remember_unrouted(&mut tracker, &frame, chunk);
                    }
                    match frame.tag {
                        frontend::QUERY | frontend::SYNC | frontend::FUNCTION_CALL => {
                            let at = *read_at.get_or_insert_with(Instant::now);
                            tracker.request(frame.tag, at);
                        }
                        tag => tracker.extended(tag),
                    }
                    if frame.tag == frontend::QUERY || frame.tag == frontend::EXECUTE {
                        statements += 1;
                    }
                }
                frontend::COPY_DATA | frontend::COPY_DONE | frontend::COPY_FAIL => {
                    tracker.copy_message(frame.tag);
                }
                frontend::TERMINATE => {
                    scanner.pass(&frame, chunk.len(), &mut pos);
                    break ClientStep::Terminate(pos);
                }
                tag if !frontend::is_known(tag) => {
                    break ClientStep::Malformed(format!(
                        "invalid frontend message type {}",
                        printable(tag)
                    ));
                }
                _ => {}
            }
            scanner.pass(&frame, chunk.len(), &mut pos);
        };
        if statements > 0 {
            add_own(&self.info.statements, statements);
        }
        self.expecting
            .store(tracker.hook.expecting(), Ordering::Relaxed);
        self.remembers.store(
            !tracker.hook.prepared.is_empty() || !tracker.hook.describes.is_empty(),
            Ordering::Relaxed,
        );
        step
    }

    /// [`Shared::scan_backend_into`] without edits (tests of the unrouted path).
    #[cfg(test)]
    fn scan_backend(&self, scanner: &mut FrameScanner, chunk: &[u8]) -> Result<usize, String> {
        let mut edits = Vec::new();
        let forward = self.scan_backend_into(scanner, chunk, &mut edits);
        assert!(edits.is_empty(), "no routes, no edits");
        forward
    }

    /// Walks a chunk from the backend: ReadyForQuery closes requests and moves the session's
    /// state; while the hook expects something, completions and errors are patched (`edits`).
    /// Returns how many bytes may be forwarded (a message that must be read whole and is split
    /// across reads is kept for the next one).
    fn scan_backend_into(
        &self,
        scanner: &mut FrameScanner,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> Result<usize, String> {
        let mut pos = 0;
        let mut tracker: Option<MutexGuard<'_, Tracker>> = None;
        // Both flags are this session's own, set by the upstream scan in the same task.
        let hooked = self.expecting.load(Ordering::Relaxed);
        let remembers = self.remembers.load(Ordering::Relaxed);
        // One clock reading per chunk serves every ReadyForQuery in it.
        let mut now: Option<Instant> = None;
        let result = loop {
            let frame = match scanner.next_frame(chunk, &mut pos, MAX_BACKEND_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(pos),
                Err(err) => break Err(format!("backend sent {err}")),
            };
            // Every ErrorResponse is read whole to see its severity (they are small; a split one
            // waits for the rest of itself, like the hook's frames do).
            let fatal = if frame.tag == backend::ERROR_RESPONSE {
                let Some(body) = frame.body(chunk) else {
                    break Ok(frame.start);
                };
                error::ends_session(body)
            } else {
                false
            };
            if frame.tag == backend::COPY_IN_RESPONSE {
                tracker
                    .get_or_insert_with(|| self.tracker())
                    .copy_in_started();
            }
            if frame.tag != backend::READY_FOR_QUERY {
                let looked_at = hooked
                    || (remembers
                        && matches!(
                            frame.tag,
                            backend::ERROR_RESPONSE
                                | backend::PARAMETER_DESCRIPTION
                                | backend::ROW_DESCRIPTION
                                | backend::NO_DATA
                        ));
                if looked_at {
                    let tracker = tracker.get_or_insert_with(|| self.tracker());
                    match self.hook_backend_frame(tracker, &frame, chunk, edits) {
                        BackendHook::Pass => {}
                        BackendHook::Incomplete => break Ok(frame.start),
                        BackendHook::Done => {
                            // A FATAL the hook let through (as is or replaced, not removed)
                            // reached the client all the same.
                            let removed = edits.last().is_some_and(|e| {
                                e.start == frame.start && e.end == frame.end() && e.bytes.is_empty()
                            });
                            if fatal && !removed {
                                self.backend_said_fatal.store(true, Ordering::Relaxed);
                            }
                            pos = frame.end();
                            continue;
                        }
                    }
                }
                if fatal {
                    // Only a FATAL forwarded as is counts: the client has seen the reason.
                    self.backend_said_fatal.store(true, Ordering::Relaxed);
                }
                scanner.pass(&frame, chunk.len(), &mut pos);
                continue;
            }
            if frame.wire_len != 6 {
                break Err("backend sent a malformed ReadyForQuery".to_owned());
            }
            let Some(body) = frame.body(chunk) else {
                break Ok(frame.start);
            };
            let ready = match ReadyForQuery::decode(body) {
                Ok(ready) => ready,
                Err(err) => break Err(format!("backend sent {err}")),
            };
            let tracker = tracker.get_or_insert_with(|| self.tracker());
            if hooked && self.swallowing(tracker) {
                edits.push(Edit {
                    start: frame.start,
                    end: frame.end(),
                    bytes: bytes::Bytes::new(),
                });
                let seq = tracker.answered;
                tracker.hook.finish(seq);
                tracker.answered += 1;
                pos = frame.end();
                continue;
            }
            let now = *now.get_or_insert_with(Instant::now);
            self.ready_for_query(tracker, ready.status, now);
            pos = frame.end();
        };
        if hooked {
            if let Some(tracker) = &tracker {
                self.expecting
                    .store(tracker.hook.expecting(), Ordering::Relaxed);
            }
        }
        result
    }

    fn ready_for_query(&self, tracker: &mut Tracker, status: TransactionStatus, now: Instant) {
        let seq = tracker.answered;
        tracker.hook.finish(seq);
        tracker.answered += 1;
        if let Some(started) = tracker.pending.pop_front() {
            // The worker thread's own shard: no other thread writes it, so its lock and cache
            // lines stay on this core (outside a worker, e.g. in unit tests, spread by session).
            let shard = crate::workers::current_index().unwrap_or(self.info.id as usize);
            self.ctx
                .metrics
                .record_latency(shard, now.saturating_duration_since(started));
        }
        tracker.status = status;
        if status == TransactionStatus::Idle {
            tracker.hook.end_transaction();
        }
        if tracker.is_quiet() {
            match status {
                TransactionStatus::Idle => {
                    self.info.set_state_at(SessionState::Idle, now);
                    self.ctx.gate.end(self.info);
                }
                TransactionStatus::InTransaction => {
                    self.info.set_state_at(SessionState::IdleInTransaction, now)
                }
                TransactionStatus::Failed => self
                    .info
                    .set_state_at(SessionState::IdleInTransactionAborted, now),
            }
        }
    }
}

/// Adds to one of the session's own counters. Only this session's task writes them (`status` and
/// the metrics endpoint only read), so a plain load and store is exact and avoids the locked
/// read-modify-write a `fetch_add` costs on every chunk.
fn add_own(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn printable(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("{:?}", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}

/// Runs the forwarding phase to its end and tells the client why it ended, when it should know.
pub(super) async fn run(
    ctx: &ProxyContext,
    info: &SessionInfo,
    established: Established,
) -> SessionEnd {
    let Established {
        client,
        backend,
        client_buf,
        backend_buf,
    } = established;
    let shared = Shared::new(ctx, info);
    match client {
        ClientStream::Plain(mut tcp) => {
            let (read, write) = tcp.split();
            with_backend(&shared, read, write, backend, client_buf, backend_buf).await
        }
        ClientStream::Tls(tls) => {
            let (read, write) = tokio::io::split(*tls);
            with_backend(&shared, read, write, backend, client_buf, backend_buf).await
        }
    }
}

async fn with_backend<CR, CW>(
    shared: &Shared<'_>,
    client_read: CR,
    client_write: CW,
    backend: BackendStream,
    client_buf: BytesMut,
    backend_buf: BytesMut,
) -> SessionEnd
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    match backend {
        BackendStream::Tcp(mut tcp) => {
            let (read, write) = tcp.split();
            pump(
                shared,
                client_read,
                client_write,
                read,
                write,
                client_buf,
                backend_buf,
            )
            .await
        }
        BackendStream::Unix(mut unix) => {
            let (read, write) = unix.split();
            pump(
                shared,
                client_read,
                client_write,
                read,
                write,
                client_buf,
                backend_buf,
            )
            .await
        }
        BackendStream::Tls(tls) => {
            let (read, write) = tokio::io::split(*tls);
            pump(
                shared,
                client_read,
                client_write,
                read,
                write,
                client_buf,
                backend_buf,
            )
            .await
        }
    }
}

async fn pump<CR, CW, BR, BW>(
    shared: &Shared<'_>,
    mut client_read: CR,
    mut client_write: CW,
    mut backend_read: BR,
    mut backend_write: BW,
    client_buf: BytesMut,
    backend_buf: BytesMut,
) -> SessionEnd
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    let mut shutdown = shared.ctx.shutdown.subscribe();
    let end = {
        let upstream = client_to_backend(shared, &mut client_read, &mut backend_write, client_buf);
        let downstream =
            backend_to_client(shared, &mut backend_read, &mut client_write, backend_buf);
        tokio::pin!(upstream, downstream);
        let (first, upstream_ended) = tokio::select! {
            end = &mut upstream => (end, true),
            end = &mut downstream => (end, false),
            _ = shutdown.wait_for(|phase| *phase >= Phase::Terminating) => (SessionEnd::Shutdown, false),
        };
        if upstream_ended
            && matches!(first, SessionEnd::BackendLost(_))
            && !shared.backend_said_fatal.load(Ordering::Relaxed)
        {
            // A write to the backend failed: it may have said why before it went (a FATAL still
            // unread in its socket, e.g. a client query racing pg_terminate_backend). Let it reach
            // the client, briefly: a socket that failed a write ends its reads at once.
            let _ = tokio::time::timeout(GOODBYE_WAIT, &mut downstream).await;
        }
        if matches!(first, SessionEnd::ClientTerminated) {
            // Terminate reached the backend behind everything the client sent before it (a client
            // may send `Query` and `Terminate` in one write); the backend answers those first and
            // then closes. Deliver the answers until it does.
            tokio::select! {
                _ = &mut downstream => {}
                _ = shutdown.wait_for(|phase| *phase >= Phase::Terminating) => {}
            }
        }
        match first {
            SessionEnd::BackendLost(why) if shared.backend_said_fatal.load(Ordering::Relaxed) => {
                SessionEnd::BackendEnded(why)
            }
            other => other,
        }
    };
    match &end {
        SessionEnd::ClientMalformed(why) => {
            protocol_violation(&mut client_write, why).await;
        }
        SessionEnd::BackendLost(why) => {
            tracing::debug!(session = shared.info.id, why, "backend lost");
            lost_backend(&mut client_write).await;
        }
        SessionEnd::Shutdown => {
            close_with_fatal(&mut client_write, ADMIN_SHUTDOWN, "duet is shutting down").await;
            let _ = backend_write
                .write_all(&[frontend::TERMINATE, 0, 0, 0, 4])
                .await;
        }
        SessionEnd::BackendEnded(why) => {
            // The client already has the backend's FATAL; PostgreSQL just closes after it.
            tracing::debug!(session = shared.info.id, why, "backend ended the session");
            let _ = client_write.shutdown().await;
        }
        SessionEnd::ClientTerminated | SessionEnd::ClientClosed | SessionEnd::ClientError(_) => {}
    }
    let _ = backend_write.shutdown().await;
    end
}

/// Reads whatever has arrived into `buf`, growing it when little room is left. `Ok(0)` is EOF.
async fn fill<R: AsyncRead + Unpin>(read: &mut R, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    read.read_buf(buf).await
}

async fn client_to_backend<R, W>(
    shared: &Shared<'_>,
    read: &mut R,
    write: &mut W,
    mut buf: BytesMut,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = FrameScanner::new();
    let mut edits: Vec<Edit> = Vec::new();
    let mut need_read = buf.is_empty();
    loop {
        if need_read {
            match fill(read, &mut buf).await {
                Ok(0) => return SessionEnd::ClientClosed,
                Ok(_) => {}
                Err(err) => return SessionEnd::ClientError(err.to_string()),
            }
        }
        let step = shared.scan_client_into(&mut scanner, &buf, &mut edits);
        let forward = match step {
            ClientStep::Forward(n)
            | ClientStep::Hold(n)
            | ClientStep::Terminate(n)
            | ClientStep::Wait(n, _) => n,
            ClientStep::Malformed(why) => return SessionEnd::ClientMalformed(why),
        };
        if let Err(err) = forward_edited(
            write,
            &mut buf,
            forward,
            &mut edits,
            &shared.info.bytes_client_to_server,
        )
        .await
        {
            return SessionEnd::BackendLost(err.to_string());
        }
        match step {
            ClientStep::Hold(_) => {
                shared.ctx.gate.wait_resumed().await;
                need_read = false;
            }
            ClientStep::Terminate(_) => return SessionEnd::ClientTerminated,
            ClientStep::Wait(_, whole) => {
                // The hook reads this message whole: make room for it at once.
                buf.reserve(whole.saturating_sub(buf.len()));
                need_read = true;
            }
            _ => {
                if buf.is_empty() && buf.capacity() > MAX_IDLE_BUFFER {
                    // A large statement held whole is gone: do not keep its room for the
                    // session's lifetime.
                    buf = BytesMut::with_capacity(READ_SIZE);
                }
                need_read = true;
            }
        }
    }
}

async fn backend_to_client<R, W>(
    shared: &Shared<'_>,
    read: &mut R,
    write: &mut W,
    mut buf: BytesMut,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = FrameScanner::new();
    let mut edits: Vec<Edit> = Vec::new();
    let mut need_read = buf.is_empty();
    loop {
        if need_read {
            match fill(read, &mut buf).await {
                Ok(0) => {
                    return SessionEnd::BackendLost("the backend closed the connection".to_owned())
                }
                Ok(_) => {}
                Err(err) => return SessionEnd::BackendLost(err.to_string()),
            }
        }
        need_read = true;
        let forward = match shared.scan_backend_into(&mut scanner, &buf, &mut edits) {
            Ok(n) => n,
            Err(why) => return SessionEnd::BackendLost(why),
        };
        if let Err(err) = forward_edited(
            write,
            &mut buf,
            forward,
            &mut edits,
            &shared.info.bytes_server_to_client,
        )
        .await
        {
            return SessionEnd::ClientError(err.to_string());
        }
    }
}

/// Like [`forward_chunk`], with the hook's `edits` applied (in order, all within the first `n`
/// bytes). Without edits nothing is copied; with some, the chunk is rebuilt into one write.
async fn forward_edited<W: AsyncWrite + Unpin>(
    write: &mut W,
    buf: &mut BytesMut,
    n: usize,
    edits: &mut Vec<Edit>,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    if edits.is_empty() {
        return forward_chunk(write, buf, n, counter).await;
    }
    let out = apply_edits(&buf[..n], edits);
    if !out.is_empty() {
        write.write_all(&out).await?;
        write.flush().await?;
        add_own(counter, out.len() as u64);
    }
    buf.advance(n);
    Ok(())
}

/// `chunk` with `edits` applied (and drained). Out-of-order or out-of-range edits are clamped,
/// never a panic.
fn apply_edits(chunk: &[u8], edits: &mut Vec<Edit>) -> BytesMut {
    let extra: usize = edits.iter().map(|e| e.bytes.len()).sum();
    let mut out = BytesMut::with_capacity(chunk.len() + extra);
    let mut at = 0;
    for edit in edits.drain(..) {
        let start = edit.start.clamp(at, chunk.len());
        out.extend_from_slice(&chunk[at..start]);
        out.extend_from_slice(&edit.bytes);
        at = edit.end.clamp(start, chunk.len());
    }
    out.extend_from_slice(&chunk[at..]);
    out
}

/// Writes the first `n` bytes of `buf` on in one write (plus a flush, which is free on TCP and
/// pushes TLS records out), counts them, and drops them from `buf`.
async fn forward_chunk<W: AsyncWrite + Unpin>(
    write: &mut W,
    buf: &mut BytesMut,
    n: usize,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    if n == 0 {
        return Ok(());
    }
    write.write_all(&buf[..n]).await?;
    write.flush().await?;
    add_own(counter, n as u64);
    buf.advance(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Overrides};

    fn context() -> ProxyContext {
        let overrides = Overrides {
            backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            ..Overrides::default()
        };
        ProxyContext::new(config::from_str("", overrides).unwrap(), None)
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn ready(status: u8) -> Vec<u8> {
        msg(b'Z', &[status])
    }

    #[test]
    fn extended_batch_is_in_flight_until_its_ready_for_query() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let mut up = FrameScanner::new();
        let mut down = FrameScanner::new();

        let parse_bind_execute = [
            msg(b'P', b"\0select 1\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
        ]
        .concat();
        assert_eq!(
            shared.scan_client(&mut up, &parse_bind_execute),
            ClientStep::Forward(parse_bind_execute.len())
        );
        assert!(info.is_busy(), "an open batch is in flight");
        assert_eq!(info.state(), SessionState::Active);

        let sync = msg(b'S', b"");
        shared.scan_client(&mut up, &sync);
        let response = [msg(b'2', b""), msg(b'C', b"SELECT 1\0"), ready(b'I')].concat();
        assert_eq!(
            shared.scan_backend(&mut down, &response),
            Ok(response.len())
        );
        assert!(!info.is_busy());
        assert_eq!(info.state(), SessionState::Idle);
        assert_eq!(info.statements.load(Ordering::Relaxed), 1);
        assert_eq!(ctx.metrics.latency_summary().count, 1);
    }

    #[test]
    fn open_transaction_stays_in_flight_and_pipelined_queries_count() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let (mut up, mut down) = (FrameScanner::new(), FrameScanner::new());
        let two = [msg(b'Q', b"begin\0"), msg(b'Q', b"select 1\0")].concat();
        shared.scan_client(&mut up, &two);
        assert_eq!(shared.scan_backend(&mut down, &ready(b'T')), Ok(6));
        assert_eq!(
            info.state(),
            SessionState::Active,
            "one query still pending"
        );
        assert_eq!(shared.scan_backend(&mut down, &ready(b'T')), Ok(6));
        assert_eq!(info.state(), SessionState::IdleInTransaction);
        assert!(info.is_busy(), "an open transaction is in flight");
        shared.scan_client(&mut up, &msg(b'Q', b"select 1/0\0"));
        shared.scan_backend(&mut down, &ready(b'E')).unwrap();
        assert_eq!(info.state(), SessionState::IdleInTransactionAborted);
        shared.scan_client(&mut up, &msg(b'Q', b"rollback\0"));
        shared.scan_backend(&mut down, &ready(b'I')).unwrap();
        assert!(!info.is_busy());
    }

    #[tokio::test]
    async fn paused_gate_holds_new_work_at_the_boundary_only() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let (mut up, mut down) = (FrameScanner::new(), FrameScanner::new());
        // In a transaction when the pause starts: its next statement goes through.
        shared.scan_client(&mut up, &msg(b'Q', b"begin\0"));
        shared.scan_backend(&mut down, &ready(b'T')).unwrap();
        let pause = ctx
            .gate
            .pause(&ctx.sessions, std::time::Duration::from_millis(10));
        assert!(matches!(
            pause.await,
            crate::gate::PauseOutcome::TimedOut { .. }
        ));
        assert!(!ctx.gate.is_paused(), "a timed-out pause is released");
        // Now pause for real from a quiet state: a new query at the boundary is held.
        shared.scan_client(&mut up, &msg(b'Q', b"commit\0"));
        shared.scan_backend(&mut down, &ready(b'I')).unwrap();
        assert!(matches!(
            ctx.gate
                .pause(&ctx.sessions, std::time::Duration::from_secs(1))
                .await,
            crate::gate::PauseOutcome::Paused { .. }
        ));
        let flush_then_query = [msg(b'H', b""), msg(b'Q', b"select 1\0")].concat();
        assert_eq!(
            shared.scan_client(&mut up, &flush_then_query),
            ClientStep::Hold(5)
        );
        assert!(!info.is_busy());
        ctx.gate.resume();
        assert_eq!(
            shared.scan_client(&mut up, &flush_then_query[5..]),
            ClientStep::Forward(14)
        );
        assert!(info.is_busy());
    }

    #[test]
    fn malformed_client_messages_are_refused() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let mut up = FrameScanner::new();
        assert!(matches!(
            shared.scan_client(&mut up, &msg(b'?', b"")),
            ClientStep::Malformed(_)
        ));
        let mut up = FrameScanner::new();
        assert!(matches!(
            shared.scan_client(&mut up, b"Q\0\0\0\x01"),
            ClientStep::Malformed(_)
        ));
        let mut up = FrameScanner::new();
        assert_eq!(
            shared.scan_client(&mut up, b"Q\0\0"),
            ClientStep::Forward(0),
            "a partial header waits"
        );
        let mut up = FrameScanner::new();
        let terminate = [msg(b'X', b""), msg(b'Q', b"never\0")].concat();
        assert_eq!(
            shared.scan_client(&mut up, &terminate),
            ClientStep::Terminate(5)
        );
    }

    #[test]
    fn a_split_ready_for_query_is_kept_whole() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let mut down = FrameScanner::new();
        let stream = [msg(b'C', b"SELECT 1\0"), ready(b'I')].concat();
        let cut = stream.len() - 2;
        assert_eq!(
            shared.scan_backend(&mut down, &stream[..cut]),
            Ok(stream.len() - 6)
        );
        assert_eq!(
            shared.scan_backend(&mut down, &stream[stream.len() - 6..]),
            Ok(6)
        );
        assert!(shared
            .scan_backend(&mut FrameScanner::new(), &msg(b'Z', b"Q"))
            .is_err());
    }

    fn items_route() -> shadow::rewrite::TableRoute {
        use shadow::rewrite::{Column, ColumnMapping, TableRoute, Target};
        let column = |name: &str, base_type: &str| Column {
            name: name.into(),
            base_type: base_type.into(),
        };
        let mapped = |target: &str, expr: &str| ColumnMapping {
            target: target.into(),
            expr: expr.into(),
        };
        TableRoute {
            schema: "public".into(),
            name: "items".into(),
            columns: vec![column("id", "int4"), column("note", "text")],
            key: vec!["id".into()],
            target: Target::ShadowTable {
                shadow: "items__duet".into(),
                mapping: vec![mapped("id", "\"id\"::bigint"), mapped("note", "\"note\"")],
                shadow_key: vec!["id".into()],
                skip_when: None,
                plain_deletes: false,
            },
        }
    }

    fn routed_context() -> ProxyContext {
        let ctx = context();
        ctx.routes
            .set_table("public", "items", Some(items_route()), 150000);
        ctx
    }

    /// Scans `chunk` from the client and returns the step and the bytes that would be forwarded.
    fn up(shared: &Shared<'_>, scanner: &mut FrameScanner, chunk: &[u8]) -> (ClientStep, Vec<u8>) {
        let mut edits = Vec::new();
        let step = shared.scan_client_into(scanner, chunk, &mut edits);
        let n = match step {
            ClientStep::Forward(n)
            | ClientStep::Hold(n)
            | ClientStep::Terminate(n)
            | ClientStep::Wait(n, _) => n,
            ClientStep::Malformed(_) => 0,
        };
        (step, apply_edits(&chunk[..n], &mut edits).to_vec())
    }

    /// Scans `chunk` from the backend: bytes forwarded (as sent to the client) and bytes kept.
    fn down(shared: &Shared<'_>, scanner: &mut FrameScanner, chunk: &[u8]) -> (Vec<u8>, usize) {
        let mut edits = Vec::new();
        let n = shared
            .scan_backend_into(scanner, chunk, &mut edits)
            .unwrap();
        (
            apply_edits(&chunk[..n], &mut edits).to_vec(),
            chunk.len() - n,
        )
    }

    /// The messages of a byte stream, as (tag, body).
    fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 5 {
            let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
            out.push((bytes[0], bytes[5..1 + len].to_vec()));
            bytes = &bytes[1 + len..];
        }
        out
    }

    #[test]
    fn nothing_routed_forwards_byte_for_byte() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let query = msg(b'Q', b"update items set note = 'x'\0");
        let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
        assert_eq!(out, query);
        // A partial Query streams as before (nothing is held back).
        assert_eq!(
            up(&shared, &mut FrameScanner::new(), &query[..10]).0,
            ClientStep::Forward(10)
        );
    }

    #[test]
    fn a_rewritten_query_is_rebuilt_and_its_tags_restored_across_split_reads() {
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let mut scanner = FrameScanner::new();
        let sql = b"update items set note = 'x' where id = 1; select 1; delete from items\0";
        let query = msg(b'Q', sql);
        // Split: the hook waits for the whole message before forwarding anything of it.
        assert_eq!(
            up(&shared, &mut scanner, &query[..12]).0,
            ClientStep::Wait(0, query.len())
        );
        let (step, out) = up(&shared, &mut scanner, &query);
        assert_eq!(step, ClientStep::Forward(query.len()));
        let sent = messages(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, b'Q');
        let text = String::from_utf8(sent[0].1.clone()).unwrap();
        assert!(text.contains("items__duet"), "{text}");
        assert!(text.ends_with('\0'));
        assert_eq!(
            ctx.routes
                .counters("public", "items")
                .dual_writes
                .load(Ordering::Relaxed),
            2
        );

        // The answers: the CTE form's tags, the first CommandComplete split across reads.
        let answer = [
            msg(b'C', b"INSERT 0 1\0"),
            msg(
                b'T',
                b"\0\x01?column?\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
            ),
            msg(b'D', b"\0\x01\0\0\0\x011"),
            msg(b'C', b"SELECT 1\0"),
            msg(b'C', b"INSERT 0 7\0"),
            ready(b'I'),
        ]
        .concat();
        let mut scanner = FrameScanner::new();
        let (first, kept) = down(&shared, &mut scanner, &answer[..8]);
        assert!(first.is_empty());
        assert_eq!(kept, 8, "an incomplete CommandComplete is kept whole");
        let (out, kept) = down(&shared, &mut scanner, &answer);
        assert_eq!(kept, 0);
        let tags: Vec<_> = messages(&out)
            .into_iter()
            .filter(|(t, _)| *t == b'C')
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(tags, ["UPDATE 1\0", "SELECT 1\0", "DELETE 7\0"]);
        assert!(!shared.expecting.load(Ordering::Relaxed));
        assert_eq!(info.state(), SessionState::Idle);
    }

    #[test]
    fn a_rewritten_parse_keeps_its_name_and_parameter_types() {
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let parse = msg(
            b'P',
            b"s1\0update items set note = $1 where id = $2\0\0\x02\0\0\0\x19\0\0\0\x17",
        );
        let batch = [
            parse.clone(),
            msg(b'B', b"p1\0s1\0\0\0\0\x02\0\0\0\x01x\0\0\0\x011\0\0"),
            msg(b'E', b"p1\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        let (_, out) = up(&shared, &mut FrameScanner::new(), &batch);
        let sent = messages(&out);
        assert_eq!(sent[0].0, b'P');
        let (name, rest) = sent[0].1.split_at(3);
        assert_eq!(name, b"s1\0");
        assert!(String::from_utf8_lossy(rest).contains("items__duet"));
        assert!(rest.ends_with(b"\0\0\x02\0\0\0\x19\0\0\0\x17"));
        assert_eq!(&out[sent[0].1.len() + 5..], &batch[parse.len()..]);
        let answer = [
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', b"INSERT 0 1\0"),
            ready(b'I'),
        ]
        .concat();
        let (out, _) = down(&shared, &mut FrameScanner::new(), &answer);
        assert_eq!(messages(&out)[2], (b'C', b"UPDATE 1\0".to_vec()));
    }

    #[test]
    fn a_refused_statement_gets_the_refusal_instead_of_the_markers_error() {
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let query = msg(b'Q', b"alter table items add column note text\0");
        let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
        assert_eq!(messages(&out), [(b'Q', b"DUET_REFUSED_1\0".to_vec())]);
        let server = [
            crate::wire::error::error_response(
                crate::wire::error::Severity::Error,
                "42601",
                "syntax error at or near \"DUET_REFUSED_1\"",
                None,
            )
            .to_vec(),
            ready(b'E'),
        ]
        .concat();
        let (out, _) = down(&shared, &mut FrameScanner::new(), &server);
        let got = messages(&out);
        assert_eq!(got[0].0, b'E');
        let fields = String::from_utf8_lossy(&got[0].1).into_owned();
        assert!(fields.contains("C55000\0"), "{fields}");
        assert!(!fields.contains("DUET_REFUSED"), "{fields}");
        assert_eq!(got[1], (b'Z', b"E".to_vec()));
        assert_eq!(
            ctx.routes
                .counters("public", "items")
                .refusals
                .load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn statements_are_prepared_again_after_a_route_change_and_the_answers_swallowed() {
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let parse = [
            msg(
                b'P',
                b"ins\0insert into items (id, note) values ($1, $2)\0\0\0",
            ),
            msg(b'P', b"other\0select 1\0\0\0"),
            msg(b'P', b"del\0delete from items\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        up(&shared, &mut FrameScanner::new(), &parse);
        down(
            &shared,
            &mut FrameScanner::new(),
            &[msg(b'1', b""), msg(b'1', b""), msg(b'1', b""), ready(b'I')].concat(),
        );
        assert_eq!(ctx.metrics.latency_summary().count, 1);
        // The routes change (the migration ends): the next transaction first re-prepares `ins`.
        ctx.routes.set_table("public", "items", None, 0);
        let query = msg(b'Q', b"select 2\0");
        let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
        let sent = messages(&out);
        let tags: Vec<u8> = sent.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, b"CPSCPSQ", "each statement in a request of its own");
        let ins = sent.iter().position(|(_, b)| b == b"Sins\0").unwrap();
        assert_eq!(
            sent[ins + 1].1,
            b"ins\0insert into items (id, note) values ($1, $2)\0\0\0"
        );
        // The injected answers (one re-prepare failing) never reach the client nor count as a
        // request.
        let failed = crate::wire::error::error_response(
            crate::wire::error::Severity::Error,
            "42P01",
            "relation does not exist",
            None,
        )
        .to_vec();
        let answer = [
            msg(b'3', b""),
            failed,
            ready(b'I'),
            msg(b'3', b""),
            msg(b'1', b""),
            ready(b'I'),
            msg(b'C', b"SELECT 1\0"),
            ready(b'I'),
        ]
        .concat();
        let (out, kept) = down(&shared, &mut FrameScanner::new(), &answer[..8]);
        assert!(out.is_empty());
        let (out, _) = down(&shared, &mut FrameScanner::new(), &answer[8 - kept..]);
        assert_eq!(out, [msg(b'C', b"SELECT 1\0"), ready(b'I')].concat());
        assert_eq!(ctx.metrics.latency_summary().count, 2);
        assert!(!info.is_busy());
        // Nothing more to re-prepare: the following query goes out alone.
        let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
        assert_eq!(out, query);
    }

    #[test]
    fn oversized_statements_are_refused_while_routes_are_active() {
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let mut head = vec![b'Q'];
        head.extend_from_slice(&((MAX_HELD + 10) as i32).to_be_bytes());
        head.extend_from_slice(b"insert into items");
        let (step, out) = up(&shared, &mut FrameScanner::new(), &head);
        assert_eq!(step, ClientStep::Forward(head.len()));
        assert_eq!(messages(&out)[0].0, b'Q');
        assert!(String::from_utf8_lossy(&out).contains("DUET_REFUSED_"));
        // The rest of it is dropped, and the next message is seen again.
        let rest = MAX_HELD + 11 - head.len();
        let mut tail = vec![b'x'; rest];
        tail.extend(msg(b'Q', b"select 1\0"));
        let (_, out) = up(&shared, &mut FrameScanner::new(), &tail);
        assert_eq!(out, msg(b'Q', b"select 1\0"));

        // An oversized Parse opens a batch like any Parse (its Sync gets the ReadyForQuery).
        let shared = Shared::new(&ctx, &info);
        head[0] = b'P';
        let (_, out) = up(&shared, &mut FrameScanner::new(), &head);
        assert_eq!(messages(&out)[0].0, b'P');
        assert!(shared.tracker().pending.is_empty());
        assert!(shared.tracker().in_batch);
    }

    /// A cached-plan error of the stale-plan kind (0A000), as PostgreSQL words it.
    fn stale_plan_error() -> Vec<u8> {
        crate::wire::error::error_response(
            crate::wire::error::Severity::Error,
            "0A000",
            "cached plan must not change result type",
            None,
        )
        .to_vec()
    }

    /// Prepares `sql` as `sel`, executes it, and answers the execution with a stale-plan error;
    /// returns the bytes the next execution of `sel` sends to the server.
    fn next_execution_after_a_stale_plan(shared: &Shared<'_>, sql: &[u8]) -> Vec<u8> {
        let parse = [
            msg(b'P', &[&b"sel\0"[..], sql, &b"\0\0\0"[..]].concat()),
            msg(b'S', b""),
        ]
        .concat();
        assert_eq!(up(shared, &mut FrameScanner::new(), &parse).1, parse);
        down(
            shared,
            &mut FrameScanner::new(),
            &[msg(b'1', b""), ready(b'I')].concat(),
        );
        let execute = [
            msg(b'B', b"\0sel\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        assert_eq!(up(shared, &mut FrameScanner::new(), &execute).1, execute);
        let answer = [stale_plan_error(), ready(b'I')].concat();
        assert_eq!(down(shared, &mut FrameScanner::new(), &answer).0, answer);
        up(shared, &mut FrameScanner::new(), &execute).1
    }

    #[test]
    fn a_stale_plan_error_prepares_again_the_statements_on_routed_tables() {
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let out = next_execution_after_a_stale_plan(&shared, b"select * from items");
        let tags: Vec<u8> = messages(&out).iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, b"CPSBES");
    }

    #[test]
    fn a_stale_plan_error_on_other_tables_is_left_to_the_client() {
        // As with PostgreSQL alone: the client prepares the statement again itself, with the
        // result shape it has now (duet keeping the first shape would return stale columns).
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let out = next_execution_after_a_stale_plan(&shared, b"select * from other_table");
        let tags: Vec<u8> = messages(&out).iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, b"BES");
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:2".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let out = next_execution_after_a_stale_plan(&shared, b"select * from items");
        let tags: Vec<u8> = messages(&out).iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, b"BES", "nothing routed: nothing prepared again");
    }

    #[test]
    fn a_statement_prepared_again_in_its_first_shape_falls_back_to_its_own_text() {
        // Should the first shape no longer fit (the table gained a column), the client's own
        // text is prepared instead of the statement being lost; when the shaped one succeeded,
        // the fallback's 42P05 is dropped with the other injected answers.
        let ctx = routed_context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let prepare = [
            msg(b'P', b"sel\0select id from items\0\0\0"),
            msg(b'D', b"Ssel\0"),
            msg(b'S', b""),
        ]
        .concat();
        up(&shared, &mut FrameScanner::new(), &prepare);
        let mut columns = 1u16.to_be_bytes().to_vec();
        columns.extend_from_slice(b"id\0");
        columns.extend_from_slice(&16384u32.to_be_bytes());
        columns.extend_from_slice(&1i16.to_be_bytes());
        columns.extend_from_slice(&23u32.to_be_bytes());
        columns.extend_from_slice(&4i16.to_be_bytes());
        columns.extend_from_slice(&(-1i32).to_be_bytes());
        columns.extend_from_slice(&0i16.to_be_bytes());
        down(
            &shared,
            &mut FrameScanner::new(),
            &[
                msg(b'1', b""),
                msg(b't', b"\0\0"),
                msg(b'T', &columns),
                ready(b'I'),
            ]
            .concat(),
        );
        let execute = [
            msg(b'B', b"\0sel\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        up(&shared, &mut FrameScanner::new(), &execute);
        let answer = [stale_plan_error(), ready(b'I')].concat();
        down(&shared, &mut FrameScanner::new(), &answer);
        let (_, out) = up(&shared, &mut FrameScanner::new(), &execute);
        let sent = messages(&out);
        let tags: Vec<u8> = sent.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, b"CPSPSBES");
        let texts: Vec<String> = sent
            .iter()
            .filter(|(t, _)| *t == b'P')
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .collect();
        assert!(texts[0].contains("__duet_r"), "{texts:?}");
        assert!(texts[1].contains("\0select id from items\0"), "{texts:?}");
        // The shaped Parse succeeded; the fallback's duplicate error is not the client's.
        let duplicate = crate::wire::error::error_response(
            crate::wire::error::Severity::Error,
            "42P05",
            "prepared statement \"sel\" already exists",
            None,
        )
        .to_vec();
        let injected = [
            msg(b'3', b""),
            msg(b'1', b""),
            ready(b'I'),
            duplicate,
            ready(b'I'),
        ]
        .concat();
        let answers = [
            injected,
            msg(b'2', b""),
            msg(b'C', b"SELECT 0\0"),
            ready(b'I'),
        ]
        .concat();
        let (to_client, _) = down(&shared, &mut FrameScanner::new(), &answers);
        assert_eq!(
            to_client,
            [msg(b'2', b""), msg(b'C', b"SELECT 0\0"), ready(b'I')].concat()
        );
        assert_in_step(&shared, "after the injected answers");
    }

    /// The tracker's count of requests and answers agree, and nothing is in flight.
    fn assert_in_step(shared: &Shared<'_>, when: &str) {
        let tracker = shared.tracker();
        assert_eq!(tracker.requests, tracker.answered, "{when}");
        assert!(tracker.pending.is_empty(), "{when}");
        assert!(tracker.is_quiet(), "{when}");
    }

    #[test]
    fn an_extended_copy_in_forgets_the_syncs_the_server_ignores() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let start = [
            msg(b'P', b"\0copy t from stdin\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        up(&shared, &mut FrameScanner::new(), &start);
        // In copy-in mode the server ignores that Sync: it answers with CopyInResponse only.
        down(
            &shared,
            &mut FrameScanner::new(),
            &[msg(b'1', b""), msg(b'2', b""), msg(b'G', b"\0\0\0")].concat(),
        );
        let data = [msg(b'd', b"1\n"), msg(b'c', b""), msg(b'S', b"")].concat();
        up(&shared, &mut FrameScanner::new(), &data);
        down(
            &shared,
            &mut FrameScanner::new(),
            &[msg(b'C', b"COPY 1\0"), ready(b'I')].concat(),
        );
        assert_in_step(&shared, "after the COPY's own ReadyForQuery");
    }

    #[test]
    fn copy_messages_outside_copy_in_mode_are_ignored_as_the_server_ignores_them() {
        // A simple-protocol COPY, an extended query pipelined right after its CopyDone, then a
        // stray CopyFail (postgres.js sends one when its stream ends): the server answers both
        // requests and ignores the CopyFail; counting it would put the session one request
        // behind for good, and duet's own injected answers would reach the client.
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        up(
            &shared,
            &mut FrameScanner::new(),
            &msg(b'Q', b"copy t from stdin\0"),
        );
        down(&shared, &mut FrameScanner::new(), &msg(b'G', b"\0\0\0"));
        let pipelined = [
            msg(b'd', b"1\n"),
            msg(b'c', b""),
            msg(b'P', b"\0select 2\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
            msg(b'f', b"null\0"),
        ]
        .concat();
        up(&shared, &mut FrameScanner::new(), &pipelined);
        down(
            &shared,
            &mut FrameScanner::new(),
            &[
                msg(b'C', b"COPY 1\0"),
                ready(b'I'),
                msg(b'1', b""),
                msg(b'2', b""),
                msg(b'C', b"SELECT 1\0"),
                ready(b'I'),
            ]
            .concat(),
        );
        assert_in_step(&shared, "after both answers and the stray CopyFail");
    }

    #[test]
    #[ignore = "micro-benchmark: run with --release --ignored --nocapture"]
    fn cost_of_a_cached_rewrite() {
        let (plain, routed) = (context(), routed_context());
        let n = 200_000u32;
        let update = &b"update items set note = 'x' where id = 1\0"[..];
        let select = &b"select * from accounts where id = 1\0"[..];
        for (label, ctx, sql) in [
            ("no routes", &plain, update),
            ("routes, untouched", &routed, select),
            ("routes, rewritten", &routed, update),
        ] {
            let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
            let shared = Shared::new(ctx, &info);
            let query = msg(b'Q', sql);
            let answer = [msg(b'C', b"INSERT 0 1\0"), ready(b'I')].concat();
            let started = Instant::now();
            for _ in 0..n {
                let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
                std::hint::black_box(out);
                let (out, _) = down(&shared, &mut FrameScanner::new(), &answer);
                std::hint::black_box(out);
            }
            eprintln!("{label}: {:?} per statement", started.elapsed() / n);
        }
    }

    #[test]
    fn routes_appearing_mid_batch_keep_the_completions_aligned() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let first = [
            msg(b'P', b"\0select 1\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
        ]
        .concat();
        assert_eq!(up(&shared, &mut FrameScanner::new(), &first).1, first);
        ctx.routes
            .set_table("public", "items", Some(items_route()), 150000);
        let second = [
            msg(b'P', b"\0update items set note = 'x'\0\0\0"),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat();
        up(&shared, &mut FrameScanner::new(), &second);
        let answer = [
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', b"SELECT 1\0"),
            msg(b'1', b""),
            msg(b'2', b""),
            msg(b'C', b"INSERT 0 4\0"),
            ready(b'I'),
        ]
        .concat();
        let (out, _) = down(&shared, &mut FrameScanner::new(), &answer);
        let tags: Vec<_> = messages(&out)
            .into_iter()
            .filter(|(t, _)| *t == b'C')
            .map(|(_, b)| b)
            .collect();
        assert_eq!(tags, [b"SELECT 1\0".to_vec(), b"UPDATE 4\0".to_vec()]);
    }

    /// Property: arbitrary bytes from either side, cut anywhere, give a step or an error — never a
    /// panic — and never ask to forward more than was read.
    #[test]
    fn random_traffic_never_panics() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let mut state: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tags = b"QPBEDCSFHXdcfpZTIK?\0";
        for round in 0..3000 {
            let shared = Shared::new(&ctx, &info);
            let mut chunk = Vec::new();
            for _ in 0..(next() % 6) {
                let tag = tags[(next() % tags.len() as u64) as usize];
                let len = (next() % 12) as usize;
                if next() % 4 == 0 {
                    // Plausible statements on the routed table, to reach the rewrite paths.
                    let sql: &[u8] = match next() % 3 {
                        0 => b"s\0update items set note = 'a'\0\0\0",
                        1 => b"delete from items\0",
                        _ => b"\0merge into items using x on true when matched then delete\0\0\0",
                    };
                    chunk.extend(msg(tag, sql));
                    continue;
                }
                let declared = if next() % 8 == 0 {
                    next() as i32
                } else {
                    (len + 4) as i32
                };
                chunk.push(tag);
                chunk.extend_from_slice(&declared.to_be_bytes());
                chunk.extend((0..len).map(|_| next() as u8));
            }
            let cut = (next() as usize) % (chunk.len() + 1);
            let chunk = &chunk[..cut];
            let mut edits = Vec::new();
            match shared.scan_client_into(&mut FrameScanner::new(), chunk, &mut edits) {
                ClientStep::Forward(n)
                | ClientStep::Hold(n)
                | ClientStep::Terminate(n)
                | ClientStep::Wait(n, _) => {
                    assert!(n <= chunk.len());
                    let _ = apply_edits(&chunk[..n], &mut edits);
                }
                ClientStep::Malformed(_) => {}
            }
            edits.clear();
            if let Ok(n) = shared.scan_backend_into(&mut FrameScanner::new(), chunk, &mut edits) {
                assert!(n <= chunk.len());
                let _ = apply_edits(&chunk[..n], &mut edits);
            }
            if round == 1500 {
                // The second half runs with a table under migration: the hook's paths too.
                ctx.routes
                    .set_table("public", "items", Some(items_route()), 150000);
            }
        }
    }
}
