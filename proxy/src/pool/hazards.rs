//! What a statement does to session state that cannot move between backend connections.
//!
//! In transaction mode a client's next transaction may run on another backend connection, so
//! state a statement leaves behind in its session either moves with the client or must not be
//! created at all:
//!
//! - settings (`SET`, `RESET`, `set_config`, `DISCARD`) move: duet reads them back after the
//!   transaction and replays them on the client's next connection ([`super::settings`]);
//! - `LISTEN`, SQL `PREPARE`, `WITH HOLD` cursors, temporary tables, session advisory locks and a
//!   session-level `SET ROLE` / `SET SESSION AUTHORIZATION` cannot move (and a role is not reset
//!   by `RESET ALL`): duet refuses them with SQLSTATE 0A000 and a hint, before the server runs
//!   them.
//!
//! The scan is lexical (words outside strings, quoted identifiers and comments, and the first word
//! of each statement), so it is cheap enough for every query; it errs on the side of reading the
//! settings back, which is exact, and never refuses a statement that does not start one of the
//! refused forms (or call a session advisory lock function).

/// Session state a statement would leave that duet cannot carry to another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `LISTEN`: notifications are delivered to the session that listens.
    Listen,
    /// SQL-level `PREPARE`: the statement lives in one session.
    Prepare,
    /// `DECLARE … WITH HOLD`: the cursor outlives the transaction.
    HoldCursor,
    /// `CREATE TEMP …` without `ON COMMIT DROP`: the object outlives the transaction.
    TempObject,
    /// `pg_advisory_lock` and friends: the lock outlives the transaction.
    SessionAdvisoryLock,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION` (or `set_config` of either for the session): the
    /// role outlives the transaction, and `RESET ALL` — what duet replays for the next client of
    /// the connection — does not reset it, so the next client would run as that role.
    SessionRole,
}

impl Refusal {
    /// The error message.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Listen => "duet: LISTEN needs a session of its own, and this connection is pooled per transaction",
            Refusal::Prepare => "duet: SQL PREPARE needs a session of its own, and this connection is pooled per transaction",
            Refusal::HoldCursor => "duet: a WITH HOLD cursor needs a session of its own, and this connection is pooled per transaction",
            Refusal::TempObject => "duet: a temporary object needs a session of its own, and this connection is pooled per transaction",
            Refusal::SessionAdvisoryLock => "duet: a session advisory lock needs a session of its own, and this connection is pooled per transaction",
            Refusal::SessionRole => "duet: SET ROLE and SET SESSION AUTHORIZATION for the session need a session of their own, and this connection is pooled per transaction",
        }
    }

    /// What to do instead.
    pub fn hint(self) -> &'static str {
        match self {
            Refusal::Listen => "Connect as a user (or to a database) with pool mode \"session\" in duet's [pool] settings to LISTEN.",
            Refusal::Prepare => "Use the protocol's prepared statements (Parse/Bind, as drivers do), which duet carries across connections, or pool mode \"session\".",
            Refusal::HoldCursor => "Use a cursor without WITH HOLD inside the transaction, or pool mode \"session\".",
            Refusal::TempObject => "Add ON COMMIT DROP so the object ends with the transaction, or use pool mode \"session\".",
            Refusal::SessionAdvisoryLock => "Use pg_advisory_xact_lock (released at the end of the transaction), or pool mode \"session\".",
            Refusal::SessionRole => "Use SET LOCAL ROLE inside the transaction (it ends with it), log in as that role, or use pool mode \"session\".",
        }
    }

    /// A statement that fails with this refusal's error when the server runs it: sent in place of
    /// the refused one, so the client gets the error at the protocol position (and with the
    /// transaction effects) PostgreSQL's own errors have, and nothing of the refused text runs.
    pub fn substitute(self) -> String {
        // The message and hint are constants without dollar signs; quotes are doubled.
        format!(
            "DO $duet_refusal$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '{}', HINT = '{}'; END $duet_refusal$",
            self.message().replace('\'', "''"),
            self.hint().replace('\'', "''")
        )
    }
}

/// What a statement's text may do to session state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// It may change settings: read them back when the transaction ends.
    pub settings: bool,
    /// It may drop the session's prepared statements (`DISCARD ALL`, `DEALLOCATE ALL`).
    pub drops_statements: bool,
    /// It must not run.
    pub refusal: Option<Refusal>,
    /// The text is one `DEALLOCATE [PREPARE] name` statement: the name (unquoted).
    pub deallocate: Option<String>,
    /// It may change the schema (`CREATE`, `ALTER`, `DROP`, `DO`, `IMPORT FOREIGN SCHEMA`): the
    /// prepared statements parsed before may no longer be what a Parse would make now.
    pub schema_change: bool,
}

/// Scans a statement text (one or several statements).
pub fn scan(sql: &[u8]) -> Scan {
    if is_plainly_harmless(sql) {
        return Scan::default();
    }
    let mut out = Scan::default();
    let mut statements = 0usize;
    // Words of the current statement that matter: the first few.
    let mut words: Vec<String> = Vec::new();
    let mut lexer = Lexer::new(sql);
    let mut current_has_hold = false;
    let mut current_on_commit_drop = 0u8;
    let finish = |words: &mut Vec<String>, hold: bool, on_commit_drop: bool, out: &mut Scan| {
        if words.is_empty() {
            return;
        }
        classify(words, hold, on_commit_drop, out);
        words.clear();
    };
    while let Some(token) = lexer.next() {
        match token {
            Token::Semicolon => {
                finish(
                    &mut words,
                    current_has_hold,
                    current_on_commit_drop == 3,
                    &mut out,
                );
                current_has_hold = false;
                current_on_commit_drop = 0;
            }
            Token::Word(word) => {
                if words.is_empty() {
                    statements += 1;
                }
                // Lower-cased on the stack: the words that matter are short, and most words of
                // most statements are looked at only here (no allocation per word).
                let mut buf = [0u8; 32];
                let lower = match buf.get_mut(..word.len()) {
                    Some(slot) => {
                        slot.copy_from_slice(word.as_bytes());
                        slot.make_ascii_lowercase();
                        std::str::from_utf8(slot).unwrap_or("")
                    }
                    None => "",
                };
                match lower {
                    "pg_advisory_lock"
                    | "pg_advisory_lock_shared"
                    | "pg_try_advisory_lock"
                    | "pg_try_advisory_lock_shared" => {
                        out.refusal.get_or_insert(Refusal::SessionAdvisoryLock);
                    }
                    "set_config" => {
                        out.settings = true;
                        let at = word.as_ptr() as usize - sql.as_ptr() as usize + word.len();
                        if sets_session_role(&sql[at..]) {
                            out.refusal.get_or_insert(Refusal::SessionRole);
                        }
                    }
                    "hold" if words.last().is_some_and(|w| w == "with") => current_has_hold = true,
                    "on" if current_on_commit_drop == 0 => current_on_commit_drop = 1,
                    "commit" if current_on_commit_drop == 1 => current_on_commit_drop = 2,
                    "drop" if current_on_commit_drop == 2 => current_on_commit_drop = 3,
                    _ if current_on_commit_drop < 3 && current_on_commit_drop > 0 => {
                        current_on_commit_drop = 0
                    }
                    _ => {}
                }
                if words.len() < 4 || lower == "with" {
                    words.push(word.to_ascii_lowercase());
                }
            }
            Token::Quoted(ident) => {
                if words.is_empty() {
                    statements += 1;
                }
                if words.len() < 4 {
                    // Keep the case of a quoted name (DEALLOCATE "Name").
                    words.push(format!("\"{ident}"));
                }
            }
            Token::Other => {
                if words.len() < 4 && !words.is_empty() {
                    words.push(String::new());
                }
            }
        }
    }
    finish(
        &mut words,
        current_has_hold,
        current_on_commit_drop == 3,
        &mut out,
    );
    if statements != 1 {
        out.deallocate = None;
    }
    out
}

/// Whether the text after a `set_config` word is a call that sets `role` or
/// `session_authorization` for the session: `('role', …, false)` (the third argument not
/// literally `true`; a parameter or expression counts as the session form).
fn sets_session_role(after: &[u8]) -> bool {
    let text = String::from_utf8_lossy(after.get(..after.len().min(200)).unwrap_or(after));
    let text = text.trim_start();
    let Some(args) = text.strip_prefix('(') else {
        return false;
    };
    let args = args.trim_start().to_ascii_lowercase();
    let names_role = ["'role'", "'session_authorization'"]
        .iter()
        .any(|name| args.starts_with(name));
    if !names_role {
        return false;
    }
    // The third argument, up to the closing parenthesis.
    let close = args.find(')').unwrap_or(args.len());
    let third = args[..close].rsplit(',').next().unwrap_or("").trim();
    third != "true" && third != "'t'" && third != "'true'"
}

/// The byte range of the statement name in a one-statement SQL `EXECUTE name …` or `EXPLAIN …
/// EXECUTE name …` (an unquoted name: drivers name their statements so), for the pool to give
/// the client's name of a protocol-level statement its backend name.
pub fn executed_statement(sql: &[u8]) -> Option<(usize, usize)> {
    let mut lexer = Lexer::new(sql);
    let first = match lexer.next()? {
        Token::Word(w) => w.to_ascii_lowercase(),
        _ => return None,
    };
    let offset = |w: &str| w.as_ptr() as usize - sql.as_ptr() as usize;
    let mut name = None;
    match first.as_str() {
        "execute" => {
            if let Some(Token::Word(w)) = lexer.next() {
                name = Some((offset(w), offset(w) + w.len()));
            }
        }
        "explain" => {
            while let Some(token) = lexer.next() {
                match token {
                    Token::Word(w) if w.eq_ignore_ascii_case("execute") => {
                        if let Some(Token::Word(n)) = lexer.next() {
                            name = Some((offset(n), offset(n) + n.len()));
                        }
                        break;
                    }
                    Token::Semicolon => return None,
                    _ => {}
                }
            }
        }
        _ => return None,
    }
    // One statement only (a trailing `;` aside).
    while let Some(token) = lexer.next() {
        if matches!(token, Token::Semicolon) {
            if lexer.next().is_some() {
                return None;
            }
            break;
        }
    }
    name
}

