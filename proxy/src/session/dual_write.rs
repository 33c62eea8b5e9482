//! The dual-write hook inside the two forwarding loops: what the client→backend scan does with a
//! Query, Parse, Bind, Execute or Close while tables are under migration, the re-prepare it
//! injects at a transaction boundary after a route change, and what the backend→client scan
//! changes in the answers. The state and the message surgery live in [`super::hook`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use shadow::rewrite::result_shape::keep_result_shape;
use shadow::rewrite::{touches, Protocol};

use super::forward::Shared;
use super::hook::{
    copy_error_renamed, deallocation, decide, encoding_refusal, is_cached_plan_error,
    is_duplicate_statement_error, oversized_refusal, patched_command_complete, protocol_of,
    refusal_error, refusal_of, Decision, Edit, Expect, Patch, Prepared, MAX_HELD,
};
use super::track::Tracker;
use crate::routes::{Cached, Published};
use crate::wire::frame::{Frame, HEADER_LEN};
use crate::wire::messages::{
    Bind, Close, CommandComplete, ErrorResponse, Execute, Message, ParameterDescription, Parse,
    Query, RowDescription, Sync, Target,
};
use crate::wire::{backend, frontend};

/// What the downstream scan does with one backend message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BackendHook {
    /// Stream it as usual.
    Pass,
    /// It must be read whole and is not: keep it for the next read.
    Incomplete,
    /// Handled whole (perhaps replaced through an edit).
    Done,
}

fn replace(frame: &Frame, end: usize, bytes: BytesMut) -> Edit {
    Edit {
        start: frame.start,
        end,
        bytes: bytes.freeze(),
    }
}

fn remove(frame: &Frame) -> Edit {
    Edit {
        start: frame.start,
        end: frame.end(),
        bytes: Bytes::new(),
    }
}

/// A cache-less refusal (oversized or undecodable text): counted nowhere, sent like any other.
fn bare_refusal(epoch: u64, refusal: shadow::rewrite::Refusal) -> Arc<Cached> {
    Arc::new(Cached {
        epoch,
        result: Err(refusal),
        tables: Vec::new(),
        renamed: false,
        unqualified: Vec::new(),
    })
}

