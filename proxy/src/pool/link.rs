//! The link between one client session and the pool: a backend connection per transaction.
//!
//! The session above forwards to the link exactly as it forwards to a backend of its own (the
//! pause gate, the dual-write hook and the statistics work the same in both modes); the link
//! attaches a pooled connection when a request arrives while none is attached, and gives it back
//! when the backend is ready for a new transaction with nothing owed: no request unanswered, no
//! extended-protocol batch open, no transaction block open. Between the two it translates the
//! client's prepared-statement names ([`super::statements`]), replays the client's settings on a
//! connection that has others ([`super::settings`]), refuses session state that could not follow
//! the client ([`super::hazards`]), and keeps the answers in the order the client expects
//! ([`super::expect`]).

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

use super::backend_pool::{BackendPool, Checkout, PooledConn};
use super::expect::{Kind, Owed, Owing};
use super::hazards;
use super::settings::{Settings, READ_BACK};
use super::statements::{ClientStatements, Prepared};
use super::Attachment;
use crate::session_registry::SessionInfo;
use crate::wire::backend as tag;
use crate::wire::error::{fatal, CONNECTION_FAILURE};
use crate::wire::frontend;
use crate::wire::messages::{Bind, Close, Describe, Message, Parse, Query, Target};

/// Largest message the link holds whole (PostgreSQL's own limit for a message is 1 GB).
const MAX_MESSAGE: usize = 1 << 30;
/// Read size.
const READ_SIZE: usize = 16 * 1024;

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

/// How one attached stretch ended.
enum Served {
    /// The transaction ended: the connection goes back to the pool.
    Released,
    /// The session ended (Terminate, or it closed): the connection goes back if it is idle.
    SessionEnded { idle: bool },
}

/// Serves one session's traffic on `pipe` (the session's "backend") until the session ends.
/// `first` is a connection the startup already holds (it told the client the server's
/// parameters from it).
pub async fn run(
    pool: Arc<BackendPool>,
    mut client: ClientState,
    pipe: DuplexStream,
    info: Arc<SessionInfo>,
    attachment: Arc<Attachment>,
    mut first: Option<Checkout>,
) {
    let (mut pipe_r, mut pipe_w) = tokio::io::split(pipe);
    // Grown on demand: an idle client (most of 10 000) holds no read buffer of its own here.
    let mut up = BytesMut::new();
    loop {
        if first.is_none() {
            // Detached: wait for the session's next request, whole.
            while !has_whole_message(&up) {
                make_room(&mut up);
                match pipe_r.read_buf(&mut up).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            if up[0] == frontend::TERMINATE {
                return;
            }
            if let Some(answers) = answer_locally(&mut up, &mut client, &pool) {
                if pipe_w.write_all(&answers).await.is_err() {
                    return;
                }
                continue;
            }
        }
        let mut checkout = match first.take() {
            Some(checkout) => checkout,
            None => match pool.checkout().await {
                Ok(checkout) => checkout,
                Err(err) => {
                    tracing::warn!(session = info.id, %err, "no backend connection for a transaction");
                    let _ = pipe_w
                        .write_all(&fatal(CONNECTION_FAILURE, &format!("duet: {err}")))
                        .await;
                    return;
                }
            },
        };
        if let Err(err) = apply_settings(&mut checkout.conn, &client.settings).await {
            tracing::warn!(session = info.id, %err, "could not give a pooled connection the client's settings");
            let _ = pipe_w
                .write_all(&fatal(CONNECTION_FAILURE, &format!("duet: {err}")))
                .await;
            pool.discard(checkout);
            return;
        }
        tracing::trace!(
            session = info.id,
            pid = checkout.conn.pid,
            "pooled connection attached"
        );
        attachment.attach(checkout.conn.pid, checkout.conn.key.clone());
        info.set_backend_pid(checkout.conn.pid);
        let served = serve(
            &mut checkout.conn,
            &pool,
            &mut client,
            &mut pipe_r,
            &mut pipe_w,
            &mut up,
        )
        .await;
        attachment.detach();
        match served {
            Ok(Served::Released) => pool.checkin(checkout),
            Ok(Served::SessionEnded { idle }) => {
                if idle {
                    pool.checkin(checkout);
                } else {
                    // A transaction left open (or a request half-answered) must not reach the
                    // next client: the connection goes, and the server rolls it back.
                    pool.discard(checkout);
                }
                return;
            }
            Err(err) => {
                tracing::debug!(session = info.id, %err, "pooled backend connection lost");
                pool.discard(checkout);
                // Closing the pipe tells the session its backend is gone (08006), unless the
                // backend said why with a FATAL the client already has.
                return;
            }
        }
    }
}

/// Gives `conn` the client's settings, if it has others: one round trip, answers kept from the
/// client.
pub async fn apply_settings(conn: &mut PooledConn, wanted: &Settings) -> Result<(), LinkError> {
    if !conn.settings.differs(wanted) {
        return Ok(());
    }
    run_own_query(conn, &wanted.replay_statement()).await?;
    conn.settings = wanted.clone();
    Ok(())
}

/// Runs duet's own simple query on `conn` and returns its rows (text columns); nothing of it
/// reaches a client. ParameterStatus messages update the connection's parameters.
pub async fn run_own_query(
    conn: &mut PooledConn,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, LinkError> {
    let mut out = BytesMut::new();
    Query {
        text: sql.as_bytes(),
    }
    .encode(&mut out);
    conn.stream
        .write_all(&out)
        .await
        .map_err(LinkError::Backend)?;
    conn.stream.flush().await.map_err(LinkError::Backend)?;
    let mut rows = Vec::new();
    let mut error: Option<LinkError> = None;
    loop {
        let (message, len) = loop {
            if let Some(found) = next_message(&conn.buf)? {
                break found;
            }
            read_more(&mut conn.stream, &mut conn.buf).await?;
        };
        let frame = conn.buf.split_to(len);
        let body = &frame[5..];
        match message {
            tag::DATA_ROW => rows.push(data_row(body)?),
            tag::PARAMETER_STATUS => conn.note_parameter(body),
            tag::ERROR_RESPONSE => {
                let (code, text) =
                    crate::wire::messages::ErrorResponse::lenient_code_and_message(body);
                error = Some(LinkError::Refused {
                    code,
                    message: text,
                });
            }
            tag::READY_FOR_QUERY => break,
            _ => {}
        }
    }
    match error {
        Some(error) => Err(error),
        None => Ok(rows),
    }
}

/// The text columns of a DataRow.
fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, LinkError> {
    Ok(crate::wire::messages::DataRow::decode(body)?
        .columns
        .into_iter()
        .map(|column| column.map(|value| String::from_utf8_lossy(value).into_owned()))
        .collect())
}

/// The type and length of the whole message at the start of `buf`, if it is all there.
fn next_message(buf: &[u8]) -> Result<Option<(u8, usize)>, LinkError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 || declared as usize > MAX_MESSAGE {
        return Err(LinkError::BackendProtocol("invalid message length"));
    }
    let len = declared as usize + 1;
    Ok((buf.len() >= len).then_some((buf[0], len)))
}

async fn read_more<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
) -> Result<(), LinkError> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    match stream.read_buf(buf).await {
        Ok(0) => Err(LinkError::BackendClosed),
        Ok(_) => Ok(()),
        Err(err) => Err(LinkError::Backend(err)),
    }
}

