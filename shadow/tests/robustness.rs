//! Any input gives a report, never a panic: a seeded mutation test over the corpus, plus the
//! parser corpus itself (every statement of tests/corpus/*.sql must parse).

use std::path::PathBuf;

use duet_shadow::check::{self, CheckConfig};

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(&p).ok()?)))
        .collect()
}

#[test]
fn corpus_parses_completely() {
    let files = corpus();
    assert!(!files.is_empty(), "no corpus files");
    let sources: Vec<check::SourceFile> = files
        .iter()
        .map(|(name, text)| check::SourceFile {
            name: name.clone(),
            text: text.clone(),
            no_transaction: None,
        })
        .collect();
    let report = check::check_files(&sources, &CheckConfig::default(), Default::default())
        .expect("check runs");
    let unparsed: Vec<_> = report
        .statements
        .iter()
        .filter(|s| s.kind == "unparsed")
        .map(|s| format!("{}:{}: {}", s.file, s.line, s.sql))
        .collect();
    assert!(
        report.statements.len() >= 300,
        "corpus has only {} statements",
        report.statements.len()
    );
    assert!(
        unparsed.is_empty(),
        "unparsed corpus statements:\n{}",
        unparsed.join("\n")
    );
}

/// xorshift64*: deterministic, seeded, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    "'",
    "\"",
    "$$",
    "$a$",
    "--",
    "/*",
    "*/",
    ";",
    "(",
    ")",
    "\0",
    "\u{feff}",
    "\r\n",
    "BEGIN",
    "COMMIT",
    "CONCURRENTLY",
    "NOT VALID",
    "DEFAULT random()",
    "E'\\\\'",
    "ALTER TABLE",
    "((((((((",
    "-- duet:ignore",
];

#[test]
fn mutated_inputs_never_panic() {
    let files = corpus();
    let texts: Vec<&str> = files.iter().map(|(_, t)| t.as_str()).collect();
    let mut rng = Rng(0x5eed_d0e7_c4ec_0001);
    let rounds: usize = std::env::var("DUET_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for round in 0..rounds {
        let base = texts[rng.below(texts.len())];
        let mut bytes: Vec<char> = base.chars().collect();
        for _ in 0..1 + rng.below(8) {
            let pos = rng.below(bytes.len() + 1);
            match rng.below(3) {
                0 if !bytes.is_empty() => {
                    let end = (pos + rng.below(40)).min(bytes.len());
                    bytes.drain(pos.min(end)..end);
                }
                1 => {
                    let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                    for (k, c) in frag.chars().enumerate() {
                        bytes.insert((pos + k).min(bytes.len()), c);
                    }
                }
                _ => {
                    let src = texts[rng.below(texts.len())];
                    let start = rng.below(src.len());
                    let piece: String = src.chars().skip(start).take(rng.below(80)).collect();
                    for (k, c) in piece.chars().enumerate() {
                        bytes.insert((pos + k).min(bytes.len()), c);
                    }
                }
            }
        }
        let text: String = bytes.into_iter().collect();
        let result = check::check_sql(
            &format!("mutant-{round}.sql"),
            &text,
            &CheckConfig::default(),
        );
        assert!(result.is_ok(), "round {round}: {:?}", result.err());
    }
}

#[test]
fn deep_nesting_is_reported_not_fatal() {
    let deep = format!(
        "SELECT {}1{};\nCREATE INDEX i ON t (a);",
        "(".repeat(50_000),
        ")".repeat(50_000)
    );
    let report = check::check_sql("deep.sql", &deep, &CheckConfig::default()).expect("no abort");
    assert_eq!(report.statements.len(), 2);
    assert_eq!(report.statements[0].kind, "unparsed");
    assert_eq!(report.statements[1].kind, "create_index");
    let chained = format!("SELECT 1{};", " + 1".repeat(500));
    let report =
        check::check_sql("chain.sql", &chained, &CheckConfig::default()).expect("no abort");
    assert_eq!(report.statements[0].kind, "select");
}
