//! The first packet of a connection: SSLRequest, GSSENCRequest, CancelRequest or StartupMessage.
//!
//! These packets have no type byte: `length:i32 code:i32 ...`. Like PostgreSQL, duet refuses a
//! startup packet shorter than 8 or longer than 10000 bytes before reading it. What the client is
//! told follows PostgreSQL too ([`StartupError::reply`]): nothing at all for bytes that are not a
//! startup packet, a FATAL for a startup packet it cannot serve.

use bytes::{Bytes, BytesMut};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::{SecretKey, Startup};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

use super::error::{FEATURE_NOT_SUPPORTED, PROTOCOL_VIOLATION};

/// Largest startup packet accepted (PostgreSQL's MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;
/// Smallest startup packet: length and code.
pub const MIN_STARTUP_PACKET_LEN: usize = 8;

/// Request code of SSLRequest.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Request code of GSSENCRequest.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Request code of CancelRequest.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol version 3.0 as a StartupMessage's code (major 3 in the high 16 bits, minor 0).
pub const PROTOCOL_3_0_CODE: i32 = 3 << 16;

/// A decoded first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// The client asks to cancel the query running in another session.
    Cancel {
        /// The backend process id the client was given.
        pid: i32,
        /// The secret key the client was given (4 bytes in protocol 3.0, up to 256 in 3.2).
        key: Bytes,
    },
    /// A StartupMessage.
    Startup(StartupMessage),
}

/// A StartupMessage: protocol version and parameters, plus its raw bytes so that it can be passed
/// to the backend unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Major protocol version (always 3).
    pub major: u16,
    /// Minor protocol version requested (0 or 2; later ones are negotiated by the backend).
    pub minor: u16,
    /// The parameters in the order sent.
    pub parameters: Vec<(String, String)>,
    /// The packet as received, length included.
    pub raw: Bytes,
}

impl StartupMessage {
    /// The value of a startup parameter.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The user name (required by PostgreSQL).
    pub fn user(&self) -> Option<&str> {
        self.parameter("user").filter(|u| !u.is_empty())
    }

    /// The database, defaulting to the user name like PostgreSQL.
    pub fn database(&self) -> &str {
        self.parameter("database")
            .filter(|d| !d.is_empty())
            .or_else(|| self.user())
            .unwrap_or("")
    }

    /// The application name, empty when not given.
    pub fn application_name(&self) -> &str {
        self.parameter("application_name").unwrap_or("")
    }
}

/// Why a first packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    /// The length field is out of range (garbage, an HTTP request, a port scanner…).
    #[error("invalid length of startup packet: {0}")]
    Length(i64),
    /// A CancelRequest of the wrong size.
    #[error("invalid length of cancel request: {0}")]
    Cancel(usize),
    /// The protocol version is not 3.x (also a second SSLRequest/GSSENCRequest, whose code
    /// PostgreSQL then reads as a protocol version).
    #[error("unsupported frontend protocol {major}.{minor}: duet supports protocol 3.0 to 3.2")]
    Protocol {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },
    /// A StartupMessage whose parameter list is malformed.
    #[error("invalid startup packet layout: {0}")]
    Malformed(&'static str),
}

impl StartupError {
    /// The SQLSTATE of the FATAL the client gets, or `None` when the connection is closed without
    /// a word. PostgreSQL (ProcessStartupPacket) only logs bytes that are not a startup packet at
    /// all (a bad length, a truncated packet, a malformed CancelRequest): such a peer is not
    /// speaking the protocol, so an ErrorResponse would mean nothing to it. It answers with a
    /// FATAL only once a packet is a StartupMessage it cannot serve; duet does exactly the same,
    /// so a client sees the same bytes through duet as direct.
    pub fn reply(&self) -> Option<&'static str> {
        match self {
            StartupError::Length(_) | StartupError::Cancel(_) => None,
            StartupError::Protocol { .. } => Some(FEATURE_NOT_SUPPORTED),
            StartupError::Malformed(_) => Some(PROTOCOL_VIOLATION),
        }
    }
}

/// The total length of the first packet, from its first 4 bytes (`None` until they have arrived).
pub fn packet_len(buf: &[u8]) -> Result<Option<usize>, StartupError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if len < MIN_STARTUP_PACKET_LEN as i32 || len > MAX_STARTUP_PACKET_LEN as i32 {
        return Err(StartupError::Length(len.into()));
    }
    Ok(Some(len as usize))
}

