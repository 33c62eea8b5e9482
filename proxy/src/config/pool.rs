//! The `[pool]` settings: session or transaction pooling, per database and per user, and the
//! users duet authenticates itself in transaction mode.
//!
//! ```toml
//! [pool]
//! mode = "session"          # the default for every database and user ("transaction" pools)
//! size = 20                 # backend connections per (user, database) in transaction mode
//! wait_timeout = "30s"      # how long a transaction waits for a free backend connection
//!
//! [[pool.databases]]        # a database's own mode (a user's own mode wins over it) and size
//! name = "shop"
//! mode = "transaction"
//!
//! [[pool.users]]            # who may connect in transaction mode, and with what secret
//! name = "app"
//! password = "…"            # or scram_verifier = "SCRAM-SHA-256$4096:…" (from pg_authid)
//! mode = "transaction"      # optional: this user's own mode
//! ```
//!
//! With `auth_query` set, a user who is not in the list is looked up on the server (duet's
//! control login runs the query with the user's name as `$1`; the second column is the SCRAM
//! verifier), as PgBouncer's `auth_query` does.

use std::time::Duration;

use serde::Deserialize;

use super::{duration_setting, field_error, ConfigError};

/// How a client's session uses backend connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// One backend connection per client, for the client's whole session (PostgreSQL's own
    /// model; authentication is relayed to the backend).
    #[default]
    Session,
    /// A backend connection per transaction, from a pool per (user, database); duet
    /// authenticates clients itself.
    Transaction,
}

impl PoolMode {
    fn parse(field: &'static str, text: &str) -> Result<PoolMode, ConfigError> {
        match text {
            "session" => Ok(PoolMode::Session),
            "transaction" => Ok(PoolMode::Transaction),
            other => Err(field_error(
                field,
                format!("expected \"session\" or \"transaction\", got {other:?}"),
            )),
        }
    }
}

/// A user duet authenticates itself (transaction mode).
#[derive(Clone, PartialEq, Eq)]
pub struct PoolUser {
    /// The role name clients log in as.
    pub name: String,
    /// The password: duet checks clients against it and logs its backend connections in with it.
    pub password: Option<String>,
    /// A SCRAM verifier as PostgreSQL stores it: clients are checked against it, and the backend
    /// connections log in with the key the first client's proof reveals (as PgBouncer does).
    pub scram_verifier: Option<String>,
    /// This user's own mode, if set.
    pub mode: Option<PoolMode>,
}

impl std::fmt::Debug for PoolUser {
    // Secrets are never printed, not even in a debug dump of the settings.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolUser")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field(
                "scram_verifier",
                &self.scram_verifier.as_ref().map(|_| "<hidden>"),
            )
            .field("mode", &self.mode)
            .finish()
    }
}

/// A database's own pool settings (`[[pool.databases]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDatabase {
    /// The database's name.
    pub name: String,
    /// Its own mode (a user's own mode still wins).
    pub mode: Option<PoolMode>,
    /// Its own pool size (per user) in transaction mode.
    pub size: Option<usize>,
}

/// The validated `[pool]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The mode of databases and users that set none.
    pub mode: PoolMode,
    /// Backend connections per (user, database) in transaction mode.
    pub size: usize,
    /// How long a transaction waits for a free backend connection before its client is told.
    pub wait_timeout: Duration,
    /// Databases with their own mode or pool size.
    pub databases: Vec<PoolDatabase>,
    /// The users duet authenticates in transaction mode.
    pub users: Vec<PoolUser>,
    /// The query that looks up a user not in `users` (`$1` = the user's name; the second column
    /// of its row is the SCRAM verifier), run with duet's control login.
    pub auth_query: Option<String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            mode: PoolMode::Session,
            size: 20,
            wait_timeout: Duration::from_secs(30),
            databases: Vec::new(),
            users: Vec::new(),
            auth_query: None,
        }
    }
}

impl PoolConfig {
    /// The mode of a session of `user` on `database`: the user's own, else the database's, else
    /// the default.
    pub fn mode_for(&self, user: &str, database: &str) -> PoolMode {
        if let Some(mode) = self.user(user).and_then(|u| u.mode) {
            return mode;
        }
        self.database(database)
            .and_then(|db| db.mode)
            .unwrap_or(self.mode)
    }

    /// The pool size of (any user on) `database`: its own, else the default.
    pub fn size_for(&self, database: &str) -> usize {
        self.database(database)
            .and_then(|db| db.size)
            .unwrap_or(self.size)
    }

    fn database(&self, name: &str) -> Option<&PoolDatabase> {
        self.databases.iter().find(|db| db.name == name)
    }

