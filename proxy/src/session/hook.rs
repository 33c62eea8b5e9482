//! The dual-write hook's per-session state and message surgery.
//!
//! While a table is under migration, the client→backend loop sees every Query and Parse whole,
//! forwards the rewritten text of those that write a routed table, and queues here what the
//! backend→client loop must change in the answers: the CommandComplete verb of a rewritten
//! statement, the error of a refused one, and the whole answer to the re-prepares the session
//! injects after a route change.
//!
//! # Refusals
//!
//! A refused statement is not answered by duet directly: the upstream loop forwards in its place a
//! statement that fails at parse time (`DUET_REFUSED_<n>`), and the downstream loop replaces the
//! server's syntax error with the refusal's SQLSTATE, message and hint. The server thereby does
//! everything a real error does — aborts an open transaction, reports the right transaction
//! status in ReadyForQuery, discards an extended batch up to Sync — and the answers stay in the
//! order the client expects, without the upstream loop ever writing to the client.
//!
//! # Which answer belongs to which request
//!
//! Every request that ends with a ReadyForQuery (Query, Sync, FunctionCall, and duet's injected
//! Sync) gets a sequence number; an expectation names the request whose answer it applies to, and
//! within that request expectations apply in order to the completions (CommandComplete,
//! EmptyQueryResponse, PortalSuspended) and to the first ErrorResponse. While the hook is active,
//! every Execute queues an expectation (most with nothing to change), so the completions of one
//! request line up with them.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use shadow::rewrite::result_shape::DescribedColumn;
use shadow::rewrite::{Answer, Protocol, Refusal, Rewrite, StatementPatch, TagVerb};

use crate::config::UnrewritableWrites;
use crate::routes::{Cached, Published};
use crate::wire::error::{error_response, Severity};
use crate::wire::messages::{
    CommandComplete, Describe, ErrorField, ErrorResponse, Message, ParameterDescription,
    RowDescription, Target,
};
use shadow::rewrite::search_path::{name_change, NameChange, SearchPath};

/// The largest Query or Parse the hook holds in memory to check it while routes are active. A
/// larger one is refused (it may write a routed table, and cannot be checked without reading it
/// whole).
pub(super) const MAX_HELD: usize = 64 << 20;

/// SQLSTATE and message of the error a statement prepared before a schema change gets.
const CACHED_PLAN_CODE: &[u8] = b"0A000";
const CACHED_PLAN_MESSAGE: &[u8] = b"cached plan must not change result type";

/// A replacement of `start..end` of a chunk by `bytes` (an insertion when `start == end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    pub start: usize,
    pub end: usize,
    pub bytes: Bytes,
}

/// What to do with one answer of a request.
#[derive(Debug, Clone)]
pub(super) enum Expect {
    /// A statement's or Execute's completion; restore this verb in its CommandComplete.
    Complete(Option<TagVerb>),
    /// The marker standing for a refused statement: replace its ErrorResponse.
    Refused(Arc<Cached>),
    /// An injected request: drop every message of its answer, ReadyForQuery included.
    Swallow,
    /// A statement duet added to the client's query string: drop its CommandComplete.
    Drop,
    /// The COPY into a staging table: hold its CommandComplete back for [`Expect::CopyTag`]; in
    /// its error, name `table` instead of `staging` in the context.
    HoldCopy {
        /// The staging table's name.
        staging: String,
        /// The client's table's name.
        table: String,
    },
    /// The INSERT that completes a staged COPY: its CommandComplete becomes the held `COPY n`.
    CopyTag,
}

impl Expect {
    /// What the answer to a statement with this patch needs.
    pub fn for_statement(patch: &StatementPatch) -> Expect {
        match &patch.answer {
            Answer::Client => Expect::Complete(patch.command_tag),
            Answer::Added => Expect::Drop,
            Answer::StagedCopy { staging, table } => Expect::HoldCopy {
                staging: staging.clone(),
                table: table.clone(),
            },
            Answer::StagedInsert => Expect::CopyTag,
        }
    }
}

/// The patch of a prepared statement or portal: the verb to restore and the cache entry to count.
#[derive(Debug, Clone)]
pub(super) struct Patch {
    pub verb: Option<TagVerb>,
    pub cached: Arc<Cached>,
}

