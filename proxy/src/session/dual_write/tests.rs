//! The dual-write hook's tests: its pieces alone, and the hook driven through the session's
//! scans as a client and a server would drive it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use duet_shadow::rewrite::TagVerb;

use super::answers::{copy_error_renamed, is_cached_plan_error, patched_command_complete};
use super::prepared::deallocation;
use super::MAX_HELD;
use crate::session::shared::Shared;
use crate::session::testing::*;
use crate::session::upstream::ClientStep;
use crate::session_registry::SessionState;
use crate::wire::frame::FrameScanner;
use crate::wire::messages::{CommandComplete, ErrorResponse, Message};

#[test]
fn command_complete_gets_its_verb_back() {
    let insert = CommandComplete::decode(b"INSERT 0 3\0").unwrap();
    let patched = patched_command_complete(&insert, Some(TagVerb::Update)).unwrap();
    assert_eq!(&patched[..], b"C\0\0\0\x0dUPDATE 3\0");
    assert!(patched_command_complete(&insert, None).is_none());
    let select = CommandComplete::decode(b"SELECT\0").unwrap();
    assert!(patched_command_complete(&select, Some(TagVerb::Delete)).is_none());
    assert!(CommandComplete::decode(b"garbage").is_err());
}

#[test]
fn a_staged_copy_error_names_the_table() {
    let body = b"SERROR\0C22P02\0Minvalid input syntax for type integer: \"x\"\0WCOPY __duet_copy, line 1, column n: \"x\"\0\0";
    let error = ErrorResponse::decode(body).unwrap();
    let renamed = copy_error_renamed(&error, "__duet_copy", "items").unwrap();
    assert_eq!(
        &renamed[5..],
        &b"SERROR\0C22P02\0Minvalid input syntax for type integer: \"x\"\0WCOPY items, line 1, column n: \"x\"\0\0"[..]
    );
    assert_eq!(
        renamed.len(),
        body.len() + 5 - "__duet_copy".len() + "items".len()
    );
    let no_context = ErrorResponse::decode(b"SERROR\0Mno context\0\0").unwrap();
    assert!(copy_error_renamed(&no_context, "__duet_copy", "t").is_none());
    assert!(ErrorResponse::decode(b"SERROR\0Mtruncated").is_err());
}

#[test]
fn recognises_the_cached_plan_error_and_deallocations() {
    let body = b"SERROR\0C0A000\0Mcached plan must not change result type\0\0";
    assert!(is_cached_plan_error(&ErrorResponse::decode(body).unwrap()));
    let other = ErrorResponse::decode(b"SERROR\0C0A000\0Mother\0\0").unwrap();
    assert!(!is_cached_plan_error(&other));
    assert_eq!(deallocation(b"  DISCARD ALL;"), Some(None));
    assert_eq!(deallocation(b"deallocate prepare all"), Some(None));
    assert_eq!(deallocation(b"DEALLOCATE S_1"), Some(Some(b"s_1".to_vec())));
    assert_eq!(
        deallocation(b"deallocate \"S_1\""),
        Some(Some(b"S_1".to_vec()))
    );
    assert_eq!(deallocation(b"select 1"), None);
}

