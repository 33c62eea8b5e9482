//! Connections the forwarding phase reads and writes at once, split into borrowed halves.
//!
//! One trait for every kind of stream (client TCP or TLS, backend TCP, unix socket or TLS), so the
//! pumping is written once and compiled for each pair, with static dispatch on every read and
//! write: the session picks its pair once, when forwarding starts.

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::{tcp, unix, TcpStream, UnixStream};

/// A connection that can be read and written at the same time.
pub(super) trait Duplex {
    /// The reading half.
    type Read<'a>: AsyncRead + Unpin
    where
        Self: 'a;
    /// The writing half.
    type Write<'a>: AsyncWrite + Unpin
    where
        Self: 'a;

    /// Both halves, borrowing the connection.
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>);
}

impl Duplex for TcpStream {
    type Read<'a> = tcp::ReadHalf<'a>;
    type Write<'a> = tcp::WriteHalf<'a>;

    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.split()
    }
}

impl Duplex for UnixStream {
    type Read<'a> = unix::ReadHalf<'a>;
    type Write<'a> = unix::WriteHalf<'a>;

    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.split()
    }
}

/// TLS has one state for both directions: tokio's split shares it under a lock.
macro_rules! tls_duplex {
    ($stream:ty) => {
        impl Duplex for $stream {
            type Read<'a> = ReadHalf<&'a mut $stream>;
            type Write<'a> = WriteHalf<&'a mut $stream>;

            fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
                tokio::io::split(self)
            }
        }
    };
}

tls_duplex!(tokio_rustls::server::TlsStream<TcpStream>);
tls_duplex!(tokio_rustls::client::TlsStream<TcpStream>);
/// A pooled session's link (transaction mode): both halves are polled by the session's task.
impl Duplex for crate::pool::link::Link {
    type Read<'a> = crate::pool::link::LinkRead<'a>;
    type Write<'a> = crate::pool::link::LinkWrite<'a>;

    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        crate::pool::link::Link::halves(self)
    }
}