impl Shared<'_> {
    /// Whether the hook must see this client message whole before it is forwarded.
    pub(super) fn needs_whole(&self, tracker: &Tracker, tag: u8) -> bool {
        match tag {
            frontend::QUERY | frontend::PARSE | frontend::CLOSE => true,
            frontend::BIND => {
                !tracker.hook.statement_patches.is_empty()
                    || !tracker.hook.portal_patches.is_empty()
            }
            frontend::EXECUTE => !tracker.hook.portal_patches.is_empty(),
            _ => false,
        }
    }

    /// Drops the rest of an oversized message at the start of `chunk`; whether scanning goes on.
    pub(super) fn discard(
        &self,
        tracker: &mut Tracker,
        chunk: &[u8],
        pos: &mut usize,
        edits: &mut Vec<Edit>,
    ) -> bool {
        let n = tracker.hook.discard.min(chunk.len());
        edits.push(Edit {
            start: 0,
            end: n,
            bytes: Bytes::new(),
        });
        tracker.hook.discard -= n;
        *pos = n;
        tracker.hook.discard == 0
    }

    /// Handles one client message while routes are active (before the tracker counts it).
    /// Returns `true` when the message was oversized and replaced, and the rest of the chunk
    /// belongs to it (the caller stops scanning).
    pub(super) fn hook_client_frame(
        &self,
        tracker: &mut Tracker,
        published: &mut Option<Arc<Published>>,
        frame: &Frame,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> bool {
        // The request these messages' answers belong to: a Query's own, or the Sync ending the
        // batch of a Parse or Execute.
        let seq = tracker.requests;
        let body = frame.body(chunk);
        match frame.tag {
            frontend::QUERY | frontend::PARSE => {
                let published = published.get_or_insert_with(|| self.ctx.routes.current());
                let Some(body) = body else {
                    if frame.wire_len <= MAX_HELD {
                        return false;
                    }
                    // Too large to check: refuse it, and drop what is still to come of it.
                    let cached = bare_refusal(published.epoch, oversized_refusal());
                    self.refuse(
                        tracker,
                        frame,
                        chunk.len(),
                        seq,
                        b"",
                        b"\0\0",
                        cached,
                        edits,
                    );
                    tracker.hook.discard = frame.end() - chunk.len();
                    return true;
                };
                self.hook_statement(tracker, published, frame, body, seq, edits);
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
                    tracker.hook.portal_patches.clear();
                    return false;
                };
                match tracker.hook.statement_patches.get(statement).cloned() {
                    Some(patch) => {
                        tracker.hook.portal_patches.insert(portal.to_vec(), patch);
                    }
                    None => {
                        tracker.hook.portal_patches.remove(portal);
                    }
                }
            }
            frontend::EXECUTE => {
                let patch = body
                    .and_then(|body| Execute::decode(body).ok())
                    .and_then(|execute| tracker.hook.portal_patches.get(execute.portal));
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
                    tracker.hook.note_unrewritten(&cached);
                }
                let executes = tracker.batch_executes;
                tracker.hook.push(seq, executes, Expect::Complete(verb));
                tracker.hook.batch_entries += 1;
            }
            frontend::CLOSE => {
                if let Some(close) = body.and_then(|body| Close::decode(body).ok()) {
                    self.closed(tracker, &close);
                }
            }
            _ => {}
        }
        false
    }

    /// A Close read whole: forget the statement or portal.
    fn closed(&self, tracker: &mut Tracker, close: &Close<'_>) {
        match close.target {
            Target::Statement => tracker.hook.close_statement(close.name),
            Target::Portal => {
                tracker.hook.portal_patches.remove(close.name);
            }
        }
    }

    /// A whole Query or Parse under active routes.
    fn hook_statement(
        &self,
        tracker: &mut Tracker,
        published: &Arc<Published>,
        frame: &Frame,
        body: &[u8],
        seq: u64,
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
        if protocol == Protocol::Simple && !tracker.hook.prepared.is_empty() {
            self.deallocated(tracker, sql);
        }
        let text = match std::str::from_utf8(sql) {
            Ok(text) => text,
            Err(_) => {
                if touches(&String::from_utf8_lossy(sql), &published.routes) {
                    let cached = bare_refusal(published.epoch, encoding_refusal());
                    self.refuse(
                        tracker,
                        frame,
                        frame.end(),
                        seq,
                        name,
                        params,
                        cached,
                        edits,
                    );
                }
                return;
            }
        };
        let cached = if touches(text, &published.routes) {
            Some(self.ctx.routes.rewrite(published, text, protocol))
        } else {
            None
        };
        let policy = self.ctx.config.migration.unrewritable_writes;
        let decision = cached.as_deref().map_or(Decision::Unchanged, |c| {
            decide(c, policy, &tracker.hook.names)
        });
        if protocol == Protocol::Extended && !name.is_empty() {
            if matches!(decision, Decision::Refused) {
                tracker.hook.prepared.remove(name);
            } else {
                tracker.hook.prepared.insert(
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
                    let executes = tracker.batch_executes;
                    for patch in patches {
                        tracker
                            .hook
                            .push(seq, executes, Expect::for_statement(patch));
                    }
                    edits.push(replace(
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
                    edits.push(replace(frame, frame.end(), parse.to_bytes()));
                    let cached = cached.clone();
                    tracker
                        .hook
                        .statement_patches
                        .insert(name.to_vec(), Patch { verb, cached });
                }
            }
            (Decision::Passed, Some(cached)) => {
                // Forwarded unchanged; counted when its transaction ends (a prepared one per
                // execution), so the controller knows the shadow may have drifted.
                if protocol == Protocol::Simple {
                    tracker.hook.note_unrewritten(cached);
                } else {
                    let cached = cached.clone();
                    tracker
                        .hook
                        .statement_patches
                        .insert(name.to_vec(), Patch { verb: None, cached });
                }
            }
            (Decision::Refused, Some(cached)) => {
                let cached = cached.clone();
                self.refuse(
                    tracker,
                    frame,
                    frame.end(),
                    seq,
                    name,
                    params,
                    cached,
                    edits,
                );
            }
            _ => {
                if protocol == Protocol::Extended {
                    tracker.hook.statement_patches.remove(name);
                }
            }
        }
    }

    /// Replaces `frame.start..end` by a statement that fails at parse time, and queues the
    /// refusal that replaces its error.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &self,
        tracker: &mut Tracker,
        frame: &Frame,
        end: usize,
        seq: u64,
        name: &[u8],
        params: &[u8],
        cached: Arc<Cached>,
        edits: &mut Vec<Edit>,
    ) {
        let marker = tracker.hook.marker();
        let bytes = if frame.tag == frontend::QUERY {
            Query::new(&marker).to_bytes()
        } else {
            tracker.hook.statement_patches.remove(name);
            Parse {
                name,
                text: marker.as_bytes(),
                parameters: params,
            }
            .to_bytes()
        };
        cached.count_refusal();
        if let Some(refusal) = refusal_of(&cached) {
            tracing::debug!(session = self.info.id, %refusal, "statement refused");
        }
        let executes = tracker.batch_executes;
        tracker.hook.push(seq, executes, Expect::Refused(cached));
        edits.push(replace(frame, end, bytes));
    }

    /// A Query that may drop prepared statements (`DISCARD ALL`, `DEALLOCATE …`).
    fn deallocated(&self, tracker: &mut Tracker, sql: &[u8]) {
        match deallocation(sql) {
            Some(None) => tracker.hook.forget_all(),
            Some(Some(name)) => tracker.hook.close_statement(&name),
            None => {}
        }
    }

    /// With nothing routed: remember named Parses (so a route published later can re-prepare
    /// them) and forget closed ones. Only messages complete in the chunk; nothing is held.
    pub(super) fn remember_unrouted(&self, tracker: &mut Tracker, frame: &Frame, chunk: &[u8]) {
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
                        tracker.hook.prepared.insert(
                            name.to_vec(),
                            Prepared {
                                sql: sql.to_owned(),
                                params: Bytes::copy_from_slice(parameters),
                                epoch: self.ctx.routes.epoch(),
                                published: None,
                                results: None,
                            },
                        );
                    }
                    Err(_) => {
                        tracker.hook.prepared.remove(name);
                    }
                }
            }
            frontend::CLOSE => {
                if let Ok(close) = Close::decode(body) {
                    self.closed(tracker, &close);
                }
            }
            frontend::QUERY => {
                if let Ok(query) = Query::decode(body) {
                    self.deallocated(tracker, query.text);
                }
            }
            _ => {}
        }
    }

    /// At a transaction boundary after a route change, a move of the session's `search_path` or
    /// a stale-plan error: prepares again every remembered statement whose text mentions a table
    /// that is or was routed, ahead of the
    /// client's message at `at`, each in a request of its own (Close, Parse, Sync) whose answer
    /// the downstream loop drops.
    pub(super) fn reprepare(&self, tracker: &mut Tracker, at: usize, edits: &mut Vec<Edit>) {
        let current = self.ctx.routes.current();
        let hook = &mut tracker.hook;
        let stale = std::mem::take(&mut hook.stale);
        let path_moved = std::mem::take(&mut hook.path_moved);
        let mut out = BytesMut::new();
        let mut count = 0usize;
        let mut dropped = Vec::new();
        for (name, prepared) in hook.prepared.iter_mut() {
            if !stale && !path_moved && prepared.epoch == current.epoch {
                continue;
            }
            let was = prepared
                .published
                .as_ref()
                .is_some_and(|old| touches(&prepared.sql, &old.routes));
            let is = touches(&prepared.sql, &current.routes);
            prepared.epoch = current.epoch;
            prepared.published = (!current.is_empty()).then(|| current.clone());
            // A statement on tables no migration touches is the client's business, as with
            // PostgreSQL alone: after a stale-plan error its client prepares it again itself (with
            // the result shape it now has), and duet must neither keep the shape it was first
            // described with nor drop it on a failed Parse.
            if !was && !is {
                continue;
            }
            let (text, patch) = if is {
                let cached = self
                    .ctx
                    .routes
                    .rewrite(&current, &prepared.sql, Protocol::Extended);
                match decide(
                    &cached,
                    self.ctx.config.migration.unrewritable_writes,
                    &hook.names,
                ) {
                    Decision::Unchanged => (prepared.sql.clone(), None),
                    Decision::Changed(sql, patches) => {
                        let verb = patches.first().and_then(|p| p.command_tag);
                        let sql = sql.to_owned();
                        (sql, Some(Patch { verb, cached }))
                    }
                    Decision::Passed => (prepared.sql.clone(), Some(Patch { verb: None, cached })),
                    Decision::Refused => {
                        // The statement is dropped; the client's next use of it fails.
                        if let Some(refusal) = refusal_of(&cached) {
                            tracing::info!(
                                session = self.info.id,
                                %refusal,
                                "a prepared statement is refused under the new routes"
                            );
                        }
                        Close::statement(name).encode(&mut out);
                        Sync.encode(&mut out);
                        hook.statement_patches.remove(name);
                        dropped.push(name.clone());
                        count += 1;
                        continue;
                    }
                }
            } else {
                (prepared.sql.clone(), None)
            };
            // A query keeps the result columns the client was first told about: a binary-format
            // client decodes by them (int4 stays int4 after the column became int8).
            let shaped = prepared
                .results
                .as_deref()
                .and_then(|columns| keep_result_shape(&text, columns));
            // One Sync per statement: a failed Parse makes the server skip to the next Sync, and
            // must not keep the statements after it from being prepared again.
            Close::statement(name).encode(&mut out);
            Parse {
                name,
                text: shaped.as_deref().unwrap_or(&text).as_bytes(),
                parameters: &prepared.params,
            }
            .encode(&mut out);
            Sync.encode(&mut out);
            if shaped.is_some() && patch.is_none() {
                // Should the shape no longer fit (the table gained a column), the statement is
                // prepared as the client wrote it instead of being lost: this second Parse fails
                // harmlessly (42P05) when the first one succeeded.
                Parse {
                    name,
                    text: text.as_bytes(),
                    parameters: &prepared.params,
                }
                .encode(&mut out);
                Sync.encode(&mut out);
                count += 1;
            }
            match patch {
                Some(patch) => {
                    hook.statement_patches.insert(name.clone(), patch);
                }
                None => {
                    hook.statement_patches.remove(name);
                }
            }
            count += 1;
        }
        hook.epoch = current.epoch;
        if out.is_empty() {
            return;
        }
        // Refused statements are gone from the server: forget them here too.
        for name in dropped {
            hook.prepared.remove(&name);
        }
        for _ in 0..count {
            let seq = tracker.requests;
            tracker.requests += 1;
            tracker.hook.expect.push_back((seq, Expect::Swallow));
        }
        tracing::debug!(
            session = self.info.id,
            statements = count,
            epoch = current.epoch,
            "preparing statements again after a route change"
        );
        edits.push(Edit {
            start: at,
            end: at,
            bytes: out.freeze(),
        });
    }

    /// Whether the answer being received belongs to an injected request.
    pub(super) fn swallowing(&self, tracker: &Tracker) -> bool {
        matches!(tracker.hook.front(tracker.answered), Some(Expect::Swallow))
    }

    /// One backend message other than ReadyForQuery, while the hook expects something or
    /// watches errors.
    pub(super) fn hook_backend_frame(
        &self,
        tracker: &mut Tracker,
        frame: &Frame,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> BackendHook {
        if frame.tag == backend::PARAMETER_DESCRIPTION && !tracker.hook.describes.is_empty() {
            let Some(body) = frame.body(chunk) else {
                return BackendHook::Incomplete;
            };
            tracker
                .hook
                .parameters_described(ParameterDescription::decode(body).ok().as_ref());
            // Injected requests never describe: this answer is the client's, forwarded as is.
            return BackendHook::Pass;
        }
        if matches!(frame.tag, backend::ROW_DESCRIPTION | backend::NO_DATA)
            && tracker.hook.rows_of.is_some()
        {
            if frame.tag == backend::NO_DATA {
                tracker.hook.rows_described(None);
            } else {
                let Some(body) = frame.body(chunk) else {
                    return BackendHook::Incomplete;
                };
                tracker
                    .hook
                    .rows_described(RowDescription::decode(body).ok().as_ref());
            }
            return BackendHook::Pass;
        }
        if frame.tag == backend::ERROR_RESPONSE {
            // The server skips the rest of the failed batch, Describes included: their answers
            // will not come, so the pending names can no longer be matched.
            tracker.hook.describes.clear();
            tracker.hook.rows_of = None;
        }
        let seq = tracker.answered;
        let front = tracker.hook.front(seq);
        let swallow = matches!(front, Some(Expect::Swallow));
        let interesting = swallow
            || (front.is_some()
                && matches!(
                    frame.tag,
                    backend::COMMAND_COMPLETE
                        | backend::EMPTY_QUERY_RESPONSE
                        | backend::PORTAL_SUSPENDED
                        | backend::ERROR_RESPONSE
                ))
            || (frame.tag == backend::ERROR_RESPONSE && !tracker.hook.prepared.is_empty());
        if !interesting {
            return BackendHook::Pass;
        }
        let Some(body) = frame.body(chunk) else {
            return BackendHook::Incomplete;
        };
        let error = (frame.tag == backend::ERROR_RESPONSE)
            .then(|| ErrorResponse::decode(body).ok())
            .flatten();
        if swallow {
            // 42P05: the fallback Parse of a statement whose first re-prepare succeeded.
            if frame.tag == backend::ERROR_RESPONSE
                && !error.as_ref().is_some_and(is_duplicate_statement_error)
            {
                tracing::warn!(
                    session = self.info.id,
                    error = %String::from_utf8_lossy(body).replace('\0', " "),
                    "preparing a statement again failed; its next use gets the server's error"
                );
            }
            edits.push(remove(frame));
            return BackendHook::Done;
        }
        if frame.tag == backend::ERROR_RESPONSE {
            if !tracker.hook.prepared.is_empty() && error.as_ref().is_some_and(is_cached_plan_error)
            {
                // The next transaction prepares every remembered statement again.
                tracker.hook.stale = true;
            }
            // An error ends the query string: a held COPY tag will not be reported.
            tracker.hook.held_copy = None;
            match tracker.hook.front(seq) {
                Some(Expect::Refused(cached)) => {
                    if let Some(refusal) = refusal_of(cached) {
                        edits.push(replace(frame, frame.end(), refusal_error(refusal)));
                    }
                    tracker.hook.finish(seq);
                }
                Some(Expect::HoldCopy { staging, table }) => {
                    let renamed = error
                        .as_ref()
                        .and_then(|error| copy_error_renamed(error, staging, table));
                    if let Some(renamed) = renamed {
                        edits.push(replace(frame, frame.end(), renamed));
                    }
                    tracker.hook.finish(seq);
                }
                Some(_) => tracker.hook.finish(seq),
                None => {}
            }
            return BackendHook::Done;
        }
        if !matches!(
            tracker.hook.front(seq),
            Some(Expect::Complete(_) | Expect::Drop | Expect::HoldCopy { .. } | Expect::CopyTag)
        ) {
            return BackendHook::Done;
        }
        let Some((_, expect)) = tracker.hook.expect.pop_front() else {
            return BackendHook::Done;
        };
        if frame.tag != backend::COMMAND_COMPLETE {
            return BackendHook::Done;
        }
        let complete = CommandComplete::decode(body).ok();
        match expect {
            Expect::Complete(verb) => {
                let patched = complete
                    .as_ref()
                    .and_then(|complete| patched_command_complete(complete, verb));
                if let Some(patched) = patched {
                    edits.push(replace(frame, frame.end(), patched));
                }
            }
            Expect::Drop => edits.push(remove(frame)),
            Expect::HoldCopy { .. } => {
                tracker.hook.held_copy = complete.map(|held| Bytes::copy_from_slice(held.tag));
                edits.push(remove(frame));
            }
            Expect::CopyTag => {
                if let Some(held) = tracker.hook.held_copy.take() {
                    let tag = CommandComplete { tag: &held }.to_bytes();
                    edits.push(replace(frame, frame.end(), tag));
                }
            }
            Expect::Refused(_) | Expect::Swallow => {}
        }
        BackendHook::Done
    }
}
