//! A minimal blocking simple-query client over the wire protocol, for tests that must see what
//! client libraries hide: every statement's own answer and its CommandComplete tag (which duet's
//! rewrite must restore exactly as PostgreSQL would have written it).

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::environment::Backend;

/// One statement's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tag: String,
}

/// A minimal blocking PostgreSQL simple-query client over the wire protocol (trust auth).
pub struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    /// Logs in to `db` on `backend` as its user (the server must trust it: no password
    /// exchange) and waits for the first ReadyForQuery.
    pub fn connect(backend: &Backend, db: &str) -> Result<RawClient, String> {
        let mut stream =
            TcpStream::connect((backend.host.as_str(), backend.port)).map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        for (k, v) in [("user", backend.user.as_str()), ("database", db)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        stream.write_all(&msg).map_err(|e| e.to_string())?;
        let mut client = RawClient { stream };
        loop {
            let (kind, payload) = client.read_message()?;
            match kind {
                b'R' if payload[..4] != [0, 0, 0, 0] => return Err("auth required".into()),
                b'E' => return Err(error_text(&payload)),
                b'Z' => return Ok(client),
                _ => {}
            }
        }
    }

    fn read_message(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut head = [0u8; 5];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| e.to_string())?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; len - 4];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| e.to_string())?;
        Ok((head[0], payload))
    }

    /// Runs a simple query; one [`Answer`] per statement, or the first error's message.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Answer>, String> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        self.stream.write_all(&msg).map_err(|e| e.to_string())?;
        let mut answers = Vec::new();
        let mut current = Answer::default();
        let mut error = None;
        loop {
            let (kind, p) = self.read_message()?;
            match kind {
                b'T' => {
                    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
                    let mut at = 2;
                    for _ in 0..n {
                        let end = at + p[at..].iter().position(|&b| b == 0).unwrap_or(0);
                        current
                            .columns
                            .push(String::from_utf8_lossy(&p[at..end]).into_owned());
                        at = end + 1 + 18;
                    }
                }
                b'D' => {
                    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
                    let mut at = 2;
                    let mut row = Vec::new();
                    for _ in 0..n {
                        let len = i32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
                        at += 4;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let len = len as usize;
                            row.push(Some(String::from_utf8_lossy(&p[at..at + len]).into_owned()));
                            at += len;
                        }
                    }
                    current.rows.push(row);
                }
                b'C' => {
                    current.tag = String::from_utf8_lossy(&p[..p.len() - 1]).into_owned();
                    answers.push(std::mem::take(&mut current));
                }
                b'I' => answers.push(std::mem::take(&mut current)),
                b'E' => error = Some(error_text(&p)),
                b'G' => {
                    // CopyIn: abort it.
                    let fail = b"no copy\0";
                    let mut m = vec![b'f'];
                    m.extend_from_slice(&((fail.len() + 4) as u32).to_be_bytes());
                    m.extend_from_slice(fail);
                    self.stream.write_all(&m).map_err(|e| e.to_string())?;
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(answers),
        }
    }

    /// Runs `sql`, panicking with the statement on error.
    pub fn run(&mut self, sql: &str) -> Vec<Answer> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{e}\nwhile running: {sql}"))
    }

    /// The rows of one query as text.
    pub fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.run(sql).pop().map(|a| a.rows).unwrap_or_default()
    }
}

fn error_text(p: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while at < p.len() && p[at] != 0 {
        let code = p[at] as char;
        let end = at + 1 + p[at + 1..].iter().position(|&b| b == 0).unwrap_or(0);
        if code == 'C' || code == 'M' {
            out.push_str(&String::from_utf8_lossy(&p[at + 1..end]));
            out.push(' ');
        }
        at = end + 1;
    }
    out
}
