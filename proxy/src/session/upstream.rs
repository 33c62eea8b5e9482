//! The client→backend direction's scan: where the session's requests start, the pause gate at
//! transaction boundaries, and the client's messages shown to the dual-write hook.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::dual_write::{Position, MAX_HELD};
use super::edit::Edit;
use super::shared::{add_own, Shared};
use crate::routes::Published;
use crate::session_registry::SessionState;
use crate::wire::frame::{FrameError, FrameScanner};
use crate::wire::frontend;
use crate::wire::messages::{Describe, Message, Parse, Query};

/// Largest message a client may send (PostgreSQL's limit, 1 GB - 1).
const MAX_CLIENT_MESSAGE: usize = 0x3fff_ffff;

/// What the client→backend loop does with a scanned chunk.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ClientStep {
    /// Forward this many bytes, then read more.
    Forward(usize),
    /// Forward this many bytes, wait for the gate to open, then scan the rest again.
    Hold(usize),
    /// Forward this many bytes (ending with Terminate), then stop.
    Terminate(usize),
    /// A malformed message: stop and tell the client.
    Malformed(ClientViolation),
    /// Forward this many bytes, then read until the message starting there, `.1` bytes long, is
    /// whole (the dual-write hook checks Query and Parse messages whole).
    Wait(usize, usize),
}

/// A client message that breaks the protocol (the client gets it as FATAL 08P01, in these words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientViolation {
    /// A header that cannot be right.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A message type the protocol does not define after startup.
    #[error("invalid frontend message type {}", printable(*.0))]
    UnknownType(u8),
}

/// The client→backend direction of one session.
pub(super) struct Upstream<'s, 'a> {
    shared: &'s Shared<'a>,
}

impl<'s, 'a> Upstream<'s, 'a> {
    /// The client→backend direction of the session `shared`.
    pub(super) fn new(shared: &'s Shared<'a>) -> Self {
        Upstream { shared }
    }

    /// The session this direction belongs to.
    pub(super) fn shared(&self) -> &'s Shared<'a> {
        self.shared
    }

