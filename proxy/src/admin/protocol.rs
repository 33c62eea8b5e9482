//! Admin requests and replies, as they travel on the socket.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default `pause` timeout.
pub const DEFAULT_PAUSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `shutdown` budget.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest request line the server reads.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// The status report.
    Status,
    /// Hold new transactions and wait for in-flight ones.
    Pause {
        /// Give up (and release) after this long; default 10 s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Release a pause.
    Resume,
    /// Stop accepting, let sessions finish within the budget, then close them and exit.
    Shutdown {
        /// The budget; default 30 s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command was carried out.
    pub ok: bool,
    /// The command's result (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What went wrong and what to do (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    /// A successful reply.
    pub fn ok(result: serde_json::Value) -> Self {
        Reply {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A refusal.
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shape() {
        let pause: Request =
            serde_json::from_str(r#"{"command": "pause", "timeout_ms": 5000}"#).unwrap();
        assert_eq!(
            pause,
            Request::Pause {
                timeout_ms: Some(5000)
            }
        );
        let status: Request = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
        assert_eq!(status, Request::Status);
        assert_eq!(
            serde_json::to_string(&Request::Shutdown {
                timeout_ms: Some(1)
            })
            .unwrap(),
            r#"{"command":"shutdown","timeout_ms":1}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"drop"}"#).is_err());
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let ok = serde_json::to_string(&Reply::ok(serde_json::json!({"paused": false}))).unwrap();
        assert_eq!(ok, r#"{"ok":true,"result":{"paused":false}}"#);
        let err = serde_json::to_string(&Reply::error("no")).unwrap();
        assert_eq!(err, r#"{"ok":false,"error":"no"}"#);
    }
}
