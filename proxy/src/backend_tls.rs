//! TLS from duet to the backend: rustls (ring provider) configured from the backend URL's libpq
//! parameters, used by client sessions ([`crate::backend`]) and by duet's own tokio-postgres
//! control connections ([`MakeRustlsConnect`], tokio-postgres's TLS hook).
//!
//! libpq's checks, mapped onto rustls:
//! - no `sslrootcert` and a mode below `verify-ca`: encryption only, the certificate is not checked
//!   (the handshake's signatures still are — that is what makes the key exchange sound);
//! - `sslrootcert` given (any mode) or `verify-ca`: the chain must lead to one of those CAs;
//! - `verify-full`: the chain, and the certificate must name the URL's host (subjectAltName DNS or
//!   IP entry; like every modern verifier, rustls does not fall back to the Common Name).
//!
//! Every handshake offers ALPN `postgresql` (as libpq 17 does): PostgreSQL 17+ requires it for
//! `sslnegotiation=direct`, older servers ignore it.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use crate::backend_url::{
    BackendAddr, RootCert, SslMode, SslNegotiation, SslSettings, Verification,
};

/// The ALPN protocol name of PostgreSQL.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Why the backend's TLS settings could not be loaded (at startup: a proxy that cannot use the
/// files it was given must not start).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The root certificate file could not be read or holds no certificate.
    #[error("sslrootcert {path}: {problem}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// `sslrootcert=system` found no trusted root on this machine.
    #[error("sslrootcert=system: no trusted root certificates found on this machine ({detail}); install the ca-certificates package or set SSL_CERT_FILE")]
    NoSystemRoots {
        /// What the platform lookup reported.
        detail: String,
    },
    /// The client certificate file could not be read or holds no certificate.
    #[error("sslcert {path}: {problem}")]
    ClientCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// The client key file could not be read or holds no usable key.
    #[error("sslkey {path}: {problem}")]
    ClientKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// rustls refused the settings (e.g. the key does not belong to the certificate).
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The host name cannot be used to verify a certificate.
    #[error("host {host:?} cannot be checked against a certificate: {source}")]
    HostName {
        /// The host from the URL.
        host: String,
        /// Why it is not a valid DNS name or IP address.
        source: pki_types::InvalidDnsNameError,
    },
}

/// What is wrong with a PEM file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// It could not be read or parsed as PEM.
    #[error("cannot be read as PEM ({0})")]
    Unreadable(rustls_pki_types::pem::Error),
    /// It holds no item of the expected kind.
    #[error("holds no {0} PEM block")]
    Empty(&'static str),
    /// Some certificates in it could not be used as trust anchors.
    #[error("none of its {0} certificates can be used as a CA")]
    NoUsableCa(usize),
}

