//! The client's side of a pooled connection: its messages translated for the connection that
//! serves it now — prepared-statement names by content ([`super::statements`]), session state
//! that could not follow the client refused ([`super::hazards`]), each message's answer noted as
//! owed ([`super::expect`]) — and the prepare-only batches duet answers without a connection.

use bytes::{Bytes, BytesMut};

use super::backend_pool::{BackendPool, PooledConn};
use super::expect::{Kind, Owed, Owing};
use super::frames::next_message;
use super::hazards;
use super::link::{ClientState, LinkError};
use super::statements::{self, Prepared, SearchPath};
use crate::wire::backend as tag;
use crate::wire::frontend;
use crate::wire::messages::{Bind, Close, Describe, Message, Parse, Query, Target};

/// The setting that decides which tables a statement's names resolve to.
const SEARCH_PATH: &str = "search_path";

/// Where an attached connection stands.
#[derive(Debug)]
pub(super) struct Position {
    pub owing: Owing,
    /// Extended-protocol messages were sent since the last Sync.
    pub in_batch: bool,
    /// The last ReadyForQuery's transaction status.
    pub status: u8,
    /// A statement may have changed the session's settings: read them back before release.
    pub settings_dirty: bool,
    /// A statement may have changed the schema: move the schema generation on again when the
    /// transaction ends, so statements parsed before its commit are not reused after it.
    pub schema_changed: bool,
}

impl Position {
    /// A connection just attached: nothing owed, no batch or transaction open.
    pub fn new() -> Position {
        Position {
            owing: Owing::default(),
            in_batch: false,
            status: b'I',
            settings_dirty: false,
            schema_changed: false,
        }
    }

    /// Nothing is owed and no batch or transaction is open: the connection may serve another
    /// client.
    pub fn is_idle(&self) -> bool {
        self.owing.is_empty() && !self.in_batch && self.status == b'I'
    }
}

