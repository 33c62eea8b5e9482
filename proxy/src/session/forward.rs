//! The forwarding phase: two independent loops, one per direction, in one task.
//!
//! Each loop reads whatever has arrived, walks the message headers in it (streaming messages larger
//! than the buffer), updates the session's protocol position, and writes the chunk on in one write.
//! The directions never wait for each other: a client pipelining a large COPY while the backend
//! streams results back cannot deadlock the proxy. Only a held transaction start (the pause gate)
//! stops the client→backend loop, and only that loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::track::Tracker;
use super::{close_with_fatal, lost_backend, protocol_violation, Established};
use crate::backend::BackendStream;
use crate::client_stream::ClientStream;
use crate::context::ProxyContext;
use crate::sessions::{SessionInfo, SessionState};
use crate::shutdown::Phase;
use crate::wire::error::ADMIN_SHUTDOWN;
use crate::wire::frame::FrameScanner;
use crate::wire::{backend, frontend};

/// Read size per direction: large enough for big result sets, small enough for 1000 sessions.
const READ_SIZE: usize = 16 * 1024;
/// Largest message a client may send (PostgreSQL's limit, 1 GB - 1).
const MAX_CLIENT_MESSAGE: usize = 0x3fff_ffff;
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
    /// The backend closed or failed (the client got FATAL 08006).
    BackendLost(String),
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
}

/// State both directions share.
struct Shared<'a> {
    ctx: &'a ProxyContext,
    info: &'a SessionInfo,
    tracker: Mutex<Tracker>,
}

