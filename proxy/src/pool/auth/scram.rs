//! SCRAM-SHA-256 (RFC 5802 and RFC 7677) as PostgreSQL speaks it, on both sides: duet as the
//! server a client logs in to ([`ScramServer`]) and duet as the client of a backend
//! ([`ScramClient`]).
//!
//! As in PostgreSQL: no channel binding (duet advertises only `SCRAM-SHA-256`, so a client may
//! say `n` or `y` but not `p`), no authorization identity, and the user name in the
//! client-first-message is ignored (it may be empty): the user is the one of the startup packet.
//!
//! The keys, from RFC 5802 (`H` is SHA-256, `HMAC` is HMAC-SHA-256):
//!
//! ```text
//! SaltedPassword  = Hi(SASLprep(password), salt, iterations)     (PBKDF2)
//! ClientKey       = HMAC(SaltedPassword, "Client Key")
//! StoredKey       = H(ClientKey)
//! ServerKey       = HMAC(SaltedPassword, "Server Key")
//! AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//! ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
//! ServerSignature = HMAC(ServerKey, AuthMessage)
//! ```
//!
//! The server knows only StoredKey and ServerKey (the verifier in `pg_authid`), yet it recovers the
//! ClientKey from a valid proof. The ClientKey is all a client needs to log in to any server with
//! the same verifier, which is how duet opens pooled backend connections for a user without
//! knowing the password ([`ScramSecret::ClientKey`]).

use std::fmt;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The mechanism's name in AuthenticationSASL and SASLInitialResponse.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The channel-binding variant, which duet never offers and refuses to use.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// Iterations of a verifier made by [`ScramVerifier::from_password`] (PostgreSQL's default
/// `scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The most iterations [`ScramClient`] computes. The count comes from the server and drives the
/// PBKDF2 loop, so a server (or something pretending to be one) could otherwise make duet spin for
/// as long as it likes; a million is about half a second, 244 times PostgreSQL's default.
pub const MAX_CLIENT_ITERATIONS: u32 = 1_000_000;

/// Salt length of a new verifier (PostgreSQL's SCRAM_DEFAULT_SALT_LEN).
const SALT_LEN: usize = 16;
/// Random bytes in duet's nonces (PostgreSQL's SCRAM_RAW_NONCE_LEN), base64-encoded on the wire.
const RAW_NONCE_LEN: usize = 18;
/// SHA-256's output, the size of every SCRAM key.
const KEY_LEN: usize = 32;

/// The messages, as named in errors.
const CLIENT_FIRST: &str = "client-first-message";
const SERVER_FIRST: &str = "server-first-message";
const CLIENT_FINAL: &str = "client-final-message";
const SERVER_FINAL: &str = "server-final-message";

/// Why a SCRAM message or verifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The message is not UTF-8 (SCRAM messages are).
    #[error("the SCRAM {message} is not valid UTF-8")]
    NotUtf8 {
        /// Which message.
        message: &'static str,
    },
    /// The message does not follow the grammar.
    #[error("malformed SCRAM {message}: {problem}")]
    Malformed {
        /// Which message.
        message: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// An attribute the message must have next is not there.
    #[error("malformed SCRAM {message}: expected attribute {attribute:?}")]
    MissingAttribute {
        /// Which message.
        message: &'static str,
        /// The attribute's name.
        attribute: char,
    },
    /// An attribute that must be base64 is not.
    #[error("malformed SCRAM {message}: attribute {attribute:?} is not valid base64")]
    Base64 {
        /// Which message.
        message: &'static str,
        /// The attribute's name.
        attribute: char,
    },
    /// The client asks for channel binding (GS2 flag `p`), which duet never offers: the client's
    /// TLS session ends at duet, and duet does not sign its own channel into the exchange.
    #[error("the client requires SCRAM channel binding, which duet does not offer")]
    ChannelBindingRequested,
    /// The client sent an authorization identity (`a=`), which PostgreSQL does not support either.
    #[error("the client uses a SCRAM authorization identity, which is not supported")]
    AuthorizationIdentity,
    /// The client-final-message's channel binding (`c=`) is not its own GS2 header.
    #[error("the SCRAM channel binding does not match the GS2 header of the exchange")]
    ChannelBindingMismatch,
    /// A nonce is not the one of this exchange.
    #[error("the SCRAM nonce does not match the exchange's")]
    NonceMismatch,
    /// The proof is wrong: a wrong password, or a user duet does not know (one variant for both,
    /// so the two cannot be told apart).
    #[error("password authentication failed")]
    WrongPassword,
    /// The server's signature is wrong: it does not know the password's keys.
    #[error("the server's SCRAM signature is wrong: it is not the server this password is for")]
    ServerSignatureMismatch,
    /// The server ended the exchange with an error (`e=`), as it sent it.
    #[error("the server refused the SCRAM exchange: {error}")]
    ServerError {
        /// The server's error value.
        error: String,
    },
    /// The server asks for more PBKDF2 iterations than [`MAX_CLIENT_ITERATIONS`].
    #[error(
        "the server asks for {iterations} SCRAM iterations, more than the {max} duet computes"
    )]
    TooManyIterations {
        /// The server's count.
        iterations: u32,
        /// The limit.
        max: u32,
    },
    /// A method was called at the wrong step of the exchange (a bug in the caller).
    #[error("SCRAM {step} called at the wrong step of the exchange")]
    OutOfOrder {
        /// The method called.
        step: &'static str,
    },
    /// A verifier text is not in PostgreSQL's format.
    #[error("invalid SCRAM verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>): {problem}")]
    Verifier {
        /// What is wrong.
        problem: &'static str,
    },
}

