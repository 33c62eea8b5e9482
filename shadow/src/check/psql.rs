//! psql syntax that is not SQL: meta-commands (`\connect`, `\restrict`, `\i`, `\set`, …) and the
//! data lines of `COPY … FROM stdin` up to `\.`, as found in pg_dump output and Rails'
//! `structure.sql`. They are blanked out — replaced by spaces of the same byte length, line ends
//! kept — so that statement positions stay exact while the parser only sees SQL.

use std::borrow::Cow;

/// The text with psql meta-command lines and COPY data blanked out.
pub fn blank_non_sql(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_copy_data = false;
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let blank = if in_copy_data {
            if body == "\\." {
                in_copy_data = false;
            }
            true
        } else {
            body.trim_start().starts_with('\\')
        };
        if blank {
            changed = true;
            out.extend(body.bytes().map(|_| ' '));
            out.push_str(&line[body.len()..]);
        } else {
            if is_copy_from_stdin(body) {
                in_copy_data = true;
            }
            out.push_str(line);
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

fn is_copy_from_stdin(line: &str) -> bool {
    let upper = line.trim().to_ascii_uppercase();
    upper.starts_with("COPY ") && upper.contains(" FROM STDIN") && upper.ends_with(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands_and_copy_data_are_blanked_in_place() {
        let dump = "\\restrict abc\nSET x = 1;\nCOPY t (a, b) FROM stdin;\n1\tfoo;bar\n\\.\nCREATE INDEX i ON t (a);\n";
        let out = blank_non_sql(dump);
        assert_eq!(out.len(), dump.len());
        assert!(!out.contains("restrict") && !out.contains("foo"));
        assert_eq!(out.find("CREATE INDEX"), dump.find("CREATE INDEX"));
        assert!(matches!(blank_non_sql("SELECT 1;"), Cow::Borrowed(_)));
        // A backslash inside SQL (not at a line start) is left alone.
        assert_eq!(blank_non_sql("SELECT E'\\n';"), "SELECT E'\\n';");
    }
}