/// TLS to one backend: the rustls configuration and how to negotiate, built once at startup.
#[derive(Clone)]
pub struct BackendTls {
    /// The libpq sslmode.
    pub mode: SslMode,
    /// SSLRequest first, or a TLS handshake right away.
    pub negotiation: SslNegotiation,
    /// What is verified (for logs and messages).
    pub verification: Verification,
    /// Where the roots come from (for messages), when any.
    pub root_cert: Option<RootCert>,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTls")
            .field("mode", &self.mode)
            .field("negotiation", &self.negotiation)
            .field("verification", &self.verification)
            .field("root_cert", &self.root_cert)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl BackendTls {
    /// Loads the files `settings` name and builds the rustls configuration for `addr`. `None`
    /// when no TLS is ever used: `sslmode=disable`, or a unix-socket backend (libpq never uses
    /// TLS over a unix socket either).
    pub fn load(
        settings: &SslSettings,
        addr: &BackendAddr,
    ) -> Result<Option<BackendTls>, TlsSetupError> {
        let host = match addr {
            BackendAddr::Tcp { host, .. } if settings.mode != SslMode::Disable => host,
            _ => return Ok(None),
        };
        let server_name =
            ServerName::try_from(host.clone()).map_err(|source| TlsSetupError::HostName {
                host: host.clone(),
                source,
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verification = settings.verification();
        let verifier: Arc<dyn ServerCertVerifier> = match &settings.root_cert {
            None => Arc::new(NoCertificateCheck {
                provider: provider.clone(),
            }),
            Some(root) => {
                let roots = Arc::new(load_roots(root)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|err| TlsSetupError::Rustls {
                        what: "building the certificate verifier",
                        source: rustls::Error::General(err.to_string()),
                    })?;
                match verification {
                    Verification::Full => webpki,
                    _ => Arc::new(ChainOnly { inner: webpki }),
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsSetupError::Rustls {
                what: "choosing TLS versions",
                source,
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &settings.client_cert {
            None => builder.with_no_client_auth(),
            Some(client) => {
                let certs =
                    load_certs(&client.cert).map_err(|problem| TlsSetupError::ClientCert {
                        path: client.cert.clone(),
                        problem,
                    })?;
                let key = PrivateKeyDer::from_pem_file(&client.key).map_err(|err| {
                    TlsSetupError::ClientKey {
                        path: client.key.clone(),
                        problem: match err {
                            rustls_pki_types::pem::Error::NoItemsFound => {
                                FileProblem::Empty("PRIVATE KEY")
                            }
                            other => FileProblem::Unreadable(other),
                        },
                    }
                })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|source| TlsSetupError::Rustls {
                        what: "sslcert and sslkey do not fit together",
                        source,
                    })?
            }
        };
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        config.enable_sni = settings.sni;
        Ok(Some(BackendTls {
            mode: settings.mode,
            negotiation: settings.negotiation,
            verification,
            root_cert: settings.root_cert.clone(),
            config: Arc::new(config),
            server_name,
        }))
    }

    /// Runs the TLS handshake on `stream` (after the server's `S`, or right away for direct
    /// negotiation), naming the reason when it fails.
    pub async fn handshake<S>(
        &self,
        stream: S,
    ) -> Result<tokio_rustls::client::TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        handshake(
            &self.config,
            self.server_name.clone(),
            self.negotiation,
            self.root_cert.as_ref(),
            stream,
        )
        .await
    }

    /// The tokio-postgres TLS hook for control connections to the same backend.
    pub fn make_tls_connect(&self) -> MakeRustlsConnect {
        MakeRustlsConnect {
            config: Some(self.config.clone()),
            negotiation: self.negotiation,
            root_cert: self.root_cert.clone(),
        }
    }

    /// One line for logs: how the backend's certificate is checked.
    pub fn describe(&self) -> String {
        let what = match (self.verification, &self.root_cert) {
            (Verification::Full, Some(root)) => {
                format!("certificate and host name verified ({root})")
            }
            (Verification::Chain, Some(root)) => {
                format!("certificate verified, host name not checked ({root})")
            }
            _ => "certificate not verified (no sslrootcert)".to_owned(),
        };
        let negotiation = match self.negotiation {
            SslNegotiation::Postgres => "",
            SslNegotiation::Direct => ", direct negotiation",
        };
        format!("sslmode={}, {what}{negotiation}", self.mode)
    }
}

async fn handshake<S>(
    config: &Arc<ClientConfig>,
    server_name: ServerName<'static>,
    negotiation: SslNegotiation,
    root_cert: Option<&RootCert>,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls = TlsConnector::from(config.clone())
        .connect(server_name.clone(), stream)
        .await
        .map_err(|err| HandshakeError::from_io(err, &server_name, root_cert))?;
    // Like libpq 17: a direct handshake must have agreed on PostgreSQL's protocol, so that a TLS
    // endpoint of some other service is not mistaken for the database.
    if negotiation == SslNegotiation::Direct
        && tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL)
    {
        return Err(HandshakeError::NoAlpn);
    }
    Ok(tls)
}

/// Why a TLS handshake with the backend failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The chain does not lead to a trusted root.
    #[error("certificate verify failed: unknown issuer (the server's certificate is not signed by a CA in {roots})")]
    UnknownIssuer {
        /// `sslrootcert=…`
        roots: String,
    },
    /// The certificate does not name the host.
    #[error("certificate verify failed: the server's certificate is not valid for host name {host:?}{presented} (sslmode=verify-full checks the URL's host)")]
    WrongHost {
        /// The host duet connected to.
        host: String,
        /// The names the certificate holds, as `: it names …`, or empty.
        presented: String,
    },
    /// Another certificate problem (expired, not yet valid, revoked, bad signature, …).
    #[error("certificate verify failed: {0}")]
    Certificate(CertificateError),
    /// The server ended the handshake with an alert (for instance because duet sent no client
    /// certificate, or one it does not trust).
    #[error("the server refused the TLS handshake ({0:?} alert){hint}", hint = alert_hint(.0))]
    Alert(rustls::AlertDescription),
    /// A direct TLS connection did not agree on ALPN `postgresql`.
    #[error("the server did not agree on ALPN \"postgresql\" for the direct TLS connection (sslnegotiation=direct needs PostgreSQL 17 or later)")]
    NoAlpn,
    /// Any other TLS protocol failure.
    #[error("{0}")]
    Tls(rustls::Error),
    /// The connection failed during the handshake.
    #[error("connection lost during the TLS handshake ({0})")]
    Io(io::Error),
}

fn alert_hint(alert: &rustls::AlertDescription) -> &'static str {
    match alert {
        rustls::AlertDescription::CertificateRequired => {
            ": it wants a client certificate, set sslcert and sslkey"
        }
        rustls::AlertDescription::UnknownCA | rustls::AlertDescription::BadCertificate => {
            ": it does not accept duet's client certificate (sslcert)"
        }
        _ => "",
    }
}

impl HandshakeError {
    fn from_io(err: io::Error, server_name: &ServerName<'_>, root_cert: Option<&RootCert>) -> Self {
        // tokio-rustls reports rustls's errors as io::Error(InvalidData) wrapping them.
        let Some(tls) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return HandshakeError::Io(err);
        };
        match tls {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                HandshakeError::UnknownIssuer {
                    roots: root_cert.map_or_else(|| "sslrootcert".to_owned(), |r| r.to_string()),
                }
            }
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => HandshakeError::WrongHost {
                host: server_name.to_str().into_owned(),
                presented: if presented.is_empty() {
                    String::new()
                } else {
                    let names: Vec<String> = presented.iter().map(|n| plain_name(n)).collect();
                    format!(": it names {}", names.join(", "))
                },
            },
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
                HandshakeError::WrongHost {
                    host: server_name.to_str().into_owned(),
                    presented: String::new(),
                }
            }
            rustls::Error::InvalidCertificate(other) => HandshakeError::Certificate(other.clone()),
            rustls::Error::AlertReceived(alert) => HandshakeError::Alert(*alert),
            other => HandshakeError::Tls(other.clone()),
        }
    }
}

