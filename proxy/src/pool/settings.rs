//! A client's settings, carried from one backend connection to the next.
//!
//! A client's settings are what it asked for in its startup packet (`application_name`,
//! `client_encoding`, `DateStyle`, `options=-c …`) plus what its statements set for the session.
//! A pooled backend connection is opened with none of them; before a client's transaction runs
//! on a connection whose settings differ, duet sends `RESET ALL` and one `set_config` per setting
//! (one round trip, answers kept from the client). After a transaction whose text may have
//! changed settings ([`super::hazards`]), duet reads the session's settings back from
//! `pg_settings` (`source = 'session'`) — exact, whatever way they were changed — and that is
//! the client's new list.

/// Settings as `(name, value)` pairs, sorted by lower-case name, one per name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pairs: Vec<(String, String)>,
}

/// Startup parameters that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

impl Settings {
    /// A list from pairs (later pairs win).
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Settings {
        let mut settings = Settings::default();
        for (name, value) in pairs {
            settings.set(name, value);
        }
        settings
    }

    /// The settings a startup packet asks for: its parameters (but user, database, replication
    /// and protocol extensions) and the `-c name=value` / `--name=value` of its `options`.
    pub fn from_startup(parameters: &[(String, String)]) -> Settings {
        let mut settings = Settings::default();
        for (name, value) in parameters {
            if name == "options" {
                for (n, v) in parse_options(value) {
                    settings.set(n, v);
                }
            } else if !NOT_SETTINGS.contains(&name.as_str()) && !name.starts_with("_pq_.") {
                settings.set(name.clone(), value.clone());
            }
        }
        settings
    }

    /// Sets `name` (replacing a value under the same name in any case).
    pub fn set(&mut self, name: String, value: String) {
        let key = name.to_ascii_lowercase();
        match self
            .pairs
            .binary_search_by(|(n, _)| n.to_ascii_lowercase().cmp(&key))
        {
            Ok(at) => self.pairs[at] = (name, value),
            Err(at) => self.pairs.insert(at, (name, value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Whether a connection with `self` must be changed to serve a client with `other`.
    pub fn differs(&self, other: &Settings) -> bool {
        self.pairs.len() != other.pairs.len()
            || self
                .pairs
                .iter()
                .zip(&other.pairs)
                .any(|((n1, v1), (n2, v2))| !n1.eq_ignore_ascii_case(n2) || v1 != v2)
    }

    /// The statement that gives a connection exactly these settings: `RESET ALL`, then one
    /// `set_config` each. Values are dollar-quoted, which no `standard_conforming_strings` or
    /// backslash can change.
    pub fn replay_statement(&self) -> String {
        let mut sql = String::from("RESET ALL");
        if self.pairs.is_empty() {
            return sql;
        }
        sql.push_str("; SELECT ");
        for (i, (name, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("pg_catalog.set_config(");
            push_dollar_quoted(&mut sql, name);
            sql.push_str(", ");
            push_dollar_quoted(&mut sql, value);
            sql.push_str(", false)");
        }
        sql
    }
}

/// The query that reads a session's settings back.
pub const READ_BACK: &str = "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings WHERE source = 'session'";

/// Appends `text` dollar-quoted with a tag it does not contain.
fn push_dollar_quoted(sql: &mut String, text: &str) {
    let mut tag = String::from("$d$");
    let mut n = 0;
    while text.contains(&tag) {
        n += 1;
        tag = format!("$d{n}$");
    }
    sql.push_str(&tag);
    sql.push_str(text);
    sql.push_str(&tag);
}

/// The `name=value` pairs of a startup `options` string (`-c name=value`, `--name=value`,
/// backslash escapes a space), as PostgreSQL reads them.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut pairs = Vec::new();
    let mut iter = words.into_iter();
    while let Some(word) = iter.next() {
        let assignment = if word == "-c" {
            iter.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_owned())
        } else {
            word.strip_prefix("-c").map(str::to_owned)
        };
        if let Some((name, value)) = assignment.as_deref().and_then(|a| a.split_once('=')) {
            pairs.push((name.replace('-', "_"), value.to_owned()));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn startup_parameters_and_options_become_settings() {
        let settings = Settings::from_startup(&pairs(&[
            ("user", "app"),
            ("database", "shop"),
            ("application_name", "web"),
            ("DateStyle", "ISO"),
            (
                "options",
                "-c search_path=a,b --statement-timeout=5s -cwork_mem=8MB",
            ),
            ("_pq_.x", "1"),
        ]));
        assert_eq!(settings.get("datestyle"), Some("ISO"));
        assert_eq!(settings.get("search_path"), Some("a,b"));
        assert_eq!(settings.get("statement_timeout"), Some("5s"));
        assert_eq!(settings.get("work_mem"), Some("8MB"));
        assert_eq!(settings.get("user"), None);
        assert_eq!(settings.pairs().len(), 5);
    }

    #[test]
    fn replay_quotes_what_it_cannot_trust() {
        let settings = Settings::from_pairs(pairs(&[("search_path", "\"$user\", x$d$y")]));
        assert_eq!(
            settings.replay_statement(),
            "RESET ALL; SELECT pg_catalog.set_config($d$search_path$d$, $d1$\"$user\", x$d$y$d1$, false)"
        );
        assert_eq!(Settings::default().replay_statement(), "RESET ALL");
    }

    #[test]
    fn names_compare_without_case() {
        let a = Settings::from_pairs(pairs(&[("DateStyle", "ISO, MDY"), ("a", "1")]));
        let b = Settings::from_pairs(pairs(&[("a", "1"), ("datestyle", "ISO, MDY")]));
        assert!(!a.differs(&b));
        assert!(a.differs(&Settings::default()));
    }
}
