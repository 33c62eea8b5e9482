//! Temporary directories that remove themselves.
//!
//! The throwaway cluster, PgBouncer and the duet proxy each need a private directory (data, sockets,
//! config, logs) that must not outlive the run. A tiny type here keeps the dependency list short.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory under the system temp dir, removed with everything in it on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<tmp>/duet-<label>-<pid>-<n>-<nanos>` with mode 0700.
    pub fn create(label: &str) -> std::io::Result<ScratchDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("duet-{label}-{}-{n}-{nanos:x}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a directory that cannot be removed is left for the OS's temp cleaner.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