impl Shared<'_> {
    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        // Nothing panics while holding the lock; recover the data if that ever changes.
        self.tracker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Walks a chunk from the client: counts statements, opens requests, and applies the gate at
    /// transaction boundaries.
    fn scan_client(&self, scanner: &mut FrameScanner, chunk: &[u8]) -> ClientStep {
        let mut tracker = self.tracker();
        let mut pos = 0;
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
                    if tracker.is_quiet() {
                        if tracker.at_boundary() && !self.ctx.gate.try_begin(self.info) {
                            break ClientStep::Hold(frame.start);
                        }
                        let now = *read_at.get_or_insert_with(Instant::now);
                        self.info.set_state_at(SessionState::Active, now);
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
                    tracker.copy_message();
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
        step
    }

    /// Walks a chunk from the backend: ReadyForQuery closes requests and moves the session's
    /// state. Returns how many bytes may be forwarded (a ReadyForQuery split across reads is kept
    /// whole for the next one).
    fn scan_backend(&self, scanner: &mut FrameScanner, chunk: &[u8]) -> Result<usize, String> {
        let mut pos = 0;
        let mut tracker: Option<MutexGuard<'_, Tracker>> = None;
        // One clock reading per chunk serves every ReadyForQuery in it.
        let mut now: Option<Instant> = None;
        loop {
            let frame = match scanner.next_frame(chunk, &mut pos, MAX_BACKEND_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(pos),
                Err(err) => return Err(format!("backend sent {err}")),
            };
            if frame.tag != backend::READY_FOR_QUERY {
                scanner.pass(&frame, chunk.len(), &mut pos);
                continue;
            }
            if frame.wire_len != 6 {
                return Err("backend sent a malformed ReadyForQuery".to_owned());
            }
            let Some(body) = frame.body(chunk) else {
                return Ok(frame.start);
            };
            let tracker = tracker.get_or_insert_with(|| self.tracker());
            let now = *now.get_or_insert_with(Instant::now);
            self.ready_for_query(tracker, body[0], now)?;
            pos = frame.end();
        }
    }

    fn ready_for_query(
        &self,
        tracker: &mut Tracker,
        status: u8,
        now: Instant,
    ) -> Result<(), String> {
        if !matches!(status, b'I' | b'T' | b'E') {
            return Err(format!(
                "backend sent an unknown transaction status {}",
                printable(status)
            ));
        }
        if let Some(started) = tracker.pending.pop_front() {
            // The worker thread's own shard: no other thread writes it, so its lock and cache
            // lines stay on this core (outside a worker, e.g. in unit tests, spread by session).
            let shard = crate::workers::current_index().unwrap_or(self.info.id as usize);
            self.ctx
                .metrics
                .record_latency(shard, now.saturating_duration_since(started));
        }
        tracker.status = status;
        if tracker.is_quiet() {
            match status {
                b'I' => {
                    self.info.set_state_at(SessionState::Idle, now);
                    self.ctx.gate.end(self.info);
                }
                b'T' => self.info.set_state_at(SessionState::IdleInTransaction, now),
                _ => self
                    .info
                    .set_state_at(SessionState::IdleInTransactionAborted, now),
            }
        }
        Ok(())
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
    let shared = Shared {
        ctx,
        info,
        tracker: Mutex::new(Tracker::new()),
    };
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
        let first = tokio::select! {
            end = &mut upstream => end,
            end = &mut downstream => end,
            _ = shutdown.wait_for(|phase| *phase >= Phase::Terminating) => SessionEnd::Shutdown,
        };
        if matches!(first, SessionEnd::ClientTerminated) {
            // Terminate reached the backend behind everything the client sent before it (a client
            // may send `Query` and `Terminate` in one write); the backend answers those first and
            // then closes. Deliver the answers until it does.
            tokio::select! {
                _ = &mut downstream => {}
                _ = shutdown.wait_for(|phase| *phase >= Phase::Terminating) => {}
            }
        }
        first
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
    let mut need_read = buf.is_empty();
    loop {
        if need_read {
            match fill(read, &mut buf).await {
                Ok(0) => return SessionEnd::ClientClosed,
                Ok(_) => {}
                Err(err) => return SessionEnd::ClientError(err.to_string()),
            }
        }
        let step = shared.scan_client(&mut scanner, &buf);
        let forward = match step {
            ClientStep::Forward(n) | ClientStep::Hold(n) | ClientStep::Terminate(n) => n,
            ClientStep::Malformed(why) => return SessionEnd::ClientMalformed(why),
        };
        if let Err(err) = forward_chunk(
            write,
            &mut buf,
            forward,
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
            _ => need_read = true,
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
        let forward = match shared.scan_backend(&mut scanner, &buf) {
            Ok(n) => n,
            Err(why) => return SessionEnd::BackendLost(why),
        };
        if let Err(err) = forward_chunk(
            write,
            &mut buf,
            forward,
            &shared.info.bytes_server_to_client,
        )
        .await
        {
            return SessionEnd::ClientError(err.to_string());
        }
    }
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
        let shared = Shared {
            ctx: &ctx,
            info: &info,
            tracker: Mutex::new(Tracker::new()),
        };
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
        let shared = Shared {
            ctx: &ctx,
            info: &info,
            tracker: Mutex::new(Tracker::new()),
        };
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
        let shared = Shared {
            ctx: &ctx,
            info: &info,
            tracker: Mutex::new(Tracker::new()),
        };
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
        let shared = Shared {
            ctx: &ctx,
            info: &info,
            tracker: Mutex::new(Tracker::new()),
        };
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
        let shared = Shared {
            ctx: &ctx,
            info: &info,
            tracker: Mutex::new(Tracker::new()),
        };
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
        for _ in 0..3000 {
            let shared = Shared {
                ctx: &ctx,
                info: &info,
                tracker: Mutex::new(Tracker::new()),
            };
            let mut chunk = Vec::new();
            for _ in 0..(next() % 6) {
                let tag = tags[(next() % tags.len() as u64) as usize];
                let len = (next() % 12) as usize;
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
            match shared.scan_client(&mut FrameScanner::new(), chunk) {
                ClientStep::Forward(n) | ClientStep::Hold(n) | ClientStep::Terminate(n) => {
                    assert!(n <= chunk.len())
                }
                ClientStep::Malformed(_) => {}
            }
            if let Ok(n) = shared.scan_backend(&mut FrameScanner::new(), chunk) {
                assert!(n <= chunk.len());
            }
        }
    }
}
