//! Where a session stands in the protocol: requests awaiting their ReadyForQuery, an open
//! extended-protocol batch, and the transaction status — i.e. whether it is at a transaction
//! boundary, which is what the pause gate needs to know.

use std::collections::VecDeque;
use std::time::Instant;

use super::dual_write::DualWrite;
use crate::wire::frontend;
use crate::wire::messages::TransactionStatus;

/// Protocol position of one session. Updated by both forwarding directions (which run in the same
/// task, so the lock around it is never contended).
#[derive(Debug)]
pub(super) struct Tracker {
    /// When each request that expects a ReadyForQuery (Query, Sync, FunctionCall) was read.
    pub(super) pending: VecDeque<Instant>,
    /// Extended-protocol messages were sent since the last Sync.
    pub(super) in_batch: bool,
    /// The transaction status of the last ReadyForQuery.
    pub(super) status: TransactionStatus,
    /// After an Execute: how many Syncs the client has sent since. If the server answers that
    /// Execute with CopyInResponse, it was a `COPY … FROM STDIN` and the server ignores those Syncs
    /// (it ignores Sync and Flush in copy-in mode), so they will get no ReadyForQuery. `None` after
    /// a Query or once the copy's first message settled the count.
    syncs_after_execute: Option<usize>,
    /// The server is in copy-in mode (it sent CopyInResponse and the client has not yet sent
    /// CopyDone or CopyFail). Outside it, the server ignores CopyData, CopyDone and CopyFail (a
    /// client may send a stray CopyFail), and so does the tracker.
    copy_in: bool,
    /// Requests sent that expect a ReadyForQuery, duet's injected ones included: the sequence
    /// number the next one gets (the hook's expectations name their request by it).
    pub(super) requests: u64,
    /// ReadyForQuery messages received: the sequence number of the request being answered.
    pub(super) answered: u64,
    /// Executes sent since the last request that expects a ReadyForQuery (hooked or not: when
    /// routes appear in the middle of a batch, the hook pads its expectations for the earlier
    /// ones, so that their completions line up).
    pub(super) batch_executes: u64,
    /// The dual-write hook's state.
    pub(super) hook: DualWrite,
}

impl Tracker {
    /// A session that has just received its first ReadyForQuery.
    pub(super) fn new() -> Self {
        Tracker {
            pending: VecDeque::with_capacity(4),
            in_batch: false,
            status: TransactionStatus::Idle,
            syncs_after_execute: None,
            copy_in: false,
            requests: 0,
            answered: 0,
            batch_executes: 0,
            hook: DualWrite::default(),
        }
    }

    /// A request that expects one ReadyForQuery (Query, Sync, FunctionCall) was read at `at`.
    pub(super) fn request(&mut self, tag: u8, at: Instant) {
        self.pending.push_back(at);
        self.requests += 1;
        self.batch_executes = 0;
        self.hook.batch_entries = 0;
        match tag {
            frontend::SYNC => {
                self.in_batch = false;
                if let Some(syncs) = self.syncs_after_execute.as_mut() {
                    *syncs += 1;
                }
            }
            _ => self.syncs_after_execute = None,
        }
    }

    /// An extended-protocol message other than Sync was read.
    pub(super) fn extended(&mut self, tag: u8) {
        self.in_batch = true;
        if tag == frontend::EXECUTE {
            self.batch_executes += 1;
            self.syncs_after_execute = Some(0);
        }
    }

    /// The server sent CopyInResponse: it is in copy-in mode until the client's CopyDone or
    /// CopyFail.
    pub(super) fn copy_in_started(&mut self) {
        self.copy_in = true;
    }

    /// CopyData, CopyDone or CopyFail (`tag`) was read. Outside copy-in mode the server ignores
    /// it, and so does this. In copy-in mode, when the COPY was started by an Execute, the Syncs
    /// sent after that Execute were ignored by the server: forget them, and keep the batch open
    /// until the Sync the client sends after CopyDone/CopyFail (the COPY's ReadyForQuery answers
    /// that one). Until then the session has work in flight, so the pause gate neither counts it
    /// idle nor holds that Sync.
    pub(super) fn copy_message(&mut self, tag: u8) {
        if !self.copy_in {
            return;
        }
        if let Some(ignored) = self.syncs_after_execute.take() {
            let keep = self.pending.len().saturating_sub(ignored);
            self.pending.truncate(keep);
            self.requests = self.requests.saturating_sub(ignored as u64);
            self.in_batch = true;
        }
        if tag != frontend::COPY_DATA {
            self.copy_in = false;
        }
    }

    /// No request is unfinished and no batch is open (the session may still be in a transaction).
    pub(super) fn is_quiet(&self) -> bool {
        self.pending.is_empty() && !self.in_batch
    }

    /// Quiet and outside a transaction block: a transaction boundary.
    pub(super) fn at_boundary(&self) -> bool {
        self.is_quiet() && self.status == TransactionStatus::Idle
    }
}
