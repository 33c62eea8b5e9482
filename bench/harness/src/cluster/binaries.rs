//! Where the PostgreSQL server binaries (`initdb`, `postgres`) live on this machine.
//!
//! Debian keeps them out of `PATH` (under `/usr/lib/postgresql/<major>/bin`), other systems put them
//! on it, and an operator may want a specific build: so the search order is the environment variable
//! [`PG_BIN_DIR_ENV`], then `PATH`, then the highest Debian major version.

use std::path::{Path, PathBuf};

/// Environment variable naming a directory that holds `initdb` and `postgres`; it wins over all else.
pub const PG_BIN_DIR_ENV: &str = "DUET_PG_BIN_DIR";

/// Where Debian and Ubuntu install one directory per PostgreSQL major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// Returns the first directory that holds both `initdb` and `postgres`, searched in the order
/// described in the module documentation.
pub fn find_server_binaries() -> Option<PathBuf> {
    candidate_dirs()
        .into_iter()
        .find(|dir| holds_server_binaries(dir))
}

/// Every directory [`find_server_binaries`] looks at, in order (for error messages).
pub fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(PG_BIN_DIR_ENV) {
        if !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend(debian_version_dirs(Path::new(DEBIAN_ROOT)));
    dirs
}

/// `<root>/<version>/bin` for every version directory under `root`, highest version first.
fn debian_version_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = version_key(&name)?;
            Some((key, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Parses a version directory name such as `15` or `9.6` into comparable numbers.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether `dir` holds executable `initdb` and `postgres`.
pub(crate) fn holds_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically_not_lexically() {
        let root = crate::scratch::ScratchDir::create("binaries-test").expect("scratch dir");
        for version in ["9.6", "15", "10", "18"] {
            std::fs::create_dir_all(root.path().join(version).join("bin")).expect("mkdir");
        }
        std::fs::create_dir_all(root.path().join("not-a-version")).expect("mkdir");
        let dirs = debian_version_dirs(root.path());
        let names: Vec<String> = dirs
            .iter()
            .filter_map(|d| d.parent()?.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["18", "15", "10", "9.6"]);
    }

    #[test]
    fn version_key_rejects_non_numeric_names() {
        assert_eq!(version_key("15"), Some(vec![15]));
        assert_eq!(version_key("9.6"), Some(vec![9, 6]));
        assert_eq!(version_key("common"), None);
    }
}
