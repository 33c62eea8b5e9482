//! What a plan's step locks, as the plan shows it: the strongest PostgreSQL lock mode it takes
//! on a table (or none) and what qualifies it — how long it is held, on which relation.
//!
//! Stored plans and the admin socket carry it as one string, `ACCESS EXCLUSIVE (brief, metadata
//! only)`, `SHARE UPDATE EXCLUSIVE on the shadow (does not block reads or writes)`, `none`, so
//! the string form is exactly the mode's name followed by the detail.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::check::LockMode;

/// The strongest lock a step takes on the table, and what qualifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLock {
    /// The lock mode; `None` when the step takes no lock on the table.
    pub mode: Option<LockMode>,
    /// What qualifies the mode, written after it (`(brief, metadata only)`, `on the shadow`);
    /// empty when nothing does.
    pub detail: Cow<'static, str>,
}

impl StepLock {
    /// `mode`, qualified by `detail` (empty for none).
    pub const fn new(mode: LockMode, detail: &'static str) -> Self {
        StepLock {
            mode: Some(mode),
            detail: Cow::Borrowed(detail),
        }
    }

    /// No lock on the table, qualified by `detail` (empty for none).
    pub const fn none(detail: &'static str) -> Self {
        StepLock {
            mode: None,
            detail: Cow::Borrowed(detail),
        }
    }
}

/// The word a lock-free step shows in place of a mode.
const NONE: &str = "none";

impl fmt::Display for StepLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode.map_or(NONE, LockMode::name))?;
        if !self.detail.is_empty() {
            write!(f, " {}", self.detail)?;
        }
        Ok(())
    }
}

/// A lock text that does not start with a lock mode's name or `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "step lock {0:?} does not start with a PostgreSQL lock mode (e.g. ACCESS EXCLUSIVE) or none"
)]
pub struct UnknownStepLock(pub String);

impl FromStr for StepLock {
    type Err = UnknownStepLock;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Longest names first: SHARE ROW EXCLUSIVE is not SHARE followed by a detail.
        let mut modes: Vec<Option<LockMode>> = LockMode::ALL.into_iter().map(Some).collect();
        modes.sort_by_key(|mode| std::cmp::Reverse(mode.map_or(NONE, LockMode::name).len()));
        modes.push(None);
        for mode in modes {
            let name = mode.map_or(NONE, LockMode::name);
            let Some(rest) = text.strip_prefix(name) else {
                continue;
            };
            let detail = if rest.is_empty() {
                ""
            } else if let Some(detail) = rest.strip_prefix(' ') {
                detail
            } else {
                continue;
            };
            return Ok(StepLock {
                mode,
                detail: Cow::Owned(detail.to_owned()),
            });
        }
        Err(UnknownStepLock(text.to_owned()))
    }
}

impl Serialize for StepLock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StepLock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_lock_texts_read_back_as_they_were_written() {
        for text in [
            "ACCESS EXCLUSIVE (brief, metadata only)",
            "ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE (brief, no scan)",
            "SHARE ROW EXCLUSIVE on both tables (held already)",
            "SHARE UPDATE EXCLUSIVE (does not block reads or writes)",
            "SHARE",
            "ROW EXCLUSIVE",
            "EXCLUSIVE",
            "none",
            "none (the sequence's state)",
        ] {
            let lock: StepLock = text.parse().expect(text);
            assert_eq!(lock.to_string(), text);
            let json = serde_json::to_string(&lock).expect("serializes");
            assert_eq!(json, serde_json::to_string(text).expect("a string"));
            assert_eq!(
                serde_json::from_str::<StepLock>(&json).expect("reads"),
                lock
            );
        }
        let lock: StepLock = "SHARE ROW EXCLUSIVE on the new table"
            .parse()
            .expect("parses");
        assert_eq!(lock.mode, Some(LockMode::ShareRowExclusive));
        assert_eq!(lock.detail, "on the new table");
        assert_eq!(
            "SHARED".parse::<StepLock>(),
            Err(UnknownStepLock("SHARED".to_owned()))
        );
        assert!("nonesuch".parse::<StepLock>().is_err());
    }
}
