//! Prometheus text exposition on `GET /metrics`: a minimal HTTP/1.1 responder on tokio, one
//! request per connection, no HTTP framework (the endpoint is read by a scraper, not a browser).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::context::ProxyContext;
use crate::status;

/// Largest request head read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a scraper gets to send its request.
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
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
        let body = render(&ctx);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        let body = "not found: try GET /metrics\n";
        format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
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
    out
}
