//! What the hook does with the client's messages while tables are under migration: rewrites or
//! refuses Query and Parse texts, follows Bind, Execute and Close to patch the answers, and
//! remembers named statements (also while nothing is routed, so a route published later can
//! prepare them again).

use std::sync::Arc;

use bytes::Bytes;
use duet_shadow::rewrite::{touches, Protocol};

use super::decide::{
    bare_refusal, decide, encoding_refusal, oversized_refusal, protocol_of, refusal_of, Decision,
};
use super::prepared::deallocation;
use super::{DualWrite, Expect, HookContext, Patch, Position, Prepared, MAX_HELD};
use crate::routes::{Cached, Published};
use crate::session::edit::Edit;
use crate::wire::frame::{Frame, HEADER_LEN};
use crate::wire::frontend;
use crate::wire::messages::{Bind, Close, Execute, Message, Parse, Query, Target};

impl DualWrite {
    /// Whether the hook must see this client message whole before it is forwarded.
    pub(crate) fn needs_whole(&self, tag: u8) -> bool {
        match tag {
            frontend::QUERY | frontend::PARSE | frontend::CLOSE => true,
            frontend::BIND => !self.statement_patches.is_empty() || !self.portal_patches.is_empty(),
            frontend::EXECUTE => !self.portal_patches.is_empty(),
            _ => false,
        }
    }

    /// Drops the rest of an oversized message at the start of `chunk`; whether scanning goes on.
    pub(crate) fn discard(&mut self, chunk: &[u8], pos: &mut usize, edits: &mut Vec<Edit>) -> bool {
        let n = self.discard.min(chunk.len());
        edits.push(Edit::remove_range(0, n));
        self.discard -= n;
        *pos = n;
        self.discard == 0
    }

