//! The dual-write hook: one session's part in a migration, between its two forwarding loops.
//!
//! While a table is under migration, the client→backend scan shows the hook every Query and Parse
//! whole; the hook forwards the rewritten text of those that write a routed table
//! ([`client`]), prepares statements again at a transaction boundary after a route change
//! ([`reprepare`]), and queues what the backend→client scan must change in the answers
//! ([`answers`]): the CommandComplete verb of a rewritten statement, the error of a refused one,
//! and the whole answer to the requests the hook injected.
//!
//! The hook's state ([`DualWrite`]) lives in the session's [`super::track::Tracker`], under the
//! same lock as the protocol position; the scans hand the hook what it needs of that position
//! ([`Position`], the count of answered requests) and of the proxy ([`HookContext`]), so the hook
//! never reaches back into the loops that call it.
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

mod answers;
mod client;
mod decide;
mod expect;
mod names;
mod prepared;
mod reprepare;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::config::UnrewritableWrites;
use crate::routes::{Cached, RouteTable};

pub(crate) use answers::BackendHook;
pub(crate) use expect::{Expect, Patch};
pub(crate) use names::Names;
pub(crate) use prepared::Prepared;

/// The largest Query or Parse the hook holds in memory to check it while routes are active. A
/// larger one is refused (it may write a routed table, and cannot be checked without reading it
/// whole).
pub(crate) const MAX_HELD: usize = 64 << 20;

/// What the hook consults besides its own state: the proxy's routes and policy, and the session
/// it serves (for its logs).
#[derive(Clone, Copy)]
pub(crate) struct HookContext<'a> {
    /// The published routes and the rewrite cache.
    pub(crate) routes: &'a RouteTable,
    /// What to do with a write duet cannot rewrite.
    pub(crate) policy: UnrewritableWrites,
    /// The session's id.
    pub(crate) session: u64,
}

/// Where the upstream scan stands when the hook sees a client message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    /// The sequence number of the request the message's answers belong to: a Query's own, or the
    /// Sync ending the batch of a Parse or Execute.
    pub(crate) request: u64,
    /// Executes sent since the last request that expects a ReadyForQuery (hooked or not: when
    /// routes appear in the middle of a batch, the hook pads its expectations for the earlier
    /// ones, so that their completions line up).
    pub(crate) batch_executes: u64,
}

/// The dual-write hook of one session: what it expects of the backend's answers, the statements
/// and portals it patched, and the statements it remembers to prepare again.
#[derive(Debug, Default)]
pub(crate) struct DualWrite {
    /// Expectations, each with the sequence number of the request it belongs to.
    pub(crate) expect: VecDeque<(u64, Expect)>,
    /// Patches of prepared statements (unnamed included), by name.
    pub(crate) statement_patches: HashMap<Vec<u8>, Patch>,
    /// Patches of portals, by name.
    pub(crate) portal_patches: HashMap<Vec<u8>, Patch>,
    /// Named statements as prepared, for preparing them again after a route change.
    pub(crate) prepared: HashMap<Vec<u8>, Prepared>,
    /// The epoch the remembered statements were last checked against.
    pub(crate) epoch: u64,
    /// A statement failed with "cached plan must not change result type": prepare all again.
    pub(crate) stale: bool,
    /// The session's `search_path` moved (by a statement that has been sent): at the next
    /// boundary after it, prepare again the remembered statements that name a table that is or
    /// was routed — their decision depends on what the name resolves to. Others are left alone,
    /// as PostgreSQL leaves them: a Parse under a path where their tables cannot be found would
    /// fail and lose a statement the client still holds.
    pub(crate) path_moved: bool,
    /// Refusal markers sent so far (makes each marker unique).
    pub(crate) markers: u64,
    /// Bytes of an oversized message still to drop.
    pub(crate) discard: usize,
    /// Executes of the current batch that have an expectation.
    pub(crate) batch_entries: u64,
    /// Statement names of the Describe('S') messages sent and not yet answered, in order (empty
    /// name: the unnamed statement): their ParameterDescription tells which parameter types the
    /// server inferred, so a statement prepared again after a flip keeps them (a client that sends
    /// binary int4 parameters would otherwise meet an int8 parameter inferred from the new shape).
    pub(crate) describes: VecDeque<Vec<u8>>,
    /// Texts forwarded unchanged in the open transaction although duet could not dual-write them
    /// (`[migration] unrewritable_writes = "pass"`); counted when the transaction ends.
    pub(crate) unrewritten: Vec<Arc<Cached>>,
    /// The statement whose RowDescription (or NoData) follows the ParameterDescription just seen.
    pub(crate) rows_of: Option<Vec<u8>>,
    /// The CommandComplete body of a staged COPY, until the INSERT that completes it reports.
    pub(crate) held_copy: Option<Bytes>,
    /// How the session's unqualified table names resolve, as its own statements showed.
    pub(crate) names: Names,
}

