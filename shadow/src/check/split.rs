//! Splitting a migration file into statements, each with its byte range and inline directives.
//!
//! PostgreSQL's own grammar decides where a statement ends (`pg_query::split_with_parser`): it
//! knows dollar quoting, `DO` blocks, `BEGIN ATOMIC … END` function bodies, nested comments and
//! `E''` strings. When a file has a syntax error the parser cannot split it, so the scanner-based
//! splitter (`split_with_scanner`) takes over, and when even the scanner fails (an unterminated
//! quote) a small quote-aware splitter of our own does, so one broken statement never hides the rest
//! of the file.

use std::ops::Range;

/// The text of one migration file, with a byte-offset → line/column index.
#[derive(Debug, Clone)]
pub struct SourceText {
    text: String,
    line_starts: Vec<usize>,
}

impl SourceText {
    /// Wraps a file's contents; a leading UTF-8 byte-order mark is dropped. CRLF line ends are kept
    /// (PostgreSQL treats `\r` as whitespace) and ignored when counting columns or printing lines.
    pub fn new(raw: &str) -> SourceText {
        let text = raw.strip_prefix('\u{feff}').unwrap_or(raw).to_string();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceText { text, line_starts }
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_index = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = self
            .text
            .get(line_start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0);
        (line_index + 1, column + 1)
    }

    /// The text of a 1-based line, without its line end.
    pub fn line(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// Rules silenced for one statement by `-- duet:ignore <rule-id>[, <rule-id>…]` (no id = all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignores {
    /// Every rule is silenced.
    pub all: bool,
    /// These rule ids are silenced.
    pub rules: Vec<String>,
}

impl Ignores {
    /// Whether findings of `rule` are silenced.
    pub fn covers(&self, rule: &str) -> bool {
        self.all || self.rules.iter().any(|r| r == rule)
    }

