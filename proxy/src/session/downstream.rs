//! The backend→client direction's scan: ReadyForQuery ends requests and moves the session's
//! state, a FATAL is noticed, and the answers are shown to the dual-write hook while it expects
//! something.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::Instant;

use super::dual_write::BackendHook;
use super::edit::Edit;
use super::shared::Shared;
use super::track::Tracker;
use crate::session_registry::SessionState;
use crate::wire::backend;
use crate::wire::error;
use crate::wire::frame::{FrameError, FrameScanner};
use crate::wire::messages::{DecodeError, Message, ReadyForQuery, TransactionStatus};

/// Largest message accepted from the backend (the length field's range).
const MAX_BACKEND_MESSAGE: usize = i32::MAX as usize;

/// A backend message that breaks the protocol (the session ends; the client gets FATAL 08006).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendViolation {
    /// A header that cannot be right.
    #[error("backend sent {0}")]
    Frame(#[from] FrameError),
    /// A ReadyForQuery whose length is not the protocol's.
    #[error("backend sent a ReadyForQuery of {wire_len} bytes (it has 6)")]
    ReadyForQuerySize {
        /// Its size on the wire.
        wire_len: usize,
    },
    /// A message whose body does not decode.
    #[error("backend sent a malformed message: {0}")]
    Malformed(#[from] DecodeError),
}

/// The backend→client direction of one session.
pub(super) struct Downstream<'s, 'a> {
    shared: &'s Shared<'a>,
}

impl<'s, 'a> Downstream<'s, 'a> {
    /// The backend→client direction of the session `shared`.
    pub(super) fn new(shared: &'s Shared<'a>) -> Self {
        Downstream { shared }
    }

    /// The session this direction belongs to.
    pub(super) fn shared(&self) -> &'s Shared<'a> {
        self.shared
    }

    /// Walks a chunk from the backend: ReadyForQuery closes requests and moves the session's
    /// state; while the hook expects something, completions and errors are patched (`edits`).
    /// Returns how many bytes may be forwarded (a message that must be read whole and is split
    /// across reads is kept for the next one).
    pub(super) fn scan(
        &self,
        scanner: &mut FrameScanner,
        chunk: &[u8],
        edits: &mut Vec<Edit>,
    ) -> Result<usize, BackendViolation> {
        let shared = self.shared;
        let cx = &shared.hook_context;
        let mut pos = 0;
        let mut tracker: Option<MutexGuard<'_, Tracker>> = None;
        // Both flags are this session's own, set by the upstream scan in the same task.
        let hooked = shared.expecting.load(Ordering::Relaxed);
        let remembers = shared.remembers.load(Ordering::Relaxed);
        // One clock reading per chunk serves every ReadyForQuery in it.
        let mut now: Option<Instant> = None;
        let result = loop {
            let frame = match scanner.next_frame(chunk, &mut pos, MAX_BACKEND_MESSAGE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(pos),
                Err(err) => break Err(err.into()),
            };
            // Every ErrorResponse is read whole to see its severity (they are small; a split one
            // waits for the rest of itself, like the hook's frames do).
            let fatal = if frame.tag == backend::ERROR_RESPONSE {
                let Some(body) = frame.body(chunk) else {
                    break Ok(frame.start);
                };
                error::ends_session(body)
            } else {
                false
            };
            if frame.tag == backend::COPY_IN_RESPONSE {
                tracker
                    .get_or_insert_with(|| shared.tracker())
                    .copy_in_started();
            }
            if frame.tag != backend::READY_FOR_QUERY {
                let looked_at = hooked
                    || (remembers
                        && matches!(
                            frame.tag,
                            backend::ERROR_RESPONSE
                                | backend::PARAMETER_DESCRIPTION
                                | backend::ROW_DESCRIPTION
                                | backend::NO_DATA
                        ));
                if looked_at {
                    let tracker = tracker.get_or_insert_with(|| shared.tracker());
                    let answered = tracker.answered;
                    match tracker
                        .hook
                        .backend_frame(cx, answered, &frame, chunk, edits)
                    {
                        BackendHook::Pass => {}
                        BackendHook::Incomplete => break Ok(frame.start),
                        BackendHook::Done => {
                            // A FATAL the hook let through (as is or replaced, not removed)
                            // reached the client all the same.
                            let removed = edits.last().is_some_and(|edit| edit.removes(&frame));
                            if fatal && !removed {
                                shared.backend_said_fatal.store(true, Ordering::Relaxed);
                            }
                            pos = frame.end();
                            continue;
                        }
                    }
                }
                if fatal {
                    // Only a FATAL forwarded as is counts: the client has seen the reason.
                    shared.backend_said_fatal.store(true, Ordering::Relaxed);
                }
                scanner.pass(&frame, chunk.len(), &mut pos);
                continue;
            }
            if frame.wire_len != 6 {
                break Err(BackendViolation::ReadyForQuerySize {
                    wire_len: frame.wire_len,
                });
            }
            let Some(body) = frame.body(chunk) else {
                break Ok(frame.start);
            };
            let ready = match ReadyForQuery::decode(body) {
                Ok(ready) => ready,
                Err(err) => break Err(err.into()),
            };
            let tracker = tracker.get_or_insert_with(|| shared.tracker());
            if hooked && tracker.hook.swallowing(tracker.answered) {
                edits.push(Edit::remove(&frame));
                let seq = tracker.answered;
                tracker.hook.finish(seq);
                tracker.answered += 1;
                pos = frame.end();
                continue;
            }
            let now = *now.get_or_insert_with(Instant::now);
            self.ready_for_query(tracker, ready.status, now);
            pos = frame.end();
        };
        if hooked {
            if let Some(tracker) = &tracker {
                shared
                    .expecting
                    .store(tracker.hook.expecting(), Ordering::Relaxed);
            }
        }
        result
    }

    /// A ReadyForQuery the client gets: its request is answered, the session's state moves.
    fn ready_for_query(&self, tracker: &mut Tracker, status: TransactionStatus, now: Instant) {
        let shared = self.shared;
        let seq = tracker.answered;
        tracker.hook.finish(seq);
        tracker.answered += 1;
        if let Some(started) = tracker.pending.pop_front() {
            // The worker thread's own shard: no other thread writes it, so its lock and cache
            // lines stay on this core (outside a worker, e.g. in unit tests, spread by session).
            let shard = crate::workers::current_index().unwrap_or(shared.info.id as usize);
            shared
                .ctx
                .metrics
                .record_latency(shard, now.saturating_duration_since(started));
        }
        tracker.status = status;
        if status == TransactionStatus::Idle {
            tracker.hook.end_transaction();
        }
        if tracker.is_quiet() {
            match status {
                TransactionStatus::Idle => {
                    shared.info.set_state_at(SessionState::Idle, now);
                    shared.ctx.gate.end(shared.info);
                }
                TransactionStatus::InTransaction => shared
                    .info
                    .set_state_at(SessionState::IdleInTransaction, now),
                TransactionStatus::Failed => shared
                    .info
                    .set_state_at(SessionState::IdleInTransactionAborted, now),
            }
        }
    }
}
