//! rewrite() never panics and never returns text that does not parse, on arbitrary input: a
//! seeded generator mixes SQL fragments around the migrated table's name with random bytes.

mod rewrite_support;

use duet_shadow::rewrite::{rewrite, Protocol, Rewrite, Target};

const FRAGMENTS: &[&str] = &[
    "INSERT INTO t ",
    "UPDATE t SET ",
    "DELETE FROM t ",
    "TRUNCATE t",
    "WITH x AS (",
    ")",
    "(",
    "SELECT ",
    "* ",
    "RETURNING ",
    "t.*",
    "id",
    "note",
    " = ",
    "$1",
    "$2",
    "'a''b'",
    "$$q$$",
    ", ",
    "; ",
    "VALUES ",
    "(1, 'x')",
    "ON CONFLICT ",
    "(id) ",
    "DO NOTHING",
    "DO UPDATE SET ",
    "EXCLUDED.note",
    "WHERE ",
    "FROM other ",
    "USING other ",
    "-- c\n",
    "/* c */",
    "\"t\"",
    "app.t",
    "MERGE INTO t ",
    "COPY t FROM STDIN",
    "ALTER TABLE t ",
    "DEFAULT",
    "E'\\n'",
    "RETURNING WITH (OLD AS o) ",
    "CURRENT OF c",
    "::int",
    "ARRAY[1]",
    "U&\"t\"",
    "\u{e9}",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn arbitrary_input_never_panics() {
    let table = rewrite_support::shadow_table_routes();
    let mut column = table.clone();
    let mut renamed = table.clone();
    column.tables[0].target = Target::ShadowColumn {
        column: "note__duet".into(),
        expr: "upper(\"note\")".into(),
        skip_when: None,
        recover: None,
    };
    renamed.tables[0].target = Target::Renamed {
        columns: vec![("note".into(), "label".into())],
    };
    let all_routes = [table, column, renamed];
    let routes = &all_routes[0];
    let mut rng = XorShift(0x5eed_d0e7_1234_5678);
    let mut changed = 0;
    for _ in 0..3000 {
        let mut sql = String::new();
        for _ in 0..(rng.next() % 12 + 1) {
            if rng.next() % 8 == 0 {
                sql.push(char::from((rng.next() % 94 + 32) as u8));
            } else {
                sql.push_str(FRAGMENTS[(rng.next() % FRAGMENTS.len() as u64) as usize]);
            }
        }
        for routes in &all_routes {
            for protocol in [Protocol::Simple, Protocol::Extended] {
                if let Ok(Rewrite::Changed { sql: out, .. }) = rewrite(&sql, routes, protocol) {
                    changed += 1;
                    assert!(pg_query::parse(&out, 0).is_ok(), "{sql}\n→ {out}");
                }
            }
        }
    }
    // Deep input parses or is refused, never aborts.
    let deep = format!(
        "UPDATE t SET note = {}1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let _ = rewrite(&deep, routes, Protocol::Simple);
    let deeper = format!(
        "UPDATE t SET note = {}1{}",
        "(".repeat(200_000),
        ")".repeat(200_000)
    );
    assert!(rewrite(&deeper, routes, Protocol::Simple).is_err());
    assert!(changed > 0, "the generator must reach the rewrite paths");
}
