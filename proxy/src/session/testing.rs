//! What the session's unit tests share: contexts with and without a migration, message builders,
//! and each direction's scan with its edits applied.

use super::downstream::{BackendViolation, Downstream};
use super::edit::apply_edits;
use super::shared::Shared;
use super::upstream::{ClientStep, Upstream};
use crate::config::{self, Overrides};
use crate::context::ProxyContext;
use crate::wire::frame::FrameScanner;

/// A proxy context with nothing routed, for a database at 127.0.0.1 (never connected to).
pub(super) fn context() -> ProxyContext {
    let overrides = Overrides {
        backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
        ..Overrides::default()
    };
    ProxyContext::new(config::from_str("", overrides).unwrap(), None)
}

/// A message: `tag`, length, `body`.
pub(super) fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A ReadyForQuery with this transaction status.
pub(super) fn ready(status: u8) -> Vec<u8> {
    msg(b'Z', &[status])
}

/// The route of `public.items` into its shadow `items__duet` (id int4 → bigint).
pub(super) fn items_route() -> duet_shadow::rewrite::TableRoute {
    use duet_shadow::rewrite::{Column, ColumnMapping, TableRoute, Target};
    let column = |name: &str, base_type: &str| Column {
        name: name.into(),
        base_type: base_type.into(),
    };
    let mapped = |target: &str, expr: &str| ColumnMapping {
        target: target.into(),
        expr: expr.into(),
    };
    TableRoute {
        schema: "public".into(),
        name: "items".into(),
        columns: vec![column("id", "int4"), column("note", "text")],
        key: vec!["id".into()],
        target: Target::ShadowTable {
            shadow: "items__duet".into(),
            mapping: vec![mapped("id", "\"id\"::bigint"), mapped("note", "\"note\"")],
            shadow_key: vec!["id".into()],
            skip_when: None,
            plain_deletes: false,
        },
    }
}

/// A proxy context with `public.items` under migration.
pub(super) fn routed_context() -> ProxyContext {
    let ctx = context();
    ctx.routes
        .set_table("public", "items", Some(items_route()), 150000);
    ctx
}

/// Scans `chunk` from the client and returns the step and the bytes that would be forwarded.
pub(super) fn up(
    shared: &Shared<'_>,
    scanner: &mut FrameScanner,
    chunk: &[u8],
) -> (ClientStep, Vec<u8>) {
    let mut edits = Vec::new();
    let step = Upstream::new(shared).scan(scanner, chunk, &mut edits);
    let n = match step {
        ClientStep::Forward(n)
        | ClientStep::Hold(n)
        | ClientStep::Terminate(n)
        | ClientStep::Wait(n, _) => n,
        ClientStep::Malformed(_) => 0,
    };
    (step, apply_edits(&chunk[..n], &mut edits).to_vec())
}

/// Scans `chunk` from the backend: bytes forwarded (as sent to the client) and bytes kept.
pub(super) fn down(
    shared: &Shared<'_>,
    scanner: &mut FrameScanner,
    chunk: &[u8],
) -> (Vec<u8>, usize) {
    let mut edits = Vec::new();
    let n = Downstream::new(shared)
        .scan(scanner, chunk, &mut edits)
        .unwrap();
    (
        apply_edits(&chunk[..n], &mut edits).to_vec(),
        chunk.len() - n,
    )
}

/// The messages of a byte stream, as (tag, body).
pub(super) fn messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        out.push((bytes[0], bytes[5..1 + len].to_vec()));
        bytes = &bytes[1 + len..];
    }
    out
}

/// The tracker's count of requests and answers agree, and nothing is in flight.
pub(super) fn assert_in_step(shared: &Shared<'_>, when: &str) {
    let tracker = shared.tracker();
    assert_eq!(tracker.requests, tracker.answered, "{when}");
    assert!(tracker.pending.is_empty(), "{when}");
    assert!(tracker.is_quiet(), "{when}");
}

/// The client→backend scan of `chunk` with nothing routed: no edits, just the step.
pub(super) fn scan_client(
    shared: &Shared<'_>,
    scanner: &mut FrameScanner,
    chunk: &[u8],
) -> ClientStep {
    let mut edits = Vec::new();
    let step = Upstream::new(shared).scan(scanner, chunk, &mut edits);
    assert!(edits.is_empty(), "no routes, no edits");
    step
}

/// The backend→client scan of `chunk` with nothing routed: no edits, just the bytes forwarded.
pub(super) fn scan_backend(
    shared: &Shared<'_>,
    scanner: &mut FrameScanner,
    chunk: &[u8],
) -> Result<usize, BackendViolation> {
    let mut edits = Vec::new();
    let forward = Downstream::new(shared).scan(scanner, chunk, &mut edits);
    assert!(edits.is_empty(), "no routes, no edits");
    forward
}
