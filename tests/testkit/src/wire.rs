//! Raw PostgreSQL protocol bytes, for the tests that must send what no client library would
//! (bad lengths, garbage types, truncated messages) and read exactly what comes back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Protocol 3.0.
pub const PROTOCOL_3_0: i32 = 196_608;
/// The CancelRequest code.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// A StartupMessage (protocol 3.0) with these parameters.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    startup_message_version(PROTOCOL_3_0, params)
}

/// A StartupMessage for protocol `version` (major << 16 | minor) with these parameters.
pub fn startup_message_version(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (key, value) in params {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = i32::try_from(body.len() + 4)
        .expect("small")
        .to_be_bytes()
        .to_vec();
    message.extend_from_slice(&body);
    message
}

/// The SSLRequest code.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// The GSSENCRequest code.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;

/// An 8-byte negotiation request (SSLRequest, GSSENCRequest).
pub fn negotiation_request(code: i32) -> Vec<u8> {
    let mut message = 8i32.to_be_bytes().to_vec();
    message.extend_from_slice(&code.to_be_bytes());
    message
}

/// A CancelRequest for `pid` with `secret`.
pub fn cancel_request(pid: i32, secret: i32) -> Vec<u8> {
    let mut message = 16i32.to_be_bytes().to_vec();
    message.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    message.extend_from_slice(&pid.to_be_bytes());
    message.extend_from_slice(&secret.to_be_bytes());
    message
}

/// A regular (typed) frontend message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![tag];
    message.extend_from_slice(&i32::try_from(body.len() + 4).expect("small").to_be_bytes());
    message.extend_from_slice(body);
    message
}

/// One message from the server.
#[derive(Debug, Clone)]
pub struct BackendMessage {
    /// Type byte.
    pub tag: u8,
    /// Body (without type and length).
    pub body: Vec<u8>,
}

impl BackendMessage {
    /// The fields of an ErrorResponse/NoticeResponse, keyed by field type ('C' = SQLSTATE, 'S'
    /// = severity, 'M' = message…).
    pub fn fields(&self) -> HashMap<u8, String> {
        let mut fields = HashMap::new();
        let mut rest = self.body.as_slice();
        while let Some((&kind, tail)) = rest.split_first() {
            if kind == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            fields.insert(kind, String::from_utf8_lossy(&tail[..end]).into_owned());
            rest = tail.get(end + 1..).unwrap_or(&[]);
        }
        fields
    }
}

/// Splits complete messages off the front of `buffer`; returns them and how many bytes they
/// used. A malformed length from the server ends the parse (the test then sees it).
pub fn parse_messages(buffer: &[u8]) -> (Vec<BackendMessage>, usize) {
    let mut messages = Vec::new();
    let mut used = 0;
    while buffer.len() >= used + 5 {
        let tag = buffer[used];
        let length = i32::from_be_bytes([
            buffer[used + 1],
            buffer[used + 2],
            buffer[used + 3],
            buffer[used + 4],
        ]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        if length < 4 || buffer.len() < used + 1 + length {
            break;
        }
        messages.push(BackendMessage {
            tag,
            body: buffer[used + 5..used + 1 + length].to_vec(),
        });
        used += 1 + length;
    }
    (messages, used)
}

/// What the server did with a connection after the test had its say.
#[derive(Debug)]
pub struct Exchange {
    /// Every complete message received.
    pub messages: Vec<BackendMessage>,
    /// Bytes that were not a complete message.
    pub trailing: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset) before the time limit.
    pub closed: bool,
}

impl Exchange {
    /// The first ErrorResponse, if any.
    pub fn error(&self) -> Option<&BackendMessage> {
        self.messages.iter().find(|message| message.tag == b'E')
    }
}

/// Connects to `addr`, logs in with trust auth as `user` to `db`, and reads up to the first
/// ReadyForQuery. Panics if the server answers anything else.
pub async fn login(addr: SocketAddr, user: &str, db: &str) -> (TcpStream, Vec<BackendMessage>) {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|err| panic!("connecting to {addr}: {err}"));
    let messages = login_on(&mut stream, user, db).await;
    (stream, messages)
}

/// Sends a StartupMessage on an already open connection (e.g. after a declined SSLRequest) and
/// reads up to the first ReadyForQuery, which it returns with everything before it.
pub async fn login_on(stream: &mut TcpStream, user: &str, db: &str) -> Vec<BackendMessage> {
    login_with(
        stream,
        &startup_message(&[("user", user), ("database", db)]),
    )
    .await
}

/// Sends `startup` (any StartupMessage) and reads up to the first ReadyForQuery (trust auth).
pub async fn login_with(stream: &mut TcpStream, startup: &[u8]) -> Vec<BackendMessage> {
    stream
        .write_all(startup)
        .await
        .expect("sending the startup message");
    read_until_ready(stream, Duration::from_secs(20)).await
}

/// Reads messages up to and including the next ReadyForQuery; panics on an ErrorResponse, on
/// EOF, or after `limit`.
pub async fn read_until_ready(stream: &mut TcpStream, limit: Duration) -> Vec<BackendMessage> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no ReadyForQuery within {limit:?}; got {buffer:?}"))
            .expect("reading from duet");
        assert!(
            read > 0,
            "connection closed before ReadyForQuery; got {buffer:?}"
        );
        buffer.extend_from_slice(&chunk[..read]);
        let (messages, used) = parse_messages(&buffer);
        if let Some(error) = messages.iter().find(|m| m.tag == b'E') {
            panic!("ErrorResponse before ReadyForQuery: {:?}", error.fields());
        }
        if messages.iter().any(|m| m.tag == b'Z') {
            assert_eq!(used, buffer.len(), "bytes after ReadyForQuery");
            return messages;
        }
    }
}

/// Writes `bytes` (ignoring a write refused because the server already closed), half-closes the
/// connection, and collects everything the server sends until it closes or `limit` passes.
pub async fn send_and_collect(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> Exchange {
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    collect(stream, limit).await
}

/// Like [`send_and_collect`] but keeps the write side open: the server must close on its own.
pub async fn send_and_collect_open(
    stream: &mut TcpStream,
    bytes: &[u8],
    limit: Duration,
) -> Exchange {
    let _ = stream.write_all(bytes).await;
    collect(stream, limit).await
}

async fn collect(stream: &mut TcpStream, limit: Duration) -> Exchange {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(read)) => buffer.extend_from_slice(&chunk[..read]),
        }
    };
    let (messages, used) = parse_messages(&buffer);
    Exchange {
        messages,
        trailing: buffer[used..].to_vec(),
        closed,
    }
}

/// A small seeded PRNG (xorshift64*): the random-bytes test must be reproducible from its seed.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}
