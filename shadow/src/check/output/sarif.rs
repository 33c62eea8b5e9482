//! SARIF 2.1.0, for code-scanning dashboards.

use serde_json::json;

use super::super::report::{Level, Report};
use super::super::rules;

/// Renders the report as a SARIF 2.1.0 log.
pub fn render(report: &Report) -> String {
    let rule_defs: Vec<_> = rules::all()
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.docs },
                "defaultConfiguration": { "level": sarif_level(r.level) },
            })
        })
        .collect();
    let results: Vec<_> = report
        .statements
        .iter()
        .flat_map(|s| {
            s.findings.iter().map(move |f| {
                let mut text = f.message.clone();
                if let Some(sugg) = &f.suggestion {
                    text.push_str("\nSafer:\n");
                    text.push_str(sugg);
                }
                json!({
                    "ruleId": f.rule,
                    "level": sarif_level(f.level),
                    "message": { "text": text },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": s.file },
                            "region": { "startLine": s.line, "startColumn": s.column },
                        }
                    }],
                })
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "duet check", "informationUri": "https://github.com/duet", "rules": rule_defs } },
            "properties": { "engine": report.engine, "engine_version": report.engine_version },
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default()
}

fn sarif_level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "note",
    }
}