/// Translates the whole messages at the start of `up` into `out` for `conn`. Returns whether
/// the session sent Terminate (which is not forwarded: the connection is the pool's).
pub(super) fn translate(
    up: &mut BytesMut,
    out: &mut BytesMut,
    conn: &mut PooledConn,
    client: &mut ClientState,
    at: &mut Position,
) -> Result<bool, LinkError> {
    while let Some((message, len)) = next_message(up).map_err(|_| LinkError::SessionMessage)? {
        let frame = up.split_to(len).freeze();
        let body = &frame[5..];
        match message {
            frontend::TERMINATE => return Ok(true),
            frontend::QUERY => {
                let Ok(query) = Query::decode(body) else {
                    at.owing.push(Owed::Answer(Kind::UntilReady));
                    out.extend_from_slice(&frame);
                    continue;
                };
                // SQL `EXECUTE name` of a statement the client prepared with Parse: the backend
                // knows it by its backend name (prepared here first if this connection lacks it).
                if let Some((text, _)) =
                    executed_by_backend_name(query.text, out, conn, client, at, true)
                {
                    at.owing.push(Owed::Answer(Kind::UntilReady));
                    Query { text: &text }.encode(out);
                    continue;
                }
                at.owing.push(Owed::Answer(Kind::UntilReady));
                let scan = hazards::scan(query.text);
                at.settings_dirty |= scan.settings;
                note_schema_change(&scan, at);
                if let Some(refusal) = scan.refusal {
                    Query {
                        text: refusal.substitute().as_bytes(),
                    }
                    .encode(out);
                    continue;
                }
                if scan.drops_statements {
                    client.statements.clear();
                    conn.statements.clear();
                }
                if let Some(name) = scan.deallocate {
                    if let Some(prepared) = client.statements.forget(name.as_bytes()) {
                        let text = if conn.statements.has(&prepared.backend_name) {
                            conn.statements.remove(&prepared.backend_name);
                            format!(
                                "DEALLOCATE \"{}\"",
                                String::from_utf8_lossy(&prepared.backend_name)
                            )
                        } else {
                            conn.statements.clear();
                            "DEALLOCATE ALL".to_owned()
                        };
                        Query {
                            text: text.as_bytes(),
                        }
                        .encode(out);
                        continue;
                    }
                }
                out.extend_from_slice(&frame);
            }
            frontend::PARSE => {
                at.in_batch = true;
                let Ok(parse) = Parse::decode(body) else {
                    at.owing.push(Owed::Answer(Kind::Parse));
                    out.extend_from_slice(&frame);
                    continue;
                };
                // `EXPLAIN … EXECUTE name` prepared itself (sqlx's describe): as for a Query,
                // within the client's batch (its Sync ends it).
                let executes;
                let mut needs = None;
                let parse = match executed_by_backend_name(parse.text, out, conn, client, at, false)
                {
                    Some((text, inner)) => {
                        executes = text;
                        needs = Some(Box::new(inner));
                        Parse {
                            text: &executes,
                            ..parse
                        }
                    }
                    None => parse,
                };
                let scan = hazards::scan(parse.text);
                at.settings_dirty |= scan.settings;
                note_schema_change(&scan, at);
                let substitute;
                let parse = match scan.refusal {
                    Some(refusal) => {
                        substitute = refusal.substitute();
                        Parse {
                            text: substitute.as_bytes(),
                            ..parse
                        }
                    }
                    None => parse,
                };
                if parse.name.is_empty() {
                    at.owing.push(Owed::Answer(Kind::Parse));
                    parse.encode(out);
                    continue;
                }
                // A SET in this transaction is read back only when it ends.
                let path = if at.settings_dirty {
                    SearchPath::Unknown
                } else {
                    SearchPath::Known(client.settings.get(SEARCH_PATH))
                };
                let mut prepared = Prepared::of(&parse, path);
                prepared.changes_settings = scan.settings;
                prepared.changes_schema = scan.schema_change && scan.refusal.is_none();
                prepared.needs = needs;
                client.statements.define(parse.name, prepared.clone());
                if conn.statements.has(&prepared.backend_name) {
                    at.owing.push(Owed::Synthetic(tag::PARSE_COMPLETE));
                } else {
                    out.extend_from_slice(&prepared.parse);
                    conn.statements.add(prepared.backend_name.clone());
                    at.owing.push(Owed::Parse {
                        backend_name: prepared.backend_name,
                        client_name: Some(Bytes::copy_from_slice(parse.name)),
                        injected: false,
                    });
                }
            }
            frontend::BIND => {
                at.in_batch = true;
                let renamed = match Bind::decode(body) {
                    Ok(bind) if !bind.statement.is_empty() => {
                        ensure_prepared(bind.statement, out, conn, client, at)
                            .map(|name| (bind, name))
                    }
                    _ => None,
                };
                // After the injected Parse's entry, if there is one.
                at.owing.push(Owed::Answer(Kind::Bind));
                match renamed {
                    Some((bind, backend_name)) => Bind {
                        statement: &backend_name,
                        ..bind
                    }
                    .encode(out),
                    None => out.extend_from_slice(&frame),
                }
            }
            frontend::DESCRIBE => {
                at.in_batch = true;
                match Describe::decode(body) {
                    Ok(describe) if describe.target == Target::Statement => {
                        let kind = Owed::Answer(Kind::DescribeStatement);
                        if describe.name.is_empty() {
                            at.owing.push(kind);
                            out.extend_from_slice(&frame);
                            continue;
                        }
                        let renamed = ensure_prepared(describe.name, out, conn, client, at);
                        at.owing.push(kind);
                        match renamed {
                            Some(backend_name) => Describe {
                                target: Target::Statement,
                                name: &backend_name,
                            }
                            .encode(out),
                            None => out.extend_from_slice(&frame),
                        }
                    }
                    _ => {
                        at.owing.push(Owed::Answer(Kind::DescribePortal));
                        out.extend_from_slice(&frame);
                    }
                }
            }
            frontend::CLOSE => {
                at.in_batch = true;
                match Close::decode(body) {
                    Ok(close) if close.target == Target::Statement && !close.name.is_empty() => {
                        // duet keeps the statement on the backend (other clients may share it)
                        // and answers for it; the client's name is gone, as PostgreSQL says.
                        client.statements.forget(close.name);
                        at.owing.push(Owed::Synthetic(tag::CLOSE_COMPLETE));
                    }
                    _ => {
                        at.owing.push(Owed::Answer(Kind::Close));
                        out.extend_from_slice(&frame);
                    }
                }
            }
            frontend::EXECUTE => {
                at.in_batch = true;
                at.owing.push(Owed::Answer(Kind::Execute));
                out.extend_from_slice(&frame);
            }
            frontend::SYNC => {
                at.in_batch = false;
                at.owing.push(Owed::Answer(Kind::UntilReady));
                out.extend_from_slice(&frame);
            }
            frontend::FUNCTION_CALL => {
                at.owing.push(Owed::Answer(Kind::UntilReady));
                out.extend_from_slice(&frame);
            }
            frontend::FLUSH => {
                at.in_batch = true;
                out.extend_from_slice(&frame);
            }
            _ => out.extend_from_slice(&frame),
        }
    }
    Ok(false)
}

/// A statement that may change the schema moves the generation on as it is sent (statements
/// parsed from now on get new names) and again when its transaction ends ([`Position`]).
fn note_schema_change(scan: &hazards::Scan, at: &mut Position) {
    if scan.schema_change && scan.refusal.is_none() {
        statements::schema_changed();
        at.schema_changed = true;
    }
}

/// A client's named statement is bound or described for running: what running it may change
/// is noted as if its text had been sent now. (A `SET` prepared in one transaction and executed
/// in a later one changes the connection's settings in that later one: without this, it was
/// never read back, and the next client of the connection inherited it.)
fn note_effects(prepared: &Prepared, at: &mut Position) {
    at.settings_dirty |= prepared.changes_settings;
    if prepared.changes_schema {
        statements::schema_changed();
        at.schema_changed = true;
    }
}

