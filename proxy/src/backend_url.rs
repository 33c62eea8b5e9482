//! The backend's libpq-style URL: `postgres://USER[:PASSWORD]@HOST:PORT/DB[?PARAMETERS]`.
//!
//! HOST:PORT says where client sessions are forwarded; USER/PASSWORD/DB are duet's own control
//! credentials. HOST may be a unix-socket directory (percent-encoded in the authority, or given as
//! `?host=/path`). The password never appears in `Debug` or `Display` output.
//!
//! TLS to the backend follows libpq's parameters and meanings ([`SslSettings`]): `sslmode`,
//! `sslrootcert` (a file or `system`), `sslcert`/`sslkey`, `sslnegotiation` and `sslsni`. The one
//! deliberate difference: a URL without any TLS parameter keeps duet's plain connection
//! (`disable`), where libpq would `prefer` TLS — so existing deployments do not change behaviour
//! when duet learns TLS.

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

/// libpq's `sslmode`: whether TLS is used and what of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first; TLS only if the server refuses the plain connection.
    Allow,
    /// TLS if the server offers it, plain otherwise (and plain again if the TLS attempt fails).
    Prefer,
    /// TLS or nothing; the certificate is only checked when `sslrootcert` is given (as libpq does,
    /// it then behaves like `verify-ca`).
    Require,
    /// TLS, and the certificate must be signed by a CA in `sslrootcert`.
    VerifyCa,
    /// TLS, signed by a CA in `sslrootcert`, and issued for the host name in the URL.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a connection without TLS is refused (`require` and stronger).
    pub fn requires_tls(self) -> bool {
        self >= SslMode::Require
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq's `sslnegotiation`: how TLS is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslNegotiation {
    /// An SSLRequest first, TLS once the server answers `S` (every PostgreSQL version).
    #[default]
    Postgres,
    /// A TLS ClientHello right away, with ALPN `postgresql` (PostgreSQL 17+; saves a round trip).
    Direct,
}

/// Where the CA certificates that sign the server's certificate come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The platform's trusted roots (`sslrootcert=system`, libpq 16+).
    System,
}

impl fmt::Display for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCert::File(path) => write!(f, "sslrootcert={}", path.display()),
            RootCert::System => f.write_str("sslrootcert=system"),
        }
    }
}

/// A client certificate duet presents to the backend (`sslcert` and `sslkey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key: PathBuf,
}

/// The TLS parameters of a backend URL, with libpq's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`; `None` when not given.
    pub root_cert: Option<RootCert>,
    /// `sslcert` + `sslkey`.
    pub client_cert: Option<ClientCert>,
    /// `sslnegotiation`.
    pub negotiation: SslNegotiation,
    /// `sslsni` (default on): send the host name in the TLS handshake (never for an IP address).
    pub sni: bool,
}

