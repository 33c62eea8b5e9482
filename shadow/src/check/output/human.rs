//! The human format: each statement with findings (or a blocking lock) shown at its source line
//! with a caret, what it does to the table, the explanation and the safer SQL.

use std::fmt::Write;

use super::super::report::{Level, Report, Risk, StatementReport};

/// Rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct HumanOptions {
    /// Use ANSI colours (only on a TTY, and never when NO_COLOR is set: the CLI decides).
    pub color: bool,
    /// Also list statements with no findings.
    pub verbose: bool,
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn level(&self, l: Level) -> String {
        match l {
            Level::Error => self.wrap("1;31", "error"),
            Level::Warning => self.wrap("1;33", "warning"),
            Level::Info => self.wrap("1;36", "info"),
        }
    }
}

/// Renders the report for a terminal.
pub fn render(report: &Report, opts: HumanOptions) -> String {
    let p = Paint { on: opts.color };
    let mut out = String::new();
    for s in &report.statements {
        if s.findings.is_empty() && !opts.verbose {
            continue;
        }
        statement(&mut out, s, &p);
    }
    let count = |l: Level| {
        report
            .statements
            .iter()
            .flat_map(|s| &s.findings)
            .filter(|f| f.level == l)
            .count()
    };
    let _ = writeln!(
        out,
        "{} statements checked for PostgreSQL {}: {} errors, {} warnings, {} infos",
        report.statements.len(),
        report.engine_version,
        count(Level::Error),
        count(Level::Warning),
        count(Level::Info)
    );
    out
}

fn statement(out: &mut String, s: &StatementReport, p: &Paint) {
    let _ = writeln!(
        out,
        "{}",
        p.wrap(
            "1",
            &format!("{}:{}:{}: {}", s.file, s.line, s.column, s.kind)
        )
    );
    let gutter = s.line.to_string().len();
    let _ = writeln!(out, "{:>gutter$} |", "");
    let _ = writeln!(out, "{} | {}", s.line, s.source_line);
    let caret_pad: String = s
        .source_line
        .chars()
        .take(s.column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{:>gutter$} | {caret_pad}{}", "", p.wrap("1;31", "^"));
    let locks: Vec<String> = s.locks.iter().map(|(r, m)| format!("{r}: {m}")).collect();
    let mut effects = Vec::new();
    if s.blocks_reads {
        effects.push("blocks reads");
    }
    if s.blocks_writes {
        effects.push("blocks writes");
    }
    if s.rewrites_table {
        effects.push("rewrites the table");
    }
    if s.scans_table {
        effects.push("scans the table");
    }
    let risk = match s.risk {
        Risk::High => p.wrap("1;31", s.risk.name()),
        Risk::Medium => p.wrap("33", s.risk.name()),
        _ => s.risk.name().to_string(),
    };
    let _ = writeln!(
        out,
        "  = locks: {}; {}; phase {}; risk {}",
        if locks.is_empty() {
            "none".to_string()
        } else {
            locks.join(", ")
        },
        if effects.is_empty() {
            "blocks nothing".to_string()
        } else {
            effects.join(", ")
        },
        s.phase.name(),
        risk
    );
    for n in &s.notes {
        let _ = writeln!(out, "  = note: {n}");
    }
    for f in &s.findings {
        let _ = writeln!(out, "  {} [{}]: {}", p.level(f.level), f.rule, f.message);
        if let Some(sugg) = &f.suggestion {
            let _ = writeln!(out, "    {}", p.wrap("32", "safer:"));
            for line in sugg.lines() {
                let _ = writeln!(out, "      {}", p.wrap("32", line));
            }
        }
    }
    out.push('\n');
}
