//! Loopback addresses for the processes the benchmark starts.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

/// The loopback address every launched process listens on.
pub const LOOPBACK: &str = "127.0.0.1";

/// Ports [`free_port`] has handed out in this process. The OS may offer a released port again at
/// once, so without this two callers in one process (a test's metrics port, then a throwaway
/// cluster's port) could be given the same one before either binds it.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Attempts at finding a port not handed out before in this process.
const FREE_PORT_ATTEMPTS: usize = 64;

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it) and that no earlier call
/// in this process returned. Another process may still take it before ours binds; callers that
/// can detect that retry with a new port.
pub fn free_port() -> std::io::Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    // Listeners stay bound until the end, so the OS offers a different port on each attempt.
    let mut held = Vec::new();
    for _ in 0..FREE_PORT_ATTEMPTS {
        let listener = TcpListener::bind((LOOPBACK, 0))?;
        let port = listener.local_addr()?.port();
        if handed_out.insert(port) {
            return Ok(port);
        }
        held.push(listener);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("the OS offered only ports already handed out in {FREE_PORT_ATTEMPTS} attempts"),
    ))
}

/// Percent-encodes a URL userinfo or path component (everything but RFC 3986 unreserved chars).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("app_user-1.x~"), "app_user-1.x~");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().expect("a free port"), 0);
    }

    #[test]
    fn free_port_never_hands_out_a_port_twice() {
        let ports: Vec<u16> = (0..200)
            .map(|_| free_port().expect("a free port"))
            .collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
    }
}
