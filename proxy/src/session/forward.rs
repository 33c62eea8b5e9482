//! The forwarding phase: two independent loops, one per direction, in one task.
//!
//! Each loop reads whatever has arrived, walks the message headers in it (streaming messages larger
//! than the buffer), updates the session's protocol position, and writes the chunk on in one write.
//! The directions never wait for each other: a client pipelining a large COPY while the backend
//! streams results back cannot deadlock the proxy. Only a held transaction start (the pause gate)
//! stops the client→backend loop, and only that loop.
//!
//! The loop is written once ([`forward`]); what differs between the directions — the scan
//! ([`super::upstream`], [`super::downstream`]) and which side's failure ends the session how —
//! is a [`Direction`].

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::downstream::{BackendViolation, Downstream};
use super::duplex::Duplex;
use super::edit::{apply_edits, Edit};
use super::shared::{add_own, Shared};
use super::upstream::{ClientStep, ClientViolation, Upstream};
use super::{close_with_fatal, lost_backend, protocol_violation, Established, SessionBackend};
use crate::backend::BackendStream;
use crate::client_stream::ClientStream;
use crate::context::ProxyContext;
use crate::session_registry::SessionInfo;
use crate::shutdown::ShutdownPhase;
use crate::wire::error::ADMIN_SHUTDOWN;
use crate::wire::frame::FrameScanner;
use crate::wire::frontend;

/// Read size per direction: large enough for big result sets, small enough for 1000 sessions.
const READ_SIZE: usize = 16 * 1024;
/// Buffer capacity kept by an idle loop (more was only needed to hold a large message whole for
/// the dual-write hook).
const MAX_IDLE_BUFFER: usize = 1 << 20;
/// How long a backend that refused a write gets to deliver a FATAL it sent before going.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How a session's forwarding phase ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client sent Terminate.
    ClientTerminated,
    /// The client closed its connection.
    ClientClosed,
    /// The client's connection failed.
    ClientError(io::Error),
    /// The client sent a malformed message (it got FATAL 08P01).
    ClientMalformed(ClientViolation),
    /// The backend closed or failed without a word (the client got FATAL 08006).
    BackendLost(BackendLoss),
    /// The backend ended the session with its own FATAL ErrorResponse (administrator command,
    /// idle timeout, …), which the client got as its last message, and then closed: the client
    /// gets nothing more, exactly as direct.
    BackendEnded(BackendLoss),
    /// The proxy shut down (the client got FATAL 57P01).
    Shutdown,
}

/// How the connection to the backend was lost.
#[derive(Debug, thiserror::Error)]
pub enum BackendLoss {
    /// The backend closed it.
    #[error("the backend closed the connection")]
    Closed,
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The backend broke the protocol.
    #[error(transparent)]
    Violation(#[from] BackendViolation),
}

/// What a forwarding loop does with a chunk it has scanned.
#[derive(Debug)]
pub(super) enum Step {
    /// Forward the first `.0` bytes (with the scan's edits), then go on as `.1` says.
    Forward(usize, Then),
    /// End now, forwarding nothing more.
    End(SessionEnd),
}

/// What a forwarding loop does once a chunk is forwarded.
#[derive(Debug)]
pub(super) enum Then {
    /// Read more.
    Read,
    /// Wait for the pause gate to open, then scan the rest again.
    Hold,
    /// Read until the message at the start of the buffer, this many bytes long, is whole (the
    /// dual-write hook checks some messages whole).
    ReadWhole(usize),
    /// End the session so.
    End(SessionEnd),
}

/// One direction of the forwarding phase: how its chunks are scanned, and how a failure on
/// either of its sides ends the session.
pub(super) trait Direction {
    /// Scans a chunk that has arrived; `edits` get the hook's changes to it.
    fn scan(&self, scanner: &mut FrameScanner, chunk: &[u8], edits: &mut Vec<Edit>) -> Step;
    /// The session's count of the bytes forwarded this way.
    fn forwarded(&self) -> &AtomicU64;
    /// How the session ends when the side this direction reads from closes (`None`) or fails.
    fn read_ended(&self, error: Option<io::Error>) -> SessionEnd;
    /// How the session ends when writing to the other side fails.
    fn write_failed(&self, error: io::Error) -> SessionEnd;
    /// Resolves once held messages may go on.
    fn resumed(&self) -> impl Future<Output = ()>;
}

impl Direction for Upstream<'_, '_> {
    fn scan(&self, scanner: &mut FrameScanner, chunk: &[u8], edits: &mut Vec<Edit>) -> Step {
        match Upstream::scan(self, scanner, chunk, edits) {
            ClientStep::Forward(n) => Step::Forward(n, Then::Read),
            ClientStep::Hold(n) => Step::Forward(n, Then::Hold),
            ClientStep::Wait(n, whole) => Step::Forward(n, Then::ReadWhole(whole)),
            ClientStep::Terminate(n) => Step::Forward(n, Then::End(SessionEnd::ClientTerminated)),
            ClientStep::Malformed(why) => Step::End(SessionEnd::ClientMalformed(why)),
        }
    }

