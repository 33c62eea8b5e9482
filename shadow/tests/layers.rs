//! The engine's layers only point down: `parse` and `ident` at the bottom, then `check`,
//! `rewrite`, `migrate` and `plan` — each part may use the parts below it and none above, so a
//! change to the planner can never break the rewrite, and the rewrite can be read without the
//! copier. This test reads every source file and fails on a reference that points up.

use std::path::{Path, PathBuf};

/// The parts, bottom first (`parse` and `ident` are one layer).
const LAYERS: [&str; 5] = ["parse and ident", "check", "rewrite", "migrate", "plan"];

fn layer_of(part: &str) -> Option<usize> {
    match part {
        "parse" | "ident" => Some(0),
        "check" => Some(1),
        "rewrite" => Some(2),
        "migrate" => Some(3),
        "plan" => Some(4),
        _ => None,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_reference_between_parts_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let part = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs"))
            .unwrap_or_default();
        let Some(own) = layer_of(part) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let used: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(theirs) = layer_of(&used) {
                    checked += 1;
                    if theirs > own {
                        upward.push(format!(
                            "{}:{}: {part} uses {used}: {}",
                            relative.display(),
                            number + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 100, "the scan found the references ({checked})");
    assert!(
        upward.is_empty(),
        "references that point up the layers ({}):\n{}",
        LAYERS.join(" < "),
        upward.join("\n")
    );
}
