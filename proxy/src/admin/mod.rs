//! The admin socket: a unix stream socket (mode 0600) speaking line-delimited JSON.
//!
//! Requests are `{"command": "status" | "pause" | "resume" | "shutdown", "timeout_ms": n}` and the
//! migration commands (`migrate`, `plan`, `pause_copy`, `resume_copy`, `retry`, `set`, `cutover`,
//! `abort`, `revert`, `complete`; see [`protocol::Request`] and [`crate::control`]); each gets one reply
//! line, `{"ok": true, "result": {...}}` or `{"ok": false, "error": "...", "retryable": true?}`
//! (`retryable` when running the same command again may succeed:
//! [`crate::control::error::CommandError`]).
//! [`server`] is the proxy's side, [`client`] is what `duet admin` uses, [`reply`] holds each
//! command's result as a typed value (the server writes them, everyone else reads them back),
//! [`render`] turns them into text for humans.

pub mod client;
pub mod protocol;
pub mod render;
pub mod reply;
pub mod server;
