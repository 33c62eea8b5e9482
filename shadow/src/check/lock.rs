//! PostgreSQL's table-level lock modes, named as the server names them, with what each blocks.
//!
//! The conflict table is the server's (`src/backend/storage/lmgr/lock.c`); a plain `SELECT` takes
//! ACCESS SHARE and DML takes ROW EXCLUSIVE, so "blocks reads" and "blocks writes" are exactly
//! "conflicts with ACCESS SHARE" and "conflicts with ROW EXCLUSIVE".

use serde::{Serialize, Serializer};

/// A table-level lock mode, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// ACCESS SHARE: taken by `SELECT`.
    AccessShare,
    /// ROW SHARE: `SELECT … FOR UPDATE/SHARE`, the referenced side of FK validation.
    RowShare,
    /// ROW EXCLUSIVE: taken by `INSERT`, `UPDATE`, `DELETE`, `MERGE`.
    RowExclusive,
    /// SHARE UPDATE EXCLUSIVE: blocks DDL and VACUUM, not reads or writes.
    ShareUpdateExclusive,
    /// SHARE: blocks writes (`CREATE INDEX`).
    Share,
    /// SHARE ROW EXCLUSIVE: blocks writes (`CREATE TRIGGER`, `ADD FOREIGN KEY`).
    ShareRowExclusive,
    /// EXCLUSIVE: blocks writes and `FOR UPDATE` readers (`REFRESH … CONCURRENTLY`).
    Exclusive,
    /// ACCESS EXCLUSIVE: blocks everything, including plain reads.
    AccessExclusive,
}

impl LockMode {
    /// All modes, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The name PostgreSQL's documentation uses (e.g. "ACCESS EXCLUSIVE").
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// The name `pg_locks.mode` shows (e.g. "AccessExclusiveLock").
    pub fn pg_locks_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// Parses a `pg_locks.mode` value.
    pub fn from_pg_locks_name(name: &str) -> Option<LockMode> {
        LockMode::ALL
            .into_iter()
            .find(|m| m.pg_locks_name() == name)
    }

    /// The mode `LOCK TABLE … IN <mode> MODE` takes, from the parser's numeric code (1..=8).
    pub fn from_lock_statement_code(code: i32) -> Option<LockMode> {
        usize::try_from(code)
            .ok()
            .and_then(|c| c.checked_sub(1))
            .and_then(|i| LockMode::ALL.get(i).copied())
    }

    /// Whether two modes conflict (the server's conflict matrix).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        let conflicts: &[LockMode] = match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => &[
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Share => &[
                RowExclusive,
                ShareUpdateExclusive,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            ShareRowExclusive => &[
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Exclusive => &[
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            AccessExclusive => &LockMode::ALL,
        };
        conflicts.contains(&other)
    }

    /// Whether holding (or waiting for) this lock stops plain `SELECT`s.
    pub fn blocks_reads(self) -> bool {
        self.conflicts_with(LockMode::AccessShare)
    }

    /// Whether holding (or waiting for) this lock stops `INSERT`/`UPDATE`/`DELETE`.
    pub fn blocks_writes(self) -> bool {
        self.conflicts_with(LockMode::RowExclusive)
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for LockMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_matrix_is_symmetric() {
        for a in LockMode::ALL {
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn only_access_exclusive_blocks_reads() {
        let blocking: Vec<_> = LockMode::ALL
            .into_iter()
            .filter(|m| m.blocks_reads())
            .collect();
        assert_eq!(blocking, vec![LockMode::AccessExclusive]);
        assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
        assert!(LockMode::Share.blocks_writes());
        assert_eq!(
            LockMode::from_lock_statement_code(8),
            Some(LockMode::AccessExclusive)
        );
        assert_eq!(LockMode::from_lock_statement_code(0), None);
    }
}
