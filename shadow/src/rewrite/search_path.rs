//! How a session's unqualified table names resolve, as far as its own statements show it.
//!
//! A rewrite assumes an unqualified name means the table under migration. The proxy lets it
//! assume so only when the session's `search_path` surely finds that table first: the path was
//! set by `SET search_path TO` and starts with the table's schema, or was never changed and the
//! table is in `public` — and the session made no temporary table (`pg_temp` is searched first).
//! Otherwise its writes that name a migrating table unqualified are forwarded as written and the
//! safety net ([`super::net`]) mirrors them; qualified names are always exact.

use pg_query::protobuf::{node::Node as NodeEnum, VariableSetKind};

use crate::parse::{parse_statement, Parsed};

/// What a session's statements told about its `search_path`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SearchPath {
    /// The session's default: what its startup packet, role and database set (`RESET` returns
    /// here); trusted as the server's default only when the startup packet set none.
    #[default]
    Default,
    /// Set by `SET search_path TO …`: the schemas in order, as written (unquoted).
    Schemas(Vec<String>),
    /// Changed some other way (`set_config`, `SET LOCAL`, a function): unknown.
    Unknown,
}

impl SearchPath {
    /// Whether an unqualified name is sure to resolve in `schema` first (temporary tables aside).
    /// The default path (`"$user", public`, unless the role or database set another) is trusted
    /// for `public` only.
    pub fn resolves_first_in(&self, schema: &str) -> bool {
        match self {
            SearchPath::Default => schema == "public",
            SearchPath::Schemas(schemas) => schemas.first().is_some_and(|s| s == schema),
            SearchPath::Unknown => false,
        }
    }
}

/// What one Query or Parse text does to the session's name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    /// Nothing.
    None,
    /// Its `search_path` is now this.
    SearchPath(SearchPath),
    /// It may create a temporary table (or otherwise make `pg_temp` hold a same-named table).
    Temporary,
    /// `DISCARD ALL` (as poolers send between clients): the default path, no temporary tables.
    DiscardAll,
}

/// Reads a text for changes to name resolution. Cheap for the common case: texts that mention
/// neither `search_path` nor a temporary table are not parsed, and finding that out is one pass
/// over the text (every client statement goes through here, migration or not).
pub fn name_change(text: &str) -> NameChange {
    let mentions = Mentions::of(text);
    if mentions.temporary {
        return NameChange::Temporary;
    }
    if !mentions.search_path && !mentions.discard && !mentions.reset {
        return NameChange::None;
    }
    let Parsed::Statements(stmts) = parse_statement(text) else {
        return NameChange::SearchPath(SearchPath::Unknown);
    };
    let mut change = if mentions.search_path {
        NameChange::SearchPath(SearchPath::Unknown)
    } else {
        NameChange::None
    };
    for stmt in &stmts {
        let set = match stmt.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::DiscardStmt(d))
                if d.target == pg_query::protobuf::DiscardMode::DiscardAll as i32 =>
            {
                change = NameChange::DiscardAll;
                continue;
            }
            Some(NodeEnum::VariableSetStmt(set)) => set,
            _ => continue,
        };
        if set.kind == VariableSetKind::VarResetAll as i32 {
            change = NameChange::SearchPath(SearchPath::Default);
            continue;
        }
        if !set.name.eq_ignore_ascii_case("search_path") {
            continue;
        }
        let kind = VariableSetKind::try_from(set.kind).unwrap_or(VariableSetKind::Undefined);
        change = NameChange::SearchPath(match kind {
            _ if set.is_local => SearchPath::Unknown,
            VariableSetKind::VarSetDefault | VariableSetKind::VarReset => SearchPath::Default,
            VariableSetKind::VarSetValue => {
                let schemas: Option<Vec<String>> = set
                    .args
                    .iter()
                    .map(|arg| match arg.node.as_ref() {
                        Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
                            Some(pg_query::protobuf::a_const::Val::Sval(s)) => Some(s.sval.clone()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect();
                schemas.map_or(SearchPath::Unknown, SearchPath::Schemas)
            }
            _ => SearchPath::Unknown,
        });
    }
    change
}

/// The `search_path` a startup packet sets: its `search_path` parameter, or `search_path=…` in
/// its `options` (`-c search_path=a,b`, `--search_path=a,b`); the default when neither says.
pub fn from_startup(parameter: Option<&str>, options: Option<&str>) -> SearchPath {
    let value = parameter.map(str::to_owned).or_else(|| {
        let options = options?;
        let at = options.find("search_path=")?;
        let rest = &options[at + "search_path=".len()..];
        Some(rest.split_whitespace().next().unwrap_or("").to_owned())
    });
    let Some(value) = value else {
        return SearchPath::Default;
    };
    if value.contains('\\') {
        return SearchPath::Unknown;
    }
    let schemas: Vec<String> = value
        .split(',')
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => s.to_lowercase(),
            }
        })
        .collect();
    if schemas.iter().any(String::is_empty) {
        return SearchPath::Unknown;
    }
    SearchPath::Schemas(schemas)
}

/// The schemas of the routed tables that `sql` names without a schema (sorted, once each): the
/// names whose meaning depends on the session's `search_path`. Empty when it cannot be parsed.
pub fn unqualified_schemas(sql: &str, routes: &super::Routes) -> Vec<String> {
    let Parsed::Statements(stmts) = parse_statement(sql) else {
        return Vec::new();
    };
    let mut schemas: Vec<String> = Vec::new();
    for stmt in &stmts {
        let Some(node) = stmt.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        for (child, ..) in node.nodes() {
            if let pg_query::NodeRef::RangeVar(rv) = child {
                if rv.schemaname.is_empty() {
                    if let Some(route) = routes.find("", &rv.relname) {
                        schemas.push(route.schema.clone());
                    }
                }
            }
        }
    }
    schemas.sort();
    schemas.dedup();
    schemas
}

