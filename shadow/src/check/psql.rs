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
    let mut lexer = Lexer::default();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        // A backslash starts a meta-command only where psql reads a new token: not inside a
        // quoted string, identifier, dollar-quoted body or block comment that spans lines (a
        // multi-line `E'…'` string may well have a line starting with `\n`).
        let blank = if in_copy_data {
            if body == "\\." {
                in_copy_data = false;
            }
            true
        } else {
            lexer.at_code() && body.trim_start().starts_with('\\')
        };
        if blank {
            changed = true;
            out.extend(body.bytes().map(|_| ' '));
            out.push_str(&line[body.len()..]);
        } else {
            if lexer.at_code() && is_copy_from_stdin(body) {
                in_copy_data = true;
            } else {
                lexer.feed(line);
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

/// Where the SQL lexer stands at the end of a line: in code, or inside something that continues on
/// the next line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Lexer {
    /// Between tokens.
    #[default]
    Code,
    /// Inside `'…'`; `escapes` for `E'…'`, where a backslash escapes the next character.
    Quoted {
        /// Backslash escapes are on (`E'…'`).
        escapes: bool,
    },
    /// Inside `"…"`.
    Identifier,
    /// Inside `$tag$…$tag$`; holds the whole delimiter.
    Dollar(String),
    /// Inside `/* … */`, nested this deep.
    Comment(usize),
}

impl Lexer {
    fn at_code(&self) -> bool {
        *self == Lexer::Code
    }

    /// Advances over one line of text.
    fn feed(&mut self, line: &str) {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match self {
                Lexer::Code => match bytes[i] {
                    b'-' if bytes.get(i + 1) == Some(&b'-') => return,
                    b'/' if bytes.get(i + 1) == Some(&b'*') => {
                        *self = Lexer::Comment(1);
                        i += 2;
                    }
                    b'\'' => {
                        let escapes = i > 0
                            && matches!(bytes[i - 1], b'e' | b'E')
                            && (i < 2 || !is_ident_byte(bytes[i - 2]));
                        *self = Lexer::Quoted { escapes };
                        i += 1;
                    }
                    b'"' => {
                        *self = Lexer::Identifier;
                        i += 1;
                    }
                    b'$' if i == 0 || !is_ident_byte(bytes[i - 1]) => {
                        let rest = &line[i + 1..];
                        let tag_len = rest.bytes().take_while(|b| is_ident_byte(*b)).count();
                        let opens = !rest.starts_with(|c: char| c.is_ascii_digit())
                            && rest.as_bytes().get(tag_len) == Some(&b'$');
                        if !opens {
                            i += 1;
                            continue;
                        }
                        let delimiter = &line[i..i + tag_len + 2];
                        let body = i + delimiter.len();
                        match line[body..].find(delimiter) {
                            Some(p) => i = body + p + delimiter.len(),
                            None => {
                                *self = Lexer::Dollar(delimiter.to_string());
                                return;
                            }
                        }
                    }
                    _ => i += 1,
                },
                Lexer::Quoted { escapes } => {
                    if *escapes && bytes[i] == b'\\' {
                        i += 2;
                    } else if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 2;
                        } else {
                            *self = Lexer::Code;
                            i += 1;
                        }
                    } else {
                        i += 1;
                    }
                }
                Lexer::Identifier => {
                    if bytes[i] == b'"' {
                        if bytes.get(i + 1) == Some(&b'"') {
                            i += 2;
                        } else {
                            *self = Lexer::Code;
                            i += 1;
                        }
                    } else {
                        i += 1;
                    }
                }
                Lexer::Dollar(tag) => match line[i..].find(tag.as_str()) {
                    Some(p) => {
                        i += p + tag.len();
                        *self = Lexer::Code;
                    }
                    None => return,
                },
                Lexer::Comment(depth) => {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        *depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        *depth -= 1;
                        i += 2;
                        if *depth == 0 {
                            *self = Lexer::Code;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
        }
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The statement with psql variable references (`:name`, `:'name'`, `:"name"`) read as the bare
/// name, a string literal or a quoted identifier holding the name, or `None` when it has none.
/// Migration runners such as graphile-worker and psql scripts put `:SCHEMA` placeholders in their
/// SQL; the engine tries this only on a statement the grammar rejected, so valid SQL (casts
/// `::`, PL/pgSQL `:=`, array slices) is never touched. Lengths are kept (the colon becomes a
/// space) so positions stay exact. Quoted text, dollar-quoted bodies and comments are skipped, as
/// psql does.
pub fn substitute_variables(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut out = bytes.to_vec();
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
            }
            b'$' => i = skip_dollar_quoted(sql, i),
            b':' => {
                let prev_colon = i > 0 && bytes[i - 1] == b':';
                let next = bytes.get(i + 1).copied();
                let is_name_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
                match next {
                    _ if prev_colon => i += 1,
                    Some(b) if is_name_start(b) => {
                        out[i] = b' ';
                        changed = true;
                        i += 1;
                        while i < bytes.len()
                            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                        {
                            i += 1;
                        }
                    }
                    Some(q @ (b'\'' | b'"'))
                        if bytes.get(i + 2).copied().is_some_and(is_name_start) =>
                    {
                        out[i] = b' ';
                        changed = true;
                        i = skip_quoted(bytes, i + 1, q);
                    }
                    _ => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    // Only ASCII bytes were replaced by ASCII, so the text is still UTF-8.
    changed.then(|| String::from_utf8(out).ok()).flatten()
}

/// The index after the quoted text starting at `start` (a doubled quote is part of the text).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The index after a `$tag$…$tag$` body starting at `start`, or after the `$` when it opens none
/// (a parameter such as `$1`).
fn skip_dollar_quoted(sql: &str, start: usize) -> usize {
    let rest = &sql[start + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let starts_with_digit = rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if starts_with_digit || rest.as_bytes().get(tag_len) != Some(&b'$') {
        return start + 1;
    }
    let delimiter = &sql[start..start + tag_len + 2];
    let body = start + tag_len + 2;
    sql[body..]
        .find(delimiter)
        .map_or(sql.len(), |p| body + p + delimiter.len())
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

    #[test]
    fn backslash_lines_inside_multi_line_literals_are_sql() {
        // A multi-line E'' string (with a doubled quote) whose second line starts with a
        // backslash: psql reads it as string text, so the next statement must stay separate.
        let sql =
            "INSERT INTO t VALUES (E'first\n\\n'' second'\n);\nALTER TABLE t ADD COLUMN z int;\n";
        assert_eq!(blank_non_sql(sql), sql);
        let dollar = "DO $x$\n\\set not a meta-command\n$x$;\n\\connect db\nSELECT 1;\n";
        let out = blank_non_sql(dollar);
        assert!(out.contains("\\set not") && !out.contains("connect"));
        let comment = "/* a\n\\b */ SELECT 'it''s';\n\\c db\n";
        assert!(!blank_non_sql(comment).contains("\\c db"));
    }

    #[test]
    fn psql_variables_become_names_outside_quotes() {
        let sql = "create table :app_schema.jobs (id int, n text default :'label', m text default ':kept'); -- :note";
        let out = substitute_variables(sql).unwrap_or_default();
        assert_eq!(out.len(), sql.len());
        assert!(out.starts_with("create table  app_schema.jobs"));
        assert!(out.contains("default  'label'"));
        assert!(out.contains("':kept'") && out.contains("-- :note"));
        let body = "select x::int, a[1:2] from t where $$ :x $$ = :\"ident\"";
        let out = substitute_variables(body).unwrap_or_default();
        assert!(out.contains("x::int") && out.contains("$$ :x $$") && out.contains(" \"ident\""));
        assert!(substitute_variables("select 1::int").is_none());
    }
}
