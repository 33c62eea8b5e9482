//! A client connection: plain TCP, TLS once the client asked for it and a certificate is set, or
//! a local unix socket (never TLS, as with PostgreSQL) — and who is at its other end.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

/// A client connection.
#[derive(Debug)]
pub enum ClientStream {
    /// Unencrypted TCP.
    Plain(TcpStream),
    /// TLS with duet (boxed: the TLS state is large and most clients have none).
    Tls(Box<TlsStream<TcpStream>>),
    /// The unix socket (`.s.PGSQL.<port>`): unencrypted, like PostgreSQL's own.
    Local(UnixStream),
}

/// An accepted client socket, before its startup: what the listener hands to a session worker.
#[derive(Debug)]
pub enum ClientSocket {
    /// Over TCP, from this address.
    Tcp(TcpStream, SocketAddr),
    /// Over the unix socket.
    Local(UnixStream),
}

impl ClientSocket {
    /// Who connected.
    pub fn peer(&self) -> ClientPeer {
        match self {
            ClientSocket::Tcp(_, addr) => ClientPeer::Tcp(*addr),
            ClientSocket::Local(_) => ClientPeer::Local,
        }
    }
}

/// Where a client connected from: its address, or `[local]` for the unix socket (how
/// PostgreSQL names such a client in its logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPeer {
    /// A TCP client's address.
    Tcp(SocketAddr),
    /// A client of the unix socket.
    Local,
}

/// How [`ClientPeer::Local`] is written.
const LOCAL: &str = "[local]";

impl fmt::Display for ClientPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientPeer::Tcp(addr) => addr.fmt(f),
            ClientPeer::Local => f.write_str(LOCAL),
        }
    }
}

impl FromStr for ClientPeer {
    type Err = std::net::AddrParseError;

    /// Reads what [`fmt::Display`] writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == LOCAL {
            return Ok(ClientPeer::Local);
        }
        text.parse().map(ClientPeer::Tcp)
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ClientStream::Local(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ClientStream::Local(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ClientStream::Local(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ClientStream::Local(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientPeer;

    #[test]
    fn a_peer_is_written_as_postgresql_writes_it_and_read_back() {
        let tcp: ClientPeer = "127.0.0.1:5555".parse().unwrap();
        assert_eq!(tcp.to_string(), "127.0.0.1:5555");
        let local: ClientPeer = "[local]".parse().unwrap();
        assert_eq!(local, ClientPeer::Local);
        assert_eq!(local.to_string(), "[local]");
        assert!("elsewhere".parse::<ClientPeer>().is_err());
    }
}