    /// Handles one client message while routes are active (before the tracker counts it).
    /// Returns `true` when the message was oversized and replaced, and the rest of the chunk
    /// belongs to it (the caller stops scanning).
    pub(crate) fn client_frame(
        &mut self,
        cx: &HookContext<'_>,
        at: Position,
        published: &mut Option<Arc<Published>>,
        frame: &Frame,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> bool {
        let seq = at.request;
        let body = frame.body(chunk);
        match frame.tag {
            frontend::QUERY | frontend::PARSE => {
                let published = published.get_or_insert_with(|| cx.routes.current());
                let Some(body) = body else {
                    if frame.wire_len <= MAX_HELD {
                        return false;
                    }
                    // Too large to check: refuse it, and drop what is still to come of it.
                    let cached = bare_refusal(published.epoch, oversized_refusal());
                    self.refuse(cx, frame, chunk.len(), at, b"", b"\0\0", cached, edits);
                    self.discard = frame.end() - chunk.len();
                    return true;
                };
                self.statement(cx, at, published, frame, body, edits);
            }
            frontend::BIND => {
                // Only the names at its start matter: a Bind too large to hold (huge parameters)
                // is read from what has arrived.
                let bind = body
                    .or_else(|| chunk.get(frame.start + HEADER_LEN..))
                    .and_then(|bytes| Bind::decode(bytes).ok());
                let Some(Bind {
                    portal, statement, ..
                }) = bind
                else {
                    // Names not seen: forget every portal's patch rather than misapply one.
                    self.portal_patches.clear();
                    return false;
                };
                match self.statement_patches.get(statement).cloned() {
                    Some(patch) => {
                        self.portal_patches.insert(portal.to_vec(), patch);
                    }
                    None => {
                        self.portal_patches.remove(portal);
                    }
                }
            }
            frontend::EXECUTE => {
                let patch = body
                    .and_then(|body| Execute::decode(body).ok())
                    .and_then(|execute| self.portal_patches.get(execute.portal));
                let (verb, unrewritten) = match patch {
                    // A refused text forwarded unchanged (`unrewritable_writes = "pass"`).
                    Some(p) if p.cached.result.is_err() => (p.verb, Some(p.cached.clone())),
                    Some(p) => {
                        p.cached.count_dual_writes(1);
                        (p.verb, None)
                    }
                    None => (None, None),
                };
                if let Some(cached) = unrewritten {
                    self.note_unrewritten(&cached);
                }
                self.push(seq, at.batch_executes, Expect::Complete(verb));
                self.batch_entries += 1;
            }
            frontend::CLOSE => {
                if let Some(close) = body.and_then(|body| Close::decode(body).ok()) {
                    self.closed(&close);
                }
            }
            _ => {}
        }
        false
    }

    /// A Close read whole: forget the statement or portal.
    fn closed(&mut self, close: &Close<'_>) {
        match close.target {
            Target::Statement => self.close_statement(close.name),
            Target::Portal => {
                self.portal_patches.remove(close.name);
            }
        }
    }

    /// A whole Query or Parse under active routes.
    fn statement(
        &mut self,
        cx: &HookContext<'_>,
        at: Position,
        published: &Arc<Published>,
        frame: &Frame,
        body: &[u8],
        edits: &mut Vec<Edit>,
    ) {
        let protocol = protocol_of(frame.tag);
        let (name, sql, params) = if protocol == Protocol::Simple {
            match Query::decode(body) {
                Ok(query) => (&b""[..], query.text, &b""[..]),
                Err(_) => return,
            }
        } else {
            match Parse::decode(body) {
                Ok(parse) => (parse.name, parse.text, parse.parameters),
                Err(_) => return,
            }
        };
        if protocol == Protocol::Simple && !self.prepared.is_empty() {
            self.deallocated(sql);
        }
        let text = match std::str::from_utf8(sql) {
            Ok(text) => text,
            Err(_) => {
                if touches(&String::from_utf8_lossy(sql), &published.routes) {
                    let cached = bare_refusal(published.epoch, encoding_refusal());
                    self.refuse(cx, frame, frame.end(), at, name, params, cached, edits);
                }
                return;
            }
        };
        let cached = if touches(text, &published.routes) {
            Some(cx.routes.rewrite(published, text, protocol))
        } else {
            None
        };
        let policy = cx.policy;
        let decision = cached
            .as_deref()
            .map_or(Decision::Unchanged, |c| decide(c, policy, &self.names));
        if protocol == Protocol::Extended && !name.is_empty() {
            if matches!(decision, Decision::Refused) {
                self.prepared.remove(name);
            } else {
                self.prepared.insert(
                    name.to_vec(),
                    Prepared {
                        sql: text.to_owned(),
                        params: Bytes::copy_from_slice(params),
                        epoch: published.epoch,
                        published: Some(published.clone()),
                        results: None,
                    },
                );
            }
        }
        match (decision, &cached) {
            (Decision::Changed(rewritten, patches), Some(cached)) => {
                if protocol == Protocol::Simple {
                    cached.count_dual_writes(cached.rewritten_statements());
                    for patch in patches {
                        self.push(at.request, at.batch_executes, Expect::for_statement(patch));
                    }
                    edits.push(Edit::replace(
                        frame,
                        frame.end(),
                        Query::new(rewritten).to_bytes(),
                    ));
                } else {
                    let verb = patches.first().and_then(|p| p.command_tag);
                    let parse = Parse {
                        name,
                        text: rewritten.as_bytes(),
                        parameters: params,
                    };
                    edits.push(Edit::replace(frame, frame.end(), parse.to_bytes()));
                    let cached = cached.clone();
                    self.statement_patches
                        .insert(name.to_vec(), Patch { verb, cached });
                }
            }
            (Decision::Passed, Some(cached)) => {
                // Forwarded unchanged; counted when its transaction ends (a prepared one per
                // execution), so the controller knows the shadow may have drifted.
                if protocol == Protocol::Simple {
                    self.note_unrewritten(cached);
                } else {
                    let cached = cached.clone();
                    self.statement_patches
                        .insert(name.to_vec(), Patch { verb: None, cached });
                }
            }
            (Decision::Refused, Some(cached)) => {
                let cached = cached.clone();
                self.refuse(cx, frame, frame.end(), at, name, params, cached, edits);
            }
            _ => {
                if protocol == Protocol::Extended {
                    self.statement_patches.remove(name);
                }
            }
        }
    }

    /// Replaces `frame.start..end` by a statement that fails at parse time, and queues the
    /// refusal that replaces its error.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        cx: &HookContext<'_>,
        frame: &Frame,
        end: usize,
        at: Position,
        name: &[u8],
        params: &[u8],
        cached: Arc<Cached>,
        edits: &mut Vec<Edit>,
    ) {
        let marker = self.marker();
        let bytes = if frame.tag == frontend::QUERY {
            Query::new(&marker).to_bytes()
        } else {
            self.statement_patches.remove(name);
            Parse {
                name,
                text: marker.as_bytes(),
                parameters: params,
            }
            .to_bytes()
        };
        cached.count_refusal();
        if let Some(refusal) = refusal_of(&cached) {
            tracing::debug!(session = cx.session, %refusal, "statement refused");
        }
        self.push(at.request, at.batch_executes, Expect::Refused(cached));
        edits.push(Edit::replace(frame, end, bytes));
    }

    /// A Query that may drop prepared statements (`DISCARD ALL`, `DEALLOCATE …`).
    fn deallocated(&mut self, sql: &[u8]) {
        match deallocation(sql) {
            Some(None) => self.forget_all(),
            Some(Some(name)) => self.close_statement(&name),
            None => {}
        }
    }

    /// With nothing routed: remember named Parses (so a route published later can re-prepare
    /// them) and forget closed ones. Only messages complete in the chunk; nothing is held.
    pub(crate) fn remember_unrouted(&mut self, cx: &HookContext<'_>, frame: &Frame, chunk: &[u8]) {
        let Some(body) = frame.body(chunk) else {
            return;
        };
        match frame.tag {
            frontend::PARSE => {
                let Ok(Parse {
                    name,
                    text,
                    parameters,
                }) = Parse::decode(body)
                else {
                    return;
                };
                if name.is_empty() {
                    return;
                }
                match std::str::from_utf8(text) {
                    Ok(sql) => {
                        self.prepared.insert(
                            name.to_vec(),
                            Prepared {
                                sql: sql.to_owned(),
                                params: Bytes::copy_from_slice(parameters),
                                epoch: cx.routes.epoch(),
                                published: None,
                                results: None,
                            },
                        );
                    }
                    Err(_) => {
                        self.prepared.remove(name);
                    }
                }
            }
            frontend::CLOSE => {
                if let Ok(close) = Close::decode(body) {
                    self.closed(&close);
                }
            }
            frontend::QUERY => {
                if let Ok(query) = Query::decode(body) {
                    self.deallocated(query.text);
                }
            }
            _ => {}
        }
    }
}