/// A named statement as the client prepared it.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The client's text.
    pub sql: String,
    /// The Parse body after the text: parameter count and type OIDs, as sent.
    pub params: Bytes,
    /// The epoch it was last prepared under.
    pub epoch: u64,
    /// The routes it was last prepared under (`None`: while nothing was routed).
    pub published: Option<Arc<Published>>,
    /// Its result columns as the server first described them to the client (`None`: not
    /// described, or no rows): preparing it again keeps them (see
    /// [`shadow::rewrite::result_shape`]).
    pub results: Option<Arc<[DescribedColumn]>>,
}

/// The hook's state for one session (kept in the [`super::track::Tracker`], under its lock).
#[derive(Debug, Default)]
pub(super) struct Hook {
    /// Expectations, each with the sequence number of the request it belongs to.
    pub expect: VecDeque<(u64, Expect)>,
    /// Patches of prepared statements (unnamed included), by name.
    pub statement_patches: HashMap<Vec<u8>, Patch>,
    /// Patches of portals, by name.
    pub portal_patches: HashMap<Vec<u8>, Patch>,
    /// Named statements as prepared, for preparing them again after a route change.
    pub prepared: HashMap<Vec<u8>, Prepared>,
    /// The epoch the remembered statements were last checked against.
    pub epoch: u64,
    /// A statement failed with "cached plan must not change result type": prepare all again.
    pub stale: bool,
    /// The session's `search_path` moved (by a statement that has been sent): at the next
    /// boundary after it, prepare again the remembered statements that name a table that is or
    /// was routed — their decision depends on what the name resolves to. Others are left alone,
    /// as PostgreSQL leaves them: a Parse under a path where their tables cannot be found would
    /// fail and lose a statement the client still holds.
    pub path_moved: bool,
    /// Refusal markers sent so far (makes each marker unique).
    pub markers: u64,
    /// Bytes of an oversized message still to drop.
    pub discard: usize,
    /// Executes of the current batch that have an expectation.
    pub batch_entries: u64,
    /// Statement names of the Describe('S') messages sent and not yet answered, in order (empty
    /// name: the unnamed statement): their ParameterDescription tells which parameter types the
    /// server inferred, so a statement prepared again after a flip keeps them (a client that sends
    /// binary int4 parameters would otherwise meet an int8 parameter inferred from the new shape).
    pub describes: VecDeque<Vec<u8>>,
    /// Texts forwarded unchanged in the open transaction although duet could not dual-write them
    /// (`[migration] unrewritable_writes = "pass"`); counted when the transaction ends.
    pub unrewritten: Vec<Arc<Cached>>,
    /// The statement whose RowDescription (or NoData) follows the ParameterDescription just seen.
    pub rows_of: Option<Vec<u8>>,
    /// The CommandComplete body of a staged COPY, until the INSERT that completes it reports.
    pub held_copy: Option<Bytes>,
    /// How the session's unqualified table names resolve, as its own statements showed.
    pub names: Names,
}

impl Drop for Hook {
    /// A session that ends inside a transaction may still have committed it (a COMMIT whose
    /// answer was never read): count its unrewritten writes rather than lose them.
    fn drop(&mut self) {
        self.end_transaction();
    }
}

impl Hook {
    /// Notes a write forwarded without its dual-write.
    pub fn note_unrewritten(&mut self, cached: &Arc<Cached>) {
        if !self.unrewritten.iter().any(|c| Arc::ptr_eq(c, cached)) {
            self.unrewritten.push(cached.clone());
        }
    }

    /// At a transaction boundary: counts the unrewritten writes of the transaction that ended.
    /// Counted at its end rather than when sent, so a verification that starts after the count
    /// sees whatever they committed — the cutover relies on that.
    pub fn end_transaction(&mut self) {
        for cached in self.unrewritten.drain(..) {
            cached.count_unrewritten();
        }
    }

    /// Whether the downstream loop has something to apply.
    pub fn expecting(&self) -> bool {
        !self.expect.is_empty()
    }

