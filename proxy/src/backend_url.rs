//! The backend's libpq-style URL: `postgres://USER[:PASSWORD]@HOST:PORT/DB`.
//!
//! HOST:PORT says where client sessions are forwarded; USER/PASSWORD/DB are duet's own control
//! credentials. HOST may be a unix-socket directory (percent-encoded in the authority, or given as
//! `?host=/path`). The password never appears in `Debug` or `Display` output.

use std::fmt;
use std::path::PathBuf;

/// Where the backend listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendAddr {
    /// A TCP host name or IP address and port.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix-socket directory; the socket file is `DIR/.s.PGSQL.PORT`.
    Unix {
        /// The directory holding the socket.
        dir: PathBuf,
        /// The port number that names the socket file.
        port: u16,
    },
}

impl BackendAddr {
    /// The path of the socket file for a unix-socket backend.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match self {
            BackendAddr::Unix { dir, port } => Some(dir.join(format!(".s.PGSQL.{port}"))),
            BackendAddr::Tcp { .. } => None,
        }
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            BackendAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            BackendAddr::Unix { dir, port } => write!(f, "{}/.s.PGSQL.{port}", dir.display()),
        }
    }
}

/// A parsed backend URL. The password is kept private and redacted from every rendering.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendUrl {
    /// Where the backend listens.
    pub addr: BackendAddr,
    /// duet's control user.
    pub user: String,
    password: Option<String>,
    /// duet's control database (defaults to the user name, like libpq).
    pub dbname: String,
}

/// Why a backend URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// The scheme is not postgres:// or postgresql://.
    #[error("the backend URL must start with postgres:// or postgresql://")]
    Scheme,
    /// A percent-escape is broken or decodes to invalid UTF-8.
    #[error("the backend URL has a bad percent-escape in its {0}")]
    Escape(&'static str),
    /// The port is not a number in 1..=65535.
    #[error("the backend URL has an invalid port {0:?} (expected 1-65535)")]
    Port(String),
    /// No user name was given.
    #[error("the backend URL names no user: write postgres://USER@HOST:PORT/DB")]
    NoUser,
    /// A query parameter duet does not understand.
    #[error("the backend URL has an unsupported parameter {0:?} (supported: host, port, user, password, dbname, sslmode=disable|prefer|allow, application_name)")]
    Parameter(String),
    /// Several hosts (libpq failover lists) are not supported.
    #[error("the backend URL lists several hosts; duet forwards to exactly one")]
    SeveralHosts,
}

impl BackendUrl {
    /// Parses a libpq-style URL.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let rest = input
            .strip_prefix("postgres://")
            .or_else(|| input.strip_prefix("postgresql://"))
            .ok_or(UrlError::Scheme)?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let mut user = String::new();
        let mut password = None;
        if let Some(userinfo) = userinfo {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            user = percent_decode(u).ok_or(UrlError::Escape("user"))?;
            password = p
                .map(|p| percent_decode(p).ok_or(UrlError::Escape("password")))
                .transpose()?;
        }
        if hostport.contains(',') {
            return Err(UrlError::SeveralHosts);
        }
        let (mut host, mut port) = split_host_port(hostport)?;
        host = percent_decode(&host).ok_or(UrlError::Escape("host"))?;
        let mut dbname = percent_decode(path).ok_or(UrlError::Escape("database name"))?;
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_decode(value).ok_or(UrlError::Escape("query"))?;
                match key {
                    "host" => host = value,
                    "port" => port = Some(parse_port(&value)?),
                    "user" => user = value,
                    "password" => password = Some(value),
                    "dbname" => dbname = value,
                    "application_name" => {}
                    "sslmode" if matches!(value.as_str(), "disable" | "prefer" | "allow") => {}
                    _ => {
                        return Err(UrlError::Parameter(
                            pair.split('=').next().unwrap_or(pair).to_owned(),
                        ))
                    }
                }
            }
        }
        if user.is_empty() {
            return Err(UrlError::NoUser);
        }
        if dbname.is_empty() {
            dbname = user.clone();
        }
        let port = port.unwrap_or(5432);
        let addr = if host.starts_with('/') {
            BackendAddr::Unix {
                dir: PathBuf::from(host),
                port,
            }
        } else if host.is_empty() {
            BackendAddr::Tcp {
                host: "localhost".to_owned(),
                port,
            }
        } else {
            BackendAddr::Tcp { host, port }
        };
        Ok(BackendUrl {
            addr,
            user,
            password,
            dbname,
        })
    }

    /// duet's control password, if any. Never log it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.password.is_some() { ":***" } else { "" };
        match &self.addr {
            BackendAddr::Tcp { .. } => {
                write!(
                    f,
                    "postgres://{}{secret}@{}/{}",
                    self.user, self.addr, self.dbname
                )
            }
            BackendAddr::Unix { dir, port } => write!(
                f,
                "postgres://{}{secret}@:{port}/{}?host={}",
                self.user,
                self.dbname,
                dir.display()
            ),
        }
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendUrl")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .finish()
    }
}