/// Whether `text` contains `needle` (ASCII, any case), as a whole word if asked.
/// The words [`name_change`] looks for before it parses, found in one pass over the text.
#[derive(Debug, Default, PartialEq, Eq)]
struct Mentions {
    /// `temp`, `temporary` or `pg_temp` as a whole word.
    temporary: bool,
    /// `search_path` anywhere (also inside `set_config('search_path', …)`).
    search_path: bool,
    /// `discard` as a whole word.
    discard: bool,
    /// `reset` as a whole word.
    reset: bool,
}

impl Mentions {
    fn of(text: &str) -> Mentions {
        let hay = text.as_bytes();
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
        // `needle` (lower case) at `at`, ignoring case, and a whole word there when asked.
        let at = |at: usize, needle: &[u8], whole_word: bool| {
            hay.get(at..at + needle.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(needle))
                && (!whole_word
                    || ((at == 0 || !word(hay[at - 1]))
                        && hay.get(at + needle.len()).is_none_or(|&b| !word(b))))
        };
        let mut found = Mentions::default();
        for (i, &b) in hay.iter().enumerate() {
            // Only the first letters of the words can start a match: one compare per byte.
            match b | 0x20 {
                b't' => {
                    found.temporary |= at(i, b"temp", true) || at(i, b"temporary", true);
                }
                b'p' => found.temporary |= at(i, b"pg_temp", true),
                b's' => found.search_path |= at(i, b"search_path", false),
                b'd' => found.discard |= at(i, b"discard", true),
                b'r' => found.reset |= at(i, b"reset", true),
                _ => {}
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> SearchPath {
        match name_change(text) {
            NameChange::SearchPath(p) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_one_pass_scan_finds_the_words_as_the_parser_would_need_them() {
        let m = Mentions::of;
        assert_eq!(m("SELECT * FROM t WHERE id = $1"), Mentions::default());
        assert!(m("CREATE TEMP TABLE x (a int)").temporary);
        assert!(m("create temporary table x (a int)").temporary);
        assert!(m("SELECT * FROM pg_temp.t").temporary);
        assert!(m("SELECT 1;temp").temporary);
        // Inside a longer word it is not the keyword.
        assert!(!m("SELECT attempt, temperature, my_temp FROM t").temporary);
        assert!(m("SET SEARCH_PATH = app").search_path);
        assert!(m("SELECT set_config('search_path', 'a', false)").search_path);
        assert!(m("DISCARD ALL").discard && !m("discarded").discard);
        assert!(m("RESET ALL").reset && m("reset search_path").reset && !m("resets").reset);
        // Words at the very end, and texts shorter than any word.
        assert!(m("x reset").reset);
        assert_eq!(m(""), Mentions::default());
        assert_eq!(m("te"), Mentions::default());
    }

    #[test]
    fn set_search_path_is_read_and_anything_else_is_unknown() {
        assert_eq!(
            path("SET search_path TO app, public"),
            SearchPath::Schemas(vec!["app".into(), "public".into()])
        );
        assert_eq!(
            path("set SEARCH_PATH = \"My App\""),
            SearchPath::Schemas(vec!["My App".into()])
        );
        assert_eq!(path("RESET search_path"), SearchPath::Default);
        assert_eq!(path("RESET ALL"), SearchPath::Default);
        assert_eq!(name_change("DISCARD ALL"), NameChange::DiscardAll);
        assert_eq!(name_change("RESET statement_timeout"), NameChange::None);
        assert_eq!(path("SET search_path TO DEFAULT"), SearchPath::Default);
        assert_eq!(path("SET LOCAL search_path = x"), SearchPath::Unknown);
        assert_eq!(
            path("SELECT set_config('search_path', 'x', false)"),
            SearchPath::Unknown
        );
        assert!(SearchPath::Schemas(vec!["app".into()]).resolves_first_in("app"));
        assert!(!SearchPath::Schemas(vec!["other".into(), "app".into()]).resolves_first_in("app"));
        assert!(SearchPath::Default.resolves_first_in("public"));
        assert!(!SearchPath::Default.resolves_first_in("app"));
    }

    #[test]
    fn the_startup_packet_sets_it_too() {
        assert_eq!(from_startup(None, None), SearchPath::Default);
        assert_eq!(
            from_startup(None, Some("--search_path=app")),
            SearchPath::Schemas(vec!["app".into()])
        );
        assert_eq!(
            from_startup(None, Some("-c geqo=off -c search_path=App,\"My\"")),
            SearchPath::Schemas(vec!["app".into(), "My".into()])
        );
        assert_eq!(
            from_startup(Some("a, b"), None),
            SearchPath::Schemas(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            from_startup(None, Some("-c statement_timeout=5")),
            SearchPath::Default
        );
    }

    #[test]
    fn temporary_tables_are_noticed_as_words() {
        for text in [
            "CREATE TEMP TABLE t (id int)",
            "create temporary table t as select 1",
            "INSERT INTO pg_temp.t VALUES (1)",
        ] {
            assert_eq!(name_change(text), NameChange::Temporary, "{text}");
        }
        for text in [
            "UPDATE t SET temperature = 1",
            "INSERT INTO attempts VALUES (1)",
            "SELECT templates FROM x",
        ] {
            assert_eq!(name_change(text), NameChange::None, "{text}");
        }
    }
}