/// First words of statements that leave no session state by themselves (what they call is
/// still looked at: the session advisory locks and `set_config`).
const PLAIN_FIRST_WORDS: &[&str] = &[
    "select",
    "insert",
    "update",
    "delete",
    "merge",
    "with",
    "values",
    "table",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "copy",
    "explain",
    "call",
];

/// The letters the text starts with, after white space (empty when it starts otherwise: a
/// comment, a string, a parenthesis).
pub(super) fn first_word(sql: &[u8]) -> &[u8] {
    let start = sql
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(sql.len());
    let rest = &sql[start..];
    let len = rest
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..len]
}

/// The fast path for what most queries are: one statement (no `;` but a trailing one) that starts
/// with a [`PLAIN_FIRST_WORDS`] word and names neither a session advisory lock nor `set_config`.
/// Anything else (a comment or a string before the first word, a second statement) takes the
/// full scan.
fn is_plainly_harmless(sql: &[u8]) -> bool {
    let first = first_word(sql);
    if !PLAIN_FIRST_WORDS
        .iter()
        .any(|w| w.as_bytes().eq_ignore_ascii_case(first))
    {
        return false;
    }
    if let Some(at) = memchr::memchr(b';', sql) {
        if !sql[at + 1..]
            .iter()
            .all(|b| b.is_ascii_whitespace() || *b == b';')
        {
            return false;
        }
    }
    // Both names the full scan looks for anywhere have an underscore: look around each one.
    let around = |at: usize, before: usize, needle: &[u8]| {
        at >= before
            && sql
                .get(at - before..at - before + needle.len())
                .is_some_and(|window| window.eq_ignore_ascii_case(needle))
    };
    !memchr::memchr_iter(b'_', sql)
        .any(|at| around(at, 8, b"advisory_lock") || around(at, 3, b"set_config"))
}

