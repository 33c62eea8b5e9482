//! "Is the server (or a proxy in front of it) accepting connections yet?" without a client library.
//!
//! The cluster API is synchronous (usable from plain tests and from `spawn_blocking`), so readiness
//! is checked with a hand-written StartupMessage over a blocking socket, like `pg_isready`: any
//! authentication request, or any error other than "the database system is starting up" (SQLSTATE
//! 57P03), proves the postmaster is serving connections — even when pg_hba.conf rejects us.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What one probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// The server answered a startup packet: it accepts connections.
    Ready,
    /// Not (yet) accepting connections, with the reason.
    NotReady(String),
}

/// SQLSTATE of "the database system is starting up" / "is shutting down" (cannot_connect_now).
const CANNOT_CONNECT_NOW: &str = "57P03";

/// Sends one startup packet for `user` to `addr` and classifies the first reply.
pub fn probe(addr: SocketAddr, user: &str) -> Probe {
    match probe_io(addr, user) {
        Ok(probe) => probe,
        Err(err) => Probe::NotReady(err.to_string()),
    }
}

fn probe_io(addr: SocketAddr, user: &str) -> std::io::Result<Probe> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&startup_message(user, "postgres"))?;
    let mut header = [0u8; 5];
    stream.read_exact(&mut header)?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let body_len = len.saturating_sub(4).min(64 * 1024);
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body)?;
    // Be polite: Terminate, so the server does not log an unexpected EOF. Failures do not matter.
    let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
    Ok(classify(header[0], &body))
}

/// Classifies the first message a server sends in reply to a startup packet.
fn classify(tag: u8, body: &[u8]) -> Probe {
    match tag {
        b'R' => Probe::Ready,
        b'E' => {
            let fields = error_fields(body);
            let code = fields
                .iter()
                .find(|(k, _)| *k == b'C')
                .map(|(_, v)| v.as_str());
            let message = fields
                .iter()
                .find(|(k, _)| *k == b'M')
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if code == Some(CANNOT_CONNECT_NOW) {
                Probe::NotReady(message)
            } else {
                Probe::Ready
            }
        }
        other => Probe::NotReady(format!(
            "unexpected reply {:?} to a startup packet",
            other as char
        )),
    }
}

/// Splits an ErrorResponse body into (field type, value) pairs.
fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        fields.push((kind, String::from_utf8_lossy(&tail[..end]).into_owned()));
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    fields
}

/// A protocol 3.0 StartupMessage.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_is_length_prefixed_protocol_3() {
        let msg = startup_message("postgres", "postgres");
        let len = u32::from_be_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
        assert_eq!(len, msg.len());
        assert_eq!(&msg[4..8], &[0, 3, 0, 0]);
        assert!(msg.ends_with(b"postgres\0\0"));
    }

    #[test]
    fn starting_up_is_not_ready_but_other_errors_are() {
        let starting = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(
            classify(b'E', starting),
            Probe::NotReady("the database system is starting up".into())
        );
        let rejected = b"SFATAL\0C28000\0Mno pg_hba.conf entry\0\0";
        assert_eq!(classify(b'E', rejected), Probe::Ready);
        assert_eq!(classify(b'R', &[0, 0, 0, 0]), Probe::Ready);
        assert!(matches!(classify(b'Z', &[]), Probe::NotReady(_)));
    }

    #[test]
    fn truncated_error_fields_do_not_panic() {
        assert_eq!(error_fields(b"C57P0"), vec![(b'C', "57P0".to_string())]);
        assert!(error_fields(b"").is_empty());
    }
}
