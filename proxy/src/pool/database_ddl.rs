//! Statements PostgreSQL runs only while no other session is connected to a database:
//! `DROP DATABASE x`, `CREATE DATABASE y TEMPLATE x`, `ALTER DATABASE x RENAME TO …` and
//! `ALTER DATABASE x SET TABLESPACE …`. A transaction pool keeps idle connections to `x` that no
//! client is using; PostgreSQL alone would have no session there, so duet closes them when a
//! client sends such a statement (the server waits up to five seconds for other sessions to
//! leave, so closing them beside the forwarded statement is in time). Connections attached to a
//! client's transaction are that client's, and stay: the server refuses as it would without duet.
//!
//! Found by Django's test runner, which clones its test database with `CREATE DATABASE …
//! TEMPLATE` and drops it at the end; through a transaction pool both failed with 55006 ("being
//! accessed by other users"), as they do behind PgBouncer.

use super::hazards::{first_word, Lexer, Token};

/// The databases `sql` needs to itself (names as the server spells them: unquoted names
/// lower-cased). Only the first statement is looked at: `CREATE` and `DROP DATABASE` cannot run
/// in a multi-statement query string anyway.
pub fn needs_alone(sql: &[u8]) -> Vec<String> {
    if !starts_with_ddl_verb(sql) {
        return Vec::new();
    }
    let mut lexer = Lexer::new(sql);
    let mut tokens: Vec<Token<'_>> = Vec::new();
    while let Some(token) = lexer.next() {
        if matches!(token, Token::Semicolon) {
            break;
        }
        tokens.push(token);
        if tokens.len() > 64 {
            break;
        }
    }
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => w.to_ascii_lowercase(),
        _ => String::new(),
    };
    let name = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
        Some(Token::Quoted(q)) => Some(q.clone()),
        _ => None,
    };
    if word(1) != "database" {
        return Vec::new();
    }
    let found = match word(0).as_str() {
        "drop" => {
            let at = if word(2) == "if" && word(3) == "exists" {
                4
            } else {
                2
            };
            name(at)
        }
        "create" => (3..tokens.len())
            .find(|&i| word(i) == "template")
            .and_then(|i| {
                // `TEMPLATE [=] name`
                let next = if matches!(tokens.get(i + 1), Some(Token::Other)) {
                    i + 2
                } else {
                    i + 1
                };
                name(next)
            })
            .filter(|n| n != "default"),
        "alter" if word(3) == "rename" || (word(3) == "set" && word(4) == "tablespace") => name(2),
        _ => None,
    };
    found.into_iter().collect()
}

/// Whether the text's first word is `DROP`, `CREATE` or `ALTER` (the cheap test every query
/// takes while transaction pools exist).
fn starts_with_ddl_verb(sql: &[u8]) -> bool {
    let first = first_word(sql);
    [&b"drop"[..], b"create", b"alter"]
        .iter()
        .any(|verb| verb.eq_ignore_ascii_case(first))
}

#[cfg(test)]
mod tests {
    use super::needs_alone;

    #[test]
    fn the_databases_a_statement_needs_alone_are_found() {
        let cases: &[(&str, &[&str])] = &[
            ("DROP DATABASE test_app", &["test_app"]),
            (
                "drop database if exists \"Test App\" with (force)",
                &["Test App"],
            ),
            (
                "CREATE DATABASE copy1 WITH TEMPLATE test_app",
                &["test_app"],
            ),
            ("CREATE DATABASE copy1 TEMPLATE = Tmpl OWNER app", &["tmpl"]),
            (
                "CREATE DATABASE \"x\" ENCODING 'UTF8' TEMPLATE template0",
                &["template0"],
            ),
            ("ALTER DATABASE old RENAME TO new", &["old"]),
            ("ALTER DATABASE app SET TABLESPACE fast", &["app"]),
            ("  create database c template \"T\";", &["T"]),
        ];
        for (sql, want) in cases {
            assert_eq!(needs_alone(sql.as_bytes()), *want, "{sql}");
        }
        for sql in [
            "CREATE DATABASE plain",
            "CREATE DATABASE d TEMPLATE DEFAULT",
            "ALTER DATABASE app SET search_path = x",
            "DROP TABLE database",
            "SELECT 'DROP DATABASE x'",
            "CREATE TABLE t (template int)",
            "ALTER DATABASE app OWNER TO bob",
        ] {
            assert!(needs_alone(sql.as_bytes()).is_empty(), "{sql}");
        }
    }
}