/// Where an attached connection stands.
#[derive(Debug)]
struct Position {
    owing: Owing,
    /// Extended-protocol messages were sent since the last Sync.
    in_batch: bool,
    /// The last ReadyForQuery's transaction status.
    status: u8,
    /// A statement may have changed the session's settings: read them back before release.
    settings_dirty: bool,
}

/// Forwards between the session and `conn` until the transaction ends or the session does.
async fn serve<R, W>(
    conn: &mut PooledConn,
    pool: &BackendPool,
    client: &mut ClientState,
    pipe_r: &mut R,
    pipe_w: &mut W,
    up: &mut BytesMut,
) -> Result<Served, LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut at = Position {
        owing: Owing::default(),
        in_batch: false,
        status: b'I',
        settings_dirty: false,
    };
    let mut to_backend = BytesMut::new();
    let mut to_client: Vec<u8> = Vec::new();
    let mut down = std::mem::take(&mut conn.buf);
    // A connection past its statement limit closes its oldest first, in a batch of duet's own
    // ahead of the client's (nothing of it reaches the client).
    let evicted = conn.statements.evict();
    if !evicted.is_empty() {
        for name in &evicted {
            Close::statement(name).encode(&mut to_backend);
            at.owing.push(Owed::Own(Kind::Close));
        }
        crate::wire::messages::Sync.encode(&mut to_backend);
        at.owing.push(Owed::Own(Kind::UntilReady));
    }
    loop {
        // The session's complete messages, translated for this connection.
        let terminated = translate(up, &mut to_backend, conn, client, &mut at)?;
        at.owing.take_synthetic(&mut to_client);
        if !to_client.is_empty() {
            if pipe_w.write_all(&to_client).await.is_err() {
                return Ok(Served::SessionEnded { idle: false });
            }
            to_client.clear();
        }
        if !to_backend.is_empty() {
            write_while_reading(&mut conn.stream, &to_backend, &mut down).await?;
            to_backend.clear();
        }
        if terminated {
            conn.buf = down;
            let idle = at.owing.is_empty() && !at.in_batch && at.status == b'I';
            return Ok(Served::SessionEnded { idle });
        }
        // The backend's complete messages, matched against what is owed.
        let mut ready = false;
        while let Some((message, len)) = next_message(&down)? {
            // Read in place and skipped: splitting each message off would make the buffer a
            // shared one (an allocation) and take a reference count per message.
            let frame = &down[..len];
            let verdict = at.owing.answer(message);
            if let Some(prepared) = verdict.prepared {
                pool.note_prepared(prepared);
            }
            for (backend_name, client_name) in verdict.lost {
                conn.statements.remove(&backend_name);
                if let Some(name) = client_name {
                    client.statements.forget_if(&name, &backend_name);
                }
            }
            match message {
                tag::READY_FOR_QUERY => {
                    at.status = frame.get(5).copied().unwrap_or(b'I');
                    ready = true;
                }
                tag::PARAMETER_STATUS => {
                    conn.note_parameter(&frame[5..]);
                    // A reported setting changed where the text showed no sign of it (a function
                    // that calls set_config, a SECURITY DEFINER … SET): read the settings back
                    // before the connection serves anyone else.
                    at.settings_dirty = true;
                }
                _ => {}
            }
            if verdict.forward {
                to_client.extend_from_slice(frame);
            }
            down.advance(len);
            at.owing.take_synthetic(&mut to_client);
        }
        if !to_client.is_empty() {
            if pipe_w.write_all(&to_client).await.is_err() {
                conn.buf = down;
                return Ok(Served::SessionEnded { idle: false });
            }
            to_client.clear();
        }
        // Released only on a ReadyForQuery that leaves nothing owed: a connection attached for a
        // request keeps it until the request is answered.
        if ready
            && at.owing.is_empty()
            && !at.in_batch
            && at.status == b'I'
            && !has_whole_message(up)
        {
            conn.buf = down;
            if at.settings_dirty {
                let rows = run_own_query(conn, READ_BACK).await?;
                let settings = Settings::from_pairs(rows.into_iter().filter_map(|row| {
                    let mut row = row.into_iter();
                    Some((row.next()??, row.next()??))
                }));
                // A server of its own would reset to the startup packet's values (they are the
                // session's defaults there); here they were set for the session, so a RESET
                // dropped them: the client keeps them under what it set since.
                let mut wanted = client.startup.clone();
                for (name, value) in settings.pairs() {
                    wanted.set(name.clone(), value.clone());
                }
                conn.settings = settings;
                client.settings = wanted;
            }
            return Ok(Served::Released);
        }
        tracing::trace!(pid = conn.pid, owing = ?at.owing, in_batch = at.in_batch, status = at.status, up = up.len(), "pooled connection waits");
        // Wait for either side.
        make_room(up);
        tokio::select! {
            read = pipe_r.read_buf(up) => match read {
                Ok(0) | Err(_) => {
                    conn.buf = down;
                    return Ok(Served::SessionEnded { idle: false });
                }
                Ok(_) => {}
            },
            read = read_more(&mut conn.stream, &mut down) => read?,
        }
    }
}

