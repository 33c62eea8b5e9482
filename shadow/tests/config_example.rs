//! The commented `[check]` example in config/duet.toml stays valid: uncommented, it parses, and
//! it documents every field the loader accepts.

use std::path::Path;

use duet_shadow::check::CheckConfig;

#[test]
fn commented_check_example_in_duet_toml_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/duet.toml");
    let text = std::fs::read_to_string(&path).expect("config/duet.toml is readable");
    let start = text
        .find("\n# [check]\n")
        .expect("a commented [check] table");
    let example: String = text[start..]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect();
    for field in [
        "engine_version",
        "fail_on",
        "assume_in_transaction",
        "session_time_zone",
        "runner_sets_lock_timeout",
        "exclude_rules",
        "exclude_paths",
        "[check.rules]",
    ] {
        assert!(
            example.contains(field),
            "{field} is not documented:\n{example}"
        );
    }
    let config = CheckConfig::from_toml(&example, &path).expect("the example parses");
    assert!(config.rules.contains_key("prefer-text-field"));
    assert_eq!(
        config.exclude_paths,
        vec!["db/migrations/legacy/".to_string()]
    );
}
