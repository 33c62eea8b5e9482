//! The operators' live status page, served by the metrics listener ([`crate::metrics_http`]) next to
//! `/metrics`.
//!
//! `GET /` (or `/status`) returns one self-contained HTML page ([`PAGE`]: markup, CSS and vanilla
//! JavaScript inline, nothing loaded from anywhere else); the page polls `GET /status.json` every
//! second ([`status_json`]: the admin `status` report without the session list) and redraws itself
//! in place. The page's source is the real file `status_page/page.html`, embedded at build time, so
//! it can be opened, linted and edited as HTML.

use crate::context::ProxyContext;
use crate::status;

/// The page, as served.
pub const PAGE: &str = include_str!("page.html");

/// The page's Content-Security-Policy: its inline script and style may run, it may fetch from its
/// own origin (`/status.json`), and nothing else loads — a page that reaches for a CDN, a web font
/// or a remote image is refused by the browser rather than quietly depending on the network.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The `status` report as JSON, exactly as the admin socket's `status` command shapes it, minus the
/// session list (the page does not show sessions, and listing them is the costly part).
pub fn status_json(ctx: &ProxyContext) -> Result<String, serde_json::Error> {
    serde_json::to_string(&status::report(ctx, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for external in ["http://", "https://", "//cdn", "@import", "src=\""] {
            assert!(
                !PAGE.contains(external),
                "the status page must be self-contained, found {external:?}"
            );
        }
        assert!(PAGE.contains("status.json"), "the page polls /status.json");
    }

    #[test]
    fn the_page_never_puts_data_into_html() {
        // Every value from the report goes through textContent; innerHTML (or its relatives) with
        // data from the proxy would let a table name or an error message inject markup.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!PAGE.contains(sink), "the status page uses {sink}");
        }
    }
}
