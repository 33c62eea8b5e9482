//! The `[check]` table of duet.toml: engine version, rule levels, exclusions.
//!
//! ```toml
//! [check]
//! engine_version = "15"          # 11..=18, optionally with a minor ("14.3")
//! fail_on = "error"              # info | warning | error: exit 1 at or above this level
//! assume_in_transaction = true   # the runner wraps each file in a transaction
//! session_time_zone = "UTC"      # the migration session's TimeZone (timestamp → timestamptz);
//!                                # unset: unknown, so that change is judged a rewrite
//! runner_sets_lock_timeout = false  # true if the runner sets lock_timeout on its connection
//! exclude_rules = ["prefer-robust-stmts"]
//! exclude_paths = ["migrations/legacy/"]   # path prefixes not checked
//!
//! [check.rules]
//! require-lock-timeout = "error" # info | warning | error | off
//! ```
//!
//! The proxy's own config loader ignores this table; `duet check` reads it through [`CheckConfig`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::report::Level;
use super::version::EngineVersion;
use super::CheckError;

/// A configured rule level: a [`Level`] or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSetting {
    /// The rule does not run.
    Off,
    /// The rule reports at this level.
    Level(Level),
}

/// The `[check]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Server version.
    pub engine_version: EngineVersion,
    /// Lowest level that makes `duet check` exit 1.
    pub fail_on: Level,
    /// The runner wraps each file in a transaction unless a marker says otherwise.
    pub assume_in_transaction: bool,
    /// The migration session's `TimeZone` is known to be UTC (`session_time_zone = "UTC"`).
    /// duet cannot see the runner's session, so the default is `false`: timestamp ↔ timestamptz
    /// is judged a rewrite, as it is under any other TimeZone.
    pub session_time_zone_utc: bool,
    /// The migration runner sets `lock_timeout` on its connection (e.g. strong_migrations), so
    /// every file starts with one.
    pub runner_sets_lock_timeout: bool,
    /// Per-rule settings.
    pub rules: BTreeMap<String, RuleSetting>,
    /// Path prefixes that are not checked.
    pub exclude_paths: Vec<String>,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            engine_version: EngineVersion::DEFAULT,
            fail_on: Level::Error,
            assume_in_transaction: true,
            session_time_zone_utc: false,
            runner_sets_lock_timeout: false,
            rules: BTreeMap::new(),
            exclude_paths: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct File {
    check: Option<Raw>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    engine_version: Option<toml::Value>,
    fail_on: Option<String>,
    assume_in_transaction: Option<bool>,
    session_time_zone: Option<String>,
    runner_sets_lock_timeout: Option<bool>,
    exclude_rules: Option<Vec<String>>,
    exclude_paths: Option<Vec<String>>,
    rules: Option<BTreeMap<String, String>>,
}

impl CheckConfig {
    /// Reads the `[check]` table of a duet.toml; other tables are ignored.
    pub fn from_toml(text: &str, origin: &Path) -> Result<CheckConfig, CheckError> {
        let bad = |message: String| CheckError::Config {
            path: origin.to_path_buf(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let raw = file.check.unwrap_or_default();
        let mut cfg = CheckConfig::default();
        if let Some(v) = raw.engine_version {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => return Err(bad(format!("engine_version must be a string, not {other}"))),
            };
            cfg.engine_version = s
                .parse()
                .map_err(|e: super::version::VersionError| bad(e.to_string()))?;
        }
        if let Some(f) = raw.fail_on {
            cfg.fail_on = Level::parse(&f)
                .ok_or_else(|| bad(format!("fail_on must be info, warning or error, not {f:?}")))?;
        }
        if let Some(a) = raw.assume_in_transaction {
            cfg.assume_in_transaction = a;
        }
        if let Some(r) = raw.runner_sets_lock_timeout {
            cfg.runner_sets_lock_timeout = r;
        }
        if let Some(tz) = raw.session_time_zone {
            cfg.session_time_zone_utc = is_utc(&tz);
        }
        for r in raw.exclude_rules.unwrap_or_default() {
            cfg.rules.insert(r, RuleSetting::Off);
        }
        for (rule, level) in raw.rules.unwrap_or_default() {
            let setting = if level.eq_ignore_ascii_case("off") {
                RuleSetting::Off
            } else {
                RuleSetting::Level(Level::parse(&level).ok_or_else(|| {
                    bad(format!(
                        "rule {rule}: level must be info, warning, error or off, not {level:?}"
                    ))
                })?)
            };
            cfg.rules.insert(rule, setting);
        }
        let known = super::rules::all();
        for rule in cfg.rules.keys() {
            if !known.iter().any(|r| r.id == rule) {
                return Err(bad(format!("unknown rule {rule:?}")));
            }
        }
        cfg.exclude_paths = raw.exclude_paths.unwrap_or_default();
        Ok(cfg)
    }

    /// Reads a duet.toml file.
    pub fn load(path: &Path) -> Result<CheckConfig, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|source| CheckError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        CheckConfig::from_toml(&text, path)
    }

    /// Whether a path is excluded from checking.
    pub fn path_excluded(&self, path: &str) -> bool {
        self.exclude_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }
}

/// Whether a `TimeZone` setting means UTC.
pub fn is_utc(tz: &str) -> bool {
    matches!(
        tz.to_ascii_uppercase().as_str(),
        "UTC"
            | "ETC/UTC"
            | "GMT"
            | "ETC/GMT"
            | "Z"
            | "ZULU"
            | "UCT"
            | "ETC/UCT"
            | "UNIVERSAL"
            | "ETC/UNIVERSAL"
            | "+00:00"
            | "00:00"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_check_table_and_ignores_the_rest() {
        let text = "[proxy]\nlisten = \"x\"\n[check]\nengine_version = 12\nfail_on = \"warning\"\nexclude_rules = [\"prefer-robust-stmts\"]\n[check.rules]\nrequire-lock-timeout = \"error\"\n";
        let cfg = CheckConfig::from_toml(text, Path::new("duet.toml"));
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.engine_version.major, 12);
        assert_eq!(cfg.fail_on, Level::Warning);
        assert_eq!(
            cfg.rules.get("prefer-robust-stmts"),
            Some(&RuleSetting::Off)
        );
        assert_eq!(
            cfg.rules.get("require-lock-timeout"),
            Some(&RuleSetting::Level(Level::Error))
        );
    }

    #[test]
    fn rejects_unknown_rules_and_levels() {
        assert!(CheckConfig::from_toml(
            "[check.rules]\nno-such-rule = \"error\"\n",
            Path::new("x")
        )
        .is_err());
        assert!(CheckConfig::from_toml("[check]\nfail_on = \"loud\"\n", Path::new("x")).is_err());
        assert!(CheckConfig::from_toml("", Path::new("x")).is_ok());
    }
}