    fn forwarded(&self) -> &AtomicU64 {
        &self.shared().info.bytes_client_to_server
    }

    fn read_ended(&self, error: Option<io::Error>) -> SessionEnd {
        match error {
            None => SessionEnd::ClientClosed,
            Some(error) => SessionEnd::ClientError(error),
        }
    }

    fn write_failed(&self, error: io::Error) -> SessionEnd {
        SessionEnd::BackendLost(error.into())
    }

    fn resumed(&self) -> impl Future<Output = ()> {
        self.shared().ctx.gate.wait_resumed()
    }
}

impl Direction for Downstream<'_, '_> {
    fn scan(&self, scanner: &mut FrameScanner, chunk: &[u8], edits: &mut Vec<Edit>) -> Step {
        match Downstream::scan(self, scanner, chunk, edits) {
            Ok(n) => Step::Forward(n, Then::Read),
            Err(violation) => Step::End(SessionEnd::BackendLost(violation.into())),
        }
    }

    fn forwarded(&self) -> &AtomicU64 {
        &self.shared().info.bytes_server_to_client
    }

    fn read_ended(&self, error: Option<io::Error>) -> SessionEnd {
        SessionEnd::BackendLost(error.map_or(BackendLoss::Closed, BackendLoss::Io))
    }

    fn write_failed(&self, error: io::Error) -> SessionEnd {
        SessionEnd::ClientError(error)
    }

