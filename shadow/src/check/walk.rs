//! Which files `duet check` reads, in the order a migration runner would apply them.
//!
//! Runners (Flyway, golang-migrate, goose, dbmate, sqlx, diesel, Rails' structure dumps) sort by a
//! numeric version in the file or directory name, so `V2__` comes before `V10__` even though a plain
//! string sort says otherwise. Directories are walked recursively with a numeric-aware ("natural")
//! sort at every level; explicitly named files are checked in the order given.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::CheckError;

/// Lists the migration files under `inputs`: files as given, directories walked for `*.sql` in
/// migration-runner order. Down/undo migrations (`*.down.sql`, diesel's `down.sql`, Flyway's
/// `U<version>__*.sql`, anything under a `down/` or `undo/` directory) are skipped when found in a
/// directory, since they never run forward.
pub fn migration_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, CheckError> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| CheckError::Io {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk_dir(input, &mut files)?;
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CheckError> {
    let io = |source| CheckError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<(String, PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        entries.push((name, path, is_dir));
    }
    entries.sort_by(|a, b| runner_cmp(&a.0, &b.0));
    for (name, path, is_dir) in entries {
        if is_dir {
            if !is_down_dir(&name) {
                walk_dir(&path, out)?;
            }
        } else if is_forward_migration(&name) {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether a file name found in a directory is a forward SQL migration.
pub fn is_forward_migration(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if !lower.ends_with(".sql") {
        return false;
    }
    let is_down = lower.ends_with(".down.sql")
        || lower == "down.sql"
        || lower.ends_with(".undo.sql")
        || (lower.starts_with('u')
            && lower[1..].starts_with(|c: char| c.is_ascii_digit())
            && lower.contains("__"));
    !is_down
}

/// Whether a directory found while walking holds rollback scripts (`down/`, `undo/`, `rollback/`,
/// as in `migrations/{up,down}/` layouts), which never run forward.
pub fn is_down_dir(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "down" | "downs" | "undo" | "rollback" | "rollbacks"
    )
}

/// Why the runner applies this file outside a transaction when nothing in its text says so:
///
/// - ory (kratos, hydra, keto) names such migrations `*.autocommit.up.sql`;
/// - diesel reads `run_in_transaction = false` from a `metadata.toml` next to `up.sql`.
pub fn runner_no_transaction(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".autocommit.up.sql") || name.ends_with(".autocommit.sql") {
        return Some("ory: *.autocommit.up.sql runs outside a transaction".to_string());
    }
    let metadata = path.parent()?.join("metadata.toml");
    let text = std::fs::read_to_string(metadata).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    (value
        .get("run_in_transaction")
        .and_then(toml::Value::as_bool)
        == Some(false))
    .then(|| "diesel: metadata.toml sets run_in_transaction = false".to_string())
}

/// Orders migration names: Flyway-style `V<version>__<description>` names compare by version first
/// (so `V1__` precedes `V1_1__`), everything else by [`natural_cmp`].
pub fn runner_cmp(a: &str, b: &str) -> Ordering {
    match (a.split_once("__"), b.split_once("__")) {
        (Some((va, ra)), Some((vb, rb))) => natural_cmp(va, vb).then_with(|| natural_cmp(ra, rb)),
        _ => natural_cmp(a, b),
    }
}

/// Compares two names the way humans and migration runners order versions: runs of digits compare
/// by numeric value, everything else case-insensitively, with a plain comparison as tie-break.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.is_empty(), y.is_empty()) {
            (true, true) => return a.cmp(b),
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (cx, rx) = split_chunk(x);
        let (cy, ry) = split_chunk(y);
        let is_num = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
        let ord = if is_num(cx) && is_num(cy) {
            let tx = cx.trim_start_matches('0');
            let ty = cy.trim_start_matches('0');
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            cx.to_lowercase().cmp(&cy.to_lowercase())
        };
        if ord != Ordering::Equal {
            return ord;
        }
        x = rx;
        y = ry;
    }
}

fn split_chunk(s: &str) -> (&str, &str) {
    let digits = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit() != digits)
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_aware_order() {
        let mut names = vec![
            "V10__c.sql",
            "V2__b.sql",
            "V1__a.sql",
            "V1_1__a2.sql",
            "20240101120000_x.sql",
            "9_y.sql",
        ];
        names.sort_by(|a, b| runner_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "9_y.sql",
                "20240101120000_x.sql",
                "V1__a.sql",
                "V1_1__a2.sql",
                "V2__b.sql",
                "V10__c.sql"
            ]
        );
    }

    #[test]
    fn down_migrations_are_skipped() {
        assert!(is_forward_migration("000001_init.up.sql"));
        assert!(!is_forward_migration("000001_init.down.sql"));
        assert!(!is_forward_migration("down.sql"));
        assert!(!is_forward_migration("U3__undo.sql"));
        assert!(is_forward_migration("users.sql"));
        assert!(!is_forward_migration("README.md"));
        assert!(is_down_dir("down") && is_down_dir("Undo") && !is_down_dir("up"));
    }

    #[test]
    fn runner_conventions_outside_the_text() {
        let dir = std::env::temp_dir().join(format!("duet-walk-{}", std::process::id()));
        let diesel = dir.join("2024-01-01-000000_add_index");
        let down = dir.join("down");
        let made = std::fs::create_dir_all(&diesel).and_then(|_| std::fs::create_dir_all(&down));
        assert!(made.is_ok(), "{made:?}");
        let writes = [
            (
                diesel.join("up.sql"),
                "CREATE INDEX CONCURRENTLY i ON t (a);",
            ),
            (diesel.join("down.sql"), "DROP INDEX i;"),
            (diesel.join("metadata.toml"), "run_in_transaction = false\n"),
            (dir.join("20240102_x.autocommit.up.sql"), "SELECT 1;"),
            (dir.join("20240102_x.autocommit.down.sql"), "SELECT 1;"),
            (down.join("1_init.sql"), "DROP TABLE t;"),
        ];
        for (path, text) in &writes {
            assert!(std::fs::write(path, text).is_ok());
        }
        let files = migration_files(std::slice::from_ref(&dir)).unwrap_or_default();
        let reasons: Vec<_> = files
            .iter()
            .filter_map(|f| runner_no_transaction(f))
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(runner_no_transaction(Path::new("/nonexistent/up.sql")).is_none());
    }
}