fn parse_port(text: &str) -> Result<u16, UrlError> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(UrlError::Port(text.to_owned())),
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), UrlError> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::Escape("host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(UrlError::Port(after.to_owned())),
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, "")) => Ok((host.to_owned(), None)),
        Some((host, port)) => Ok((host.to_owned(), Some(parse_port(port)?))),
        None => Ok((hostport.to_owned(), None)),
    }
}

/// Decodes `%XX` escapes; `None` on a broken escape or invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_tcp_url() {
        let url = BackendUrl::parse("postgres://alice:s%40cret@db.example:6543/app").unwrap();
        assert_eq!(
            url.addr,
            BackendAddr::Tcp {
                host: "db.example".into(),
                port: 6543
            }
        );
        assert_eq!(url.user, "alice");
        assert_eq!(url.password(), Some("s@cret"));
        assert_eq!(url.dbname, "app");
    }

    #[test]
    fn defaults_port_and_database() {
        let url = BackendUrl::parse("postgresql://postgres@127.0.0.1").unwrap();
        assert_eq!(url.addr.to_string(), "127.0.0.1:5432");
        assert_eq!(url.dbname, "postgres");
    }

    #[test]
    fn unix_socket_directory_percent_encoded_or_as_parameter() {
        let a = BackendUrl::parse("postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5433/db").unwrap();
        let b = BackendUrl::parse("postgres://postgres@:5433/db?host=/var/run/postgresql").unwrap();
        assert_eq!(a.addr, b.addr);
        assert_eq!(
            a.addr.socket_path().unwrap(),
            PathBuf::from("/var/run/postgresql/.s.PGSQL.5433")
        );
    }

    #[test]
    fn ipv6_host() {
        let url = BackendUrl::parse("postgres://u@[::1]:5432/d").unwrap();
        assert_eq!(url.addr.to_string(), "[::1]:5432");
    }

    #[test]
    fn the_password_is_never_rendered() {
        let url = BackendUrl::parse("postgres://u:topsecret@h:1/d").unwrap();
        assert!(!format!("{url}").contains("topsecret"));
        assert!(!format!("{url:?}").contains("topsecret"));
        assert!(format!("{url}").contains("***"));
    }

    #[test]
    fn refuses_bad_urls_with_reasons() {
        assert_eq!(BackendUrl::parse("mysql://u@h/d"), Err(UrlError::Scheme));
        assert_eq!(
            BackendUrl::parse("postgres://u@h:99999/d"),
            Err(UrlError::Port("99999".into()))
        );
        assert_eq!(
            BackendUrl::parse("postgres://h:5432/d"),
            Err(UrlError::NoUser)
        );
        assert_eq!(
            BackendUrl::parse("postgres://u@h/d%zz"),
            Err(UrlError::Escape("database name"))
        );
        assert!(matches!(
            BackendUrl::parse("postgres://u@h/d?sslmode=require"),
            Err(UrlError::Parameter(_))
        ));
        assert_eq!(
            BackendUrl::parse("postgres://u@a,b/d"),
            Err(UrlError::SeveralHosts)
        );
    }
}