    /// The user list's entry for `name`.
    pub fn user(&self, name: &str) -> Option<&PoolUser> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// `[pool]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolTable {
    mode: Option<String>,
    size: Option<usize>,
    wait_timeout: Option<String>,
    #[serde(default)]
    databases: Vec<DatabaseTable>,
    #[serde(default)]
    users: Vec<UserTable>,
    auth_query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseTable {
    name: String,
    mode: Option<String>,
    size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserTable {
    name: String,
    password: Option<String>,
    scram_verifier: Option<String>,
    mode: Option<String>,
}

impl std::fmt::Debug for UserTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A pool size, if given: 1 to 10000.
fn pool_size(field: &'static str, size: Option<usize>) -> Result<Option<usize>, ConfigError> {
    match size {
        Some(n) if !(1..=10_000).contains(&n) => Err(field_error(
            field,
            format!(
                "{n} is out of range: use 1 to 10000 backend connections per user and database"
            ),
        )),
        other => Ok(other),
    }
}

/// Validates `[pool]`.
pub(super) fn pool_settings(table: PoolTable) -> Result<PoolConfig, ConfigError> {
    let d = PoolConfig::default();
    let mode = match table.mode.as_deref() {
        None => d.mode,
        Some(text) => PoolMode::parse("[pool] mode", text)?,
    };
    let size = pool_size("[pool] size", table.size)?.unwrap_or(d.size);
    let wait_timeout =
        duration_setting(("[pool] wait_timeout", table.wait_timeout), d.wait_timeout)?;
    let databases = table
        .databases
        .into_iter()
        .map(|db| {
            Ok(PoolDatabase {
                mode: db
                    .mode
                    .as_deref()
                    .map(|text| PoolMode::parse("[[pool.databases]] mode", text))
                    .transpose()?,
                size: pool_size("[[pool.databases]] size", db.size)?,
                name: db.name,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let mut users: Vec<PoolUser> = Vec::with_capacity(table.users.len());
    for user in table.users {
        if users.iter().any(|u| u.name == user.name) {
            return Err(field_error(
                "[[pool.users]] name",
                format!("user {:?} is listed twice: keep one entry", user.name),
            ));
        }
        if user.password.is_none() && user.scram_verifier.is_none() {
            return Err(field_error(
                "[[pool.users]] password",
                format!(
                    "user {:?} has neither a password nor a scram_verifier: set one (the verifier is pg_authid.rolpassword)",
                    user.name
                ),
            ));
        }
        if let Some(verifier) = &user.scram_verifier {
            if !verifier.starts_with("SCRAM-SHA-256$") {
                return Err(field_error(
                    "[[pool.users]] scram_verifier",
                    format!(
                        "user {:?}: a verifier reads SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as in pg_authid.rolpassword",
                        user.name
                    ),
                ));
            }
        }
        let mode = match user.mode.as_deref() {
            None => None,
            Some(text) => Some(PoolMode::parse("[[pool.users]] mode", text)?),
        };
        users.push(PoolUser {
            name: user.name,
            password: user.password,
            scram_verifier: user.scram_verifier,
            mode,
        });
    }
    if let Some(query) = &table.auth_query {
        if !query.contains("$1") {
            return Err(field_error(
                "[pool] auth_query",
                "the query must take the user's name as $1, e.g. SELECT usename, passwd FROM pg_shadow WHERE usename = $1",
            ));
        }
    }
    Ok(PoolConfig {
        mode,
        size,
        wait_timeout,
        databases,
        users,
        auth_query: table.auth_query,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{from_str, ConfigError, Overrides};
    use super::*;

    fn load(text: &str) -> Result<PoolConfig, ConfigError> {
        let overrides = Overrides {
            backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            ..Overrides::default()
        };
        from_str(text, overrides).map(|config| config.pool)
    }

    fn refused(text: &str) -> String {
        load(text).expect_err(text).to_string()
    }

    #[test]
    fn session_mode_is_the_default_and_modes_resolve_user_then_database() {
        let pool = load("").expect("empty");
        assert_eq!(pool, PoolConfig::default());
        assert_eq!(pool.mode_for("app", "shop"), PoolMode::Session);
        let pool = load(
            "[pool]\nmode = \"session\"\nsize = 7\nwait_timeout = \"2s\"\n\
             [[pool.databases]]\nname = \"shop\"\nmode = \"transaction\"\nsize = 3\n\
             [[pool.users]]\nname = \"cron\"\npassword = \"x\"\nmode = \"session\"\n\
             [[pool.users]]\nname = \"app\"\nscram_verifier = \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5\"\n",
        )
        .expect("valid");
        assert_eq!(pool.size, 7);
        assert_eq!(pool.wait_timeout, Duration::from_secs(2));
        assert_eq!(pool.mode_for("app", "shop"), PoolMode::Transaction);
        assert_eq!(
            pool.mode_for("cron", "shop"),
            PoolMode::Session,
            "the user's own mode wins"
        );
        assert_eq!(pool.mode_for("app", "other"), PoolMode::Session);
        assert!(pool.user("app").is_some_and(|u| u.password.is_none()));
        assert_eq!((pool.size_for("shop"), pool.size_for("other")), (3, 7));
    }

    #[test]
    fn mistakes_are_named_with_their_field() {
        for (text, field) in [
            ("[pool]\nmode = \"statement\"\n", "[pool] mode"),
            ("[pool]\nsize = 0\n", "[pool] size"),
            ("[pool]\nwait_timeout = \"soon\"\n", "[pool] wait_timeout"),
            ("[[pool.users]]\nname = \"app\"\n", "[[pool.users]] password"),
            (
                "[[pool.users]]\nname = \"app\"\nscram_verifier = \"md5abc\"\n",
                "[[pool.users]] scram_verifier",
            ),
            (
                "[[pool.users]]\nname = \"a\"\npassword = \"x\"\n[[pool.users]]\nname = \"a\"\npassword = \"y\"\n",
                "[[pool.users]] name",
            ),
            ("[pool]\nauth_query = \"SELECT 1\"\n", "[pool] auth_query"),
            (
                "[[pool.databases]]\nname = \"shop\"\nmode = \"x\"\n",
                "[[pool.databases]] mode",
            ),
            (
                "[[pool.databases]]\nname = \"shop\"\nsize = 0\n",
                "[[pool.databases]] size",
            ),
        ] {
            let message = refused(text);
            assert!(message.starts_with(field), "{text}: {message}");
        }
        assert!(refused("[pool]\nmodes = \"x\"\n").contains("modes"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let pool = load("[[pool.users]]\nname = \"app\"\npassword = \"hunter2\"\n").expect("valid");
        let shown = format!("{pool:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app"));
    }
}