    /// The expectation at the head, if it belongs to request `seq`.
    pub fn front(&self, seq: u64) -> Option<&Expect> {
        match self.expect.front() {
            Some((s, e)) if *s == seq => Some(e),
            _ => None,
        }
    }

    /// Drops every expectation of request `seq` (after its error or its ReadyForQuery).
    pub fn finish(&mut self, seq: u64) {
        while matches!(self.expect.front(), Some((s, _)) if *s <= seq) {
            self.expect.pop_front();
        }
    }

    /// Queues `expect` for request `seq`, first padding for the Executes of the current batch
    /// that were sent before routes appeared (`batch_executes` of them in all so far).
    pub fn push(&mut self, seq: u64, batch_executes: u64, expect: Expect) {
        while self.batch_entries < batch_executes {
            self.expect.push_back((seq, Expect::Complete(None)));
            self.batch_entries += 1;
        }
        self.expect.push_back((seq, expect));
    }

    /// A marker statement text for a refusal.
    pub fn marker(&mut self) -> String {
        self.markers += 1;
        format!("DUET_REFUSED_{}", self.markers)
    }

    /// Records a Describe message read whole (only statement describes get a ParameterDescription).
    pub fn described(&mut self, describe: &Describe<'_>) {
        if describe.target == Target::Statement {
            self.describes.push_back(describe.name.to_vec());
        }
    }

    /// A ParameterDescription answered the oldest Describe('S'): keep the server's parameter types
    /// (same layout as a Parse's parameter section: count, then one OID each) for re-preparing.
    /// (`None`: a ParameterDescription that does not decode answered it; nothing is kept.)
    pub fn parameters_described(&mut self, described: Option<&ParameterDescription<'_>>) {
        let Some(name) = self.describes.pop_front() else {
            return;
        };
        let Some(described) = described.filter(|_| !name.is_empty()) else {
            return;
        };
        if let Some(prepared) = self.prepared.get_mut(&name) {
            prepared.params = Bytes::copy_from_slice(described.types);
            self.rows_of = Some(name);
        }
    }

    /// The RowDescription (`Some`) or NoData (`None`; also a RowDescription that does not decode)
    /// after a statement's ParameterDescription:
    /// the result shape the client now expects from it. Only the first description counts: a
    /// statement prepared again by duet is not described to the client again.
    pub fn rows_described(&mut self, rows: Option<&RowDescription<'_>>) {
        let Some(name) = self.rows_of.take() else {
            return;
        };
        if let Some(prepared) = self.prepared.get_mut(&name) {
            if prepared.results.is_none() {
                prepared.results = rows.map(described_columns).map(Arc::from);
            }
        }
    }

    /// Forgets a closed statement.
    pub fn close_statement(&mut self, name: &[u8]) {
        self.statement_patches.remove(name);
        self.prepared.remove(name);
    }

    /// Forgets every statement and portal (DISCARD ALL, DEALLOCATE ALL).
    pub fn forget_all(&mut self) {
        self.statement_patches.clear();
        self.portal_patches.clear();
        self.prepared.clear();
    }
}

/// The result columns a RowDescription tells the client about.
fn described_columns(rows: &RowDescription<'_>) -> Vec<DescribedColumn> {
    rows.fields()
        .map(|field| DescribedColumn {
            name: String::from_utf8_lossy(field.name).into_owned(),
            type_oid: field.type_oid,
            typmod: field.typmod,
        })
        .collect()
}

/// The CommandComplete the client expects for a rewritten statement, or `None` to keep the
/// server's (no verb to restore, or a tag without a count).
pub(super) fn patched_command_complete(
    complete: &CommandComplete<'_>,
    verb: Option<TagVerb>,
) -> Option<BytesMut> {
    let restored = verb?.restore(complete.tag_str()?)?;
    Some(CommandComplete::new(&restored).to_bytes())
}

