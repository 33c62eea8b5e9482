//! Plain HTTP/1.1 requests over a `TcpStream`, for duet's metrics listener (`/metrics`, the status
//! page and `/status.json`): no HTTP client library, so the test sees exactly the bytes duet sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One parsed response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers in the order sent (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body (everything after the head).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as is and returns every byte until the server closes the connection.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr)
        .unwrap_or_else(|err| panic!("connecting to the metrics listener at {addr}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("setting a read timeout");
    stream
        .write_all(request)
        .unwrap_or_else(|err| panic!("sending {request:?} to {addr}: {err}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|err| panic!("reading the answer to {request:?} from {addr}: {err}"));
    response
}

/// `GET target` and the parsed response; panics when the answer is not a well-formed HTTP/1.1
/// response whose `Content-Length` matches its body.
pub fn get(addr: SocketAddr, target: &str) -> HttpResponse {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = exchange(addr, request.as_bytes());
    parse(&raw).unwrap_or_else(|why| {
        panic!(
            "GET {target}: {why}\n--- response ---\n{}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// Parses a whole response.
pub fn parse(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the head")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|err| format!("head: {err}"))?;
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            line.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("header line {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    let response = HttpResponse {
        status,
        headers,
        body,
    };
    let length: usize = response
        .header("Content-Length")
        .ok_or("no Content-Length")?
        .parse()
        .map_err(|err| format!("Content-Length: {err}"))?;
    if length != response.body.len() {
        return Err(format!(
            "Content-Length {length} but {} body bytes",
            response.body.len()
        ));
    }
    Ok(response)
}
