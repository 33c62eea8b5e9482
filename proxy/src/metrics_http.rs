//! The metrics listener: Prometheus text on `GET /metrics`, and the operators' status page on
//! `GET /` (also `/status`) with the JSON it polls on `GET /status.json` ([`crate::status_page`]).
//! A minimal HTTP/1.1 responder on tokio, one request per connection, no HTTP framework: the
//! listener serves a scraper and the odd browser, never heavy traffic.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::context::ProxyContext;
use crate::status;
use crate::status_page;

/// Largest request head read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the endpoint until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<ProxyContext>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, ctx.clone()));
            }
            Err(err) => {
                tracing::warn!(%err, "metrics endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, ctx: Arc<ProxyContext>) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = route(&ctx, method, target);
    let _ = stream.write_all(&response.to_bytes()).await;
    let _ = stream.shutdown().await;
}

/// One answer: status line, content type, extra headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `200 OK`, `404 Not Found`, …
    pub status: &'static str,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// More headers, each `(name, value)`.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body.
    pub body: Cow<'static, str>,
}

impl Response {
    fn new(
        status: &'static str,
        content_type: &'static str,
        body: impl Into<Cow<'static, str>>,
    ) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn with(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The response on the wire (`Connection: close`: one request per connection).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

/// The answer to `method target` (the request line's first two words, as sent). The query string
/// is ignored, so a cache-busting `?t=…` or a scraper's parameters do not matter.
pub fn route(ctx: &ProxyContext, method: &str, target: &str) -> Response {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Response::new(
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(ctx),
        ),
        ("GET", "/" | "/status") => {
            Response::new("200 OK", "text/html; charset=utf-8", status_page::PAGE)
                .with("Cache-Control", "no-store")
                .with(
                    "Content-Security-Policy",
                    status_page::CONTENT_SECURITY_POLICY,
                )
                .with("X-Content-Type-Options", "nosniff")
        }
        ("GET", "/status.json") => match status_page::status_json(ctx) {
            Ok(json) => Response::new("200 OK", "application/json", json)
                .with("Cache-Control", "no-store")
                .with("X-Content-Type-Options", "nosniff"),
            Err(err) => {
                tracing::warn!(%err, "status.json could not be rendered");
                Response::new(
                    "500 Internal Server Error",
                    "text/plain; charset=utf-8",
                    format!("the status report could not be rendered: {err}\n"),
                )
                .with("Cache-Control", "no-store")
            }
        },
        _ => Response::new(
            "404 Not Found",
            "text/plain",
            "not found: try GET /metrics, / (status page) or /status.json\n",
        ),
    }
}

/// The metrics in Prometheus text format.
pub fn render(ctx: &ProxyContext) -> String {
    let r = status::report(ctx, false);
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "duet_uptime_seconds",
        "gauge",
        "Seconds since duet started.",
        &[("", r.uptime_secs)],
    );
    metric(
        "duet_paused",
        "gauge",
        "1 while new transactions are held.",
        &[("", f64::from(u8::from(r.paused)))],
    );
    metric(
        "duet_clients",
        "gauge",
        "Client sessions open now.",
        &[("", r.clients.current as f64)],
    );
    metric(
        "duet_clients_total",
        "counter",
        "Client connections accepted.",
        &[("", r.clients.total as f64)],
    );
    metric(
        "duet_backend_connections",
        "gauge",
        "Backend connections open now.",
        &[("", r.backend_connections.current as f64)],
    );
    metric(
        "duet_backend_connections_total",
        "counter",
        "Backend connections opened.",
        &[("", r.backend_connections.total as f64)],
    );
    metric(
        "duet_bytes_total",
        "counter",
        "Bytes forwarded.",
        &[
            (
                "{direction=\"client_to_server\"}",
                r.bytes.client_to_server as f64,
            ),
            (
                "{direction=\"server_to_client\"}",
                r.bytes.server_to_client as f64,
            ),
        ],
    );
    metric(
        "duet_statements_total",
        "counter",
        "Query and Execute messages forwarded.",
        &[("", r.statements as f64)],
    );
    let l = r.latency_us;
    metric(
        "duet_query_latency_microseconds",
        "summary",
        "Client request (Query or Sync) to the backend's ReadyForQuery.",
        &[
            ("{quantile=\"0.5\"}", l.p50 as f64),
            ("{quantile=\"0.99\"}", l.p99 as f64),
            ("{quantile=\"0.999\"}", l.p999 as f64),
            ("{quantile=\"1\"}", l.max as f64),
        ],
    );
    let _ = writeln!(out, "duet_query_latency_microseconds_count {}", l.count);
    if !r.pools.is_empty() {
        let label = |value: &str| {
            value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let pools: Vec<(String, &crate::pool::backend_pool::PoolView)> = r
            .pools
            .iter()
            .map(|pool| {
                (
                    format!(
                        "user=\"{}\",database=\"{}\"",
                        label(&pool.user),
                        label(&pool.database)
                    ),
                    pool,
                )
            })
            .collect();
        let mut gauge =
            |name: &str, help: &str, value: fn(&crate::pool::backend_pool::PoolView) -> usize| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                for (labels, pool) in &pools {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", value(pool));
                }
            };
        gauge(
            "duet_pool_connections",
            "Server connections a transaction-mode pool has open.",
            |p| p.open,
        );
        gauge(
            "duet_pool_connections_in_use",
            "Of those, attached to a client's transaction.",
            |p| p.in_use,
        );
        gauge(
            "duet_pool_waiting",
            "Transactions waiting for a pooled connection.",
            |p| p.waiting,
        );
        gauge(
            "duet_pool_size",
            "The pool's largest number of connections.",
            |p| p.size,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Overrides};

    fn context() -> ProxyContext {
        let overrides = Overrides {
            backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            ..Overrides::default()
        };
        ProxyContext::new(
            config::from_str("", overrides).expect("a valid test configuration"),
            None,
        )
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    #[test]
    fn the_page_is_served_at_the_root_and_at_status() {
        let ctx = context();
        for target in ["/", "/status", "/?refresh=1"] {
            let response = route(&ctx, "GET", target);
            assert_eq!(response.status, "200 OK", "{target}");
            assert_eq!(response.content_type, "text/html; charset=utf-8");
            assert_eq!(response.body, status_page::PAGE);
            assert_eq!(header(&response, "Cache-Control"), Some("no-store"));
            assert!(header(&response, "Content-Security-Policy").is_some());
        }
    }

    #[test]
    fn status_json_is_the_status_report() {
        let ctx = context();
        let response = route(&ctx, "GET", "/status.json?t=1");
        assert_eq!(response.status, "200 OK");
        assert_eq!(response.content_type, "application/json");
        assert_eq!(header(&response, "Cache-Control"), Some("no-store"));
        let json: serde_json::Value =
            serde_json::from_str(&response.body).expect("status.json is JSON");
        let report = serde_json::to_value(status::report(&ctx, false)).expect("the report");
        for field in [
            "listen",
            "backend",
            "paused",
            "statements",
            "latency_us",
            "migrations",
        ] {
            assert_eq!(json[field], report[field], "{field}");
        }
    }

    #[test]
    fn metrics_unchanged_and_everything_else_is_404() {
        let ctx = context();
        let metrics = route(&ctx, "GET", "/metrics");
        assert_eq!(metrics.status, "200 OK");
        assert!(metrics.body.contains("duet_statements_total"));
        assert!(route(&ctx, "GET", "/metrics?name=x")
            .status
            .starts_with("200"));
        for (method, target) in [
            ("GET", "/nope"),
            ("GET", "/status.json/x"),
            ("POST", "/"),
            ("DELETE", "/metrics"),
            ("GET", ""),
            ("", ""),
            ("GET", "status.json"),
        ] {
            assert_eq!(
                route(&ctx, method, target).status,
                "404 Not Found",
                "{method} {target}"
            );
        }
    }

    #[test]
    fn the_wire_form_has_a_correct_length_and_every_header() {
        let response =
            Response::new("200 OK", "text/plain", "héllo").with("Cache-Control", "no-store");
        let bytes = response.to_bytes();
        let text = String::from_utf8(bytes).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Length: 6\r\n"), "{head}");
        assert!(head.contains("\r\nCache-Control: no-store\r\n"), "{head}");
        assert!(head.ends_with("Connection: close"), "{head}");
        assert_eq!(body, "héllo");
    }
}