/// Decodes a complete first packet (`packet` is exactly the bytes counted by its length field).
pub fn parse_packet(packet: &[u8]) -> Result<StartupPacket, StartupError> {
    if packet_len(packet)? != Some(packet.len()) {
        return Err(StartupError::Length(packet.len() as i64));
    }
    let code = i32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    match code {
        // PostgreSQL 15 goes by the code alone and ignores any bytes after it, so an SSLRequest or
        // GSSENCRequest with a body is answered like one without.
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => parse_cancel(packet),
        _ => parse_startup(packet),
    }
}

fn parse_cancel(packet: &[u8]) -> Result<StartupPacket, StartupError> {
    // length(4) code(4) pid(4) key(4..=256)
    if !(16..=12 + 256).contains(&packet.len()) {
        return Err(StartupError::Cancel(packet.len()));
    }
    // Decoded as protocol 3.2, where the key is a byte string of any length from 4 to 256: that
    // reads 3.0's 4-byte keys too, byte for byte.
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_2);
    let mut buf = BytesMut::from(packet);
    match CancelRequest::decode(&mut buf, &ctx) {
        Ok(Some(cancel)) => Ok(StartupPacket::Cancel {
            pid: cancel.pid,
            key: cancel.secret_key.to_bytes(),
        }),
        _ => Err(StartupError::Cancel(packet.len())),
    }
}

fn parse_startup(packet: &[u8]) -> Result<StartupPacket, StartupError> {
    let major = u16::from_be_bytes([packet[4], packet[5]]);
    let minor = u16::from_be_bytes([packet[6], packet[7]]);
    if major != 3 {
        return Err(StartupError::Protocol { major, minor });
    }
    // Our own walk over the parameters instead of pgwire's `Startup` decoder: pgwire collects them
    // into a map (losing order and duplicates) and silently accepts a missing terminator, while
    // PostgreSQL refuses such a packet. We still check that pgwire can read the packet, so the two
    // views never disagree about what a valid startup message is.
    let body = &packet[8..];
    let mut parameters = Vec::new();
    let mut rest = body;
    loop {
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(StartupError::Malformed("expected terminator as last byte"));
        };
        if nul == 0 {
            if rest.len() != 1 {
                return Err(StartupError::Malformed("bytes after the parameter list"));
            }
            break;
        }
        let key = String::from_utf8_lossy(&rest[..nul]).into_owned();
        rest = &rest[nul + 1..];
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(StartupError::Malformed("parameter without a value"));
        };
        let value = String::from_utf8_lossy(&rest[..nul]).into_owned();
        rest = &rest[nul + 1..];
        parameters.push((key, value));
    }
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    if !matches!(
        Startup::decode(&mut BytesMut::from(packet), &ctx),
        Ok(Some(_))
    ) {
        return Err(StartupError::Malformed("startup message"));
    }
    Ok(StartupPacket::Startup(StartupMessage {
        major,
        minor,
        parameters,
        raw: Bytes::copy_from_slice(packet),
    }))
}

/// Encodes a StartupMessage for protocol 3.0 with `params` in the order given (`user` is the one
/// PostgreSQL requires; `database`, `application_name`, `options`, … are optional).
///
/// Names and values are written as C strings: one with a NUL inside ends there, and the server
/// then refuses the packet as malformed. duet builds these from its configuration, not from what
/// a client sent. A packet over 10000 bytes is refused by the server too.
pub fn encode_startup(params: &[(&str, &str)]) -> BytesMut {
    use bytes::BufMut;
    let len = 4
        + 4
        + params
            .iter()
            .map(|(name, value)| name.len() + 1 + value.len() + 1)
            .sum::<usize>()
        + 1;
    let mut out = BytesMut::with_capacity(len);
    // Saturates instead of wrapping for absurd sizes, which the server refuses either way.
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    out.put_i32(PROTOCOL_3_0_CODE);
    for (name, value) in params {
        out.put_slice(name.as_bytes());
        out.put_u8(0);
        out.put_slice(value.as_bytes());
        out.put_u8(0);
    }
    out.put_u8(0);
    out
}

