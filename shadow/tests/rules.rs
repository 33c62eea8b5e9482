//! Every rule fires on its bad example and stays silent on its good one; the human and JSON output
//! of every bad example is compared exactly with a plain snapshot file under tests/snapshots
//! (regenerate with `DUET_UPDATE_SNAPSHOTS=1 cargo test -p duet-shadow --test rules`).

use std::path::PathBuf;

use duet_shadow::check::{self, output, CheckConfig};

fn config_for(example: &str, rule: &check::rules::Rule) -> CheckConfig {
    let mut config = CheckConfig::default();
    if let Some(v) = example
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("-- engine "))
    {
        config.engine_version = v.trim().parse().unwrap_or_default();
    }
    // Opt-in rules are switched on (at their default level) for their own examples.
    if rule.opt_in {
        config.rules.insert(
            rule.id.to_string(),
            check::config::RuleSetting::Level(rule.level),
        );
    }
    config
}

fn fired(report: &check::Report, rule: &str) -> bool {
    report
        .statements
        .iter()
        .any(|s| s.findings.iter().any(|f| f.rule == rule))
}

#[test]
fn every_rule_fires_on_bad_and_not_on_good() {
    let mut problems = Vec::new();
    for rule in check::rules::all() {
        let bad = check::check_sql("bad.sql", rule.bad, &config_for(rule.bad, rule));
        let good = check::check_sql("good.sql", rule.good, &config_for(rule.good, rule));
        match (bad, good) {
            (Ok(bad), Ok(good)) => {
                if !fired(&bad, rule.id) {
                    problems.push(format!("{}: silent on its bad example", rule.id));
                }
                if fired(&good, rule.id) {
                    problems.push(format!("{}: fires on its good example", rule.id));
                }
            }
            (b, g) => problems.push(format!(
                "{}: check failed: {:?} {:?}",
                rule.id,
                b.err(),
                g.err()
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rule_output_matches_snapshots() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var("DUET_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for rule in check::rules::all() {
        let report = match check::check_sql(
            &format!("{}.sql", rule.id),
            rule.bad,
            &config_for(rule.bad, rule),
        ) {
            Ok(r) => r,
            Err(e) => {
                mismatches.push(format!("{}: {e}", rule.id));
                continue;
            }
        };
        let human = output::human::render(
            &report,
            output::human::HumanOptions {
                color: false,
                verbose: true,
            },
        );
        let json = output::json::render(&report) + "\n";
        for (ext, text) in [("human.txt", human), ("json", json)] {
            let path = dir.join(format!("{}.{ext}", rule.id));
            if update {
                if let Err(e) = std::fs::write(&path, &text) {
                    mismatches.push(format!("{}: {e}", path.display()));
                }
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == text => {}
                Ok(_) => mismatches.push(format!("{} differs", path.display())),
                Err(e) => mismatches.push(format!("{}: {e}", path.display())),
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// shadow/docs/check-rules.md is generated from the rule registry (same update switch).
#[test]
fn rules_doc_is_current() {
    let mut doc = String::from("# `duet check` rules\n\nGenerated from `shadow/src/check/rules/` by `DUET_UPDATE_SNAPSHOTS=1 cargo test -p duet-shadow --test rules`.\n\n| rule | level | catches | same as |\n|---|---|---|---|\n");
    for r in check::rules::all() {
        let level = if r.opt_in {
            format!("{} (opt-in)", r.level.name())
        } else {
            r.level.name().to_string()
        };
        doc.push_str(&format!(
            "| [`{}`](#{}) | {level} | {} | {} |\n",
            r.id,
            r.id,
            r.summary,
            r.aliases.join(", ")
        ));
    }
    for r in check::rules::all() {
        doc.push_str(&format!(
            "\n## {}\n\n{}\n\nBad:\n\n```sql\n{}\n```\n\nGood:\n\n```sql\n{}\n```\n",
            r.id, r.docs, r.bad, r.good
        ));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/check-rules.md");
    if std::env::var("DUET_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &doc).expect("write rules doc");
    } else {
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            doc,
            "regenerate docs/check-rules.md"
        );
    }
}

#[test]
fn github_and_sarif_formats_carry_every_finding() {
    let sql = "CREATE INDEX users_email_idx ON users (email);\nALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();";
    let report =
        check::check_sql("migrations/001.sql", sql, &CheckConfig::default()).expect("check");
    let total: usize = report.statements.iter().map(|s| s.findings.len()).sum();
    assert!(total >= 2);
    let gh = output::github::render(&report);
    assert_eq!(gh.lines().count(), total);
    assert!(gh.starts_with(
        "::error file=migrations/001.sql,line=1,col=1,title=require-concurrent-index-creation::"
    ));
    assert!(gh.lines().all(|l| l.starts_with("::")));
    let sarif: serde_json::Value =
        serde_json::from_str(&output::sarif::render(&report)).expect("valid JSON");
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(Vec::len),
        Some(total)
    );
    assert_eq!(
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
}
