//! Migration-runner directives written as SQL comments: "run this file outside a transaction" and
//! "only this part of the file is the forward migration".
//!
//! Understood (case-insensitive, anywhere in a `--` comment line):
//!
//! | runner | no transaction | forward section |
//! |---|---|---|
//! | dbmate | `-- migrate:up transaction:false` | from `-- migrate:up` to `-- migrate:down` |
//! | goose | `-- +goose NO TRANSACTION` | from `-- +goose Up` to `-- +goose Down` |
//! | sqlx | `-- no-transaction` (first line) | whole file |
//! | postgres-migrations (node) | `-- postgres-migrations disable-transaction` | whole file |
//! | generic / duet | `-- migrate:no-transaction`, `-- duet:no-transaction` | whole file |
//!
//! golang-migrate, Flyway, diesel, ory and sqitch have no in-file marker: golang-migrate's down
//! files and Flyway's undo files are skipped by name, diesel's `metadata.toml` and ory's
//! `*.autocommit.up.sql` names are read by `walk`, and sqitch's `deploy/` scripts carry
//! their own `BEGIN`/`COMMIT`, which the transaction tracker sees. Files without a marker are assumed
//! to run in one transaction (configurable with `assume_in_transaction`).

use std::ops::Range;

/// What the comments of one file say about how it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileDirectives {
    /// The marker that turned the wrapping transaction off, if any.
    pub no_transaction_marker: Option<String>,
    /// Byte ranges that are not part of the forward migration (down sections).
    pub excluded: Vec<Range<usize>>,
}

impl FileDirectives {
    /// Whether a statement starting at `offset` belongs to the forward migration.
    pub fn includes(&self, offset: usize) -> bool {
        !self.excluded.iter().any(|r| r.contains(&offset))
    }
}

/// Reads the directives of a file's text.
pub fn read_directives(text: &str) -> FileDirectives {
    let mut out = FileDirectives::default();
    let mut down_start: Option<usize> = None;
    let mut offset = 0;
    let mut first_code_line = true;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(comment) = trimmed.strip_prefix("--") else {
            if !trimmed.is_empty() {
                first_code_line = false;
            }
            continue;
        };
        let c = comment.trim().to_ascii_lowercase();
        let squashed: String = c.split_whitespace().collect::<Vec<_>>().join(" ");
        let no_tx = (squashed.starts_with("migrate:up") && squashed.contains("transaction:false"))
            || squashed == "+goose no transaction"
            || squashed == "migrate:no-transaction"
            || squashed == "duet:no-transaction"
            || squashed == "postgres-migrations disable-transaction"
            || (squashed == "no-transaction" && first_code_line);
        if no_tx && out.no_transaction_marker.is_none() {
            out.no_transaction_marker = Some(trimmed.to_string());
        }
        let is_up = squashed.starts_with("migrate:up") || squashed.starts_with("+goose up");
        let is_down = squashed.starts_with("migrate:down") || squashed.starts_with("+goose down");
        if is_down && down_start.is_none() {
            down_start = Some(start);
        } else if is_up {
            if let Some(d) = down_start.take() {
                out.excluded.push(d..start);
            }
        }
    }
    if let Some(d) = down_start {
        out.excluded.push(d..text.len() + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbmate_sections_and_transaction_flag() {
        let text = "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\nDROP INDEX i;\n";
        let d = read_directives(text);
        assert!(d.no_transaction_marker.is_some());
        let down = text.find("DROP").unwrap_or(0);
        assert!(!d.includes(down));
        assert!(d.includes(text.find("CREATE").unwrap_or(0)));
    }

    #[test]
    fn goose_and_sqlx() {
        assert!(
            read_directives("-- +goose Up\n-- +goose NO TRANSACTION\nSELECT 1;")
                .no_transaction_marker
                .is_some()
        );
        assert!(read_directives("-- no-transaction\nSELECT 1;")
            .no_transaction_marker
            .is_some());
        assert!(read_directives("SELECT 1;\n-- no-transaction\n")
            .no_transaction_marker
            .is_none());
        assert!(read_directives("SELECT 1;").no_transaction_marker.is_none());
        assert!(read_directives(
            "-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);"
        )
        .no_transaction_marker
        .is_some());
    }
}