/// A user's SCRAM verifier, what PostgreSQL stores in `pg_authid.rolpassword`: the salt and
/// iteration count of the password's hashing, and the two keys derived from it. Enough to check a
/// client's proof; not enough to compute one.
#[derive(Clone)]
pub struct ScramVerifier {
    /// PBKDF2 iterations.
    iterations: u32,
    /// The salt, raw.
    salt: Vec<u8>,
    /// H(ClientKey).
    stored_key: [u8; KEY_LEN],
    /// HMAC(SaltedPassword, "Server Key").
    server_key: [u8; KEY_LEN],
}

impl ScramVerifier {
    /// Reads PostgreSQL's format:
    /// `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`.
    pub fn parse(text: &str) -> Result<Self, ScramError> {
        let invalid = |problem| ScramError::Verifier { problem };
        let Some(rest) = text.strip_prefix("SCRAM-SHA-256$") else {
            return Err(invalid("it does not start with SCRAM-SHA-256$"));
        };
        let Some((parameters, keys)) = rest.split_once('$') else {
            return Err(invalid("no '$' between the parameters and the keys"));
        };
        let Some((iterations, salt)) = parameters.split_once(':') else {
            return Err(invalid("no ':' between the iterations and the salt"));
        };
        let Some((stored_key, server_key)) = keys.split_once(':') else {
            return Err(invalid("no ':' between the StoredKey and the ServerKey"));
        };
        // PostgreSQL keeps the count in an int.
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|&count| count > 0 && i32::try_from(count).is_ok())
            .ok_or(invalid("the iteration count is not a positive integer"))?;
        let salt = BASE64
            .decode(salt)
            .map_err(|_| invalid("the salt is not base64"))?;
        if salt.is_empty() {
            return Err(invalid("the salt is empty"));
        }
        let key = |text: &str, what| -> Result<[u8; KEY_LEN], ScramError> {
            BASE64
                .decode(text)
                .ok()
                .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
                .ok_or(invalid(what))
        };
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: key(stored_key, "the StoredKey is not 32 bytes of base64")?,
            server_key: key(server_key, "the ServerKey is not 32 bytes of base64")?,
        })
    }

    /// A verifier for `password` with a random 16-byte salt and 4096 iterations, as PostgreSQL
    /// makes one for `password_encryption = 'scram-sha-256'` (the password SASLprepped, or used as
    /// it is when it cannot be, as PostgreSQL does).
    pub fn from_password(password: &str) -> Self {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt[..]);
        Self::with_salt(password, &salt, DEFAULT_ITERATIONS)
    }

    /// The verifier for `password` with this salt and iteration count.
    fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Self {
        let keys = PasswordKeys::derive(password, salt, iterations);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }
    }

    /// The PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt (public: the server sends it to every client that asks).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The verifier in PostgreSQL's format, for `pg_authid` or duet's configuration. Not a
    /// `Display`, so that a verifier cannot end up in a log line by accident.
    pub fn to_pg_authid(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys let anyone who captured an exchange recover a ClientKey: never printed.
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt", &BASE64.encode(&self.salt))
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// A user's ClientKey, recovered by [`ScramServer::client_final`] from a client's valid proof:
/// what [`ScramClient`] needs to log in as that user to a server with the same verifier.
#[derive(Clone)]
pub struct ClientKey([u8; KEY_LEN]);

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As good as the password for logging in: never printed.
        f.write_str("ClientKey(<redacted>)")
    }
}

impl PartialEq for ClientKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for ClientKey {}

/// What [`ScramClient`] logs in with.
#[derive(Clone)]
pub enum ScramSecret {
    /// The user's password (SASLprepped like PostgreSQL does before hashing).
    Password(String),
    /// A ClientKey recovered from the user's own login to duet.
    ClientKey {
        /// The key.
        key: ClientKey,
        /// The user's verifier, when duet has it: it holds the ServerKey, with which the server's
        /// signature is checked when the server's salt and iterations are the verifier's.
        verifier: Option<ScramVerifier>,
    },
}

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScramSecret::Password(_) => f.write_str("Password(<redacted>)"),
            ScramSecret::ClientKey { key, verifier } => f
                .debug_struct("ClientKey")
                .field("key", key)
                .field("verifier", verifier)
                .finish(),
        }
    }
}

/// The server side of one SCRAM-SHA-256 exchange: [`ScramServer::client_first`], then
/// [`ScramServer::client_final`]. Any error ends the exchange.
pub struct ScramServer {
    /// The user's verifier, or a made-up one for a user duet does not know.
    verifier: ScramVerifier,
    /// Whether the verifier is made up: then no proof is right.
    mock: bool,
    /// Where the exchange is.
    state: ServerState,
}