#[test]
fn a_rewritten_query_is_rebuilt_and_its_tags_restored_across_split_reads() {
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let mut scanner = FrameScanner::new();
    let sql = b"update items set note = 'x' where id = 1; select 1; delete from items\0";
    let query = msg(b'Q', sql);
    // Split: the hook waits for the whole message before forwarding anything of it.
    assert_eq!(
        up(&shared, &mut scanner, &query[..12]).0,
        ClientStep::Wait(0, query.len())
    );
    let (step, out) = up(&shared, &mut scanner, &query);
    assert_eq!(step, ClientStep::Forward(query.len()));
    let sent = messages(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, b'Q');
    let text = String::from_utf8(sent[0].1.clone()).unwrap();
    assert!(text.contains("items__duet"), "{text}");
    assert!(text.ends_with('\0'));
    assert_eq!(
        ctx.routes
            .counters("public", "items")
            .dual_writes
            .load(Ordering::Relaxed),
        2
    );

    // The answers: the CTE form's tags, the first CommandComplete split across reads.
    let answer = [
        msg(b'C', b"INSERT 0 1\0"),
        msg(
            b'T',
            b"\0\x01?column?\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        ),
        msg(b'D', b"\0\x01\0\0\0\x011"),
        msg(b'C', b"SELECT 1\0"),
        msg(b'C', b"INSERT 0 7\0"),
        ready(b'I'),
    ]
    .concat();
    let mut scanner = FrameScanner::new();
    let (first, kept) = down(&shared, &mut scanner, &answer[..8]);
    assert!(first.is_empty());
    assert_eq!(kept, 8, "an incomplete CommandComplete is kept whole");
    let (out, kept) = down(&shared, &mut scanner, &answer);
    assert_eq!(kept, 0);
    let tags: Vec<_> = messages(&out)
        .into_iter()
        .filter(|(t, _)| *t == b'C')
        .map(|(_, b)| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(tags, ["UPDATE 1\0", "SELECT 1\0", "DELETE 7\0"]);
    assert!(!shared.expecting.load(Ordering::Relaxed));
    assert_eq!(info.state(), SessionState::Idle);
}

#[test]
fn a_rewritten_parse_keeps_its_name_and_parameter_types() {
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let parse = msg(
        b'P',
        b"s1\0update items set note = $1 where id = $2\0\0\x02\0\0\0\x19\0\0\0\x17",
    );
    let batch = [
        parse.clone(),
        msg(b'B', b"p1\0s1\0\0\0\0\x02\0\0\0\x01x\0\0\0\x011\0\0"),
        msg(b'E', b"p1\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    let (_, out) = up(&shared, &mut FrameScanner::new(), &batch);
    let sent = messages(&out);
    assert_eq!(sent[0].0, b'P');
    let (name, rest) = sent[0].1.split_at(3);
    assert_eq!(name, b"s1\0");
    assert!(String::from_utf8_lossy(rest).contains("items__duet"));
    assert!(rest.ends_with(b"\0\0\x02\0\0\0\x19\0\0\0\x17"));
    assert_eq!(&out[sent[0].1.len() + 5..], &batch[parse.len()..]);
    let answer = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', b"INSERT 0 1\0"),
        ready(b'I'),
    ]
    .concat();
    let (out, _) = down(&shared, &mut FrameScanner::new(), &answer);
    assert_eq!(messages(&out)[2], (b'C', b"UPDATE 1\0".to_vec()));
}

#[test]
fn a_refused_statement_gets_the_refusal_instead_of_the_markers_error() {
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let query = msg(b'Q', b"alter table items add column note text\0");
    let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
    assert_eq!(messages(&out), [(b'Q', b"DUET_REFUSED_1\0".to_vec())]);
    let server = [
        crate::wire::error::error_response(
            crate::wire::error::Severity::Error,
            "42601",
            "syntax error at or near \"DUET_REFUSED_1\"",
            None,
        )
        .to_vec(),
        ready(b'E'),
    ]
    .concat();
    let (out, _) = down(&shared, &mut FrameScanner::new(), &server);
    let got = messages(&out);
    assert_eq!(got[0].0, b'E');
    let fields = String::from_utf8_lossy(&got[0].1).into_owned();
    assert!(fields.contains("C55000\0"), "{fields}");
    assert!(!fields.contains("DUET_REFUSED"), "{fields}");
    assert_eq!(got[1], (b'Z', b"E".to_vec()));
    assert_eq!(
        ctx.routes
            .counters("public", "items")
            .refusals
            .load(Ordering::Relaxed),
        1
    );
}

#[test]
fn statements_are_prepared_again_after_a_route_change_and_the_answers_swallowed() {
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let parse = [
        msg(
            b'P',
            b"ins\0insert into items (id, note) values ($1, $2)\0\0\0",
        ),
        msg(b'P', b"other\0select 1\0\0\0"),
        msg(b'P', b"del\0delete from items\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    up(&shared, &mut FrameScanner::new(), &parse);
    down(
        &shared,
        &mut FrameScanner::new(),
        &[msg(b'1', b""), msg(b'1', b""), msg(b'1', b""), ready(b'I')].concat(),
    );
    assert_eq!(ctx.metrics.latency_summary().count, 1);
    // The routes change (the migration ends): the next transaction first re-prepares `ins`.
    ctx.routes.set_table("public", "items", None, 0);
    let query = msg(b'Q', b"select 2\0");
    let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
    let sent = messages(&out);
    let tags: Vec<u8> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"CPSCPSQ", "each statement in a request of its own");
    let ins = sent.iter().position(|(_, b)| b == b"Sins\0").unwrap();
    assert_eq!(
        sent[ins + 1].1,
        b"ins\0insert into items (id, note) values ($1, $2)\0\0\0"
    );
    // The injected answers (one re-prepare failing) never reach the client nor count as a
    // request.
    let failed = crate::wire::error::error_response(
        crate::wire::error::Severity::Error,
        "42P01",
        "relation does not exist",
        None,
    )
    .to_vec();
    let answer = [
        msg(b'3', b""),
        failed,
        ready(b'I'),
        msg(b'3', b""),
        msg(b'1', b""),
        ready(b'I'),
        msg(b'C', b"SELECT 1\0"),
        ready(b'I'),
    ]
    .concat();
    let (out, kept) = down(&shared, &mut FrameScanner::new(), &answer[..8]);
    assert!(out.is_empty());
    let (out, _) = down(&shared, &mut FrameScanner::new(), &answer[8 - kept..]);
    assert_eq!(out, [msg(b'C', b"SELECT 1\0"), ready(b'I')].concat());
    assert_eq!(ctx.metrics.latency_summary().count, 2);
    assert!(!info.is_busy());
    // Nothing more to re-prepare: the following query goes out alone.
    let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
    assert_eq!(out, query);
}

#[test]
fn oversized_statements_are_refused_while_routes_are_active() {
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let mut head = vec![b'Q'];
    head.extend_from_slice(&((MAX_HELD + 10) as i32).to_be_bytes());
    head.extend_from_slice(b"insert into items");
    let (step, out) = up(&shared, &mut FrameScanner::new(), &head);
    assert_eq!(step, ClientStep::Forward(head.len()));
    assert_eq!(messages(&out)[0].0, b'Q');
    assert!(String::from_utf8_lossy(&out).contains("DUET_REFUSED_"));
    // The rest of it is dropped, and the next message is seen again.
    let rest = MAX_HELD + 11 - head.len();
    let mut tail = vec![b'x'; rest];
    tail.extend(msg(b'Q', b"select 1\0"));
    let (_, out) = up(&shared, &mut FrameScanner::new(), &tail);
    assert_eq!(out, msg(b'Q', b"select 1\0"));

    // An oversized Parse opens a batch like any Parse (its Sync gets the ReadyForQuery).
    let shared = Shared::new(&ctx, &info);
    head[0] = b'P';
    let (_, out) = up(&shared, &mut FrameScanner::new(), &head);
    assert_eq!(messages(&out)[0].0, b'P');
    assert!(shared.tracker().pending.is_empty());
    assert!(shared.tracker().in_batch);
}

/// A cached-plan error of the stale-plan kind (0A000), as PostgreSQL words it.
fn stale_plan_error() -> Vec<u8> {
    crate::wire::error::error_response(
        crate::wire::error::Severity::Error,
        "0A000",
        "cached plan must not change result type",
        None,
    )
    .to_vec()
}

/// Prepares `sql` as `sel`, executes it, and answers the execution with a stale-plan error;
/// returns the bytes the next execution of `sel` sends to the server.
fn next_execution_after_a_stale_plan(shared: &Shared<'_>, sql: &[u8]) -> Vec<u8> {
    let parse = [
        msg(b'P', &[&b"sel\0"[..], sql, &b"\0\0\0"[..]].concat()),
        msg(b'S', b""),
    ]
    .concat();
    assert_eq!(up(shared, &mut FrameScanner::new(), &parse).1, parse);
    down(
        shared,
        &mut FrameScanner::new(),
        &[msg(b'1', b""), ready(b'I')].concat(),
    );
    let execute = [
        msg(b'B', b"\0sel\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    assert_eq!(up(shared, &mut FrameScanner::new(), &execute).1, execute);
    let answer = [stale_plan_error(), ready(b'I')].concat();
    assert_eq!(down(shared, &mut FrameScanner::new(), &answer).0, answer);
    up(shared, &mut FrameScanner::new(), &execute).1
}

#[test]
fn a_stale_plan_error_prepares_again_the_statements_on_routed_tables() {
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let out = next_execution_after_a_stale_plan(&shared, b"select * from items");
    let tags: Vec<u8> = messages(&out).iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"CPSBES");
}

#[test]
fn a_stale_plan_error_on_other_tables_is_left_to_the_client() {
    // As with PostgreSQL alone: the client prepares the statement again itself, with the
    // result shape it has now (duet keeping the first shape would return stale columns).
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let out = next_execution_after_a_stale_plan(&shared, b"select * from other_table");
    let tags: Vec<u8> = messages(&out).iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"BES");
    let ctx = context();
    let info = ctx.sessions.register("127.0.0.1:2".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let out = next_execution_after_a_stale_plan(&shared, b"select * from items");
    let tags: Vec<u8> = messages(&out).iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"BES", "nothing routed: nothing prepared again");
}

#[test]
fn a_statement_prepared_again_in_its_first_shape_falls_back_to_its_own_text() {
    // Should the first shape no longer fit (the table gained a column), the client's own
    // text is prepared instead of the statement being lost; when the shaped one succeeded,
    // the fallback's 42P05 is dropped with the other injected answers.
    let ctx = routed_context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let prepare = [
        msg(b'P', b"sel\0select id from items\0\0\0"),
        msg(b'D', b"Ssel\0"),
        msg(b'S', b""),
    ]
    .concat();
    up(&shared, &mut FrameScanner::new(), &prepare);
    let mut columns = 1u16.to_be_bytes().to_vec();
    columns.extend_from_slice(b"id\0");
    columns.extend_from_slice(&16384u32.to_be_bytes());
    columns.extend_from_slice(&1i16.to_be_bytes());
    columns.extend_from_slice(&23u32.to_be_bytes());
    columns.extend_from_slice(&4i16.to_be_bytes());
    columns.extend_from_slice(&(-1i32).to_be_bytes());
    columns.extend_from_slice(&0i16.to_be_bytes());
    down(
        &shared,
        &mut FrameScanner::new(),
        &[
            msg(b'1', b""),
            msg(b't', b"\0\0"),
            msg(b'T', &columns),
            ready(b'I'),
        ]
        .concat(),
    );
    let execute = [
        msg(b'B', b"\0sel\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    up(&shared, &mut FrameScanner::new(), &execute);
    let answer = [stale_plan_error(), ready(b'I')].concat();
    down(&shared, &mut FrameScanner::new(), &answer);
    let (_, out) = up(&shared, &mut FrameScanner::new(), &execute);
    let sent = messages(&out);
    let tags: Vec<u8> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags, b"CPSPSBES");
    let texts: Vec<String> = sent
        .iter()
        .filter(|(t, _)| *t == b'P')
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    assert!(texts[0].contains("__duet_r"), "{texts:?}");
    assert!(texts[1].contains("\0select id from items\0"), "{texts:?}");
    // The shaped Parse succeeded; the fallback's duplicate error is not the client's.
    let duplicate = crate::wire::error::error_response(
        crate::wire::error::Severity::Error,
        "42P05",
        "prepared statement \"sel\" already exists",
        None,
    )
    .to_vec();
    let injected = [
        msg(b'3', b""),
        msg(b'1', b""),
        ready(b'I'),
        duplicate,
        ready(b'I'),
    ]
    .concat();
    let answers = [
        injected,
        msg(b'2', b""),
        msg(b'C', b"SELECT 0\0"),
        ready(b'I'),
    ]
    .concat();
    let (to_client, _) = down(&shared, &mut FrameScanner::new(), &answers);
    assert_eq!(
        to_client,
        [msg(b'2', b""), msg(b'C', b"SELECT 0\0"), ready(b'I')].concat()
    );
    assert_in_step(&shared, "after the injected answers");
}

#[test]
#[ignore = "micro-benchmark: run with --release --ignored --nocapture"]
fn cost_of_a_cached_rewrite() {
    let (plain, routed) = (context(), routed_context());
    let n = 200_000u32;
    let update = &b"update items set note = 'x' where id = 1\0"[..];
    let select = &b"select * from accounts where id = 1\0"[..];
    for (label, ctx, sql) in [
        ("no routes", &plain, update),
        ("routes, untouched", &routed, select),
        ("routes, rewritten", &routed, update),
    ] {
        let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
        let shared = Shared::new(ctx, &info);
        let query = msg(b'Q', sql);
        let answer = [msg(b'C', b"INSERT 0 1\0"), ready(b'I')].concat();
        let started = Instant::now();
        for _ in 0..n {
            let (_, out) = up(&shared, &mut FrameScanner::new(), &query);
            std::hint::black_box(out);
            let (out, _) = down(&shared, &mut FrameScanner::new(), &answer);
            std::hint::black_box(out);
        }
        eprintln!("{label}: {:?} per statement", started.elapsed() / n);
    }
}

#[test]
fn routes_appearing_mid_batch_keep_the_completions_aligned() {
    let ctx = context();
    let info = ctx.sessions.register("127.0.0.1:1".parse().unwrap());
    let shared = Shared::new(&ctx, &info);
    let first = [
        msg(b'P', b"\0select 1\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
    ]
    .concat();
    assert_eq!(up(&shared, &mut FrameScanner::new(), &first).1, first);
    ctx.routes
        .set_table("public", "items", Some(items_route()), 150000);
    let second = [
        msg(b'P', b"\0update items set note = 'x'\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    up(&shared, &mut FrameScanner::new(), &second);
    let answer = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', b"SELECT 1\0"),
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'C', b"INSERT 0 4\0"),
        ready(b'I'),
    ]
    .concat();
    let (out, _) = down(&shared, &mut FrameScanner::new(), &answer);
    let tags: Vec<_> = messages(&out)
        .into_iter()
        .filter(|(t, _)| *t == b'C')
        .map(|(_, b)| b)
        .collect();
    assert_eq!(tags, [b"SELECT 1\0".to_vec(), b"UPDATE 4\0".to_vec()]);
}
