//! Connections to the backend: TCP (with TCP_NODELAY) or a unix socket, and TLS over TCP as the
//! backend URL's `sslmode` asks ([`Backend`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::backend_tls::{BackendTls, HandshakeError};
use crate::backend_url::{BackendAddr, SslMode, SslNegotiation};
use crate::wire::startup::SSL_REQUEST_CODE;

/// A connection to the backend.
#[derive(Debug)]
pub enum BackendStream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a unix socket.
    Unix(UnixStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl BackendStream {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, BackendStream::Tls(_))
    }

    /// The negotiated TLS version (e.g. `TLSv1_3`), for logs.
    pub fn tls_version(&self) -> Option<String> {
        match self {
            BackendStream::Tls(tls) => tls
                .get_ref()
                .1
                .protocol_version()
                .map(|version| format!("{version:?}")),
            _ => None,
        }
    }
}

/// Why the backend could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connection attempt failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No answer within the connect timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered the SSLRequest with `N` while the sslmode needs TLS.
    #[error("TLS: the server does not accept TLS connections, but sslmode={0} requires TLS")]
    TlsRefused(SslMode),
    /// The server answered the SSLRequest with something other than `S` or `N`.
    #[error("TLS: the server answered the SSLRequest with byte {0:#04x}, not S or N (is it PostgreSQL?)")]
    BadSslAnswer(u8),
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Handshake(#[from] HandshakeError),
}

impl ConnectError {
    /// Whether the failure is about TLS (the server was reached): a setting to fix rather than a
    /// server that is down.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            ConnectError::TlsRefused(_)
                | ConnectError::BadSslAnswer(_)
                | ConnectError::Handshake(_)
        )
    }
}

/// How one connection attempt starts, in the order libpq's sslmode tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No TLS.
    Plain,
    /// TLS if the server accepts it, plain if it answers `N` (`prefer`).
    TlsIfOffered,
    /// TLS or fail.
    Tls,
}

/// The backend sessions are forwarded to: its address and, when the URL asks for it, TLS.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Where it listens.
    pub addr: BackendAddr,
    /// TLS settings; `None` for a plain backend (sslmode=disable, or a unix socket).
    pub tls: Option<BackendTls>,
}

impl Backend {
    /// The first attempt the sslmode makes.
    pub fn first_attempt(&self) -> Attempt {
        match &self.tls {
            None => Attempt::Plain,
            Some(tls) => match tls.mode {
                SslMode::Disable | SslMode::Allow => Attempt::Plain,
                SslMode::Prefer => Attempt::TlsIfOffered,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Attempt::Tls,
            },
        }
    }

    /// The attempt libpq makes after the server refused a session (an ErrorResponse before any
    /// authentication exchange) on a connection made by `attempt`: `allow` tries TLS after a
    /// refused plain connection, `prefer` plain after a refused TLS one; `None`: no second try.
    pub fn retry_after_refusal(&self, attempt: Attempt, used_tls: bool) -> Option<Attempt> {
        let mode = self.tls.as_ref()?.mode;
        match (mode, attempt, used_tls) {
            (SslMode::Allow, Attempt::Plain, false) => Some(Attempt::Tls),
            (SslMode::Prefer, Attempt::TlsIfOffered, true) => Some(Attempt::Plain),
            _ => None,
        }
    }

    /// Opens a connection as `attempt` says, within `timeout` (TCP and TLS handshake together).
    ///
    /// As libpq does for `prefer`, a failed TLS handshake is followed by one plain connection.
    pub async fn open(
        &self,
        attempt: Attempt,
        timeout: Duration,
    ) -> Result<BackendStream, ConnectError> {
        let tls = match (&self.tls, attempt) {
            (Some(tls), Attempt::Tls | Attempt::TlsIfOffered) => tls,
            _ => return connect(&self.addr, timeout).await,
        };
        let opened = tokio::time::timeout(timeout, async {
            let socket = connect(&self.addr, timeout).await?;
            let BackendStream::Tcp(tcp) = socket else {
                // TLS settings are only built for TCP backends.
                return Ok(socket);
            };
            start_tls(tls, tcp, attempt).await
        })
        .await
        .unwrap_or(Err(ConnectError::Timeout(timeout)));
        match opened {
            Err(ConnectError::Handshake(err)) if attempt == Attempt::TlsIfOffered => {
                tracing::debug!(%err, "TLS handshake failed; sslmode=prefer tries without TLS");
                connect(&self.addr, timeout).await
            }
            other => other,
        }
    }
}

/// SSLRequest (unless direct) and the handshake on a fresh TCP connection.
async fn start_tls(
    tls: &BackendTls,
    mut tcp: TcpStream,
    attempt: Attempt,
) -> Result<BackendStream, ConnectError> {
    if tls.negotiation == SslNegotiation::Postgres {
        let mut request = [0u8; 8];
        request[..4].copy_from_slice(&8i32.to_be_bytes());
        request[4..].copy_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
        tcp.write_all(&request).await?;
        // Exactly one byte: anything the server (or a man in the middle) sent after it must go
        // through the TLS layer, never be taken as plaintext (CVE-2021-23222).
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        match answer[0] {
            b'S' => {}
            b'N' if attempt == Attempt::TlsIfOffered => return Ok(BackendStream::Tcp(tcp)),
            b'N' => return Err(ConnectError::TlsRefused(tls.mode)),
            other => return Err(ConnectError::BadSslAnswer(other)),
        }
    }
    let stream = tls.handshake(tcp).await?;
    Ok(BackendStream::Tls(Box::new(stream)))
}

/// Opens a plain connection to `addr`, giving up after `timeout`.
pub async fn connect(addr: &BackendAddr, timeout: Duration) -> Result<BackendStream, ConnectError> {
    let attempt = async {
        match addr {
            BackendAddr::Tcp { host, port } => {
                // An IP address connects directly; only names go through the resolver (which
                // runs on tokio's blocking pool and would slow down connection storms).
                let stream = match host.parse::<IpAddr>() {
                    Ok(ip) => TcpStream::connect(SocketAddr::new(ip, *port)).await?,
                    Err(_) => TcpStream::connect((host.as_str(), *port)).await?,
                };
                stream.set_nodelay(true)?;
                Ok::<_, io::Error>(BackendStream::Tcp(stream))
            }
            BackendAddr::Unix { .. } => {
                let path = addr
                    .socket_path()
                    .ok_or_else(|| io::Error::other("not a unix-socket address"))?;
                Ok(BackendStream::Unix(UnixStream::connect(path).await?))
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectError::Timeout(timeout)),
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Unix(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