/// Room for the next read from the session: a few KiB (messages larger than that grow it).
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
}

/// Whether `buf` holds a whole message.
fn has_whole_message(buf: &[u8]) -> bool {
    matches!(next_message(buf), Ok(Some(_)) | Err(_))
}

/// Writes `bytes` to the backend while reading what it sends meanwhile into `down`: a backend
/// blocked on writing a large result must never wait for duet to finish writing to it.
async fn write_while_reading(
    stream: &mut crate::backend::BackendStream,
    bytes: &[u8],
    down: &mut BytesMut,
) -> Result<(), LinkError> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut written = 0;
    let mut flushed = false;
    // One task owns the stream, so it can poll both directions itself: no split (and no lock)
    // per write. A read is polled only while the write waits.
    std::future::poll_fn(|cx| loop {
        if written < bytes.len() {
            match Pin::new(&mut *stream).poll_write(cx, &bytes[written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(LinkError::Backend(
                        std::io::ErrorKind::WriteZero.into(),
                    )))
                }
                Poll::Ready(Ok(n)) => {
                    written += n;
                    continue;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(LinkError::Backend(err))),
                Poll::Pending => {}
            }
        } else if !flushed {
            match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => flushed = true,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(LinkError::Backend(err))),
                Poll::Pending => {}
            }
        }
        if flushed {
            return Poll::Ready(Ok(()));
        }
        // The write waits: read what the backend sends meanwhile, so it never waits for us (a
        // rare path: a copy through a stack buffer is fine).
        let mut chunk = [0u8; 8192];
        let mut read_buf = tokio::io::ReadBuf::new(&mut chunk);
        match Pin::new(&mut *stream).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                if read_buf.filled().is_empty() {
                    return Poll::Ready(Err(LinkError::BackendClosed));
                }
                down.extend_from_slice(read_buf.filled());
            }
            Poll::Ready(Err(err)) => return Poll::Ready(Err(LinkError::Backend(err))),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// Translates the whole messages at the start of `up` into `out` for `conn`. Returns whether
