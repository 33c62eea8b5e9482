//! The query string's tokens (PostgreSQL's own scanner, via pg_query), used to find splice points
//! the parse tree has no location for: where a statement really ends (before a trailing comment
//! or `;`), the top-level `RETURNING` keyword, the verb after a `WITH` clause.

use pg_query::protobuf::{ScanToken, Token};

/// The tokens of a query string, comments removed, with their parenthesis depth.
#[derive(Debug, Clone)]
pub struct Tokens {
    items: Vec<Tok>,
}

/// One token: byte range in the query string, kind, and parenthesis depth (0 = top level of
/// its statement).
#[derive(Debug, Clone, Copy)]
pub struct Tok {
    /// Start offset (bytes).
    pub start: usize,
    /// End offset (bytes, exclusive).
    pub end: usize,
    /// Token kind.
    pub kind: Token,
    /// Parenthesis depth before this token.
    pub depth: i32,
}

impl Tokens {
    /// Scans `sql`; `None` if the scanner rejects it (then the parser has rejected it too).
    pub fn scan(sql: &str) -> Option<Tokens> {
        let scanned = pg_query::scan(sql).ok()?;
        let mut depth = 0;
        let mut items = Vec::with_capacity(scanned.tokens.len());
        for t in scanned.tokens {
            let Some(tok) = convert(&t, depth) else {
                continue;
            };
            match tok.kind {
                Token::Ascii40 => depth += 1,
                Token::Ascii41 => depth -= 1,
                // A new statement starts at depth 0 even after unbalanced input.
                Token::Ascii59 if depth <= 0 => depth = 0,
                _ => {}
            }
            items.push(tok);
        }
        Some(Tokens { items })
    }

    /// The tokens inside `[from, to)`.
    pub fn within(&self, from: usize, to: usize) -> impl Iterator<Item = &Tok> + Clone {
        self.items
            .iter()
            .filter(move |t| t.start >= from && t.end <= to)
    }

    /// End of the last real token (not `;`) in `[from, to)`; `from` when there is none.
    pub fn statement_end(&self, from: usize, to: usize) -> usize {
        self.within(from, to)
            .filter(|t| t.kind != Token::Ascii59)
            .map(|t| t.end)
            .last()
            .unwrap_or(from)
    }

    /// The first token of kind `kind` at the statement's top level (the depth of the first token
    /// in the range) within `[from, to)`.
    pub fn first_top_level(&self, from: usize, to: usize, kinds: &[Token]) -> Option<Tok> {
        let mut toks = self.within(from, to);
        let base = toks.clone().next()?.depth;
        toks.find(|t| t.depth == base && kinds.contains(&t.kind))
            .copied()
    }

    /// The token starting at `offset`, if any.
    pub fn at(&self, offset: usize) -> Option<Tok> {
        self.items.iter().find(|t| t.start == offset).copied()
    }

    /// Index of the token starting at `offset`.
    pub fn index_at(&self, offset: usize) -> Option<usize> {
        self.items.iter().position(|t| t.start == offset)
    }

    /// The token at index `i`.
    pub fn get(&self, i: usize) -> Option<Tok> {
        self.items.get(i).copied()
    }

    /// The first token starting at or after `offset`.
    pub fn next_from(&self, offset: usize) -> Option<Tok> {
        self.items.iter().find(|t| t.start >= offset).copied()
    }
}

fn convert(t: &ScanToken, depth: i32) -> Option<Tok> {
    let kind = Token::try_from(t.token).ok()?;
    if matches!(kind, Token::SqlComment | Token::CComment) {
        return None;
    }
    Some(Tok {
        start: usize::try_from(t.start).ok()?,
        end: usize::try_from(t.end).ok()?,
        kind,
        depth,
    })
}
