//! Reading whole packets one at a time: the startup phase of a session, and duet's own logins
//! (the pool's clients and its backend connections), where messages are small and each is
//! handled before the next is read. The forwarding phase streams instead ([`super::frame`]).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{FrameError, FrameScanner, HEADER_LEN};
use super::startup::{packet_len, StartupError};

/// Why reading a packet failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The peer closed the connection.
    #[error("connection closed")]
    Closed,
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not form a valid packet.
    #[error(transparent)]
    Malformed(#[from] FrameError),
    /// The bytes do not form a startup packet (kept typed: whether the client is told depends on
    /// the kind, see [`StartupError::reply`]).
    #[error("{0}")]
    Startup(#[from] StartupError),
}

async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    want: usize,
) -> Result<(), ReadError> {
    while buf.len() < want {
        buf.reserve(want - buf.len());
        if stream.read_buf(buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
    Ok(())
}

/// Writes `bytes` and flushes: free on a plain socket, and it pushes a TLS record out.
pub(crate) async fn write_flushed<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Reads one untyped startup-phase packet (length-prefixed, 8..=10000 bytes).
pub(crate) async fn read_startup_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<BytesMut, ReadError> {
    fill(stream, buf, 4).await?;
    let len = packet_len(buf)?.unwrap_or(usize::MAX);
    fill(stream, buf, len).await?;
    Ok(buf.split_to(len))
}

/// Reads one typed message whole (type byte, length, body), at most `max_len` bytes long.
pub(crate) async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<BytesMut, ReadError> {
    fill(stream, buf, HEADER_LEN).await?;
    let mut pos = 0;
    let frame = FrameScanner::new()
        .next_frame(buf, &mut pos, max_len)
        .map_err(ReadError::Malformed)?
        // The whole header is in the buffer, so the scanner always finds the frame.
        .ok_or(ReadError::Closed)?;
    fill(stream, buf, frame.wire_len).await?;
    Ok(buf.split_to(frame.wire_len))
}