/// webpki reports a certificate's names in Debug form (`DnsName("db")`, `IpAddress(10.0.0.1)`);
/// an operator reads them as OpenSSL prints them (`DNS:db`, `IP Address:10.0.0.1`).
fn plain_name(name: &str) -> String {
    if let Some(dns) = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
    {
        return format!("DNS:{dns}");
    }
    if let Some(ip) = name
        .strip_prefix("IpAddress(")
        .and_then(|n| n.strip_suffix(')'))
    {
        return format!("IP Address:{ip}");
    }
    name.to_owned()
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileProblem> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(FileProblem::Unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(FileProblem::Unreadable)?;
    if certs.is_empty() {
        return Err(FileProblem::Empty("CERTIFICATE"));
    }
    Ok(certs)
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let problem = |problem| TlsSetupError::RootCert {
                path: path.clone(),
                problem,
            };
            let certs = load_certs(path).map_err(problem)?;
            let count = certs.len();
            let (added, _ignored) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(problem(FileProblem::NoUsableCa(count)));
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = if found.errors.is_empty() {
                    "none found".to_owned()
                } else {
                    found
                        .errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(TlsSetupError::NoSystemRoots { detail });
            }
        }
    }
    Ok(store)
}

/// `require` (or weaker) without `sslrootcert`: libpq encrypts without checking who the server
/// is. The handshake signatures are still verified, so the session keys are the server's.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the full webpki check, except that a certificate for another name is accepted.
/// webpki checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook over the backend's rustls configuration: the connection string's
/// `sslmode` (set on the `tokio_postgres::Config`) decides whether it is used, this decides how.
/// Without a configuration (a plain backend) the connection string must say `sslmode=disable`
/// ([`crate::control::connection::control_config`] does): a handshake would fail.
#[derive(Clone, Debug)]
pub struct MakeRustlsConnect {
    config: Option<Arc<ClientConfig>>,
    negotiation: SslNegotiation,
    root_cert: Option<RootCert>,
}

impl MakeRustlsConnect {
    /// A hook that never uses TLS (for a backend without TLS settings).
    pub fn none() -> Self {
        MakeRustlsConnect {
            config: None,
            negotiation: SslNegotiation::Postgres,
            root_cert: None,
        }
    }
}

