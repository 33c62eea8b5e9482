//! The migration's phases and the transitions allowed between them.

use std::fmt;
use std::str::FromStr;

use crate::migrate::error::MigrateError;

/// Where a migration is in its life. Stored as text in `duet.migrations.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Validated and recorded; nothing touched yet.
    Planned,
    /// Creating the shadow (guarded DDL).
    Expanding,
    /// Dual-writes on; the copier runs.
    Copying,
    /// Chunked checksums and repair.
    Verifying,
    /// Verified; waiting for the flip.
    Ready,
    /// The proxy holds new transactions and swaps the names.
    Flipping,
    /// The new shape is live; the old one is kept for revert.
    Flipped,
    /// Dropping the old shape.
    Completing,
    /// Done (terminal).
    Completed,
    /// Dropping the shadow before a flip.
    Aborting,
    /// Aborted, nothing left (terminal).
    Aborted,
    /// Flipping back after a flip.
    Reverting,
    /// Reverted (terminal).
    Reverted,
}

impl Phase {
    /// Every phase, in life-cycle order.
    pub const ALL: [Phase; 13] = [
        Phase::Planned,
        Phase::Expanding,
        Phase::Copying,
        Phase::Verifying,
        Phase::Ready,
        Phase::Flipping,
        Phase::Flipped,
        Phase::Completing,
        Phase::Completed,
        Phase::Aborting,
        Phase::Aborted,
        Phase::Reverting,
        Phase::Reverted,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::Expanding => "expanding",
            Phase::Copying => "copying",
            Phase::Verifying => "verifying",
            Phase::Ready => "ready",
            Phase::Flipping => "flipping",
            Phase::Flipped => "flipped",
            Phase::Completing => "completing",
            Phase::Completed => "completed",
            Phase::Aborting => "aborting",
            Phase::Aborted => "aborted",
            Phase::Reverting => "reverting",
            Phase::Reverted => "reverted",
        }
    }

    /// A finished migration no longer blocks a new one on the same table.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Aborted | Phase::Reverted)
    }

    /// Whether `self -> to` is a legal step.
    ///
    /// Forward steps follow the recipe; `verifying -> copying` re-copies after a failed check,
    /// `ready -> verifying` re-checks, `flipping -> ready` is a flip that missed its budget or lock
    /// (everything released, nothing changed). Abort is possible up to the flip; after the flip only
    /// revert or complete.
    ///
    /// Shortcuts by strategy: a rename has nothing to expand or copy (`planned -> ready`); an
    /// in-place change is done once its expand steps ran (`expanding -> completed`); the proxy's
    /// controller commits `ready -> flipped` in the flip's own transaction, so `flipping` is never
    /// stored by it (the phase is kept for other controllers and old rows).
    pub fn can_transition_to(self, to: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, to),
            (Planned, Expanding)
                | (Expanding, Copying)
                | (Copying, Verifying)
                | (Verifying, Ready)
                | (Verifying, Copying)
                | (Ready, Verifying)
                | (Ready, Flipping)
                | (Ready, Flipped)
                | (Planned, Ready)
                | (Expanding, Completed)
                | (Flipping, Flipped)
                | (Flipping, Ready)
                | (Flipped, Completing)
                | (Flipped, Reverting)
                | (Completing, Completed)
                | (Reverting, Reverted)
                | (
                    Planned | Expanding | Copying | Verifying | Ready | Flipping,
                    Aborting
                )
                | (Aborting, Aborted)
        )
    }

    /// Check a transition, with the error the state store reports.
    pub fn check_transition(self, id: i64, to: Phase) -> Result<(), MigrateError> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(MigrateError::IllegalTransition { id, from: self, to })
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = MigrateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| MigrateError::CorruptState(format!("unknown phase {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>().ok(), Some(p));
        }
    }

    #[test]
    fn terminal_phases_have_no_exit() {
        for from in Phase::ALL.into_iter().filter(|p| p.is_terminal()) {
            assert!(Phase::ALL.into_iter().all(|to| !from.can_transition_to(to)));
        }
    }

    #[test]
    fn no_abort_after_flip_and_no_skipping_the_copy() {
        assert!(!Phase::Flipped.can_transition_to(Phase::Aborting));
        assert!(!Phase::Planned.can_transition_to(Phase::Flipped));
        assert!(!Phase::Planned.can_transition_to(Phase::Verifying));
        assert!(!Phase::Copying.can_transition_to(Phase::Flipping));
    }
}
