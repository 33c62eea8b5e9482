//! The client side of the admin socket, used by `duet admin` (blocking: one request, one reply).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Reply, Request};

/// Why a request could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to the admin socket {path}: {cause} (is duet running with --admin-socket {path}?)")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// Sending or receiving failed.
    #[error("admin socket {path}: {cause}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The reply was not valid.
    #[error("admin socket {path}: unreadable reply ({message})")]
    Reply {
        /// The socket path.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

/// Sends one request and waits for its reply (at most `wait`).
pub fn request(path: &Path, request: &Request, wait: Duration) -> Result<Reply, ClientError> {
    let io_error = |cause| ClientError::Io {
        path: path.to_owned(),
        cause,
    };
    let mut stream = UnixStream::connect(path).map_err(|cause| ClientError::Connect {
        path: path.to_owned(),
        cause,
    })?;
    stream.set_read_timeout(Some(wait)).map_err(io_error)?;
    let mut line = serde_json::to_vec(request).map_err(|err| ClientError::Reply {
        path: path.to_owned(),
        message: err.to_string(),
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_error)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(io_error)?;
    if reply.is_empty() {
        return Err(ClientError::Reply {
            path: path.to_owned(),
            message: "the proxy closed the connection without replying".to_owned(),
        });
    }
    serde_json::from_str(&reply).map_err(|err| ClientError::Reply {
        path: path.to_owned(),
        message: err.to_string(),
    })
}
