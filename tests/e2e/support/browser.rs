//! A real headless browser: Debian's `chromium`, run once per page as a command-line program
//! (`--dump-dom`, `--screenshot`), so a test sees what an operator's browser renders after the
//! page's JavaScript ran.
//!
//! `--virtual-time-budget` lets the page's timers run for that much (virtual) time before the DOM
//! is dumped or the screenshot taken; virtual time waits for pending fetches, so every poll the
//! page makes within the budget is answered by the real server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::temp_dir::TempDir;
use super::tools::{run, Output};

/// Where Debian installs it.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";

/// A chromium binary and a profile directory of the test's own.
#[derive(Debug)]
pub struct Chromium {
    binary: PathBuf,
    profile: TempDir,
}

impl Chromium {
    /// `/usr/bin/chromium`, or `chromium` on the PATH; `None` when neither exists.
    pub fn find() -> Option<Chromium> {
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromium"))
                .find(|candidate| candidate.is_file())
        });
        let binary = Some(PathBuf::from(DEBIAN_CHROMIUM))
            .filter(|path| path.is_file())
            .or(on_path)?;
        Some(Chromium {
            binary,
            profile: TempDir::new("chromium-profile"),
        })
    }

    fn run(&self, url: &str, budget: Duration, extra: &[String]) -> Output {
        let mut command = std::process::Command::new(&self.binary);
        command
            .arg("--headless=new")
            // The suite runs as root in CI, where chromium's sandbox cannot start.
            .arg("--no-sandbox")
            .arg("--disable-gpu")
            .arg("--no-first-run")
            .arg("--disable-extensions")
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .arg(format!("--virtual-time-budget={}", budget.as_millis()))
            .args(extra)
            .arg(url);
        run(command, None, Duration::from_secs(120))
    }

    /// The DOM of `url` after its scripts ran for `budget` of virtual time, serialized as HTML.
    pub fn dump_dom(&self, url: &str, budget: Duration) -> String {
        let output = self.run(url, budget, &["--dump-dom".to_string()]);
        output.assert_success();
        output.stdout_text()
    }

    /// A PNG screenshot of `url` in a `width`×`height` window after `budget` of virtual time.
    pub fn screenshot(&self, url: &str, budget: Duration, path: &Path, width: u32, height: u32) {
        let output = self.run(
            url,
            budget,
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={width},{height}"),
                "--hide-scrollbars".to_string(),
            ],
        );
        output.assert_success();
        let bytes = std::fs::read(path).unwrap_or_else(|err| {
            panic!("chromium wrote no screenshot at {}: {err}", path.display())
        });
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            path.display()
        );
    }
}

/// The text a reader sees in serialized HTML: `<script>` and `<style>` bodies and every tag
/// removed, the common entities decoded, runs of whitespace collapsed to one space.
pub fn visible_text(html: &str) -> String {
    let mut rest = html;
    let mut text = String::with_capacity(html.len());
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let after = &rest[open..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.find("</script>").map(|end| end + "</script>".len())
        } else if lower.starts_with("<style") {
            after.find("</style>").map(|end| end + "</style>".len())
        } else {
            after.find('>').map(|end| end + 1)
        };
        match skip_to {
            Some(end) => {
                text.push(' ');
                rest = &after[end..];
            }
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    let decoded = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text content of the element with `id` (its first text, up to the next tag), if present.
pub fn text_of_id(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let start = html.find(&marker)?;
    let after_tag = start + html[start..].find('>')? + 1;
    let end = after_tag + html[after_tag..].find('<')?;
    Some(visible_text(&html[after_tag..end]))
}
