//! Which `ALTER COLUMN … TYPE` changes PostgreSQL applies without rewriting the table.
//!
//! A change skips the rewrite when the new type is binary-coercible from the old one and no value
//! can fail the new modifier (ENGINE-FACTS.md, "Type changes that need no rewrite").

use super::ast::ColumnType;
use super::version::EngineVersion;

/// What the server will do for a type change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeChange {
    /// Same type and modifiers: nothing happens beyond the lock.
    NoOp,
    /// Binary-coercible: catalog-only (indexes kept).
    NoRewrite,
    /// No table rewrite, but the column's indexes are rebuilt, which reads the whole table
    /// (timestamp ↔ timestamptz under UTC on an indexed column: the operator class changes).
    RebuildsIndexes,
    /// Every row is converted: table and indexes are rewritten.
    Rewrite,
}

/// Options that decide borderline type changes.
#[derive(Debug, Clone, Copy)]
pub struct CoercionContext {
    /// The server version.
    pub version: EngineVersion,
    /// Whether the migration session's `TimeZone` is known to be UTC (timestamp ↔ timestamptz is
    /// then free of a table rewrite, 12+). Unknown counts as not UTC.
    pub session_time_zone_utc: bool,
    /// Whether the column is indexed (citext ↔ text needs a rewrite of the index then, and
    /// timestamp ↔ timestamptz rebuilds its indexes).
    pub column_indexed: bool,
}

/// Decides what changing `old` to `new` does. `USING` expressions are judged by the caller.
pub fn type_change(old: &ColumnType, new: &ColumnType, cx: CoercionContext) -> TypeChange {
    if old == new {
        return TypeChange::NoOp;
    }
    if old.array != new.array {
        return TypeChange::Rewrite;
    }
    let o = old.name.as_str();
    let n = new.name.as_str();
    let first = |t: &ColumnType| t.mods.first().copied();
    let free = match (o, n) {
        // varchar(n) → varchar(m ≥ n) or unlimited; text ↔ unlimited varchar.
        ("varchar", "varchar") => match (first(old), first(new)) {
            (_, None) => true,
            (Some(a), Some(b)) => b >= a,
            (None, Some(_)) => false,
        },
        ("varchar", "text") | ("text", "text") => true,
        ("text", "varchar") => new.mods.is_empty(),
        ("varbit", "varbit") => match (first(old), first(new)) {
            (_, None) => true,
            (Some(a), Some(b)) => b >= a,
            (None, Some(_)) => false,
        },
        // numeric(p,s) → numeric(p' ≥ p, s) or unconstrained.
        ("numeric", "numeric") => {
            if new.mods.is_empty() {
                true
            } else if old.mods.is_empty() {
                false
            } else {
                let (p, s) = (old.mods[0], old.mods.get(1).copied().unwrap_or(0));
                let (p2, s2) = (new.mods[0], new.mods.get(1).copied().unwrap_or(0));
                p2 >= p && s2 == s
            }
        }
        // Precision increases of time types (no modifier = maximum precision).
        ("timestamp", "timestamp")
        | ("timestamptz", "timestamptz")
        | ("time", "time")
        | ("timetz", "timetz")
        | ("interval", "interval") => match (first(old), first(new)) {
            (_, None) => true,
            (Some(a), Some(b)) => b >= a,
            (None, Some(_)) => false,
        },
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => {
            let free = cx.version.at_least(12)
                && cx.session_time_zone_utc
                && precision_not_lower(first(old), first(new));
            if free && cx.column_indexed {
                return TypeChange::RebuildsIndexes;
            }
            free
        }
        ("text", "citext") | ("varchar", "citext") | ("citext", "text") => {
            !cx.column_indexed && new.mods.is_empty()
        }
        ("cidr", "inet") => true,
        _ => false,
    };
    if free {
        TypeChange::NoRewrite
    } else {
        TypeChange::Rewrite
    }
}

/// Whether what `old` → `new` does depends on the session's `TimeZone` (timestamp ↔ timestamptz).
pub fn depends_on_time_zone(old: &ColumnType, new: &ColumnType) -> bool {
    !old.array
        && !new.array
        && matches!(
            (old.name.as_str(), new.name.as_str()),
            ("timestamp", "timestamptz") | ("timestamptz", "timestamp")
        )
}

fn precision_not_lower(old: Option<i64>, new: Option<i64>) -> bool {
    match (old, new) {
        (_, None) => true,
        (Some(a), Some(b)) => b >= a,
        (None, Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, mods: &[i64]) -> ColumnType {
        ColumnType {
            name: name.into(),
            mods: mods.to_vec(),
            array: false,
        }
    }

    fn cx(major: u32, utc: bool) -> CoercionContext {
        CoercionContext {
            version: EngineVersion::major(major),
            session_time_zone_utc: utc,
            column_indexed: false,
        }
    }

    #[test]
    fn known_free_and_rewriting_changes() {
        let c = cx(15, true);
        assert_eq!(
            type_change(&t("varchar", &[10]), &t("varchar", &[20]), c),
            TypeChange::NoRewrite
        );
        assert_eq!(
            type_change(&t("varchar", &[20]), &t("varchar", &[10]), c),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&t("text", &[]), &t("varchar", &[10]), c),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&t("int4", &[]), &t("int8", &[]), c),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&t("numeric", &[10, 2]), &t("numeric", &[12, 2]), c),
            TypeChange::NoRewrite
        );
        assert_eq!(
            type_change(&t("numeric", &[10, 2]), &t("numeric", &[12, 3]), c),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&t("timestamp", &[]), &t("timestamptz", &[]), c),
            TypeChange::NoRewrite
        );
        assert_eq!(
            type_change(&t("timestamp", &[]), &t("timestamptz", &[]), cx(11, true)),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&t("timestamp", &[]), &t("timestamptz", &[]), cx(15, false)),
            TypeChange::Rewrite
        );
        assert_eq!(
            type_change(&t("int4", &[]), &t("int4", &[]), c),
            TypeChange::NoOp
        );
        let indexed = CoercionContext {
            column_indexed: true,
            ..c
        };
        assert_eq!(
            type_change(&t("timestamp", &[]), &t("timestamptz", &[]), indexed),
            TypeChange::RebuildsIndexes
        );
        assert_eq!(
            type_change(&t("varchar", &[10]), &t("varchar", &[20]), indexed),
            TypeChange::NoRewrite
        );
    }
}