/// The text of a SQL `EXECUTE name …` (or `EXPLAIN … EXECUTE name …`) naming a statement the
/// client prepared with Parse, with the name its backend knows; the statement is prepared on
/// `conn` first when it lacks it — for a Query followed by duet's own Sync (`sync`), so that a
/// failing Parse cannot make the server skip the Query. `None` for any other text (it goes as it
/// is; the server answers for names it does not know, as it would).
fn executed_by_backend_name(
    text: &[u8],
    out: &mut BytesMut,
    conn: &mut PooledConn,
    client: &ClientState,
    at: &mut Position,
    sync: bool,
) -> Option<(Vec<u8>, Prepared)> {
    let (start, end) = hazards::executed_statement(text)?;
    let prepared = client.statements.get(text.get(start..end)?)?;
    note_effects(prepared, at);
    let backend_name = prepared.backend_name.clone();
    if !conn.statements.has(&backend_name) {
        inject_parse(prepared, out, conn, at);
        if sync {
            out.extend_from_slice(&[frontend::SYNC, 0, 0, 0, 4]);
            at.owing.push(Owed::Own(Kind::UntilReady));
        }
    }
    let mut renamed = Vec::with_capacity(text.len() + backend_name.len() + 2);
    renamed.extend_from_slice(&text[..start]);
    renamed.push(b'"');
    renamed.extend_from_slice(&backend_name);
    renamed.push(b'"');
    renamed.extend_from_slice(&text[end..]);
    Some((renamed, prepared.clone()))
}

/// Writes `prepared`'s Parse to `out` for `conn` (after the statement it runs, when `conn` lacks
/// that one too); its ParseComplete is duet's.
fn inject_parse(prepared: &Prepared, out: &mut BytesMut, conn: &mut PooledConn, at: &mut Position) {
    if let Some(inner) = prepared.needs.as_deref() {
        if !conn.statements.has(&inner.backend_name) {
            inject_parse(inner, out, conn, at);
        }
    }
    out.extend_from_slice(&prepared.parse);
    conn.statements.add(prepared.backend_name.clone());
    at.owing.push(Owed::Parse {
        backend_name: prepared.backend_name.clone(),
        client_name: None,
        injected: true,
    });
}

/// The backend name of the client's statement `name`, with its Parse written to `out` first
/// when `conn` does not have it yet. `None` when the client has no such statement: the message
/// goes as it is, and the server says so in its own words.
fn ensure_prepared(
    name: &[u8],
    out: &mut BytesMut,
    conn: &mut PooledConn,
    client: &ClientState,
    at: &mut Position,
) -> Option<Bytes> {
    let prepared = client.statements.get(name)?;
    note_effects(prepared, at);
    if !conn.statements.has(&prepared.backend_name) {
        inject_parse(prepared, out, conn, at);
    }
    Some(prepared.backend_name.clone())
}

/// Answers, without a backend connection, a batch that only prepares statements this pool's
/// connections have already prepared without error — named Parses and a Sync, as libpq's
/// `PQprepare` sends them: ParseComplete each, then ReadyForQuery (idle: no transaction is open
/// between transactions). Besides saving a round trip, this keeps a client that prepares
/// synchronously while its other connections hold every pooled connection (pgbench -M prepared
/// with more clients than threads) from waiting on itself. `None` (and `up` untouched) for any
/// other batch.
pub(super) fn answer_locally(
    up: &mut BytesMut,
    client: &mut ClientState,
    pool: &BackendPool,
) -> Option<Vec<u8>> {
    let mut at = 0;
    let mut statements = Vec::new();
    loop {
        let (message, len) = next_message(&up[at..]).ok()??;
        let frame = &up[at..at + len];
        at += len;
        match message {
            frontend::PARSE => {
                let parse = Parse::decode(&frame[5..]).ok()?;
                if parse.name.is_empty() || hazards::scan(parse.text) != hazards::Scan::default() {
                    return None;
                }
                // Between transactions: the settings were read back.
                let path = SearchPath::Known(client.settings.get(SEARCH_PATH));
                let prepared = Prepared::of(&parse, path);
                if !pool.is_known(&prepared.backend_name) {
                    return None;
                }
                statements.push((Bytes::copy_from_slice(parse.name), prepared));
            }
            frontend::SYNC if !statements.is_empty() && at == up.len() => break,
            _ => return None,
        }
    }
    let mut answers = Vec::with_capacity(statements.len() * 5 + 6);
    for (name, prepared) in statements {
        client.statements.define(&name, prepared);
        answers.extend_from_slice(&[tag::PARSE_COMPLETE, 0, 0, 0, 4]);
    }
    answers.extend_from_slice(&[tag::READY_FOR_QUERY, 0, 0, 0, 5, b'I']);
    up.clear();
    Some(answers)
}
