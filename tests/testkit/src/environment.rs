//! Which PostgreSQL the suite talks to, and what happens when there is none.
//!
//! The server comes from `DUET_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Its reachability is checked once per test binary. When it cannot be reached, a test either
//! skips with a loud message on the real stderr (not swallowed by the test harness's capture) or,
//! with `DUET_REQUIRE_DATABASE=1`, fails: a green CI run must have exercised the real server.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

/// The default server: the machine's PostgreSQL, trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL server behind duet: where it is and who we are on it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// TCP host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login role (superuser: the tests create databases and roles).
    pub user: String,
    /// Password, if the server wants one.
    pub password: Option<String>,
    /// The maintenance database used to create and drop test databases.
    pub maintenance_db: String,
}

impl Backend {
    /// A libpq URL for `db` on this server (what duet gets as `--backend`).
    pub fn url(&self, db: &str) -> String {
        let credentials = match &self.password {
            Some(password) => format!("{}:{}", self.user, password),
            None => self.user.clone(),
        };
        format!("postgres://{credentials}@{}:{}/{db}", self.host, self.port)
    }

    /// `host:port`, as duet's status reports the backend.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A tokio-postgres configuration connecting straight to the server (bypassing duet).
    pub fn direct_config(&self, db: &str) -> tokio_postgres::Config {
        self.config_at(&self.host, self.port, db)
    }

    /// A tokio-postgres configuration that logs in to `db` as this server's user (with its
    /// password) at `host:port` rather than at the server: through a proxy in front of it.
    pub fn config_at(&self, host: &str, port: u16, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&self.user)
            .dbname(db)
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }
}

/// Whether a missing server is a failure (`DUET_REQUIRE_DATABASE=1`) rather than a skip.
pub fn database_required() -> bool {
    std::env::var("DUET_REQUIRE_DATABASE").is_ok_and(|value| value == "1")
}

/// The server under test, or why there is none (cached: checked once per test binary).
pub fn backend() -> Result<Backend, String> {
    static BACKEND: OnceLock<Result<Backend, String>> = OnceLock::new();
    BACKEND.get_or_init(probe_backend).clone()
}

/// The server under test, or `None` after a loud skip message; panics instead of skipping when
/// the database is required.
pub fn backend_or_skip(test: &str) -> Option<Backend> {
    match backend() {
        Ok(backend) => Some(backend),
        Err(why) => skip_or_fail(test, &why),
    }
}

/// Skips `test` loudly (returning `None`) or, when the database is required, fails it.
pub fn skip_or_fail<T>(test: &str, why: &str) -> Option<T> {
    if database_required() {
        panic!("{test}: DUET_REQUIRE_DATABASE=1 but {why}");
    }
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n********************************************************************************\n\
         SKIPPED {test}: {why}\n\
         To run it: start PostgreSQL (see tests/README.md) or point DUET_TEST_DATABASE_URL at one;\n\
         set DUET_REQUIRE_DATABASE=1 to make a missing server a failure instead of a skip.\n\
         ********************************************************************************"
    );
    None
}

fn probe_backend() -> Result<Backend, String> {
    let url = std::env::var("DUET_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string());
    let config: tokio_postgres::Config = url.parse().map_err(|err| {
        format!(
            "DUET_TEST_DATABASE_URL={:?} is not a valid URL: {err}",
            redact_password(&url)
        )
    })?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(other) => {
            return Err(format!(
                "DUET_TEST_DATABASE_URL={:?} names {other:?}; the suite needs a TCP host",
                redact_password(&url)
            ))
        }
        None => "127.0.0.1".to_string(),
    };
    let backend = Backend {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config.get_user().unwrap_or("postgres").to_string(),
        password: config
            .get_password()
            .map(|password| String::from_utf8_lossy(password).into_owned()),
        maintenance_db: config.get_dbname().unwrap_or("postgres").to_string(),
    };
    crate::database::run_sql(&backend.direct_config(&backend.maintenance_db), "SELECT 1")
        .map_err(|err| format!("cannot reach PostgreSQL at {url}: {err}"))?;
    Ok(backend)
}

/// `text` with the password of any `scheme://user:password@host` URL in it replaced by `***`:
/// test output never shows a secret.
pub fn redact_password(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &text[authority_start..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &text[..authority_start],
            &rest[..colon],
            &rest[at..]
        ),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod redaction {
    use super::redact_password;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/x?sslmode=require"),
            "postgres://app:***@db:5432/x?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://app@db/x"),
            "postgres://app@db/x"
        );
        assert_eq!(redact_password("--listen"), "--listen");
    }
}