/// The ErrorResponse `error` with its context line `COPY <staging>, …` naming `table` instead, or
/// `None` when it has no such line.
pub(super) fn copy_error_renamed(
    error: &ErrorResponse<'_>,
    staging: &str,
    table: &str,
) -> Option<BytesMut> {
    let from = format!("COPY {staging},");
    let to = format!("COPY {table},");
    let values: Vec<Cow<'_, [u8]>> = error
        .fields()
        .map(|field| match field.value.strip_prefix(from.as_bytes()) {
            Some(tail) if field.kind == b'W' => Cow::Owned([to.as_bytes(), tail].concat()),
            _ => Cow::Borrowed(field.value),
        })
        .collect();
    if !values.iter().any(|value| matches!(value, Cow::Owned(_))) {
        return None;
    }
    let fields: Vec<ErrorField<'_>> = error
        .fields()
        .zip(&values)
        .map(|(field, value)| ErrorField {
            kind: field.kind,
            value,
        })
        .collect();
    let mut body = Vec::with_capacity(error.body_len() + table.len());
    Some(ErrorResponse::encode_fields(&fields, &mut body).to_bytes())
}

/// The ErrorResponse a refusal gives the client.
pub(super) fn refusal_error(refusal: &Refusal) -> BytesMut {
    error_response(
        Severity::Error,
        refusal.sqlstate,
        &refusal.message,
        Some(&refusal.hint),
    )
}

/// The refusal of a cached entry, if it is one.
pub(super) fn refusal_of(cached: &Cached) -> Option<&Refusal> {
    cached.result.as_ref().err()
}

/// Whether an ErrorResponse is "cached plan must not change result type".
pub(super) fn is_cached_plan_error(error: &ErrorResponse<'_>) -> bool {
    error.sqlstate() == Some(CACHED_PLAN_CODE) && error.message() == Some(CACHED_PLAN_MESSAGE)
}

/// Whether an ErrorResponse is "prepared statement … already exists" (42P05).
pub(super) fn is_duplicate_statement_error(error: &ErrorResponse<'_>) -> bool {
    error.sqlstate() == Some(b"42P05")
}

/// The refusal for a message too large to check.
pub(super) fn oversized_refusal() -> Refusal {
    Refusal::unsupported(
        format!(
            "duet refuses statements larger than {} MiB while a table is under migration",
            MAX_HELD >> 20
        ),
        "send smaller statements, or run this one after the migration completes",
    )
}

/// The refusal for a text that is not UTF-8 (duet rewrites UTF-8 only).
pub(super) fn encoding_refusal() -> Refusal {
    Refusal::unsupported(
        "duet cannot check a statement that is not valid UTF-8 while a table is under migration",
        "use client_encoding UTF8 for statements on tables under migration",
    )
}

/// What the upstream loop forwards for one Query or Parse text under active routes (borrowed
/// from the cache entry: a cache hit copies the rewritten text once, into the message).
#[derive(Debug)]
pub(super) enum Decision<'a> {
    /// Forward the client's bytes.
    Unchanged,
    /// Forward this text; one patch per statement.
    Changed(&'a str, &'a [StatementPatch]),
    /// Forward a refusal marker.
    Refused,
    /// Forward the client's text although duet cannot dual-write it (`[migration]
    /// unrewritable_writes = "pass"`); counted as an unrewritten write when its transaction ends.
    Passed,
}

/// How a session's unqualified table names resolve (`shadow::rewrite::search_path`).
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Its `search_path`, as its statements set it.
    pub search_path: SearchPath,
    /// The path its startup packet set (what `RESET search_path`, `RESET ALL` and `DISCARD ALL`
    /// return to).
    pub at_startup: SearchPath,
    /// It may have made a temporary table, which `pg_temp` finds before any schema.
    pub temporary: bool,
}

impl Names {
    /// Follows one Query or Parse text (with or without a migration: a session sets its path
    /// long before one starts). Returns whether something changed.
    pub fn follow(&mut self, text: &str) -> bool {
        match name_change(text) {
            NameChange::None => return false,
            NameChange::SearchPath(SearchPath::Default) => {
                self.search_path = self.at_startup.clone()
            }
            NameChange::SearchPath(path) => self.search_path = path,
            NameChange::Temporary => self.temporary = true,
            NameChange::DiscardAll => {
                self.search_path = self.at_startup.clone();
                self.temporary = false;
            }
        }
        true
    }

