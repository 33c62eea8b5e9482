//! How the proxies under measurement pool server connections, and the config that puts duet in
//! transaction mode for a run (`--pool-mode transaction`).

use std::path::PathBuf;

use serde::Serialize;

use crate::backend::Backend;
use crate::scratch::ScratchDir;

/// How the proxies under comparison pool server connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Pooling {
    /// One server connection per client.
    Session,
    /// `size` server connections shared by all clients, one transaction at a time (duet's
    /// `[pool] mode = "transaction"`, PgBouncer's `pool_mode = transaction`).
    Transaction {
        /// Server connections per (user, database).
        size: u32,
    },
}

/// The password duet's clients log in with in transaction mode (duet authenticates them itself;
/// the server's own password, if any, is used instead).
pub const POOLED_PASSWORD: &str = "duet-bench";

/// Writes duet's config for transaction mode: `size` connections, the backend's user with its
/// password (or [`POOLED_PASSWORD`] on a trust-auth server).
pub fn pool_config_file(backend: &Backend, size: u32) -> Result<(ScratchDir, PathBuf), String> {
    let dir =
        ScratchDir::create("duet-pool").map_err(|err| format!("creating a temp dir: {err}"))?;
    let path = dir.path().join("duet.toml");
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let text = format!(
        "[pool]\nmode = \"transaction\"\nsize = {size}\n\n[[pool.users]]\nname = \"{}\"\npassword = \"{}\"\n",
        quote(&backend.user),
        quote(backend.password.as_deref().unwrap_or(POOLED_PASSWORD))
    );
    std::fs::write(&path, text).map_err(|err| format!("writing {}: {err}", path.display()))?;
    Ok((dir, path))
}