    fn resumed(&self) -> impl Future<Output = ()> {
        // The backend's answers are never held.
        std::future::ready(())
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
    let buffers = Buffers {
        client: client_buf,
        backend: backend_buf,
    };
    // The pair of stream types is picked here, once per session: everything below is compiled
    // for each pair, with no dispatch per read or write.
    match client {
        ClientStream::Plain(mut tcp) => with_backend(&shared, &mut tcp, backend, buffers).await,
        ClientStream::Tls(mut tls) => with_backend(&shared, &mut *tls, backend, buffers).await,
        ClientStream::Local(mut unix) => with_backend(&shared, &mut unix, backend, buffers).await,
    }
}

async fn with_backend<C: Duplex>(
    shared: &Shared<'_>,
    client: &mut C,
    backend: SessionBackend,
    buffers: Buffers,
) -> SessionEnd {
    match backend {
        SessionBackend::Own(backend) => with_own_backend(shared, client, backend, buffers).await,
        SessionBackend::Pooled(mut link) => pump(shared, client, &mut *link, buffers).await,
    }
}

/// What startup read of each side and the forwarding phase must handle first.
struct Buffers {
    client: BytesMut,
    backend: BytesMut,
}

async fn with_own_backend<C: Duplex>(
    shared: &Shared<'_>,
    client: &mut C,
    backend: BackendStream,
    buffers: Buffers,
) -> SessionEnd {
    match backend {
        BackendStream::Tcp(mut tcp) => pump(shared, client, &mut tcp, buffers).await,
        BackendStream::Unix(mut unix) => pump(shared, client, &mut unix, buffers).await,
        BackendStream::Tls(mut tls) => pump(shared, client, &mut *tls, buffers).await,
    }
}

/// Runs both directions until one ends, lets the other finish what it must, and tells the client
/// why the session ended.
async fn pump<C: Duplex, B: Duplex>(
    shared: &Shared<'_>,
    client: &mut C,
    backend: &mut B,
    buffers: Buffers,
) -> SessionEnd {
    let (mut client_read, mut client_write) = client.halves();
    let (mut backend_read, mut backend_write) = backend.halves();
    let Buffers {
        client: client_buf,
        backend: backend_buf,
    } = buffers;
    let mut shutdown = shared.ctx.shutdown.subscribe();
    let end = {
        let upstream = forward(
            Upstream::new(shared),
            &mut client_read,
            &mut backend_write,
            client_buf,
        );
        let downstream = forward(
            Downstream::new(shared),
            &mut backend_read,
            &mut client_write,
            backend_buf,
        );
        tokio::pin!(upstream, downstream);
        let (first, upstream_ended) = tokio::select! {
            end = &mut upstream => (end, true),
            end = &mut downstream => (end, false),
            _ = shutdown.wait_for(|phase| *phase >= ShutdownPhase::Terminating) => (SessionEnd::Shutdown, false),
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
                _ = shutdown.wait_for(|phase| *phase >= ShutdownPhase::Terminating) => {}
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
            protocol_violation(&mut client_write, &why.to_string()).await;
        }
        SessionEnd::BackendLost(why) => {
            tracing::debug!(session = shared.info.id, %why, "backend lost");
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
            tracing::debug!(session = shared.info.id, %why, "backend ended the session");
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

/// One direction's loop: read, scan, forward, until the session ends this way.
async fn forward<D, R, W>(
    direction: D,
    read: &mut R,
    write: &mut W,
    mut buf: BytesMut,
) -> SessionEnd
where
    D: Direction,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = FrameScanner::new();
    let mut edits: Vec<Edit> = Vec::new();
    let mut need_read = buf.is_empty();
    loop {
        if need_read {
            match fill(read, &mut buf).await {
                Ok(0) => return direction.read_ended(None),
                Ok(_) => {}
                Err(err) => return direction.read_ended(Some(err)),
            }
        }
        let (n, then) = match direction.scan(&mut scanner, &buf, &mut edits) {
            Step::Forward(n, then) => (n, then),
            Step::End(end) => return end,
        };
        if let Err(err) =
            forward_edited(write, &mut buf, n, &mut edits, direction.forwarded()).await
        {
            return direction.write_failed(err);
        }
        need_read = true;
        match then {
            Then::Read => {
                if buf.is_empty() && buf.capacity() > MAX_IDLE_BUFFER {
                    // A large message held whole is gone: do not keep its room for the
                    // session's lifetime.
                    buf = BytesMut::with_capacity(READ_SIZE);
                }
            }
            Then::Hold => {
                direction.resumed().await;
                need_read = false;
            }
            Then::ReadWhole(whole) => {
                // The hook reads this message whole: make room for it at once.
                buf.reserve(whole.saturating_sub(buf.len()));
            }
            Then::End(end) => return end,
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
    use std::sync::atomic::Ordering;

    use bytes::BytesMut;

    use super::super::downstream::Downstream;
    use super::super::edit::apply_edits;
    use super::super::shared::Shared;
    use super::super::testing::*;
    use super::super::upstream::{ClientStep, ClientViolation, Upstream};
    use super::{forward, BackendLoss, SessionEnd};
    use crate::session_registry::SessionState;
    use crate::wire::frame::FrameScanner;

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
            scan_client(&shared, &mut up, &parse_bind_execute),
            ClientStep::Forward(parse_bind_execute.len())
        );
        assert!(info.is_busy(), "an open batch is in flight");
        assert_eq!(info.state(), SessionState::Active);

        let sync = msg(b'S', b"");
        scan_client(&shared, &mut up, &sync);
        let response = [msg(b'2', b""), msg(b'C', b"SELECT 1\0"), ready(b'I')].concat();
        assert_eq!(
            scan_backend(&shared, &mut down, &response),
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
        scan_client(&shared, &mut up, &two);
        assert_eq!(scan_backend(&shared, &mut down, &ready(b'T')), Ok(6));
        assert_eq!(
            info.state(),
            SessionState::Active,
            "one query still pending"
        );
        assert_eq!(scan_backend(&shared, &mut down, &ready(b'T')), Ok(6));
        assert_eq!(info.state(), SessionState::IdleInTransaction);
        assert!(info.is_busy(), "an open transaction is in flight");
        scan_client(&shared, &mut up, &msg(b'Q', b"select 1/0\0"));
        scan_backend(&shared, &mut down, &ready(b'E')).unwrap();
        assert_eq!(info.state(), SessionState::IdleInTransactionAborted);
        scan_client(&shared, &mut up, &msg(b'Q', b"rollback\0"));
        scan_backend(&shared, &mut down, &ready(b'I')).unwrap();
        assert!(!info.is_busy());
    }

    #[tokio::test]
    async fn paused_gate_holds_new_work_at_the_boundary_only() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(&ctx, &info);
        let (mut up, mut down) = (FrameScanner::new(), FrameScanner::new());
        // In a transaction when the pause starts: its next statement goes through.
        scan_client(&shared, &mut up, &msg(b'Q', b"begin\0"));
        scan_backend(&shared, &mut down, &ready(b'T')).unwrap();
        let pause = ctx
            .gate
            .pause(&ctx.sessions, std::time::Duration::from_millis(10));
        assert!(matches!(
            pause.await,
            crate::gate::PauseOutcome::TimedOut { .. }
        ));
        assert!(!ctx.gate.is_paused(), "a timed-out pause is released");
        // Now pause for real from a quiet state: a new query at the boundary is held.
        scan_client(&shared, &mut up, &msg(b'Q', b"commit\0"));
        scan_backend(&shared, &mut down, &ready(b'I')).unwrap();
        assert!(matches!(
            ctx.gate
                .pause(&ctx.sessions, std::time::Duration::from_secs(1))
                .await,
            crate::gate::PauseOutcome::Paused { .. }
        ));
        let flush_then_query = [msg(b'H', b""), msg(b'Q', b"select 1\0")].concat();
        assert_eq!(
            scan_client(&shared, &mut up, &flush_then_query),
            ClientStep::Hold(5)
        );
        assert!(!info.is_busy());
        ctx.gate.resume();
        assert_eq!(
            scan_client(&shared, &mut up, &flush_then_query[5..]),
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
            scan_client(&shared, &mut up, &msg(b'?', b"")),
            ClientStep::Malformed(_)
        ));
        let mut up = FrameScanner::new();
        assert!(matches!(
            scan_client(&shared, &mut up, b"Q\0\0\0\x01"),
            ClientStep::Malformed(_)
        ));
        let mut up = FrameScanner::new();
        assert_eq!(
            scan_client(&shared, &mut up, b"Q\0\0"),
            ClientStep::Forward(0),
            "a partial header waits"
        );
        let mut up = FrameScanner::new();
        let terminate = [msg(b'X', b""), msg(b'Q', b"never\0")].concat();
        assert_eq!(
            scan_client(&shared, &mut up, &terminate),
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
            scan_backend(&shared, &mut down, &stream[..cut]),
            Ok(stream.len() - 6)
        );
        assert_eq!(
            scan_backend(&shared, &mut down, &stream[stream.len() - 6..]),
            Ok(6)
        );
        assert!(scan_backend(&shared, &mut FrameScanner::new(), &msg(b'Z', b"Q")).is_err());
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
            match Upstream::new(&shared).scan(&mut FrameScanner::new(), chunk, &mut edits) {
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
            if let Ok(n) =
                Downstream::new(&shared).scan(&mut FrameScanner::new(), chunk, &mut edits)
            {
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

    #[tokio::test]
    async fn each_direction_forwards_its_bytes_as_they_are_and_ends_as_its_side_does() {
        let ctx = context();
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());

        let answers = [msg(b'C', b"SELECT 1\0"), ready(b'I')].concat();
        let mut to_client = Vec::new();
        let shared = Shared::new(&ctx, &info);
        let downstream = Downstream::new(&shared);
        let end = forward(
            downstream,
            &mut &answers[..],
            &mut to_client,
            BytesMut::new(),
        )
        .await;
        assert!(
            matches!(end, SessionEnd::BackendLost(BackendLoss::Closed)),
            "{end:?}"
        );
        assert_eq!(to_client, answers);
        assert_eq!(
            info.bytes_server_to_client.load(Ordering::Relaxed),
            answers.len() as u64
        );

        // What the client sends after Terminate is not forwarded.
        let after = msg(b'Q', b"never\0");
        let requests = [msg(b'Q', b"select 1\0"), msg(b'X', b""), after.clone()].concat();
        let mut to_backend = Vec::new();
        let shared = Shared::new(&ctx, &info);
        let upstream = Upstream::new(&shared);
        let end = forward(
            upstream,
            &mut &requests[..],
            &mut to_backend,
            BytesMut::new(),
        )
        .await;
        assert!(matches!(end, SessionEnd::ClientTerminated), "{end:?}");
        assert_eq!(to_backend, requests[..requests.len() - after.len()]);

        // A chunk with a malformed message is not forwarded at all.
        let malformed = [msg(b'Q', b"select 1\0"), msg(b'?', b"")].concat();
        let mut to_backend = Vec::new();
        let shared = Shared::new(&ctx, &info);
        let upstream = Upstream::new(&shared);
        let end = forward(
            upstream,
            &mut &malformed[..],
            &mut to_backend,
            BytesMut::new(),
        )
        .await;
        assert!(
            matches!(
                &end,
                SessionEnd::ClientMalformed(ClientViolation::UnknownType(b'?'))
            ),
            "{end:?}"
        );
        assert!(to_backend.is_empty());
        // The client is told in the same words as before the error was typed.
        if let SessionEnd::ClientMalformed(why) = end {
            assert_eq!(why.to_string(), "invalid frontend message type '?'");
        }
    }
}
