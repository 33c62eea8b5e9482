//! Preparing remembered statements again at a transaction boundary, after a route change, a
//! move of the session's `search_path` or a stale-plan error.

use bytes::BytesMut;
use duet_shadow::rewrite::result_shape::keep_result_shape;
use duet_shadow::rewrite::{touches, Protocol};

use super::decide::{decide, refusal_of, Decision};
use super::{DualWrite, Expect, HookContext, Patch};
use crate::session::edit::Edit;
use crate::wire::messages::{Close, Message, Parse, Sync};

impl DualWrite {
    /// At a transaction boundary after a route change, a move of the session's `search_path` or
    /// a stale-plan error: prepares again every remembered statement whose text mentions a table
    /// that is or was routed, ahead of the client's message at `at`, each in a request of its own
    /// (Close, Parse, Sync) whose answer the downstream scan drops. The injected requests are
    /// numbered from `next_request`; returns how many there are, for the caller to count as sent.
    pub(crate) fn reprepare(
        &mut self,
        cx: &HookContext<'_>,
        next_request: u64,
        at: usize,
        edits: &mut Vec<Edit>,
    ) -> u64 {
        let current = cx.routes.current();
        let stale = std::mem::take(&mut self.stale);
        let path_moved = std::mem::take(&mut self.path_moved);
        let mut out = BytesMut::new();
        let mut count = 0usize;
        let mut dropped = Vec::new();
        for (name, prepared) in self.prepared.iter_mut() {
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
                let cached = cx
                    .routes
                    .rewrite(&current, &prepared.sql, Protocol::Extended);
                match decide(&cached, cx.policy, &self.names) {
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
                                session = cx.session,
                                %refusal,
                                "a prepared statement is refused under the new routes"
                            );
                        }
                        Close::statement(name).encode(&mut out);
                        Sync.encode(&mut out);
                        self.statement_patches.remove(name);
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
                    self.statement_patches.insert(name.clone(), patch);
                }
                None => {
                    self.statement_patches.remove(name);
                }
            }
            count += 1;
        }
        self.epoch = current.epoch;
        if out.is_empty() {
            return 0;
        }
        // Refused statements are gone from the server: forget them here too.
        for name in dropped {
            self.prepared.remove(&name);
        }
        let count = count as u64;
        for seq in next_request..next_request + count {
            self.expect.push_back((seq, Expect::Swallow));
        }
        tracing::debug!(
            session = cx.session,
            statements = count,
            epoch = current.epoch,
            "preparing statements again after a route change"
        );
        edits.push(Edit::insert(at, out.freeze()));
        count
    }
}
