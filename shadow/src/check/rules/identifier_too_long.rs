//! Rule `identifier-too-long`: identifiers longer than 63 bytes are silently truncated
//!
//! PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1); two long names can collide, and
//! later migrations that use the full name fail.

#[allow(unused_imports)]
use super::syntax;
use super::{Hit, Rule, RuleInput};
use crate::check::report::Level;

/// The rule.
pub const RULE: Rule = Rule {
    id: "identifier-too-long",
    level: Level::Error,
    opt_in: false,
    summary: "identifiers longer than 63 bytes are silently truncated",
    docs: "PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1); two long names can collide, and later migrations that use the full name fail.",
    bad: "CREATE TABLE this_table_name_is_much_too_long_for_postgresql_to_keep_it_as_written_x (id bigint);",
    good: "CREATE TABLE short_name (id bigint);",
    aliases: &["squawk:identifier-too-long"],
    check,
};

fn check(i: &RuleInput<'_>) -> Vec<Hit> {
    // Cheap pre-check: only scan when some run of identifier bytes is longer than 63.
    let mut run = 0usize;
    let mut long = false;
    for b in i.sql.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80 {
            run += 1;
            long |= run > 63;
        } else if b != b'"' {
            run = 0;
        }
    }
    if !long && !i.sql.contains('"') {
        return Vec::new();
    }
    let Ok(tokens) = pg_query::scan_tokens(i.sql) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for tok in tokens {
        if tok.token != pg_query::protobuf::Token::Ident as i32 {
            continue;
        }
        let (Ok(s), Ok(e)) = (usize::try_from(tok.start), usize::try_from(tok.end)) else {
            continue;
        };
        let Some(text) = i.sql.get(s..e) else {
            continue;
        };
        let name = text.trim_matches('"');
        if name.len() > 63 && !hits.iter().any(|h: &Hit| h.message.contains(name)) {
            hits.push(Hit::bare(format!(
                "identifier {name} is {} bytes; PostgreSQL keeps only the first 63",
                name.len()
            )));
        }
    }
    hits
}