/// The steps of [`ScramServer`].
enum ServerState {
    /// Waiting for the client-first-message.
    Initial,
    /// The server-first-message is sent; waiting for the client-final-message.
    FirstSent {
        /// The `c=` value the client-final-message must carry: its GS2 header in base64.
        channel_binding: String,
        /// The client's nonce and duet's.
        nonce: String,
        /// The client-first-message without its GS2 header.
        client_first_bare: String,
        /// What duet answered.
        server_first: String,
    },
    /// Finished, or failed.
    Done,
}

impl ScramServer {
    /// An exchange checking proofs against `verifier`. `None` is a user duet does not know: the
    /// exchange runs as for a known user, with a made-up salt that is always the same (a fixed
    /// salt per process, as [`ScramServer::mock`] makes for the user ""), and fails the way a
    /// wrong password does, so a client cannot tell which users exist (PostgreSQL does the same).
    pub fn new(verifier: Option<ScramVerifier>) -> Self {
        match verifier {
            Some(verifier) => ScramServer {
                verifier,
                mock: false,
                state: ServerState::Initial,
            },
            None => ScramServer::mock(""),
        }
    }

    /// The exchange for `user`, whom duet does not know: its salt is derived from the user name
    /// and a secret of this process (PostgreSQL's `scram_mock_salt`), so asking twice for the same
    /// user gives the same salt, like a real user's, and different users get different salts.
    pub fn mock(user: &str) -> Self {
        static SECRET: OnceLock<[u8; KEY_LEN]> = OnceLock::new();
        let secret = SECRET.get_or_init(|| {
            let mut secret = [0u8; KEY_LEN];
            rand::fill(&mut secret[..]);
            secret
        });
        let salt = hmac(secret, &[user.as_bytes()]);
        ScramServer {
            verifier: ScramVerifier {
                iterations: DEFAULT_ITERATIONS,
                salt: salt[..SALT_LEN].to_vec(),
                // Never compared: `mock` fails every proof.
                stored_key: [0; KEY_LEN],
                server_key: [0; KEY_LEN],
            },
            mock: true,
            state: ServerState::Initial,
        }
    }

    /// Reads the client-first-message (the data of the SASLInitialResponse) and returns the
    /// server-first-message: the client's nonce with duet's appended, the salt and the iterations.
    pub fn client_first(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ServerState::Initial) {
            return Err(ScramError::OutOfOrder {
                step: "client_first",
            });
        }
        self.state = ServerState::Done;
        let text = utf8(data, CLIENT_FIRST)?;
        let malformed = |problem| ScramError::Malformed {
            message: CLIENT_FIRST,
            problem,
        };
        // The GS2 header: channel-binding flag "," [authzid] ",".
        let Some((flag, rest)) = text.split_once(',') else {
            return Err(malformed("no GS2 header"));
        };
        match flag {
            // `y`: the client could bind but thinks the server cannot, which is true of duet.
            "n" | "y" => {}
            flag if flag.starts_with("p=") => return Err(ScramError::ChannelBindingRequested),
            _ => return Err(malformed("invalid channel-binding flag")),
        }
        let Some((authzid, bare)) = rest.split_once(',') else {
            return Err(malformed("the GS2 header is cut short"));
        };
        if !authzid.is_empty() {
            return Err(ScramError::AuthorizationIdentity);
        }
        let gs2_header = &text[..text.len() - bare.len()];

        let mut attributes = Attributes::new(bare, CLIENT_FIRST);
        match attributes.next_attribute()? {
            Some(('n', _)) => {}
            Some(('m', _)) => return Err(malformed("mandatory extensions are not supported")),
            _ => {
                return Err(ScramError::MissingAttribute {
                    message: CLIENT_FIRST,
                    attribute: 'n',
                })
            }
        }
        let client_nonce = attributes.expect('r')?;
        check_nonce(client_nonce, CLIENT_FIRST)?;
        // Extensions may follow; PostgreSQL ignores them, and so does duet (once well formed).
        attributes.rest()?;

        let nonce = format!("{client_nonce}{}", random_nonce());
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = ServerState::FirstSent {
            channel_binding: BASE64.encode(gs2_header),
            nonce,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
        };
        Ok(server_first.into_bytes())
    }

    /// Reads the client-final-message (the data of the SASLResponse), checks its channel binding,
    /// nonce and proof, and returns the server-final-message (`v=` and duet's signature) and the
    /// ClientKey the proof reveals.
    pub fn client_final(&mut self, data: &[u8]) -> Result<(Vec<u8>, ClientKey), ScramError> {
        let ServerState::FirstSent {
            channel_binding,
            nonce,
            client_first_bare,
            server_first,
        } = std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(ScramError::OutOfOrder {
                step: "client_final",
            });
        };
        let text = utf8(data, CLIENT_FINAL)?;
        // The proof is the last attribute, and the AuthMessage covers everything before it.
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return Err(ScramError::MissingAttribute {
                message: CLIENT_FINAL,
                attribute: 'p',
            });
        };
        let mut attributes = Attributes::new(without_proof, CLIENT_FINAL);
        if attributes.expect('c')? != channel_binding {
            return Err(ScramError::ChannelBindingMismatch);
        }
        if attributes.expect('r')? != nonce {
            return Err(ScramError::NonceMismatch);
        }
        attributes.rest()?;
        let proof = decode_key(proof, CLIENT_FINAL, 'p')?;

        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let client_key = xor(&proof, &signature);
        let stored_key: [u8; KEY_LEN] = Sha256::digest(client_key).into();
        if self.mock || !constant_time_eq(&stored_key, &self.verifier.stored_key) {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        let server_final = format!("v={}", BASE64.encode(server_signature));
        Ok((server_final.into_bytes(), ClientKey(client_key)))
    }
}

