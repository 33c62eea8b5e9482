//! Benchmark (not a test): generate a large migration set and measure how many statements per
//! second `duet check`'s engine classifies (split + parse + classify + rules + schema replay).
//!
//! ```text
//! cargo run --release -p duet-shadow --example check_bench -- [STATEMENTS] [OUT_DIR]
//! ```
//!
//! With OUT_DIR the generated files are also written there (one file per 100 statements), so
//! other tools (squawk) can be timed on exactly the same input.

use std::time::Instant;

use duet_shadow::check::{self, CheckConfig, SourceFile};

const TEMPLATES: &[&str] = &[
    "CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, name varchar(100), created_at timestamptz NOT NULL DEFAULT now());",
    "ALTER TABLE t{p} ADD COLUMN c{i} integer;",
    "ALTER TABLE t{p} ADD COLUMN d{i} text NOT NULL DEFAULT '';",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS t{p}_email_{i}_idx ON t{p} (lower(email)) WHERE created_at > now() - interval '1 day';",
    "ALTER TABLE t{p} ADD CONSTRAINT t{p}_c{i} CHECK (char_length(email) < 320) NOT VALID;",
    "ALTER TABLE t{p} ALTER COLUMN name TYPE varchar(200);",
    "UPDATE t{p} SET name = coalesce(name, split_part(email, '@', 1)) WHERE id BETWEEN {i} AND {i} + 1000;",
    "ALTER TABLE t{p} ALTER COLUMN email SET NOT NULL;",
    "CREATE INDEX t{p}_created_{i}_idx ON t{p} (created_at DESC);",
    "ALTER TABLE t{p} ADD CONSTRAINT t{p}_fk{i} FOREIGN KEY (id) REFERENCES t{q} (id);",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let out_dir = args.next();
    let mut files = Vec::new();
    let mut text = String::new();
    for i in 0..total {
        let p = i / 10;
        let q = p.saturating_sub(1);
        let tpl = if i % 10 == 0 {
            TEMPLATES[0]
        } else {
            TEMPLATES[i % TEMPLATES.len()]
        };
        let stmt = tpl
            .replace("{i}", &i.to_string())
            .replace("{p}", &p.to_string())
            .replace("{q}", &q.to_string());
        text.push_str(&stmt);
        text.push('\n');
        if (i + 1) % 100 == 0 || i + 1 == total {
            files.push(SourceFile {
                name: format!("{:06}_migration.sql", files.len() + 1),
                text: std::mem::take(&mut text),
                no_transaction: None,
            });
        }
    }
    if let Some(dir) = &out_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {dir}: {e}");
            return;
        }
        for f in &files {
            if let Err(e) = std::fs::write(format!("{dir}/{}", f.name), &f.text) {
                eprintln!("cannot write {}: {e}", f.name);
                return;
            }
        }
    }
    let config = CheckConfig::default();
    let start = Instant::now();
    let report = match check::check_files(&files, &config, Default::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("check failed: {e}");
            return;
        }
    };
    let elapsed = start.elapsed();
    let findings: usize = report.statements.iter().map(|s| s.findings.len()).sum();
    let json_start = Instant::now();
    let json = check::output::json::render(&report);
    let json_elapsed = json_start.elapsed();
    println!(
        "{} statements in {} files: {:.3} s, {:.0} statements/s ({} findings); JSON render {:.3} s ({} bytes)",
        report.statements.len(),
        files.len(),
        elapsed.as_secs_f64(),
        report.statements.len() as f64 / elapsed.as_secs_f64(),
        findings,
        json_elapsed.as_secs_f64(),
        json.len()
    );
}