    /// Walks a chunk from the client: counts statements, opens requests, applies the gate at
    /// transaction boundaries, and — while tables are under migration — lets the dual-write hook
    /// replace messages (`edits`, in chunk order, all before the returned forward count).
    pub(super) fn scan(
        &self,
        scanner: &mut FrameScanner,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> ClientStep {
        let shared = self.shared;
        let cx = &shared.hook_context;
        let mut tracker = shared.tracker();
        // One atomic load per chunk: with nothing routed, the loop below is exactly the plain
        // forwarding scan (the hook's branches are all behind `active` or a remembered statement).
        let active = shared.routed && shared.ctx.routes.is_active();
        let mut published: Option<Arc<Published>> = None;
        let mut pos = 0;
        if tracker.hook.discard > 0 && !tracker.hook.discard(chunk, &mut pos, edits) {
            return ClientStep::Forward(chunk.len());
        }
        let mut statements = 0u64;
        let mut read_at: Option<Instant> = None;
        let step = loop {
            let frame = match scanner.next_frame(chunk, &mut pos, MAX_CLIENT_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break ClientStep::Forward(pos),
                Err(err) => break ClientStep::Malformed(err.into()),
            };
            match frame.tag {
                frontend::QUERY
                | frontend::PARSE
                | frontend::BIND
                | frontend::DESCRIBE
                | frontend::EXECUTE
                | frontend::CLOSE
                | frontend::SYNC
                | frontend::FUNCTION_CALL => {
                    let whole = frame.bytes(chunk).is_some();
                    if !whole
                        && frame.wire_len <= MAX_HELD
                        && ((active && tracker.hook.needs_whole(frame.tag))
                            || frame.tag == frontend::DESCRIBE)
                    {
                        break ClientStep::Wait(frame.start, frame.wire_len);
                    }
                    if frame.tag == frontend::DESCRIBE {
                        if let Some(Ok(describe)) = frame.body(chunk).map(Describe::decode) {
                            tracker.hook.described(&describe);
                        }
                    }
                    // Followed with or without a migration: a session sets its search_path
                    // long before one starts.
                    let mut path_moved = false;
                    if matches!(frame.tag, frontend::QUERY | frontend::PARSE) {
                        let text = frame.body(chunk).and_then(|body| {
                            if frame.tag == frontend::QUERY {
                                Query::decode(body).ok().map(|query| query.text)
                            } else {
                                Parse::decode(body).ok().map(|parse| parse.text)
                            }
                        });
                        if let Some(text) = text.and_then(|t| std::str::from_utf8(t).ok()) {
                            // The server analyses its prepared statements again under the new
                            // path; duet decides them again too, at the next boundary after this
                            // statement (not ahead of it: the path has not moved yet there).
                            path_moved = tracker.hook.names.follow(text)
                                && !tracker.hook.prepared.is_empty();
                            shared.ctx.pools.statement(text.as_bytes());
                        }
                    }
                    if tracker.is_quiet() {
                        if tracker.at_boundary() {
                            if !shared.ctx.gate.try_begin(shared.info) {
                                break ClientStep::Hold(frame.start);
                            }
                            if tracker.hook.must_reprepare(|| shared.ctx.routes.epoch()) {
                                let next_request = tracker.requests;
                                let injected =
                                    tracker.hook.reprepare(cx, next_request, frame.start, edits);
                                tracker.requests += injected;
                            }
                        }
                        let now = *read_at.get_or_insert_with(Instant::now);
                        shared.info.set_state_at(SessionState::Active, now);
                    }
                    if path_moved {
                        tracker.hook.path_moved = true;
                    }
                    if active {
                        let at = Position {
                            request: tracker.requests,
                            batch_executes: tracker.batch_executes,
                        };
                        if tracker
                            .hook
                            .client_frame(cx, at, &mut published, &frame, chunk, edits)
                        {
                            // An oversized statement was replaced; the rest of it is dropped.
                            if frame.tag == frontend::QUERY {
                                let at = *read_at.get_or_insert_with(Instant::now);
                                tracker.request(frame.tag, at);
                                statements += 1;
                            } else {
                                tracker.extended(frame.tag);
                            }
                            pos = chunk.len();
                            break ClientStep::Forward(pos);
                        }
                    } else if whole
                        && match frame.tag {
                            frontend::PARSE => true,
                            frontend::CLOSE | frontend::QUERY => !tracker.hook.prepared.is_empty(),
                            _ => false,
                        }
                    {
                        tracker.hook.remember_unrouted(cx, &frame, chunk);
                    }
                    match frame.tag {
                        frontend::QUERY | frontend::SYNC | frontend::FUNCTION_CALL => {
                            let at = *read_at.get_or_insert_with(Instant::now);
                            tracker.request(frame.tag, at);
                        }
                        tag => tracker.extended(tag),
                    }
                    if frame.tag == frontend::QUERY || frame.tag == frontend::EXECUTE {
                        statements += 1;
                    }
                }
                frontend::COPY_DATA | frontend::COPY_DONE | frontend::COPY_FAIL => {
                    tracker.copy_message(frame.tag);
                }
                frontend::TERMINATE => {
                    scanner.pass(&frame, chunk.len(), &mut pos);
                    break ClientStep::Terminate(pos);
                }
                tag if !frontend::is_known(tag) => {
                    break ClientStep::Malformed(ClientViolation::UnknownType(tag));
                }
                _ => {}
            }
            scanner.pass(&frame, chunk.len(), &mut pos);
        };
        if statements > 0 {
            add_own(&shared.info.statements, statements);
        }
        shared
            .expecting
            .store(tracker.hook.expecting(), Ordering::Relaxed);
        shared
            .remembers
            .store(tracker.hook.remembers(), Ordering::Relaxed);
        step
    }
}

/// A message type byte, readable in an error.
fn printable(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("{:?}", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}
