//! Unix sockets that live as files: the admin socket and the clients' `.s.PGSQL.<port>`.
//!
//! Both are bound the same way. A file left by a duet that died is replaced; a socket that still
//! answers belongs to a running process and is never taken over; anything that is not a socket is
//! left alone. The file is removed when the listener is dropped, so a clean stop leaves nothing.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why a socket file could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum SocketFileError {
    /// Another process answers on this socket.
    #[error("{0} belongs to a running process")]
    InUse(PathBuf),
    /// Something other than a socket is in the way.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// Binding or setting permissions failed.
    #[error("cannot open {path}: {cause}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        cause: io::Error,
    },
}

/// A listening unix socket whose file is removed when this is dropped.
#[derive(Debug)]
pub struct SocketFile {
    listener: UnixListener,
    path: PathBuf,
}

impl SocketFile {
    /// Binds `path` with permissions `mode` (e.g. 0o600: its owner only; 0o777: every local
    /// user, as PostgreSQL's default `unix_socket_permissions`). Must run inside a tokio runtime.
    pub fn bind(path: &Path, mode: u32) -> Result<Self, SocketFileError> {
        let io_error = |cause| SocketFileError::Io {
            path: path.to_owned(),
            cause,
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(SocketFileError::NotASocket(path.to_owned()))
            }
            Ok(_) => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(SocketFileError::InUse(path.to_owned()));
                }
                std::fs::remove_file(path).map_err(io_error)?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(err)),
        }
        let listener = UnixListener::bind(path).map_err(io_error)?;
        let file = SocketFile {
            listener,
            path: path.to_owned(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
        Ok(file)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listener.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("duet-socket-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[tokio::test]
    async fn a_stale_file_is_replaced_a_live_one_refused_and_the_file_removed_on_drop() {
        let path = scratch("stale.sock");
        // A socket file whose listener is gone: what a killed duet leaves.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let file = SocketFile::bind(&path, 0o777).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o777);
        match SocketFile::bind(&path, 0o600) {
            Err(SocketFileError::InUse(p)) => assert_eq!(p, path),
            other => panic!("a live socket must not be taken over: {other:?}"),
        }
        drop(file);
        assert!(!path.exists(), "the file goes with the listener");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_left_alone() {
        let path = scratch("plain");
        std::fs::write(&path, b"keep me").unwrap();
        assert!(matches!(
            SocketFile::bind(&path, 0o600),
            Err(SocketFileError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_file(&path).unwrap();
    }
}