/// the session sent Terminate (which is not forwarded: the connection is the pool's).
fn translate(
    up: &mut BytesMut,
    out: &mut BytesMut,
    conn: &mut PooledConn,
    client: &mut ClientState,
    at: &mut Position,
) -> Result<bool, LinkError> {
    while let Some((message, len)) = next_message(up).map_err(|_| LinkError::SessionMessage)? {
        let frame = up.split_to(len).freeze();
        let body = &frame[5..];
        match message {
            frontend::TERMINATE => return Ok(true),
            frontend::QUERY => {
                at.owing.push(Owed::Answer(Kind::UntilReady));
                let Ok(query) = Query::decode(body) else {
                    out.extend_from_slice(&frame);
                    continue;
                };
                let scan = hazards::scan(query.text);
                at.settings_dirty |= scan.settings;
                if let Some(refusal) = scan.refusal {
                    Query {
                        text: refusal.substitute().as_bytes(),
                    }
                    .encode(out);
                    continue;
                }
                if scan.drops_statements {
                    client.statements.clear();
                    conn.statements.clear();
                }
                if let Some(name) = scan.deallocate {
                    if let Some(prepared) = client.statements.forget(name.as_bytes()) {
                        let text = if conn.statements.has(&prepared.backend_name) {
                            conn.statements.remove(&prepared.backend_name);
                            format!(
                                "DEALLOCATE \"{}\"",
                                String::from_utf8_lossy(&prepared.backend_name)
                            )
                        } else {
                            conn.statements.clear();
                            "DEALLOCATE ALL".to_owned()
                        };
                        Query {
                            text: text.as_bytes(),
                        }
                        .encode(out);
                        continue;
                    }
                }
                out.extend_from_slice(&frame);
            }
            frontend::PARSE => {
                at.in_batch = true;
                let Ok(parse) = Parse::decode(body) else {
                    at.owing.push(Owed::Answer(Kind::Parse));
                    out.extend_from_slice(&frame);
                    continue;
                };
                let scan = hazards::scan(parse.text);
                at.settings_dirty |= scan.settings;
                let substitute;
                let parse = match scan.refusal {
                    Some(refusal) => {
                        substitute = refusal.substitute();
                        Parse {
                            text: substitute.as_bytes(),
                            ..parse
                        }
                    }
                    None => parse,
                };
                if parse.name.is_empty() {
                    at.owing.push(Owed::Answer(Kind::Parse));
                    parse.encode(out);
                    continue;
                }
                let prepared = Prepared::of(&parse);
                client.statements.define(parse.name, prepared.clone());
                if conn.statements.has(&prepared.backend_name) {
                    at.owing.push(Owed::Synthetic(tag::PARSE_COMPLETE));
                } else {
                    out.extend_from_slice(&prepared.parse);
                    conn.statements.add(prepared.backend_name.clone());
                    at.owing.push(Owed::Parse {
                        backend_name: prepared.backend_name,
                        client_name: Some(Bytes::copy_from_slice(parse.name)),
                        injected: false,
                    });
                }
            }
            frontend::BIND => {
                at.in_batch = true;
                let renamed = match Bind::decode(body) {
                    Ok(bind) if !bind.statement.is_empty() => {
                        ensure_prepared(bind.statement, out, conn, client, at)
                            .map(|name| (bind, name))
                    }
                    _ => None,
                };
                // After the injected Parse's entry, if there is one.
                at.owing.push(Owed::Answer(Kind::Bind));
                match renamed {
                    Some((bind, backend_name)) => Bind {
                        statement: &backend_name,
                        ..bind
                    }
                    .encode(out),
                    None => out.extend_from_slice(&frame),
                }
            }
            frontend::DESCRIBE => {
                at.in_batch = true;
                match Describe::decode(body) {
                    Ok(describe) if describe.target == Target::Statement => {
                        let kind = Owed::Answer(Kind::DescribeStatement);
                        if describe.name.is_empty() {
                            at.owing.push(kind);
                            out.extend_from_slice(&frame);
                            continue;
                        }
                        let renamed = ensure_prepared(describe.name, out, conn, client, at);
                        at.owing.push(kind);
                        match renamed {
                            Some(backend_name) => Describe {
                                target: Target::Statement,
                                name: &backend_name,
                            }
                            .encode(out),
                            None => out.extend_from_slice(&frame),
                        }
                    }
                    _ => {
                        at.owing.push(Owed::Answer(Kind::DescribePortal));
                        out.extend_from_slice(&frame);
                    }
                }
            }
            frontend::CLOSE => {
                at.in_batch = true;
                match Close::decode(body) {
                    Ok(close) if close.target == Target::Statement && !close.name.is_empty() => {
                        // duet keeps the statement on the backend (other clients may share it)
                        // and answers for it; the client's name is gone, as PostgreSQL says.
                        client.statements.forget(close.name);
                        at.owing.push(Owed::Synthetic(tag::CLOSE_COMPLETE));
                    }
                    _ => {
                        at.owing.push(Owed::Answer(Kind::Close));
                        out.extend_from_slice(&frame);
                    }
                }
            }
            frontend::EXECUTE => {
                at.in_batch = true;
                at.owing.push(Owed::Answer(Kind::Execute));
                out.extend_from_slice(&frame);
            }
            frontend::SYNC => {
                at.in_batch = false;
                at.owing.push(Owed::Answer(Kind::UntilReady));
                out.extend_from_slice(&frame);
            }
            frontend::FUNCTION_CALL => {
                at.owing.push(Owed::Answer(Kind::UntilReady));
                out.extend_from_slice(&frame);
            }
            frontend::FLUSH => {
                at.in_batch = true;
                out.extend_from_slice(&frame);
            }
            _ => out.extend_from_slice(&frame),
        }
    }
    Ok(false)
}

