//! Where a session stands in the protocol: requests awaiting their ReadyForQuery, an open
//! extended-protocol batch, and the transaction status — i.e. whether it is at a transaction
//! boundary, which is what the pause gate needs to know.

use std::collections::VecDeque;
use std::time::Instant;

/// Protocol position of one session. Updated by both forwarding directions (which run in the same
/// task, so the lock around it is never contended).
#[derive(Debug)]
pub(super) struct Tracker {
    /// When each request that expects a ReadyForQuery (Query, Sync, FunctionCall) was read.
    pub(super) pending: VecDeque<Instant>,
    /// Extended-protocol messages were sent since the last Sync.
    pub(super) in_batch: bool,
    /// The transaction status of the last ReadyForQuery: `I`, `T` or `E`.
    pub(super) status: u8,
}

impl Tracker {
    /// A session that has just received its first ReadyForQuery.
    pub(super) fn new() -> Self {
        Tracker {
            pending: VecDeque::with_capacity(4),
            in_batch: false,
            status: b'I',
        }
    }

    /// No request is unfinished and no batch is open (the session may still be in a transaction).
    pub(super) fn is_quiet(&self) -> bool {
        self.pending.is_empty() && !self.in_batch
    }

    /// Quiet and outside a transaction block: a transaction boundary.
    pub(super) fn at_boundary(&self) -> bool {
        self.is_quiet() && self.status == b'I'
    }
}