    /// Whether a rewrite that took these schemas' tables for unqualified names is right here.
    fn sure_of(&self, unqualified: &[String]) -> bool {
        unqualified.is_empty()
            || (!self.temporary
                && unqualified
                    .iter()
                    .all(|schema| self.search_path.resolves_first_in(schema)))
    }
}

/// Decides from a cache entry. A rewrite that took an unqualified name for a migrating table is
/// used only when the session's names surely mean that table; otherwise the text is forwarded as
/// written and the safety net mirrors what it writes. A rename's translation always applies (the
/// old names must keep working).
pub(super) fn decide<'a>(
    cached: &'a Cached,
    policy: UnrewritableWrites,
    names: &Names,
) -> Decision<'a> {
    match (&cached.result, policy) {
        (Ok(Rewrite::Unchanged), _) => Decision::Unchanged,
        (Ok(Rewrite::Changed { .. }), _)
            if !cached.renamed && !names.sure_of(&cached.unqualified) =>
        {
            Decision::Passed
        }
        (Ok(Rewrite::Changed { sql, statements }), _) => Decision::Changed(sql, statements),
        // A write the net mirrors may pass; a statement that would change the table's
        // definition (55000) never does.
        (Err(refusal), UnrewritableWrites::Pass) if refusal.is_write() => Decision::Passed,
        (Err(_), _) => Decision::Refused,
    }
}

/// The protocol a message tag carries.
pub(super) fn protocol_of(tag: u8) -> Protocol {
    if tag == b'Q' {
        Protocol::Simple
    } else {
        Protocol::Extended
    }
}