/// Encodes a CancelRequest for `pid` with `key` (pgwire's codec).
pub fn encode_cancel(pid: i32, key: &Bytes) -> BytesMut {
    let mut buf = BytesMut::with_capacity(12 + key.len());
    let secret_key = if key.len() == 4 {
        SecretKey::I32(i32::from_be_bytes([key[0], key[1], key[2], key[3]]))
    } else {
        SecretKey::Bytes(key.clone())
    };
    // Encoding can only fail for keys outside 4..=256 bytes, which never come from a backend.
    if CancelRequest::new(pid, secret_key)
        .encode(&mut buf)
        .is_err()
    {
        buf.clear();
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        for (k, v) in params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    #[test]
    fn encoded_startup_parses_back() {
        let packet = encode_startup(&[("user", "app"), ("database", "db"), ("options", "")]);
        assert_eq!(
            packet,
            startup(
                PROTOCOL_3_0_CODE,
                &[("user", "app"), ("database", "db"), ("options", "")]
            )
        );
        let StartupPacket::Startup(message) = parse_packet(&packet).unwrap() else {
            panic!("not a StartupMessage");
        };
        assert_eq!((message.major, message.minor), (3, 0));
        assert_eq!(message.user(), Some("app"));
        assert_eq!(message.database(), "db");
        assert_eq!(message.parameter("options"), Some(""));
    }

    #[test]
    fn ssl_gss_and_cancel_requests() {
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(parse_packet(&ssl), Ok(StartupPacket::SslRequest));
        let gss = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        assert_eq!(parse_packet(&gss), Ok(StartupPacket::GssEncRequest));
        let cancel = encode_cancel(42, &Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(
            parse_packet(&cancel),
            Ok(StartupPacket::Cancel {
                pid: 42,
                key: Bytes::from_static(&[1, 2, 3, 4])
            })
        );
        let long_key = Bytes::from(vec![9u8; 32]);
        let cancel = encode_cancel(7, &long_key);
        assert_eq!(
            parse_packet(&cancel),
            Ok(StartupPacket::Cancel {
                pid: 7,
                key: long_key
            })
        );
    }

    #[test]
    fn startup_messages_3_0_and_3_2() {
        for version in [196_608, 196_610] {
            let raw = startup(version, &[("user", "alice"), ("application_name", "app")]);
            let StartupPacket::Startup(msg) = parse_packet(&raw).unwrap() else {
                panic!("not a startup message");
            };
            assert_eq!(msg.user(), Some("alice"));
            assert_eq!(msg.database(), "alice");
            assert_eq!(msg.application_name(), "app");
            assert_eq!(&msg.raw[..], &raw[..]);
        }
    }

    #[test]
    fn refuses_bad_packets() {
        assert_eq!(packet_len(&[0, 0, 0, 7]), Err(StartupError::Length(7)));
        assert_eq!(
            packet_len(&[0, 0, 0x27, 0x11]),
            Err(StartupError::Length(10_001))
        );
        assert_eq!(packet_len(&[0, 0, 0]), Ok(None));
        let v2 = startup(0x0002_0000, &[("user", "a")]);
        assert!(matches!(
            parse_packet(&v2),
            Err(StartupError::Protocol { major: 2, .. })
        ));
        let mut unterminated = startup(196_608, &[("user", "a")]);
        unterminated.pop();
        unterminated[3] -= 1;
        assert!(parse_packet(&unterminated).is_err());
        // Like PostgreSQL 15: an SSLRequest with a body is still an SSLRequest.
        assert_eq!(
            parse_packet(&[0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2f, 0, 0, 0, 0]),
            Ok(StartupPacket::SslRequest)
        );
        assert_eq!(
            parse_packet(&[0, 0, 0, 12, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]),
            Err(StartupError::Cancel(12))
        );
    }

    #[test]
    fn only_startup_messages_get_an_answer() {
        // Not a startup packet at all: PostgreSQL closes without a word.
        assert_eq!(StartupError::Length(7).reply(), None);
        assert_eq!(StartupError::Cancel(12).reply(), None);
        // A StartupMessage it cannot serve: a FATAL with PostgreSQL's SQLSTATE.
        let v9 = [0, 0, 0, 8, 0, 9, 0, 0];
        assert_eq!(parse_packet(&v9).unwrap_err().reply(), Some("0A000"));
        let mut unterminated = startup(196_608, &[("user", "a")]);
        unterminated.pop();
        unterminated[3] -= 1;
        assert_eq!(
            parse_packet(&unterminated).unwrap_err().reply(),
            Some("08P01")
        );
    }

    #[test]
    fn random_packets_never_panic() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 8 + (state % 40) as usize;
            let mut packet: Vec<u8> = (0..len).map(|i| (state >> (i % 56)) as u8).collect();
            packet[..4].copy_from_slice(&(len as i32).to_be_bytes());
            if state % 3 == 0 {
                packet[4..8].copy_from_slice(&[0, 3, 0, 0]);
            }
            if state % 5 == 0 {
                packet[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
            }
            let _ = parse_packet(&packet);
        }
    }
}
