//! Authentication for transaction pooling: duet as the server a client logs in to
//! ([`client_login`]), and duet as the client of a pooled backend connection
//! ([`backend_login`]), both on top of one SCRAM-SHA-256 implementation ([`scram`]).
//!
//! A client that logged in with SCRAM leaves its ClientKey behind ([`scram::ClientKey`]); that key
//! is enough to log in to a backend that has the same SCRAM verifier, so duet can open pooled
//! connections for a user without knowing the user's password.

pub mod backend_login;
pub mod client_login;
pub mod scram;

pub use client_login::{authenticate_client, ClientLoginError};
pub use scram::{ClientKey, ScramClient, ScramError, ScramSecret, ScramServer, ScramVerifier};
