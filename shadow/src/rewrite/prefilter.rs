//! The hot-path pre-filter: most statements never mention a table under migration and must pass
//! byte-for-byte without being parsed.

use super::route::Routes;

/// Whether `sql` may concern a table under migration: a case-insensitive substring test on each
/// table name (which also matches its quoted forms `"T"` and `"s"."t"`). False positives only cost
/// a parse; a false negative would let a write bypass the dual-write, so the test is deliberately
/// loose. (Unicode-escaped identifiers `U&"…"` are not recognised.)
pub fn touches(sql: &str, routes: &Routes) -> bool {
    routes
        .tables
        .iter()
        .any(|route| contains_ignore_ascii_case(sql.as_bytes(), route.name.as_bytes()))
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::route::{TableRoute, Target};

    #[test]
    fn matches_any_spelling() {
        let routes = Routes {
            tables: vec![TableRoute {
                schema: "public".into(),
                name: "orders".into(),
                columns: vec![],
                key: vec![],
                target: Target::Renamed { columns: vec![] },
            }],
            server_version_num: 150000,
            net_only: vec![],
        };
        assert!(touches("update ORDERS set a=1", &routes));
        assert!(touches("update \"public\".\"orders\" set a=1", &routes));
        assert!(!touches("select 1", &routes));
    }
}
