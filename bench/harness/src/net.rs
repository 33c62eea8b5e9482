//! Loopback addresses for the processes the benchmark starts.

use std::net::TcpListener;

/// The loopback address every launched process listens on.
pub const LOOPBACK: &str = "127.0.0.1";

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it). Another process may
/// still take it before ours binds; callers that can detect that retry with a new port.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((LOOPBACK, 0))?;
    Ok(listener.local_addr()?.port())
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
}