/// Classifies one statement by its first words.
fn classify(words: &[String], hold: bool, on_commit_drop: bool, out: &mut Scan) {
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match word(0) {
        "listen" => {
            out.refusal.get_or_insert(Refusal::Listen);
        }
        "prepare" if word(1) != "transaction" => {
            out.refusal.get_or_insert(Refusal::Prepare);
        }
        "declare" if hold => {
            out.refusal.get_or_insert(Refusal::HoldCursor);
        }
        "alter" | "drop" | "do" | "import" => out.schema_change = true,
        "create" => {
            out.schema_change = true;
            let temp = |w: &str| w == "temp" || w == "temporary";
            let is_temp =
                temp(word(1)) || ((word(1) == "global" || word(1) == "local") && temp(word(2)));
            if is_temp && !on_commit_drop {
                out.refusal.get_or_insert(Refusal::TempObject);
            }
        }
        // SET [SESSION] ROLE and SET [SESSION] SESSION AUTHORIZATION outlive the transaction
        // and are not reset by RESET ALL (SET LOCAL ROLE is fine).
        "set"
            if word(1) == "role"
                || (word(1) == "session"
                    && (word(2) == "role"
                        || word(2) == "authorization"
                        || word(2) == "session")) =>
        {
            out.refusal.get_or_insert(Refusal::SessionRole);
        }
        // SET LOCAL, SET TRANSACTION and SET CONSTRAINTS end with the transaction.
        "set" if !matches!(word(1), "local" | "transaction" | "constraints") => {
            out.settings = true;
        }
        "reset" => out.settings = true,
        "discard" => {
            out.settings = true;
            if matches!(word(1), "all" | "plans") {
                out.drops_statements = true;
            }
        }
        "deallocate" => {
            let name_at = if word(1) == "prepare" { 2 } else { 1 };
            match word(name_at) {
                "all" => out.drops_statements = true,
                "" => {}
                name => {
                    out.deallocate = Some(name.strip_prefix('"').unwrap_or(name).to_owned());
                }
            }
        }
        _ => {}
    }
}

