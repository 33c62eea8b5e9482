//! Identity columns across a shadow table's flip and revert (see
//! shadow/docs/online-migrations.md, "Identity and generated columns"): the new table continues
//! exactly where the old sequence was, under its name.

use crate::ident::quote_ident;

use super::super::catalog::{ColumnInfo, IdentitySequence};
use super::super::names::{with_suffix, OLD_SUFFIX, TEMP_SUFFIX};
use super::super::steps::{step, BRIEF};
use super::super::{Step, StepLock};
use crate::check::LockMode;

/// The flip's and the revert's steps for one identity column of a shadow-table plan.
pub(super) struct IdentitySteps {
    pub(super) flip: Vec<Step>,
    pub(super) revert: Vec<Step>,
}

/// The bounds of an identity sequence's data type (as `format_type` prints it).
fn sequence_type_range(data_type: &str) -> Option<(i64, i64)> {
    match data_type {
        "smallint" => Some((i16::MIN.into(), i16::MAX.into())),
        "integer" => Some((i32::MIN.into(), i32::MAX.into())),
        "bigint" => Some((i64::MIN, i64::MAX)),
        _ => None,
    }
}

/// The sequence type of an identity column of base type `base` (`int4` → `integer`).
fn sequence_type_of(base: &str) -> Option<&'static str> {
    match base {
        "int2" => Some("smallint"),
        "int4" => Some("integer"),
        "int8" => Some("bigint"),
        _ => None,
    }
}

/// `SELECT setval(target, …)` to the state of whichever of `sources` (sequences, SQL names) is
/// furthest along in the direction of `increment`: the next value it would hand out is the
/// furthest, and the target then hands out exactly what that one would have. A sequence's state
/// is not transactional, so this runs in the flip's or revert's transaction, while clients are
/// held, and reads the state of that moment.
fn sync_sequence(target: &str, sources: &[&str], increment: i64) -> String {
    let sign = if increment < 0 { -1 } else { 1 };
    let states = sources
        .iter()
        .map(|s| {
            format!(
                "SELECT last_value, is_called, (CASE WHEN is_called THEN last_value::numeric +                  ({increment}) ELSE last_value::numeric END) * ({sign}) AS progress FROM {s}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!(
        "SELECT pg_catalog.setval('{}'::regclass, s.last_value, s.is_called) FROM ({states}) AS s \
         ORDER BY s.progress DESC LIMIT 1",
        target.replace('\'', "''")
    )
}

/// An identity column through the flip and the revert (see shadow/docs/online-migrations.md,
/// "Identity and generated columns"). The shadow holds the column as a plain one, so the
/// dual-writes, the safety net and the copier write the values the old table generated. In the
/// flip (`t` is the new table by then, `old` the parked old one): the old sequence is parked
/// under `<name>__duet_old`, the new table's column gets its identity back — same kind, same
/// options, the sequence under the old name — and the sequence is set to the old one's state of
/// that moment; an `ALWAYS` identity on the old table becomes `BY DEFAULT`, so the reverse
/// mirror's explicit values are taken. The revert (old table back as `t`, new one at the shadow
/// name) sets the old sequence to whichever sequence is further along, swaps the names back and
/// restores `ALWAYS`. `new_base` is the column's new base type when it changes.
pub(super) fn identity_steps(
    col: &ColumnInfo,
    seq: &IdentitySequence,
    new_base: Option<&str>,
    (t, old): (&str, &str),
) -> IdentitySteps {
    let q = quote_ident(&col.name);
    let always = col.identity == "a";
    let kind = if always { "ALWAYS" } else { "BY DEFAULT" };
    let schema = quote_ident(&seq.name.schema);
    let current = seq.name.sql();
    let parked_name = with_suffix(&seq.name.name, OLD_SUFFIX);
    let parked = format!("{schema}.{}", quote_ident(&parked_name));
    let temp_name = with_suffix(&seq.name.name, TEMP_SUFFIX);
    // A type change re-bases the bounds the way `ALTER SEQUENCE … AS` (and PostgreSQL's own
    // ALTER COLUMN … TYPE of an identity column) does: a bound that was the old type's own
    // becomes the new type's; an explicit one stays.
    let new_type = new_base.and_then(sequence_type_of);
    let retyped = new_type.is_some_and(|n| n != seq.data_type);
    let old_range = sequence_type_range(&seq.data_type);
    let bound = |value: i64, default_of: fn((i64, i64)) -> i64, word: &str| match old_range {
        Some(range) if retyped && value == default_of(range) => format!("NO {word}"),
        _ => format!("{word} {value}"),
    };
    let options = format!(
        "SEQUENCE NAME {current} START WITH {} INCREMENT BY {} {} {} CACHE {} {}",
        seq.start,
        seq.increment,
        bound(seq.min, |r| r.0, "MINVALUE"),
        bound(seq.max, |r| r.1, "MAXVALUE"),
        seq.cache,
        if seq.cycle { "CYCLE" } else { "NO CYCLE" }
    );
    let mut flip = vec![
        step(
            format!(
                "ALTER SEQUENCE {current} RENAME TO {}",
                quote_ident(&parked_name)
            ),
            StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
            "free the identity sequence's name for the new table",
        ),
        step(
            format!("ALTER TABLE {t} ALTER COLUMN {q} ADD GENERATED {kind} AS IDENTITY ({options})"),
            BRIEF,
            "the new table generates the column as the old one did: same kind, same sequence options, the sequence under the old name",
        ),
        step(
            sync_sequence(&current, &[&parked], seq.increment),
            StepLock::none("(the sequence's state)"),
            "the new sequence continues after the last value the old one handed out (read now, while clients are held)",
        ),
    ];
    flip.extend(seq.grants.iter().map(|g| {
        step(
            g.replace("{}", &current),
            StepLock::none(""),
            "the new sequence has the old one's privileges",
        )
    }));
    let mut revert = vec![
        step(
            sync_sequence(&parked, &[&current, &parked], seq.increment),
            StepLock::none("(the sequence's state)"),
            "the old table continues after the highest value either table handed out (fails, refusing the revert, when that does not fit the old sequence's type)",
        ),
        step(
            format!(
                "ALTER SEQUENCE {current} RENAME TO {}",
                quote_ident(&temp_name)
            ),
            StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
            "the new table's sequence leaves the name (it is dropped with the new table)",
        ),
        step(
            format!(
                "ALTER SEQUENCE {parked} RENAME TO {}",
                quote_ident(&seq.name.name)
            ),
            StepLock::new(LockMode::AccessExclusive, "on the sequence (brief)"),
            "the old sequence takes its name back",
        ),
    ];
    if always {
        flip.push(step(
            format!("ALTER TABLE {old} ALTER COLUMN {q} SET GENERATED BY DEFAULT"),
            BRIEF,
            "the reverse mirror writes the new table's values into the old one explicitly, which GENERATED ALWAYS would reject",
        ));
        revert.push(step(
            format!("ALTER TABLE {t} ALTER COLUMN {q} SET GENERATED ALWAYS"),
            BRIEF,
            "the old table's identity is ALWAYS again",
        ));
    }
    IdentitySteps { flip, revert }
}