    fn absorb(&mut self, comment_text: &str) {
        let mut rest = comment_text;
        while let Some(i) = rest.find("duet:ignore") {
            let after = &rest[i + "duet:ignore".len()..];
            let line_end = after.find(['\n', '*']).unwrap_or(after.len());
            let ids: Vec<String> = after[..line_end]
                .split([',', ' ', '\t', '\r'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if ids.is_empty() || ids.iter().any(|s| s == "all") {
                self.all = true;
            }
            self.rules.extend(ids);
            rest = &after[line_end..];
        }
    }
}

/// One statement of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStatement {
    /// Byte range of the statement's text (first token to last, without the `;`).
    pub range: Range<usize>,
    /// Inline ignore directives that apply to it.
    pub ignores: Ignores,
}

/// Splits a file's text into statements. Never fails: input the grammar rejects is still cut at
/// the `;` the scanner sees, and each piece is judged (and reported unparsed) on its own.
pub fn split_statements(text: &str) -> Vec<RawStatement> {
    // The C library takes NUL-terminated strings; a NUL byte is replaced for splitting only (same
    // length, so offsets hold) and the statement holding it is later reported as unparsable.
    let cleaned;
    let input = if text.contains('\0') {
        cleaned = text.replace('\0', " ");
        cleaned.as_str()
    } else {
        text
    };
    let pieces: Vec<Range<usize>> = match pg_query::split_with_parser(input) {
        Ok(parts) => parts.iter().map(|p| slice_range(input, p)).collect(),
        Err(_) => match pg_query::split_with_scanner(input) {
            Ok(parts) if scanner_split_is_complete(input, &parts) => {
                parts.iter().map(|p| slice_range(input, p)).collect()
            }
            _ => fallback_split(input),
        },
    };
    statements_from_pieces(input, pieces)
}

/// Turns statement byte ranges (as a splitter or a whole-file parse reports them, possibly with
/// leading comments and whitespace) into statements with their ignore directives. Pieces with no
/// code are dropped.
pub fn statements_from_pieces(input: &str, pieces: Vec<Range<usize>>) -> Vec<RawStatement> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut trivia_start = 0;
    for piece in pieces {
        let start = skip_trivia(input, piece.start, piece.end);
        let end = trim_end(input, start, piece.end);
        if start >= end {
            continue;
        }
        let mut ignores = Ignores::default();
        ignores.absorb(input.get(trivia_start.min(start)..start).unwrap_or(""));
        // A directive after the `;` on the statement's last line applies to it as well.
        let line_end = input[end..]
            .find('\n')
            .map(|i| end + i)
            .unwrap_or(input.len());
        let tail = input[end..line_end].trim_start_matches([';', ' ', '\t']);
        if tail.starts_with("--") || tail.starts_with("/*") {
            ignores.absorb(tail);
        }
        trivia_start = line_end;
        out.push(RawStatement {
            range: start..end,
            ignores,
        });
    }
    out
}

fn slice_range(whole: &str, part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    let start = start.min(whole.len());
    start..(start + part.len()).min(whole.len())
}

/// The scanner silently drops tokens it does not understand; only trust it when what it dropped is
/// whitespace or `;`.
fn scanner_split_is_complete(input: &str, parts: &[&str]) -> bool {
    let mut pos = 0;
    for p in parts {
        let r = slice_range(input, p);
        if r.start < pos {
            return false;
        }
        let gap = &input[pos..r.start];
        if !gap.chars().all(|c| c.is_whitespace() || c == ';')
            && skip_trivia(gap, 0, gap.len()) < gap.len()
        {
            return false;
        }
        pos = r.end;
    }
    let rest = &input[pos..];
    rest.trim_matches(|c: char| c.is_whitespace() || c == ';')
        .is_empty()
        || skip_trivia(rest, 0, rest.len())
            >= rest
                .trim_end_matches(|c: char| c.is_whitespace() || c == ';')
                .len()
}

/// Skips whitespace, `--` comments and (nested) `/* */` comments from `from`, not past `to`.
pub fn skip_trivia(text: &str, from: usize, to: usize) -> usize {
    let bytes = text.as_bytes();
    let to = to.min(bytes.len());
    let mut i = from;
    while i < to {
        let b = bytes[i];
        if b.is_ascii_whitespace() || b == b';' {
            i += 1;
        } else if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < to && bytes[i] != b'\n' {
                i += 1;
            }
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let mut depth = 0usize;
            while i < to {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else {
            break;
        }
    }
    i.min(to)
}

fn trim_end(text: &str, start: usize, end: usize) -> usize {
    let slice = text.get(start..end).unwrap_or("");
    start
        + slice
            .trim_end_matches(|c: char| c.is_whitespace() || c == ';')
            .len()
}

/// A last-resort splitter: cuts at `;` outside quotes, comments and dollar-quoted bodies.
fn fallback_split(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                let backslash = quote == b'\'' && i > 0 && matches!(bytes[i - 1], b'e' | b'E');
                i += 1;
                while i < bytes.len() {
                    if backslash && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_trivia(text, i, bytes.len()).max(i + 2);
            }
            b'$' => {
                let tag_end = bytes[i + 1..]
                    .iter()
                    .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(te) if bytes[te] == b'$' => {
                        let tag = &text[i..=te];
                        let body_start = te + 1;
                        i = text[body_start..]
                            .find(tag)
                            .map(|p| body_start + p + tag.len())
                            .unwrap_or(bytes.len());
                    }
                    _ => i += 1,
                }
            }
            b';' => {
                out.push(start..i);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        out.push(start..bytes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split_statements(sql)
            .into_iter()
            .map(|s| &sql[s.range])
            .collect()
    }

    #[test]
    fn dollar_quotes_do_blocks_and_comments() {
        let sql = "-- head\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n/* a; /* nested; */ */ DO $$ BEGIN PERFORM 1; END $$;\nSELECT ';' ; ";
        assert_eq!(
            texts(sql),
            vec![
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "DO $$ BEGIN PERFORM 1; END $$",
                "SELECT ';'"
            ]
        );
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT 3;";
        assert_eq!(texts(sql).len(), 2);
    }

    #[test]
    fn syntax_errors_do_not_hide_the_rest() {
        let sql = "SELECT 1; this is not sql; CREATE INDEX i ON t (a);";
        let t = texts(sql);
        assert_eq!(t.last().copied(), Some("CREATE INDEX i ON t (a)"));
        assert!(t.contains(&"this is not sql"));
        let unterminated = "SELECT 1; SELECT 'oops";
        assert_eq!(texts(unterminated), vec!["SELECT 1", "SELECT 'oops"]);
    }

    #[test]
    fn bom_crlf_and_positions() {
        let src = SourceText::new("\u{feff}SELECT 1;\r\n  CREATE TABLE t (a int);\r\n");
        let stmts = split_statements(src.text());
        assert_eq!(stmts.len(), 2);
        assert_eq!(src.position(stmts[0].range.start), (1, 1));
        assert_eq!(src.position(stmts[1].range.start), (2, 3));
        assert_eq!(src.line(2), "  CREATE TABLE t (a int);");
    }

    #[test]
    fn ignore_directives() {
        let sql = "-- duet:ignore require-concurrent-index-creation, require-lock-timeout\nCREATE INDEX i ON t (a);\nDROP TABLE x; -- duet:ignore\nSELECT 1;";
        let s = split_statements(sql);
        assert!(s[0].ignores.covers("require-lock-timeout"));
        assert!(!s[0].ignores.covers("ban-drop-table"));
        assert!(s[1].ignores.all);
        assert_eq!(s[2].ignores, Ignores::default());
    }
}