pub(super) enum Token<'a> {
    Word(&'a str),
    Quoted(String),
    Semicolon,
    Other,
}

/// Just enough of PostgreSQL's lexer to find words outside strings and comments.
pub(super) struct Lexer<'a> {
    sql: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `sql`.
    pub(super) fn new(sql: &'a [u8]) -> Lexer<'a> {
        Lexer { sql, pos: 0 }
    }

    /// The next token outside strings and comments.
    pub(super) fn next(&mut self) -> Option<Token<'a>> {
        let sql = self.sql;
        loop {
            let &c = sql.get(self.pos)?;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.pos += 1,
                b'-' if sql.get(self.pos + 1) == Some(&b'-') => {
                    while self.pos < sql.len() && sql[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'/' if sql.get(self.pos + 1) == Some(&b'*') => {
                    let mut depth = 0usize;
                    while self.pos < sql.len() {
                        if sql[self.pos..].starts_with(b"/*") {
                            depth += 1;
                            self.pos += 2;
                        } else if sql[self.pos..].starts_with(b"*/") {
                            depth -= 1;
                            self.pos += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            self.pos += 1;
                        }
                    }
                }
                b';' => {
                    self.pos += 1;
                    return Some(Token::Semicolon);
                }
                b'\'' => {
                    let escapes = self.pos > 0 && matches!(sql[self.pos - 1], b'e' | b'E');
                    self.skip_string(escapes);
                    return Some(Token::Other);
                }
                b'"' => {
                    self.pos += 1;
                    let mut ident = Vec::new();
                    while self.pos < sql.len() {
                        if sql[self.pos] == b'"' {
                            if sql.get(self.pos + 1) == Some(&b'"') {
                                ident.push(b'"');
                                self.pos += 2;
                                continue;
                            }
                            self.pos += 1;
                            break;
                        }
                        ident.push(sql[self.pos]);
                        self.pos += 1;
                    }
                    return Some(Token::Quoted(String::from_utf8_lossy(&ident).into_owned()));
                }
                b'$' => {
                    if let Some(end) = self.dollar_tag_end() {
                        let tag = &sql[self.pos..end];
                        self.pos = end;
                        match find(&sql[self.pos..], tag) {
                            Some(at) => self.pos += at + tag.len(),
                            None => self.pos = sql.len(),
                        }
                    } else {
                        self.pos += 1;
                    }
                    return Some(Token::Other);
                }
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    let start = self.pos;
                    while self.pos < sql.len()
                        && (sql[self.pos].is_ascii_alphanumeric()
                            || sql[self.pos] == b'_'
                            || sql[self.pos] == b'$'
                            || sql[self.pos] >= 0x80)
                    {
                        self.pos += 1;
                    }
                    // An E'…' string starts with its prefix letter: leave the quote to the next call.
                    let word = std::str::from_utf8(&sql[start..self.pos]).unwrap_or("");
                    return Some(Token::Word(word));
                }
                _ => {
                    self.pos += 1;
                    return Some(Token::Other);
                }
            }
        }
    }

    fn skip_string(&mut self, escapes: bool) {
        let sql = self.sql;
        self.pos += 1;
        while self.pos < sql.len() {
            match sql[self.pos] {
                b'\\' if escapes => self.pos += 2,
                b'\'' if sql.get(self.pos + 1) == Some(&b'\'') => self.pos += 2,
                b'\'' => {
                    self.pos += 1;
                    return;
                }
                _ => self.pos += 1,
            }
        }
    }

    /// At a `$`: the end of a dollar-quote opening tag (`$$` or `$tag$`), if it is one.
    fn dollar_tag_end(&self) -> Option<usize> {
        let sql = self.sql;
        let mut i = self.pos + 1;
        while i < sql.len() {
            match sql[i] {
                b'$' => return Some(i + 1),
                c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                    if i == self.pos + 1 && c.is_ascii_digit() {
                        return None; // $1: a parameter
                    }
                    i += 1;
                }
                _ => return None,
            }
        }
        None
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sql: &str) -> Option<Refusal> {
        scan(sql.as_bytes()).refusal
    }

    #[test]
    fn session_state_that_cannot_move_is_refused() {
        assert_eq!(refusal("LISTEN jobs"), Some(Refusal::Listen));
        assert_eq!(refusal("begin; listen jobs; commit"), Some(Refusal::Listen));
        assert_eq!(refusal("PREPARE q AS select 1"), Some(Refusal::Prepare));
        assert_eq!(refusal("prepare transaction 'x'"), None);
        assert_eq!(
            refusal("declare c cursor with hold for select 1"),
            Some(Refusal::HoldCursor)
        );
        assert_eq!(refusal("declare c cursor for select 1"), None);
        assert_eq!(
            refusal("create temp table x (a int)"),
            Some(Refusal::TempObject)
        );
        assert_eq!(
            refusal("CREATE GLOBAL TEMPORARY TABLE x (a int)"),
            Some(Refusal::TempObject)
        );
        assert_eq!(refusal("create temp table x (a int) on commit drop"), None);
        assert_eq!(refusal("create table temp (a int)"), None);
        assert_eq!(
            refusal("select pg_advisory_lock(1)"),
            Some(Refusal::SessionAdvisoryLock)
        );
        assert_eq!(
            refusal("SELECT pg_try_advisory_lock_shared(1, 2)"),
            Some(Refusal::SessionAdvisoryLock)
        );
        assert_eq!(refusal("select pg_advisory_xact_lock(1)"), None);
    }

    #[test]
    fn words_in_strings_identifiers_and_comments_do_not_count() {
        assert_eq!(refusal("select 'listen'; -- listen\n select 1"), None);
        assert_eq!(refusal("select $$pg_advisory_lock(1)$$"), None);
        assert_eq!(refusal("select $f$ listen $f$, \"pg_advisory_lock\""), None);
        assert_eq!(refusal("/* prepare /* nested */ x */ select 1"), None);
        assert_eq!(refusal("select E'it\\'s; listen x'"), None);
        assert_eq!(refusal("select $1::text"), None);
        assert_eq!(refusal("update t set note = 'listen'"), None);
    }

    #[test]
    fn the_fast_path_leaves_nothing_the_full_scan_would_find() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            "update t set a = 1;",
            "  WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert!(is_plainly_harmless(sql.as_bytes()), "{sql}");
            assert_eq!(scan(sql.as_bytes()), Scan::default());
        }
        for sql in [
            "select pg_advisory_lock(1)",
            "SELECT PG_TRY_ADVISORY_LOCK(1)",
            "select set_config('a.b', 'c', false)",
            "select 1; listen x",
            "/* c */ select 1",
            "listen x",
        ] {
            assert!(!is_plainly_harmless(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn settings_changes_are_noticed() {
        assert!(scan(b"SET statement_timeout = 5").settings);
        assert!(scan(b"set session work_mem = '8MB'").settings);
        assert!(scan(b"reset all").settings);
        assert!(scan(b"select set_config('a.b', 'c', false)").settings);
        assert!(!scan(b"set local work_mem = '8MB'").settings);
        assert!(!scan(b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").settings);
        assert!(!scan(b"update t set a = 1").settings);
        let discard = scan(b"DISCARD ALL");
        assert!(discard.settings && discard.drops_statements);
    }

    #[test]
    fn session_roles_are_refused_and_local_ones_are_not() {
        for sql in [
            "SET ROLE admin",
            "set session role admin",
            "SET SESSION AUTHORIZATION bob",
            "SET SESSION SESSION AUTHORIZATION bob",
            "SELECT set_config('role', 'admin', false)",
            "select set_config( 'session_authorization' , 'bob', $1)",
        ] {
            assert_eq!(
                scan(sql.as_bytes()).refusal,
                Some(Refusal::SessionRole),
                "{sql}"
            );
        }
        for sql in [
            "SET LOCAL ROLE admin",
            "RESET ROLE",
            "SELECT set_config('role', 'admin', true)",
            "SELECT set_config('search_path', 'x', false)",
            "SET search_path = role",
        ] {
            assert_eq!(scan(sql.as_bytes()).refusal, None, "{sql}");
        }
    }

    #[test]
    fn executed_statement_names_are_found() {
        let name =
            |sql: &str| executed_statement(sql.as_bytes()).map(|(a, b)| sql[a..b].to_owned());
        assert_eq!(name("EXECUTE sqlx_s_1(1, 2)").as_deref(), Some("sqlx_s_1"));
        assert_eq!(
            name("EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE sqlx_s_1(NULL)").as_deref(),
            Some("sqlx_s_1")
        );
        assert_eq!(name("execute s0;").as_deref(), Some("s0"));
        assert_eq!(name("EXECUTE s0; SELECT 1"), None);
        assert_eq!(name("SELECT 'EXECUTE s0'"), None);
        assert_eq!(name("EXPLAIN SELECT 1"), None);
    }

    #[test]
    fn schema_changes_are_noticed() {
        for sql in [
            "CREATE TABLE t (id int)",
            "drop type foo_enum",
            "ALTER TABLE t ADD COLUMN x int",
            "BEGIN; CREATE TYPE e AS ENUM ('a'); COMMIT",
            "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$",
            "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO public",
        ] {
            assert!(scan(sql.as_bytes()).schema_change, "{sql}");
        }
        for sql in [
            "SELECT 'create table x'",
            "INSERT INTO t VALUES (1)",
            "SET search_path = s",
            "-- drop table t\nselect 1",
        ] {
            assert!(!scan(sql.as_bytes()).schema_change, "{sql}");
        }
    }

    #[test]
    fn a_lone_deallocate_names_its_statement() {
        assert_eq!(
            scan(b"DEALLOCATE _pg3_1").deallocate.as_deref(),
            Some("_pg3_1")
        );
        assert_eq!(
            scan(b"deallocate prepare \"S 1\";").deallocate.as_deref(),
            Some("S 1")
        );
        assert!(scan(b"deallocate all").drops_statements);
        assert_eq!(scan(b"deallocate a; select 1").deallocate, None);
    }
}