/// The client side of one SCRAM-SHA-256 exchange: [`ScramClient::client_first`], then
/// [`ScramClient::server_first`], then [`ScramClient::server_final`].
pub struct ScramClient {
    /// What the proof is computed from.
    secret: ScramSecret,
    /// duet's nonce.
    nonce: String,
    /// The GS2 header: always `n,,` (tests change it to play a client that says `y`).
    gs2_header: &'static str,
    /// Where the exchange is.
    state: ClientState,
}

/// The steps of [`ScramClient`].
enum ClientState {
    /// Waiting for the server-first-message.
    Initial,
    /// The client-final-message is computed; waiting for the server-final-message.
    FinalSent {
        /// The signature the server must send, when duet knows the ServerKey.
        server_signature: Option<[u8; KEY_LEN]>,
    },
    /// Failed.
    Failed,
}

impl ScramClient {
    /// An exchange logging in with `secret`.
    pub fn new(secret: ScramSecret) -> Self {
        ScramClient {
            secret,
            nonce: random_nonce(),
            gs2_header: "n,,",
            state: ClientState::Initial,
        }
    }

    /// The client-first-message, for the SASLInitialResponse: no channel binding (`n`), and an
    /// empty user name, as libpq sends (the server takes the user from the startup packet).
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare()).into_bytes()
    }

    /// The client-first-message without its GS2 header.
    fn client_first_bare(&self) -> String {
        format!("n=,r={}", self.nonce)
    }

    /// Reads the server-first-message (the data of AuthenticationSASLContinue) and returns the
    /// client-final-message, for the SASLResponse.
    pub fn server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ClientState::Initial) {
            return Err(ScramError::OutOfOrder {
                step: "server_first",
            });
        }
        self.state = ClientState::Failed;
        let text = utf8(data, SERVER_FIRST)?;
        let mut attributes = Attributes::new(text, SERVER_FIRST);
        let nonce = match attributes.next_attribute()? {
            Some(('r', nonce)) => nonce,
            Some(('m', _)) => {
                return Err(ScramError::Malformed {
                    message: SERVER_FIRST,
                    problem: "mandatory extensions are not supported",
                })
            }
            _ => {
                return Err(ScramError::MissingAttribute {
                    message: SERVER_FIRST,
                    attribute: 'r',
                })
            }
        };
        // The server's nonce must extend ours: otherwise this answers another exchange.
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        check_nonce(nonce, SERVER_FIRST)?;
        let salt = BASE64
            .decode(attributes.expect('s')?)
            .map_err(|_| ScramError::Base64 {
                message: SERVER_FIRST,
                attribute: 's',
            })?;
        let iterations = attributes
            .expect('i')?
            .parse::<u32>()
            .ok()
            .filter(|&count| count > 0)
            .ok_or(ScramError::Malformed {
                message: SERVER_FIRST,
                problem: "the iteration count is not a positive integer",
            })?;
        if iterations > MAX_CLIENT_ITERATIONS {
            return Err(ScramError::TooManyIterations {
                iterations,
                max: MAX_CLIENT_ITERATIONS,
            });
        }
        attributes.rest()?;

        let (client_key, stored_key, server_key) = match &self.secret {
            ScramSecret::Password(password) => {
                let keys = PasswordKeys::derive(password, &salt, iterations);
                (keys.client_key, keys.stored_key, Some(keys.server_key))
            }
            ScramSecret::ClientKey { key, verifier } => {
                let stored_key: [u8; KEY_LEN] = Sha256::digest(key.0).into();
                // The ServerKey comes from the SaltedPassword, which a ClientKey does not reveal:
                // only a verifier of the same hashing (same salt and iterations, the StoredKey
                // this key gives) holds the one this server has.
                let server_key = verifier
                    .as_ref()
                    .filter(|verifier| {
                        verifier.salt == salt
                            && verifier.iterations == iterations
                            && constant_time_eq(&verifier.stored_key, &stored_key)
                    })
                    .map(|verifier| verifier.server_key);
                (key.0, stored_key, server_key)
            }
        };

        let without_proof = format!("c={},r={nonce}", BASE64.encode(self.gs2_header));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare());
        let signature = hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof = xor(&client_key, &signature);
        self.state = ClientState::FinalSent {
            server_signature: server_key
                .map(|server_key| hmac(&server_key, &[auth_message.as_bytes()])),
        };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Reads the server-final-message (the data of AuthenticationSASLFinal): an error the server
    /// reports (`e=`) is an error; its signature (`v=`) is checked when duet knows the ServerKey.
    ///
    /// When it does not (a ClientKey without a matching verifier), the signature is accepted
    /// unchecked: nothing duet has can check it. What the signature proves, that the server knows
    /// the verifier, is then no more than what a trust or md5 login proves, and duet reaches its
    /// backends at the address it is configured with (over TLS with verification where configured),
    /// so the server is still the one the operator chose.
    pub fn server_final(&self, data: &[u8]) -> Result<(), ScramError> {
        let ClientState::FinalSent { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder {
                step: "server_final",
            });
        };
        let text = utf8(data, SERVER_FINAL)?;
        let mut attributes = Attributes::new(text, SERVER_FINAL);
        let signature = match attributes.next_attribute()? {
            Some(('e', error)) => {
                return Err(ScramError::ServerError {
                    error: error.to_owned(),
                })
            }
            Some(('v', signature)) => decode_key(signature, SERVER_FINAL, 'v')?,
            _ => {
                return Err(ScramError::MissingAttribute {
                    message: SERVER_FINAL,
                    attribute: 'v',
                })
            }
        };
        attributes.rest()?;
        match server_signature {
            Some(expected) if !constant_time_eq(expected, &signature) => {
                Err(ScramError::ServerSignatureMismatch)
            }
            _ => Ok(()),
        }
    }
}

