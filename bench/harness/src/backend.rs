//! The parts of a libpq-style URL the launchers need: where the server is and who logs in.
//!
//! PgBouncer and duet are put in front of "the server at this URL"; their own client URLs keep the
//! user, password and database and swap only host and port. tokio-postgres's own parser is used so
//! every spelling it accepts (URL or key=value) works here too.

use std::str::FromStr;

use tokio_postgres::config::Host;

use crate::net::percent_encode;

/// A server address plus login, taken from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// TCP host (unix sockets are not supported for side-by-side runs).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Password, if the URL has one.
    pub password: Option<String>,
    /// Database.
    pub dbname: String,
}

impl Backend {
    /// Parses `url`; defaults like libpq's (port 5432, user `postgres`, database = user).
    pub fn parse(url: &str) -> Result<Backend, String> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|err| format!("cannot parse the server URL: {err}"))?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(_) => {
                return Err(
                    "the server URL names a unix socket; give a TCP host:port instead".into(),
                )
            }
            None => "127.0.0.1".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        Ok(Backend {
            host,
            port,
            user,
            password,
            dbname,
        })
    }

    /// The same login at another host and port.
    pub fn url_at(&self, host: &str, port: u16) -> String {
        let mut url = format!("postgres://{}", percent_encode(&self.user));
        if let Some(password) = &self.password {
            url.push(':');
            url.push_str(&percent_encode(password));
        }
        url.push_str(&format!("@{host}:{port}/{}", percent_encode(&self.dbname)));
        url
    }

    /// This backend's own URL.
    pub fn url(&self) -> String {
        self.url_at(&self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_keeps_the_login_when_moving() {
        let b = Backend::parse("postgres://app:p%40ss@127.0.0.1:5433/shop").expect("parse");
        assert_eq!(b.host, "127.0.0.1");
        assert_eq!(b.port, 5433);
        assert_eq!(b.user, "app");
        assert_eq!(b.password.as_deref(), Some("p@ss"));
        assert_eq!(b.dbname, "shop");
        assert_eq!(
            b.url_at("127.0.0.1", 6432),
            "postgres://app:p%40ss@127.0.0.1:6432/shop"
        );
    }

    #[test]
    fn libpq_defaults_apply() {
        let b = Backend::parse("postgres://localhost").expect("parse");
        assert_eq!(
            (b.port, b.user.as_str(), b.dbname.as_str()),
            (5432, "postgres", "postgres")
        );
        let kv = Backend::parse("host=127.0.0.1 port=7000 user=u dbname=d").expect("parse");
        assert_eq!((kv.port, kv.dbname.as_str()), (7000, "d"));
    }

    #[test]
    fn unix_sockets_are_refused_with_a_hint() {
        let err = Backend::parse("host=/var/run/postgresql user=u").expect_err("socket");
        assert!(err.contains("TCP"), "{err}");
    }
}
