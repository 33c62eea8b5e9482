//! The PostgreSQL version a migration will run on: many facts changed between 11 and 18.

use std::fmt;
use std::str::FromStr;

/// A PostgreSQL server version: major, and the minor when it matters (14.0–14.3's index bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EngineVersion {
    /// Major version (11..=18 are modelled).
    pub major: u32,
    /// Minor version, when given.
    pub minor: Option<u32>,
}

/// Oldest major version whose behaviour is modelled.
pub const OLDEST_MODELLED: u32 = 11;
/// Newest major version whose behaviour is modelled.
pub const NEWEST_MODELLED: u32 = 18;

impl EngineVersion {
    /// The version assumed when none is configured.
    pub const DEFAULT: EngineVersion = EngineVersion {
        major: 15,
        minor: None,
    };

    /// A major version with no minor.
    pub fn major(major: u32) -> EngineVersion {
        EngineVersion { major, minor: None }
    }

    /// Whether this is major `major` or newer.
    pub fn at_least(self, major: u32) -> bool {
        self.major >= major
    }
}

impl Default for EngineVersion {
    fn default() -> Self {
        EngineVersion::DEFAULT
    }
}

/// Why a version string was refused.
#[derive(Debug, thiserror::Error)]
#[error("engine version {input:?} is not a PostgreSQL version between {OLDEST_MODELLED} and {NEWEST_MODELLED} (e.g. \"15\" or \"14.3\")")]
pub struct VersionError {
    input: String,
}

impl FromStr for EngineVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError {
            input: s.to_string(),
        };
        let mut parts = s.trim().splitn(3, '.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let minor = match parts.next() {
            Some(p) => Some(p.parse::<u32>().map_err(|_| err())?),
            None => None,
        };
        if !(OLDEST_MODELLED..=NEWEST_MODELLED).contains(&major) {
            return Err(err());
        }
        Ok(EngineVersion { major, minor })
    }
}

impl fmt::Display for EngineVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            Some(minor) => write!(f, "{}.{}", self.major, minor),
            None => write!(f, "{}", self.major),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_and_minor() {
        assert_eq!(
            "15".parse::<EngineVersion>().ok(),
            Some(EngineVersion::major(15))
        );
        let v: EngineVersion = "14.3".parse().unwrap_or_default();
        assert_eq!((v.major, v.minor), (14, Some(3)));
        assert!("10".parse::<EngineVersion>().is_err());
        assert!("x".parse::<EngineVersion>().is_err());
        assert!("15.x".parse::<EngineVersion>().is_err());
    }
}