/// The keys derived from a password.
struct PasswordKeys {
    /// HMAC(SaltedPassword, "Client Key").
    client_key: [u8; KEY_LEN],
    /// H(ClientKey).
    stored_key: [u8; KEY_LEN],
    /// HMAC(SaltedPassword, "Server Key").
    server_key: [u8; KEY_LEN],
}

impl PasswordKeys {
    /// The keys of `password` hashed with `salt` and `iterations`.
    fn derive(password: &str, salt: &[u8], iterations: u32) -> Self {
        // PostgreSQL SASLpreps the password, and uses it as it is when that fails (prohibited
        // characters): a password is bytes to PostgreSQL, not necessarily a SASL string.
        let prepared = match stringprep::saslprep(password) {
            Ok(prepared) => prepared.into_owned().into_bytes(),
            Err(_) => password.as_bytes().to_vec(),
        };
        let salted_password = hi(&prepared, salt, iterations);
        let client_key = hmac(&salted_password, &[b"Client Key"]);
        PasswordKeys {
            client_key,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted_password, &[b"Server Key"]),
        }
    }
}

/// The attributes of a SCRAM message: `x=value`, separated by commas.
struct Attributes<'a> {
    /// What is left to read, `None` at the end.
    rest: Option<&'a str>,
    /// The message, for errors.
    message: &'static str,
}

impl<'a> Attributes<'a> {
    fn new(text: &'a str, message: &'static str) -> Self {
        Attributes {
            rest: Some(text),
            message,
        }
    }

    /// The next attribute's name and value, `None` at the end.
    fn next_attribute(&mut self) -> Result<Option<(char, &'a str)>, ScramError> {
        let Some(rest) = self.rest else {
            return Ok(None);
        };
        let (attribute, rest) = match rest.split_once(',') {
            Some((attribute, rest)) => (attribute, Some(rest)),
            None => (rest, None),
        };
        self.rest = rest;
        match attribute.as_bytes() {
            [name, b'=', ..] if name.is_ascii_alphabetic() => {
                Ok(Some((char::from(*name), &attribute[2..])))
            }
            _ => Err(ScramError::Malformed {
                message: self.message,
                problem: "an attribute is not of the form x=value",
            }),
        }
    }

    /// The value of the next attribute, which must be `name`.
    fn expect(&mut self, name: char) -> Result<&'a str, ScramError> {
        match self.next_attribute()? {
            Some((found, value)) if found == name => Ok(value),
            _ => Err(ScramError::MissingAttribute {
                message: self.message,
                attribute: name,
            }),
        }
    }

    /// Checks that the attributes left (extensions, which are ignored) are well formed.
    fn rest(&mut self) -> Result<(), ScramError> {
        while self.next_attribute()?.is_some() {}
        Ok(())
    }
}

/// `data` as text.
fn utf8<'a>(data: &'a [u8], message: &'static str) -> Result<&'a str, ScramError> {
    std::str::from_utf8(data).map_err(|_| ScramError::NotUtf8 { message })
}

/// A nonce must be printable ASCII other than ',' (RFC 5802), and not empty.
fn check_nonce(nonce: &str, message: &'static str) -> Result<(), ScramError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed {
            message,
            problem: "the nonce is empty or not printable",
        });
    }
    Ok(())
}

/// A 32-byte key or signature in base64.
fn decode_key(
    text: &str,
    message: &'static str,
    attribute: char,
) -> Result<[u8; KEY_LEN], ScramError> {
    let bytes = BASE64
        .decode(text)
        .map_err(|_| ScramError::Base64 { message, attribute })?;
    <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| ScramError::Malformed {
        message,
        problem: "a proof or signature is not 32 bytes",
    })
}

/// A fresh nonce: 18 random bytes in base64 (24 characters, none of them a comma).
fn random_nonce() -> String {
    let mut raw = [0u8; RAW_NONCE_LEN];
    rand::fill(&mut raw[..]);
    BASE64.encode(raw)
}

/// HMAC-SHA-256 of the concatenated `parts` under `key`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut mac = keyed(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA-256 keyed with `key`.
fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (a longer one is hashed first): this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Hi() of RFC 5802: PBKDF2-HMAC-SHA-256 with one block of output.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    // The keyed state is computed once and cloned: the iterations only hash their input.
    let base = keyed(password);
    let mut mac = base.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut previous: [u8; KEY_LEN] = mac.finalize().into_bytes().into();
    let mut result = previous;
    for _ in 1..iterations {
        let mut mac = base.clone();
        mac.update(&previous);
        previous = mac.finalize().into_bytes().into();
        result = xor(&result, &previous);
    }
    result
}

