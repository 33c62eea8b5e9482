//! Connections to the backend: TCP (with TCP_NODELAY) or a unix socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::backend_url::BackendAddr;

/// A connection to the backend.
#[derive(Debug)]
pub enum BackendStream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a unix socket.
    Unix(UnixStream),
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
}

/// Opens a connection to `addr`, giving up after `timeout`.
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