/// Why tokio-postgres could not get a TLS connection from [`MakeRustlsConnect`].
#[derive(Debug, thiserror::Error)]
pub enum ControlTlsError {
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The host tokio-postgres connects to is not a valid name for a certificate check.
    #[error("host {0:?} cannot be checked against a certificate")]
    HostName(String),
    /// TLS was asked for but the backend URL has no TLS settings.
    #[error("TLS is not configured for the backend (sslmode=disable)")]
    NotConfigured,
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = ControlTlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, ControlTlsError> {
        let config = self.config.clone();
        let server_name = match &config {
            Some(_) => Some(
                ServerName::try_from(domain.to_owned())
                    .map_err(|_| ControlTlsError::HostName(domain.to_owned()))?,
            ),
            None => None,
        };
        Ok(RustlsConnect {
            config,
            server_name,
            negotiation: self.negotiation,
            root_cert: self.root_cert.clone(),
        })
    }
}

/// One TLS handshake for tokio-postgres (made by [`MakeRustlsConnect`]).
#[derive(Debug)]
pub struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    server_name: Option<ServerName<'static>>,
    negotiation: SslNegotiation,
    root_cert: Option<RootCert>,
}

impl<S> tokio_postgres::tls::TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = ControlTlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, ControlTlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let (Some(config), Some(server_name)) = (self.config, self.server_name) else {
                return Err(ControlTlsError::NotConfigured);
            };
            let tls = handshake(
                &config,
                server_name,
                self.negotiation,
                self.root_cert.as_ref(),
                stream,
            )
            .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A TLS control connection's stream.
#[derive(Debug)]
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().0.as_mut()).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        // No tls-server-end-point: tokio-postgres then uses plain SCRAM-SHA-256 (and tells the
        // server so), which every server accepts. The certificate checks above are what tie the
        // connection to the server.
        tokio_postgres::tls::ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend_url::BackendUrl;

    #[test]
    fn certificate_names_read_like_openssl_prints_them() {
        assert_eq!(plain_name("DnsName(\"db.example\")"), "DNS:db.example");
        assert_eq!(plain_name("IpAddress(10.0.0.1)"), "IP Address:10.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn handshake_errors_name_the_reason() {
        let name = ServerName::try_from("db.example").unwrap();
        let root = RootCert::File(PathBuf::from("/etc/ca.pem"));
        let wrap = |err: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, err);
        let unknown = HandshakeError::from_io(
            wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
            &name,
            Some(&root),
        );
        assert_eq!(
            unknown.to_string(),
            "certificate verify failed: unknown issuer (the server's certificate is not signed \
             by a CA in sslrootcert=/etc/ca.pem)"
        );
        let wrong_host = HandshakeError::from_io(
            wrap(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForNameContext {
                    expected: name.to_owned(),
                    presented: vec!["DnsName(\"localhost\")".into()],
                },
            )),
            &name,
            Some(&root),
        );
        assert!(
            wrong_host
                .to_string()
                .contains("not valid for host name \"db.example\": it names DNS:localhost"),
            "{wrong_host}"
        );
        let alert = HandshakeError::from_io(
            wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired,
            )),
            &name,
            None,
        );
        assert!(
            alert.to_string().contains("set sslcert and sslkey"),
            "{alert}"
        );
        let eof = HandshakeError::from_io(io::ErrorKind::UnexpectedEof.into(), &name, None);
        assert!(matches!(eof, HandshakeError::Io(_)));
    }

    #[test]
    fn settings_load_or_say_which_file_is_wrong() {
        let load = |url: &str| {
            let url = BackendUrl::parse(url).unwrap();
            BackendTls::load(&url.ssl, &url.addr)
        };
        assert!(load("postgres://u@h/d").unwrap().is_none());
        assert!(load("postgres://u@h/d?sslmode=disable").unwrap().is_none());
        let tls = load("postgres://u@[::1]/d?sslmode=require&sslnegotiation=direct")
            .unwrap()
            .expect("TLS settings");
        assert_eq!(tls.verification, Verification::None);
        assert!(tls.describe().contains("direct negotiation"));
        let dir = std::env::temp_dir().join(format!("duet-backend-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = load(&format!(
            "postgres://u@h/d?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("holds no CERTIFICATE PEM block"),
            "{err}"
        );
        let err = load(&format!(
            "postgres://u@h/d?sslmode=require&sslcert={}&sslkey={}",
            empty.display(),
            empty.display()
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with("sslcert "), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