/// The backend name of the client's statement `name`, with its Parse written to `out` first
/// when `conn` does not have it yet. `None` when the client has no such statement: the message
/// goes as it is, and the server says so in its own words.
fn ensure_prepared(
    name: &[u8],
    out: &mut BytesMut,
    conn: &mut PooledConn,
    client: &ClientState,
    at: &mut Position,
) -> Option<Bytes> {
    let prepared = client.statements.get(name)?;
    if !conn.statements.has(&prepared.backend_name) {
        out.extend_from_slice(&prepared.parse);
        conn.statements.add(prepared.backend_name.clone());
        at.owing.push(Owed::Parse {
            backend_name: prepared.backend_name.clone(),
            client_name: None,
            injected: true,
        });
    }
    Some(prepared.backend_name.clone())
}

/// Answers, without a backend connection, a batch that only prepares statements this pool's
/// connections have already prepared without error — named Parses and a Sync, as libpq's
/// `PQprepare` sends them: ParseComplete each, then ReadyForQuery (idle: no transaction is open
/// between transactions). Besides saving a round trip, this keeps a client that prepares
/// synchronously while its other connections hold every pooled connection (pgbench -M prepared
/// with more clients than threads) from waiting on itself. `None` (and `up` untouched) for any
/// other batch.
fn answer_locally(
    up: &mut BytesMut,
    client: &mut ClientState,
    pool: &BackendPool,
) -> Option<Vec<u8>> {
    let mut at = 0;
    let mut statements = Vec::new();
    loop {
        let (message, len) = next_message(&up[at..]).ok()??;
        let frame = &up[at..at + len];
        at += len;
        match message {
            frontend::PARSE => {
                let parse = Parse::decode(&frame[5..]).ok()?;
                if parse.name.is_empty() || hazards::scan(parse.text) != hazards::Scan::default() {
                    return None;
                }
                let prepared = Prepared::of(&parse);
                if !pool.is_known(&prepared.backend_name) {
                    return None;
                }
                statements.push((Bytes::copy_from_slice(parse.name), prepared));
            }
            frontend::SYNC if !statements.is_empty() && at == up.len() => break,
            _ => return None,
        }
    }
    let mut answers = Vec::with_capacity(statements.len() * 5 + 6);
    for (name, prepared) in statements {
        client.statements.define(&name, prepared);
        answers.extend_from_slice(&[tag::PARSE_COMPLETE, 0, 0, 0, 4]);
    }
    answers.extend_from_slice(&[tag::READY_FOR_QUERY, 0, 0, 0, 5, b'I']);
    up.clear();
    Some(answers)
}
