//! GitHub Actions workflow commands (`::error file=…,line=…::message`), one per finding.

use super::super::report::{Level, Report};

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders one annotation line per finding.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.statements {
        for f in &s.findings {
            let command = match f.level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Info => "notice",
            };
            let mut message = f.message.clone();
            if let Some(sugg) = &f.suggestion {
                message.push_str("\n\nSafer:\n");
                message.push_str(sugg);
            }
            out.push_str(&format!(
                "::{command} file={},line={},col={},title={}::{}\n",
                escape_property(&s.file),
                s.line,
                s.column,
                escape_property(&f.rule),
                escape_data(&message)
            ));
        }
    }
    out
}