impl Default for SslSettings {
    fn default() -> Self {
        SslSettings {
            mode: SslMode::Disable,
            root_cert: None,
            client_cert: None,
            negotiation: SslNegotiation::Postgres,
            sni: true,
        }
    }
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing: encryption only (`require`, `prefer` or `allow` without `sslrootcert`).
    None,
    /// The chain up to a CA in `sslrootcert` (`verify-ca`, or a weaker mode with `sslrootcert`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

impl SslSettings {
    /// What libpq checks for these settings: the host name only for `verify-full`, the chain
    /// whenever a root certificate is given (libpq verifies against a root file in every mode).
    pub fn verification(&self) -> Verification {
        match (self.mode, &self.root_cert) {
            (SslMode::VerifyFull, _) => Verification::Full,
            (SslMode::VerifyCa, _) | (_, Some(_)) => Verification::Chain,
            _ => Verification::None,
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
    /// TLS to the backend (sessions and control connections alike). Ignored for a unix-socket
    /// backend, as libpq ignores it.
    pub ssl: SslSettings,
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
    #[error("the backend URL has an unsupported parameter {0:?} (supported: host, port, user, password, dbname, application_name, sslmode, sslrootcert, sslcert, sslkey, sslnegotiation, sslsni)")]
    Parameter(String),
    /// A parameter's value is not one of those it accepts.
    #[error("the backend URL has {parameter}={value:?}; expected one of: {expected}")]
    Value {
        /// The parameter.
        parameter: &'static str,
        /// What was given.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// A file parameter was given an empty value.
    #[error("the backend URL has an empty {0}: name a file")]
    EmptyPath(&'static str),
    /// `sslcert` without `sslkey`, or the other way round.
    #[error("the backend URL has {given} without {missing}: a client certificate needs both")]
    ClientCertHalf {
        /// The one given.
        given: &'static str,
        /// The one missing.
        missing: &'static str,
    },
    /// `verify-ca`/`verify-full` without a root certificate to verify against.
    #[error("sslmode={0} needs sslrootcert: the CA file that signed the server's certificate, or sslrootcert=system for the platform's trusted roots")]
    NoRootCert(SslMode),
    /// `sslrootcert=system` with a mode weaker than `verify-full` (refused by libpq too).
    #[error("sslmode={0} may not be used with sslrootcert=system (use sslmode=verify-full, or leave sslmode out)")]
    WeakModeWithSystemRoots(SslMode),
    /// `sslnegotiation=direct` with a mode that may fall back to plain (refused by libpq too).
    #[error("sslmode={0} may not be used with sslnegotiation=direct (use require, verify-ca or verify-full)")]
    WeakModeWithDirect(SslMode),
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
        let mut tls = TlsParameters::default();
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
                    "sslmode" => {
                        tls.mode = Some(SslMode::parse(&value).ok_or(UrlError::Value {
                            parameter: "sslmode",
                            value,
                            expected: "disable, allow, prefer, require, verify-ca, verify-full",
                        })?)
                    }
                    "sslrootcert" => {
                        tls.root_cert = Some(match value.as_str() {
                            "" => return Err(UrlError::EmptyPath("sslrootcert")),
                            "system" => RootCert::System,
                            _ => RootCert::File(PathBuf::from(value)),
                        })
                    }
                    "sslcert" => tls.cert = Some(non_empty_path("sslcert", value)?),
                    "sslkey" => tls.key = Some(non_empty_path("sslkey", value)?),
                    "sslnegotiation" => {
                        tls.negotiation = Some(match value.as_str() {
                            "postgres" => SslNegotiation::Postgres,
                            "direct" => SslNegotiation::Direct,
                            _ => {
                                return Err(UrlError::Value {
                                    parameter: "sslnegotiation",
                                    value,
                                    expected: "postgres, direct",
                                })
                            }
                        })
                    }
                    "sslsni" => {
                        tls.sni = Some(match value.as_str() {
                            "1" => true,
                            "0" => false,
                            _ => {
                                return Err(UrlError::Value {
                                    parameter: "sslsni",
                                    value,
                                    expected: "0, 1",
                                })
                            }
                        })
                    }
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
            ssl: tls.settings()?,
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
        let mut separator = '?';
        match &self.addr {
            BackendAddr::Tcp { .. } => {
                write!(
                    f,
                    "postgres://{}{secret}@{}/{}",
                    self.user, self.addr, self.dbname
                )?;
            }
            BackendAddr::Unix { dir, port } => {
                write!(
                    f,
                    "postgres://{}{secret}@:{port}/{}?host={}",
                    self.user,
                    self.dbname,
                    dir.display()
                )?;
                separator = '&';
            }
        }
        // The TLS parameters that differ from the defaults, so a log line shows how duet connects.
        let ssl = &self.ssl;
        let mut parameter = |f: &mut fmt::Formatter<'_>, text: fmt::Arguments<'_>| {
            let result = write!(f, "{separator}{text}");
            separator = '&';
            result
        };
        if ssl.mode != SslMode::Disable {
            parameter(f, format_args!("sslmode={}", ssl.mode))?;
        }
        if let Some(root) = &ssl.root_cert {
            parameter(f, format_args!("{root}"))?;
        }
        if let Some(client) = &ssl.client_cert {
            parameter(
                f,
                format_args!(
                    "sslcert={}&sslkey={}",
                    client.cert.display(),
                    client.key.display()
                ),
            )?;
        }
        if ssl.negotiation == SslNegotiation::Direct {
            parameter(f, format_args!("sslnegotiation=direct"))?;
        }
        if !ssl.sni {
            parameter(f, format_args!("sslsni=0"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendUrl")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// The TLS parameters as written in the URL, before defaults and consistency checks.
#[derive(Debug, Default)]
struct TlsParameters {
    mode: Option<SslMode>,
    root_cert: Option<RootCert>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    negotiation: Option<SslNegotiation>,
    sni: Option<bool>,
}

impl TlsParameters {
    /// Applies the defaults and refuses the combinations libpq refuses.
    fn settings(self) -> Result<SslSettings, UrlError> {
        let negotiation = self.negotiation.unwrap_or_default();
        let mode = match self.mode {
            Some(mode) => mode,
            // libpq 16+: sslrootcert=system alone means verify-full.
            None if self.root_cert == Some(RootCert::System) => SslMode::VerifyFull,
            // Some TLS parameter was given: libpq's default, so that it means something.
            None if self.root_cert.is_some()
                || self.cert.is_some()
                || self.key.is_some()
                || self.negotiation.is_some() =>
            {
                SslMode::Prefer
            }
            // No TLS parameter at all: duet's plain connection, as before it spoke TLS.
            None => SslMode::Disable,
        };
        if self.root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
            return Err(UrlError::WeakModeWithSystemRoots(mode));
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && self.root_cert.is_none() {
            return Err(UrlError::NoRootCert(mode));
        }
        if negotiation == SslNegotiation::Direct && !mode.requires_tls() {
            return Err(UrlError::WeakModeWithDirect(mode));
        }
        let client_cert = match (self.cert, self.key) {
            (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(UrlError::ClientCertHalf {
                    given: "sslcert",
                    missing: "sslkey",
                })
            }
            (None, Some(_)) => {
                return Err(UrlError::ClientCertHalf {
                    given: "sslkey",
                    missing: "sslcert",
                })
            }
        };
        Ok(SslSettings {
            mode,
            root_cert: self.root_cert,
            client_cert,
            negotiation,
            sni: self.sni.unwrap_or(true),
        })
    }
}

fn non_empty_path(parameter: &'static str, value: String) -> Result<PathBuf, UrlError> {
    if value.is_empty() {
        Err(UrlError::EmptyPath(parameter))
    } else {
        Ok(PathBuf::from(value))
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
        assert_eq!(
            BackendUrl::parse("postgres://u@h/d?sslcrl=x.pem"),
            Err(UrlError::Parameter("sslcrl".into()))
        );
        assert_eq!(
            BackendUrl::parse("postgres://u@a,b/d"),
            Err(UrlError::SeveralHosts)
        );
    }

    fn ssl(url: &str) -> SslSettings {
        BackendUrl::parse(url)
            .unwrap_or_else(|err| panic!("{url}: {err}"))
            .ssl
    }

    #[test]
    fn without_tls_parameters_the_backend_link_stays_plain() {
        let settings = ssl("postgres://u@h/d");
        assert_eq!(settings, SslSettings::default());
        assert_eq!(settings.mode, SslMode::Disable);
        assert_eq!(settings.verification(), Verification::None);
    }

    #[test]
    fn every_sslmode_is_understood() {
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            let settings = ssl(&format!("postgres://u@h/d?sslmode={text}"));
            assert_eq!(settings.mode, mode);
            assert_eq!(settings.mode.as_str(), text);
            assert_eq!(settings.verification(), Verification::None, "{text}");
        }
        let ca = ssl("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/etc/ca.pem");
        assert_eq!(ca.mode, SslMode::VerifyCa);
        assert_eq!(ca.verification(), Verification::Chain);
        assert_eq!(
            ca.root_cert,
            Some(RootCert::File(PathBuf::from("/etc/ca.pem")))
        );
        let full = ssl("postgres://u@h/d?sslmode=verify-full&sslrootcert=ca.pem");
        assert_eq!(full.mode, SslMode::VerifyFull);
        assert_eq!(full.verification(), Verification::Full);
        assert!(SslMode::Require.requires_tls() && !SslMode::Prefer.requires_tls());
    }

    #[test]
    fn a_root_certificate_makes_weaker_modes_verify_the_chain_as_libpq_does() {
        let require = ssl("postgres://u@h/d?sslmode=require&sslrootcert=ca.pem");
        assert_eq!(require.mode, SslMode::Require);
        assert_eq!(require.verification(), Verification::Chain);
        let prefer = ssl("postgres://u@h/d?sslmode=prefer&sslrootcert=ca.pem");
        assert_eq!(prefer.verification(), Verification::Chain);
    }

    #[test]
    fn tls_parameters_without_sslmode_take_libpqs_defaults() {
        // sslrootcert=system alone means verify-full (libpq 16+).
        let system = ssl("postgres://u@h/d?sslrootcert=system");
        assert_eq!(system.mode, SslMode::VerifyFull);
        assert_eq!(system.root_cert, Some(RootCert::System));
        // Any other TLS parameter: libpq's own default, prefer.
        assert_eq!(
            ssl("postgres://u@h/d?sslrootcert=ca.pem").mode,
            SslMode::Prefer
        );
        assert_eq!(
            ssl("postgres://u@h/d?sslcert=c.pem&sslkey=k.pem").mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn client_certificate_negotiation_and_sni() {
        let settings = ssl(
            "postgres://u@h/d?sslmode=require&sslcert=%2Fkeys%2Fc.pem&sslkey=/keys/k.pem\
             &sslnegotiation=direct&sslsni=0",
        );
        assert_eq!(
            settings.client_cert,
            Some(ClientCert {
                cert: PathBuf::from("/keys/c.pem"),
                key: PathBuf::from("/keys/k.pem"),
            })
        );
        assert_eq!(settings.negotiation, SslNegotiation::Direct);
        assert!(!settings.sni);
        let defaults = ssl("postgres://u@h/d?sslmode=require&sslnegotiation=postgres&sslsni=1");
        assert_eq!(defaults.negotiation, SslNegotiation::Postgres);
        assert!(defaults.sni);
    }

    #[test]
    fn tls_parameters_are_shown_but_not_the_password() {
        let url = BackendUrl::parse(
            "postgres://u:pw@h:5/d?sslmode=verify-full&sslrootcert=/ca.pem&sslnegotiation=direct",
        )
        .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://u:***@h:5/d?sslmode=verify-full&sslrootcert=/ca.pem&sslnegotiation=direct"
        );
        let unix = BackendUrl::parse("postgres://u@:5/d?host=/run&sslmode=require").unwrap();
        assert_eq!(
            unix.to_string(),
            "postgres://u@:5/d?host=/run&sslmode=require"
        );
        assert_eq!(
            BackendUrl::parse("postgres://u@h/d").unwrap().to_string(),
            "postgres://u@h:5432/d"
        );
    }

    #[test]
    fn refuses_bad_tls_parameters_with_reasons() {
        let err = |url: &str| BackendUrl::parse(url).unwrap_err();
        assert!(matches!(
            err("postgres://u@h/d?sslmode=verify"),
            UrlError::Value { parameter: "sslmode", ref value, .. } if value == "verify"
        ));
        assert!(matches!(
            err("postgres://u@h/d?sslmode=require&sslnegotiation=fast"),
            UrlError::Value {
                parameter: "sslnegotiation",
                ..
            }
        ));
        assert!(matches!(
            err("postgres://u@h/d?sslsni=yes"),
            UrlError::Value {
                parameter: "sslsni",
                ..
            }
        ));
        assert_eq!(
            err("postgres://u@h/d?sslmode=verify-full"),
            UrlError::NoRootCert(SslMode::VerifyFull)
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=verify-ca"),
            UrlError::NoRootCert(SslMode::VerifyCa)
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=require&sslrootcert=system"),
            UrlError::WeakModeWithSystemRoots(SslMode::Require)
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=verify-ca&sslrootcert=system"),
            UrlError::WeakModeWithSystemRoots(SslMode::VerifyCa)
        );
        assert_eq!(
            err("postgres://u@h/d?sslnegotiation=direct"),
            UrlError::WeakModeWithDirect(SslMode::Prefer)
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=allow&sslnegotiation=direct"),
            UrlError::WeakModeWithDirect(SslMode::Allow)
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=require&sslcert=c.pem"),
            UrlError::ClientCertHalf {
                given: "sslcert",
                missing: "sslkey"
            }
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=require&sslkey=k.pem"),
            UrlError::ClientCertHalf {
                given: "sslkey",
                missing: "sslcert"
            }
        );
        assert_eq!(
            err("postgres://u@h/d?sslrootcert="),
            UrlError::EmptyPath("sslrootcert")
        );
        assert_eq!(
            err("postgres://u@h/d?sslmode=require&sslcert=&sslkey=k"),
            UrlError::EmptyPath("sslcert")
        );
        assert_eq!(
            err("postgres://u@h/d?sslrootcert=%zz"),
            UrlError::Escape("query")
        );
        // Every message names what to do.
        assert!(err("postgres://u@h/d?sslmode=verify-full")
            .to_string()
            .contains("sslrootcert=system"));
        assert!(err("postgres://u@h/d?gssencmode=disable")
            .to_string()
            .contains("sslnegotiation"));
    }
}