impl Drop for DualWrite {
    /// A session that ends inside a transaction may still have committed it (a COMMIT whose
    /// answer was never read): count its unrewritten writes rather than lose them.
    fn drop(&mut self) {
        self.end_transaction();
    }
}

impl DualWrite {
    /// Notes a write forwarded without its dual-write.
    pub(crate) fn note_unrewritten(&mut self, cached: &Arc<Cached>) {
        if !self.unrewritten.iter().any(|c| Arc::ptr_eq(c, cached)) {
            self.unrewritten.push(cached.clone());
        }
    }

    /// At a transaction boundary: counts the unrewritten writes of the transaction that ended.
    /// Counted at its end rather than when sent, so a verification that starts after the count
    /// sees whatever they committed — the cutover relies on that.
    pub(crate) fn end_transaction(&mut self) {
        for cached in self.unrewritten.drain(..) {
            cached.count_unrewritten();
        }
    }

    /// Whether the downstream loop has something to apply.
    pub(crate) fn expecting(&self) -> bool {
        !self.expect.is_empty()
    }

    /// The expectation at the head, if it belongs to request `seq`.
    pub(crate) fn front(&self, seq: u64) -> Option<&Expect> {
        match self.expect.front() {
            Some((s, e)) if *s == seq => Some(e),
            _ => None,
        }
    }

    /// Drops every expectation of request `seq` (after its error or its ReadyForQuery).
    pub(crate) fn finish(&mut self, seq: u64) {
        while matches!(self.expect.front(), Some((s, _)) if *s <= seq) {
            self.expect.pop_front();
        }
    }

    /// Queues `expect` for request `seq`, first padding for the Executes of the current batch
    /// that were sent before routes appeared (`batch_executes` of them in all so far).
    pub(crate) fn push(&mut self, seq: u64, batch_executes: u64, expect: Expect) {
        while self.batch_entries < batch_executes {
            self.expect.push_back((seq, Expect::Complete(None)));
            self.batch_entries += 1;
        }
        self.expect.push_back((seq, expect));
    }

    /// A marker statement text for a refusal.
    pub(crate) fn marker(&mut self) -> String {
        self.markers += 1;
        format!("DUET_REFUSED_{}", self.markers)
    }
}

impl DualWrite {
    /// Whether remembered statements must be prepared again at this boundary: a stale-plan error,
    /// a moved `search_path`, or routes published since they were last checked (`current_epoch`,
    /// read only when there are remembered statements: most sessions have none).
    pub(crate) fn must_reprepare(&self, current_epoch: impl FnOnce() -> u64) -> bool {
        self.stale
            || self.path_moved
            || (!self.prepared.is_empty() && self.epoch != current_epoch())
    }

    /// Whether the downstream scan must watch errors and descriptions even when nothing is
    /// expected: the session has statements the hook remembers, or Describes awaiting an answer.
    pub(crate) fn remembers(&self) -> bool {
        !self.prepared.is_empty() || !self.describes.is_empty()
    }
}
