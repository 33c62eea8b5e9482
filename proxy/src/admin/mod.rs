//! The admin socket: a unix stream socket (mode 0600) speaking line-delimited JSON.
//!
//! Requests are `{"command": "status" | "pause" | "resume" | "shutdown", "timeout_ms": n}`; each
//! gets one reply line, `{"ok": true, "result": {...}}` or `{"ok": false, "error": "..."}`.
//! [`server`] is the proxy's side, [`client`] is what `duet admin` uses, [`render`] turns replies
//! into text for humans.

pub mod client;
pub mod protocol;
pub mod render;
pub mod server;