/// Whether a Query text is `DISCARD ALL` or `DEALLOCATE [PREPARE] ALL` (which drop every prepared
/// statement), or `DEALLOCATE [PREPARE] name` (returns the name). Cheap: looks at the first words.
pub(super) fn deallocation(sql: &[u8]) -> Option<Option<Vec<u8>>> {
    // Most queries are rejected on their first letter, without allocating.
    let start = sql.iter().position(|b| !b.is_ascii_whitespace())?;
    if !matches!(sql[start], b'd' | b'D') {
        return None;
    }
    let text = std::str::from_utf8(&sql[start..]).ok()?;
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty());
    let first = words.next()?.to_ascii_lowercase();
    match first.as_str() {
        "discard" => {
            let second = words.next()?.to_ascii_lowercase();
            (second == "all").then_some(None)
        }
        "deallocate" => {
            let mut second = words.next()?;
            if second.eq_ignore_ascii_case("prepare") {
                second = words.next()?;
            }
            if second.eq_ignore_ascii_case("all") {
                Some(None)
            } else if let Some(quoted) = second.strip_prefix('"') {
                Some(Some(quoted.trim_end_matches('"').as_bytes().to_vec()))
            } else {
                Some(Some(second.to_ascii_lowercase().into_bytes()))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_keeps_its_first_row_description() {
        let mut hook = Hook::default();
        hook.prepared.insert(
            b"s1".to_vec(),
            Prepared {
                sql: "select id, note from t".into(),
                params: Bytes::from_static(b"\0\0"),
                epoch: 0,
                published: None,
                results: None,
            },
        );
        let describe = Describe::decode(b"Ss1\0").unwrap();
        let no_parameters = ParameterDescription::decode(b"\0\0").unwrap();
        hook.described(&describe);
        hook.parameters_described(Some(&no_parameters));
        let mut body = 2u16.to_be_bytes().to_vec();
        for (name, oid, typmod) in [("id", 23u32, -1i32), ("note", 1043, 24)] {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(&16384u32.to_be_bytes()); // table
            body.extend_from_slice(&1i16.to_be_bytes()); // attnum
            body.extend_from_slice(&oid.to_be_bytes());
            body.extend_from_slice(&(-1i16).to_be_bytes()); // length
            body.extend_from_slice(&typmod.to_be_bytes());
            body.extend_from_slice(&1i16.to_be_bytes()); // binary
        }
        hook.rows_described(Some(&RowDescription::decode(&body).unwrap()));
        let results = hook.prepared[&b"s1".to_vec()]
            .results
            .clone()
            .expect("described");
        assert_eq!(results.len(), 2);
        assert_eq!((results[0].name.as_str(), results[0].type_oid), ("id", 23));
        assert_eq!((results[1].type_oid, results[1].typmod), (1043, 24));
        // A second description (duet's own re-prepare is never described) changes nothing, and a
        // truncated body is ignored.
        hook.described(&describe);
        hook.parameters_described(Some(&no_parameters));
        let truncated = RowDescription::decode(&body[..body.len() - 3]);
        assert!(truncated.is_err());
        hook.rows_described(truncated.ok().as_ref());
        assert_eq!(hook.prepared[&b"s1".to_vec()].results, Some(results));
    }

    #[test]
    fn command_complete_gets_its_verb_back() {
        let insert = CommandComplete::decode(b"INSERT 0 3\0").unwrap();
        let patched = patched_command_complete(&insert, Some(TagVerb::Update)).unwrap();
        assert_eq!(&patched[..], b"C\0\0\0\x0dUPDATE 3\0");
        assert!(patched_command_complete(&insert, None).is_none());
        let select = CommandComplete::decode(b"SELECT\0").unwrap();
        assert!(patched_command_complete(&select, Some(TagVerb::Delete)).is_none());
        assert!(CommandComplete::decode(b"garbage").is_err());
    }

    #[test]
    fn a_staged_copy_error_names_the_table() {
        let body = b"SERROR\0C22P02\0Minvalid input syntax for type integer: \"x\"\0WCOPY __duet_copy, line 1, column n: \"x\"\0\0";
        let error = ErrorResponse::decode(body).unwrap();
        let renamed = copy_error_renamed(&error, "__duet_copy", "items").unwrap();
        assert_eq!(
            &renamed[5..],
            &b"SERROR\0C22P02\0Minvalid input syntax for type integer: \"x\"\0WCOPY items, line 1, column n: \"x\"\0\0"[..]
        );
        assert_eq!(
            renamed.len(),
            body.len() + 5 - "__duet_copy".len() + "items".len()
        );
        let no_context = ErrorResponse::decode(b"SERROR\0Mno context\0\0").unwrap();
        assert!(copy_error_renamed(&no_context, "__duet_copy", "t").is_none());
        assert!(ErrorResponse::decode(b"SERROR\0Mtruncated").is_err());
    }

    #[test]
    fn recognises_the_cached_plan_error_and_deallocations() {
        let body = b"SERROR\0C0A000\0Mcached plan must not change result type\0\0";
        assert!(is_cached_plan_error(&ErrorResponse::decode(body).unwrap()));
        let other = ErrorResponse::decode(b"SERROR\0C0A000\0Mother\0\0").unwrap();
        assert!(!is_cached_plan_error(&other));
        assert_eq!(deallocation(b"  DISCARD ALL;"), Some(None));
        assert_eq!(deallocation(b"deallocate prepare all"), Some(None));
        assert_eq!(deallocation(b"DEALLOCATE S_1"), Some(Some(b"s_1".to_vec())));
        assert_eq!(
            deallocation(b"deallocate \"S_1\""),
            Some(Some(b"S_1".to_vec()))
        );
        assert_eq!(deallocation(b"select 1"), None);
    }
}

#[cfg(test)]
mod names_tests {
    use super::*;

    #[test]
    fn a_session_is_sure_of_its_names_only_while_its_path_starts_with_the_schema() {
        let app = vec!["app".to_owned()];
        let mut names = Names {
            search_path: SearchPath::Schemas(app.clone()),
            at_startup: SearchPath::Schemas(app.clone()),
            temporary: false,
        };
        assert!(names.sure_of(&app));
        assert!(names.sure_of(&[]), "qualified names are always exact");
        names.follow("SET search_path TO other, app");
        assert!(!names.sure_of(&app));
        names.follow("RESET search_path");
        assert!(names.sure_of(&app), "back to the startup packet's path");
        names.follow("CREATE TEMP TABLE t (id int)");
        assert!(!names.sure_of(&app));
        names.follow("DISCARD ALL");
        assert!(names.sure_of(&app));
        names.follow("SELECT set_config('search_path', 'x', false)");
        assert!(!names.sure_of(&app));
        assert!(Names::default().sure_of(&["public".to_owned()]));
        assert!(!Names::default().sure_of(&app));
    }
}
