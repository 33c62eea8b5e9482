//! Deciding what to forward for a statement under active routes, and the refusals.

use std::sync::Arc;

use bytes::BytesMut;
use duet_shadow::rewrite::{Protocol, Refusal, Rewrite, StatementPatch};

use super::{Names, MAX_HELD};
use crate::config::UnrewritableWrites;
use crate::routes::Cached;
use crate::wire::error::{error_response, Severity};
use crate::wire::frontend;

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
    if tag == frontend::QUERY {
        Protocol::Simple
    } else {
        Protocol::Extended
    }
}

/// A cache-less refusal (oversized or undecodable text): counted nowhere, sent like any other.
pub(super) fn bare_refusal(epoch: u64, refusal: duet_shadow::rewrite::Refusal) -> Arc<Cached> {
    Arc::new(Cached {
        epoch,
        result: Err(refusal),
        tables: Vec::new(),
        renamed: false,
        unqualified: Vec::new(),
    })
}