/// `a` XOR `b`.
fn xor(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Equality that takes the same time wherever the first difference is, so that comparing a
/// proof's key does not tell an attacker how much of it was right.
fn constant_time_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Made by PostgreSQL 15 (`password_encryption = 'scram-sha-256'`) for the password `sekr3t`.
    pub(crate) const PG_VERIFIER: &str = "SCRAM-SHA-256$4096:6/jo/Bz3TOOtRZpNLMfXSQ==$lLYuNyPaZLENIzTUWZgTGP9AKcWA4SBf3r7eVrY8+3c=:cYWKb34i6MyEGLAIRr43gJw3zQcG7P0fnikhvBJnCwA=";
    const PG_PASSWORD: &str = "sekr3t";

    /// Runs a whole exchange: the client's error or the ClientKey the server recovered.
    fn exchange(
        server: &mut ScramServer,
        client: &mut ScramClient,
    ) -> Result<ClientKey, ScramError> {
        let server_first = server.client_first(&client.client_first())?;
        let client_final = client.server_first(&server_first)?;
        let (server_final, key) = server.client_final(&client_final)?;
        client.server_final(&server_final)?;
        Ok(key)
    }

    fn pg_verifier() -> ScramVerifier {
        ScramVerifier::parse(PG_VERIFIER).unwrap()
    }

    #[test]
    fn parses_postgresql_verifier_and_derives_the_same_keys() {
        let verifier = pg_verifier();
        assert_eq!(verifier.iterations(), 4096);
        assert_eq!(verifier.salt().len(), 16);
        assert_eq!(verifier.to_pg_authid(), PG_VERIFIER);
        let derived = ScramVerifier::with_salt(PG_PASSWORD, verifier.salt(), 4096);
        assert_eq!(derived.to_pg_authid(), PG_VERIFIER);
    }

    #[test]
    fn from_password_matches_postgres_protocol() {
        let ours = ScramVerifier::from_password("pässwörd");
        assert_eq!(ours.iterations(), DEFAULT_ITERATIONS);
        assert_eq!(ours.salt().len(), SALT_LEN);
        let other = ScramVerifier::parse(&postgres_protocol::password::scram_sha_256(
            "pässwörd".as_bytes(),
        ))
        .unwrap();
        let same_salt = ScramVerifier::with_salt("pässwörd", other.salt(), other.iterations());
        assert_eq!(same_salt.to_pg_authid(), other.to_pg_authid());
        // Two verifiers of one password differ by their salt.
        assert_ne!(
            ours.to_pg_authid(),
            ScramVerifier::from_password("pässwörd").to_pg_authid()
        );
    }

    #[test]
    fn saslprep_applies_and_falls_back_like_postgresql() {
        // U+00A0 (no-break space) maps to a space in SASLprep: both spellings are one password.
        let salt = b"0123456789abcdef";
        assert_eq!(
            ScramVerifier::with_salt("a\u{a0}b", salt, 2).to_pg_authid(),
            ScramVerifier::with_salt("a b", salt, 2).to_pg_authid()
        );
        // A prohibited character (U+0007): SASLprep fails, and the raw bytes are used.
        let raw = ScramVerifier::with_salt("a\u{7}b", salt, 2);
        let keys = hi(b"a\x07b", salt, 2);
        assert_eq!(
            raw.stored_key,
            <[u8; 32]>::from(Sha256::digest(hmac(&keys, &[b"Client Key"])))
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let verifier = pg_verifier();
        let printed = format!("{verifier:?}");
        assert!(!printed.contains("lLYuNyPa"), "{printed}");
        assert!(!printed.contains("cYWKb34i"), "{printed}");
        let key = ClientKey([0xab; 32]);
        assert_eq!(format!("{key:?}"), "ClientKey(<redacted>)");
        let secret = ScramSecret::Password("sekr3t".into());
        assert!(!format!("{secret:?}").contains("sekr3t"));
        let secret = ScramSecret::ClientKey {
            key,
            verifier: Some(verifier),
        };
        assert!(!format!("{secret:?}").contains("lLYuNyPa"));
    }

    #[test]
    fn password_round_trip_with_a_postgresql_verifier() {
        let mut server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        exchange(&mut server, &mut client).unwrap();
    }

    #[test]
    fn wrong_password_fails() {
        let mut server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password("wrong".into()));
        assert_eq!(
            exchange(&mut server, &mut client),
            Err(ScramError::WrongPassword)
        );
    }

    #[test]
    fn unknown_user_fails_like_a_wrong_password() {
        let mut server = ScramServer::new(None);
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        assert_eq!(
            exchange(&mut server, &mut client),
            Err(ScramError::WrongPassword)
        );
        // The made-up salt is the same each time for a user, as a real one would be.
        let salt_of = |mut server: ScramServer| {
            let first = server.client_first(b"n,,n=,r=abc").unwrap();
            String::from_utf8(first)
                .unwrap()
                .split(',')
                .find(|attribute| attribute.starts_with("s="))
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            salt_of(ScramServer::mock("ghost")),
            salt_of(ScramServer::mock("ghost"))
        );
        assert_ne!(
            salt_of(ScramServer::mock("ghost")),
            salt_of(ScramServer::mock("phantom"))
        );
        assert_eq!(
            salt_of(ScramServer::new(None)),
            salt_of(ScramServer::mock(""))
        );
        // 24 base64 characters, like a real 16-byte salt.
        assert_eq!(salt_of(ScramServer::mock("ghost")).len(), 2 + 24);
    }

    #[test]
    fn recovered_client_key_logs_in_to_another_server() {
        let mut first_server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        let key = exchange(&mut first_server, &mut client).unwrap();

        // With the verifier: the server's signature is checked.
        let mut second_server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::ClientKey {
            key: key.clone(),
            verifier: Some(pg_verifier()),
        });
        assert_eq!(exchange(&mut second_server, &mut client), Ok(key.clone()));

        // Without: accepted unchecked.
        let mut third_server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::ClientKey {
            key: key.clone(),
            verifier: None,
        });
        assert_eq!(exchange(&mut third_server, &mut client), Ok(key.clone()));

        // A server with another verifier for the same password (another salt) refuses the key.
        let mut other_server = ScramServer::new(Some(ScramVerifier::from_password(PG_PASSWORD)));
        let mut client = ScramClient::new(ScramSecret::ClientKey {
            key,
            verifier: Some(pg_verifier()),
        });
        assert_eq!(
            exchange(&mut other_server, &mut client),
            Err(ScramError::WrongPassword)
        );
    }

    #[test]
    fn client_checks_the_server_signature() {
        let mut server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        let server_first = server.client_first(&client.client_first()).unwrap();
        let client_final = client.server_first(&server_first).unwrap();
        server.client_final(&client_final).unwrap();
        let forged = format!("v={}", BASE64.encode([7u8; 32]));
        assert_eq!(
            client.server_final(forged.as_bytes()),
            Err(ScramError::ServerSignatureMismatch)
        );
        assert_eq!(
            client.server_final(b"e=invalid-proof"),
            Err(ScramError::ServerError {
                error: "invalid-proof".into()
            })
        );
    }

    #[test]
    fn gs2_headers() {
        let mut server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        client.gs2_header = "y,,";
        exchange(&mut server, &mut client).unwrap();

        // `y` is accepted, and its channel binding must then be `eSws`.
        let mut server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        let first = String::from_utf8(client.client_first()).unwrap();
        let first = first.replacen("n,,", "y,,", 1);
        let server_first = server.client_first(first.as_bytes()).unwrap();
        let client_final = client.server_first(&server_first).unwrap();
        // The client computed its proof for `n,,`: the binding attribute gives it away.
        assert_eq!(
            server.client_final(&client_final),
            Err(ScramError::ChannelBindingMismatch)
        );

        let mut server = ScramServer::new(Some(pg_verifier()));
        assert_eq!(
            server.client_first(b"p=tls-server-end-point,,n=,r=abc"),
            Err(ScramError::ChannelBindingRequested)
        );
        let mut server = ScramServer::new(Some(pg_verifier()));
        assert_eq!(
            server.client_first(b"n,a=admin,n=,r=abc"),
            Err(ScramError::AuthorizationIdentity)
        );
        // The user name is ignored, empty or not.
        let mut server = ScramServer::new(Some(pg_verifier()));
        assert!(server.client_first(b"n,,n=someone,r=abc").is_ok());
    }

    #[test]
    fn nonce_must_be_the_exchange_s() {
        let mut server = ScramServer::new(Some(pg_verifier()));
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        let server_first = server.client_first(&client.client_first()).unwrap();
        let client_final = String::from_utf8(client.server_first(&server_first).unwrap()).unwrap();
        let tampered = client_final.replacen(",r=", ",r=x", 1);
        assert_eq!(
            server.client_final(tampered.as_bytes()),
            Err(ScramError::NonceMismatch)
        );

        // The client refuses a server nonce that does not extend its own.
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        assert_eq!(
            client.server_first(b"r=other,s=c2FsdA==,i=4096"),
            Err(ScramError::NonceMismatch)
        );
    }

    #[test]
    fn steps_out_of_order_are_errors() {
        let mut server = ScramServer::new(Some(pg_verifier()));
        assert!(matches!(
            server.client_final(b"c=biws,r=a,p=b"),
            Err(ScramError::OutOfOrder { .. })
        ));
        let client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        assert!(matches!(
            client.server_final(b"v=abc"),
            Err(ScramError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn server_refuses_too_many_iterations() {
        let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
        let first = String::from_utf8(client.client_first()).unwrap();
        let nonce = first.rsplit_once("r=").unwrap().1;
        let server_first = format!("r={nonce}xyz,s=c2FsdA==,i=4000000000");
        assert!(matches!(
            client.server_first(server_first.as_bytes()),
            Err(ScramError::TooManyIterations { .. })
        ));
    }

    #[test]
    fn malformed_verifiers_are_errors() {
        for text in [
            "",
            "md5abcdef",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$4096:c2FsdA==",
            "SCRAM-SHA-256$4096$a:b",
            "SCRAM-SHA-256$x:c2FsdA==$a:b",
            "SCRAM-SHA-256$0:c2FsdA==$a:b",
            "SCRAM-SHA-256$-1:c2FsdA==$a:b",
            "SCRAM-SHA-256$4096:!!$a:b",
            "SCRAM-SHA-256$4096::$lLYuNyPaZLENIzTUWZgTGP9AKcWA4SBf3r7eVrY8+3c=:cYWKb34i6MyEGLAIRr43gJw3zQcG7P0fnikhvBJnCwA=",
            "SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:c2FsdA==",
            "SCRAM-SHA-256$4096:c2FsdA==$lLYuNyPaZLENIzTUWZgTGP9AKcWA4SBf3r7eVrY8+3c=",
        ] {
            assert!(
                matches!(
                    ScramVerifier::parse(text),
                    Err(ScramError::Verifier { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_client_messages_are_errors() {
        for first in [
            &b""[..],
            b"n",
            b"n,",
            b"x,,n=,r=abc",
            b"n,,r=abc",
            b"n,,m=ext,n=,r=abc",
            b"n,,n=",
            b"n,,n=,r=",
            b"n,,n=,r=a\x01b",
            b"n,,n=,r=abc,garbage",
            b"n,,n=,r=\xff",
        ] {
            let mut server = ScramServer::new(Some(pg_verifier()));
            assert!(server.client_first(first).is_err(), "{first:?}");
        }
        let finals: [&[u8]; 8] = [
            b"",
            b"c=biws",
            b"c=biws,r=NONCE",
            b"c=biws,r=NONCE,p=",
            b"c=biws,r=NONCE,p=!!!",
            b"c=biws,r=NONCE,p=c2FsdA==",
            b"r=NONCE,c=biws,p=c2FsdA==",
            b"c=eSws,r=NONCE,p=c2FsdA==",
        ];
        for template in finals {
            let mut server = ScramServer::new(Some(pg_verifier()));
            let first = String::from_utf8(server.client_first(b"n,,n=,r=abc").unwrap()).unwrap();
            let nonce = &first[2..first.find(',').unwrap()];
            let text = String::from_utf8_lossy(template).replace("NONCE", nonce);
            assert!(
                server.client_final(text.as_bytes()).is_err(),
                "{template:?}"
            );
        }
    }

    #[test]
    fn malformed_server_messages_are_errors() {
        for first in [
            &b""[..],
            b"r=",
            b"s=c2FsdA==,i=4096",
            b"r=NONCE",
            b"r=NONCEx,s=!!,i=4096",
            b"r=NONCEx,s=c2FsdA==",
            b"r=NONCEx,s=c2FsdA==,i=0",
            b"r=NONCEx,s=c2FsdA==,i=-1",
            b"r=NONCEx,s=c2FsdA==,i=many",
            b"m=x,r=NONCEx,s=c2FsdA==,i=1",
        ] {
            let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
            let text = String::from_utf8_lossy(first).replace("NONCE", &client.nonce);
            assert!(client.server_first(text.as_bytes()).is_err(), "{first:?}");
        }
        for last in [&b""[..], b"v=", b"v=!!", b"x=1", b"v=c2FsdA=="] {
            let mut server = ScramServer::new(Some(pg_verifier()));
            let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
            let server_first = server.client_first(&client.client_first()).unwrap();
            client.server_first(&server_first).unwrap();
            assert!(client.server_final(last).is_err(), "{last:?}");
        }
    }

    /// Random bytes, and random mutations of valid messages, never panic and never pass.
    #[test]
    fn random_input_never_panics() {
        let alphabet = b"nyp,=rcsivem abcXYZ019+/\x00\xff";
        let mut random = [0u8; 64];
        for round in 0..2000 {
            rand::fill(&mut random[..]);
            let len = usize::from(random[0]) % 48;
            let bytes: Vec<u8> = if round % 2 == 0 {
                random[1..=len].to_vec()
            } else {
                random[1..=len]
                    .iter()
                    .map(|b| alphabet[usize::from(*b) % alphabet.len()])
                    .collect()
            };
            let mut server = ScramServer::new(Some(pg_verifier()));
            let _ = server.client_first(&bytes);
            let _ = server.client_final(&bytes);
            let mut server = ScramServer::new(None);
            if server.client_first(b"n,,n=,r=abc").is_ok() {
                assert!(server.client_final(&bytes).is_err());
            }
            let mut client = ScramClient::new(ScramSecret::Password("x".into()));
            let _ = client.server_first(&bytes);
            let _ = client.server_final(&bytes);
            let _ = ScramVerifier::parse(&String::from_utf8_lossy(&bytes));
        }
        // A valid client-final-message with one byte changed never logs in.
        for _ in 0..200 {
            let mut server = ScramServer::new(Some(pg_verifier()));
            let mut client = ScramClient::new(ScramSecret::Password(PG_PASSWORD.into()));
            let server_first = server.client_first(&client.client_first()).unwrap();
            let mut client_final = client.server_first(&server_first).unwrap();
            rand::fill(&mut random[..2]);
            let at = usize::from(random[0]) % client_final.len();
            let flip = random[1] | 1;
            client_final[at] ^= flip;
            assert!(server.client_final(&client_final).is_err());
        }
    }
}
