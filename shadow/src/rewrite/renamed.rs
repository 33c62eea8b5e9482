//! After the flip of a column rename, statements written for the old names are translated:
//! `a` → `b` wherever it names the column, and result columns keep the names the old client
//! expects (`b AS a`, `*` expanded with aliases).
//!
//! Names are resolved by scope, as PostgreSQL resolves them, over the whole statement: its
//! `WITH` queries (writable ones too), joins, subqueries in `FROM`, `WHERE` and the target list,
//! set operations, `ON CONFLICT`, `MERGE`, `RETURNING`, and the query inside `EXPLAIN` or
//! `DECLARE … CURSOR`. A reference is translated when it is the renamed table's:
//!
//! - `q.a` (or `s.q.a`) where `q` is the renamed table (its name or its alias) in the nearest
//!   query level that binds `q` — or `excluded` in `ON CONFLICT`;
//! - a bare `a` in a query level whose `FROM` (or target) has the renamed table: PostgreSQL looks
//!   there first, and the old statement was valid, so `a` was unambiguous and was the table's;
//! - an assigned column (`INSERT (a)`, `UPDATE SET a`, `MERGE … SET a`, `ON CONFLICT (a)`).
//!
//! Translation fails closed. A bare old name in a subquery that does not read the table while
//! an enclosing level does (it could be a column of the subquery's own relations, which duet
//! does not know), `*` over the table and other relations, a column alias list on the table,
//! `NATURAL` joins and `USING` lists that name an old column: refused, never half-translated.
//! Every token spelling an old name must be accounted for — translated, found to belong to
//! another relation, or an alias being defined — or the statement is refused.

use pg_query::protobuf::{node::Node as NodeEnum, Token};
use serde_json::{Map, Value};

use super::names::quote_ident;
use super::outcome::Refusal;
use super::route::{Routes, TableRoute, Target};
use super::shadow_table::Span;
use super::statement::Decision;
use super::tokens::Tokens;

/// Whether `node` is a statement this module translates (the caller handles `COPY` and
/// `PREPARE` itself).
pub fn applies_to(node: &NodeEnum) -> bool {
    matches!(
        node,
        NodeEnum::SelectStmt(_)
            | NodeEnum::InsertStmt(_)
            | NodeEnum::UpdateStmt(_)
            | NodeEnum::DeleteStmt(_)
            | NodeEnum::MergeStmt(_)
            | NodeEnum::ExplainStmt(_)
            | NodeEnum::DeclareCursorStmt(_)
    )
}

/// Translates one statement (at `span` of `sql`) that may use old column names of renamed
/// tables in `routes`. [`Decision::Pass`] when it names no renamed table or needs nothing.
pub fn translate(
    sql: &str,
    tokens: &Tokens,
    span: Span,
    node: &NodeEnum,
    routes: &Routes,
) -> Result<Decision, Refusal> {
    let renamed: Vec<Renamed<'_>> = routes
        .tables
        .iter()
        .filter_map(|route| match &route.target {
            Target::Renamed { columns } => Some(Renamed {
                route,
                renames: columns,
            }),
            _ => None,
        })
        .collect();
    if renamed.is_empty() {
        return Ok(Decision::Pass);
    }
    let text = |t: &super::tokens::Tok| sql.get(t.start..t.end).unwrap_or("");
    let is_old = |name: &str| renamed.iter().any(|r| r.new_of(name).is_some());
    let old_tokens: Vec<usize> = tokens
        .within(span.start, span.end)
        .filter(|t| is_old(&normalize(text(t))))
        .map(|t| t.start)
        .collect();
    let has_star = tokens
        .within(span.start, span.end)
        .any(|t| t.kind == Token::Ascii42);
    if old_tokens.is_empty() && !has_star {
        return Ok(Decision::Pass);
    }
    let Ok(tree) = serde_json::to_value(node) else {
        return Ok(Decision::Pass);
    };
    let mut walker = Walker {
        sql,
        tokens,
        renamed: &renamed,
        levels: Vec::new(),
        ctes: Vec::new(),
        edits: Vec::new(),
        accounted: Vec::new(),
        refusal: None,
        mentioned: None,
    };
    walker.walk(&tree);
    let Some(route) = walker.mentioned else {
        return Ok(Decision::Pass);
    };
    if let Some(why) = walker.refusal {
        return Err(refuse(route, &why));
    }
    let unaccounted = old_tokens
        .iter()
        .any(|&start| !walker.accounted.contains(&start) && !walker.is_alias_definition(start));
    if unaccounted {
        return Err(refuse(
            route,
            "an old column name is used where duet cannot translate it",
        ));
    }
    if walker.edits.is_empty() {
        return Ok(Decision::Pass);
    }
    let mut edits = walker.edits;
    edits.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    edits.dedup_by_key(|e| (e.0, e.1));
    let mut out = sql.get(span.start..span.end).unwrap_or("").to_string();
    for (start, end, replacement) in edits {
        if start < span.start || end > span.end {
            continue;
        }
        let (a, b) = (start - span.start, end - span.start);
        if out.get(a..b).is_some() {
            out.replace_range(a..b, &replacement);
        }
    }
    Ok(Decision::Replace {
        sql: out,
        verb: None,
    })
}

/// A renamed table and its `(old, new)` column names.
struct Renamed<'r> {
    route: &'r TableRoute,
    renames: &'r [(String, String)],
}

impl Renamed<'_> {
    fn new_of(&self, old: &str) -> Option<&str> {
        self.renames
            .iter()
            .find(|(o, _)| o == old)
            .map(|(_, n)| n.as_str())
    }

    fn old_of(&self, new: &str) -> Option<&str> {
        self.renames
            .iter()
            .find(|(_, n)| n == new)
            .map(|(o, _)| o.as_str())
    }
}

/// One range-table entry of a query level: the name it is referred to by, and the renamed
/// table it is (an index into the walker's list), if it is one.
struct Entry {
    name: String,
    renamed: Option<usize>,
}

/// One query level: its entries, and its target list's output names (`ORDER BY` looks there
/// first).
#[derive(Default)]
struct Level {
    entries: Vec<Entry>,
    outputs: Vec<String>,
}

struct Walker<'a, 'r> {
    sql: &'a str,
    tokens: &'a Tokens,
    renamed: &'a [Renamed<'r>],
    levels: Vec<Level>,
    /// Names of the `WITH` queries in scope (they hide tables of the same unqualified name).
    ctes: Vec<String>,
    edits: Vec<(usize, usize, String)>,
    /// Old-name tokens decided on (translated, or found to be another relation's).
    accounted: Vec<usize>,
    refusal: Option<String>,
    /// The first renamed table the statement reads or writes.
    mentioned: Option<&'r TableRoute>,
}

/// Where a column reference stands: `ORDER BY` resolves a bare name against the output names
/// first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Expression,
    OrderBy,
}

impl<'r> Walker<'_, 'r> {
    fn refuse(&mut self, why: &str) {
        if self.refusal.is_none() {
            self.refusal = Some(why.to_string());
        }
    }

    /// Any value of the tree: a node dispatches on its type, everything else is walked through.
    fn walk(&mut self, value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.walk(v)),
            Value::Object(map) => match node_of(map) {
                Some(("SelectStmt", s)) => self.select(s),
                Some(("InsertStmt", s)) => self.insert(s),
                Some(("UpdateStmt", s)) => self.update(s),
                Some(("DeleteStmt", s)) => self.delete(s),
                Some(("MergeStmt", s)) => self.merge(s),
                Some(("ColumnRef", c)) => {
                    self.column_ref(c, Place::Expression);
                }
                _ => map.values().for_each(|v| self.walk(v)),
            },
            _ => {}
        }
    }

    /// Registers a `WITH` clause's names and walks its queries; returns how many names to pop.
    fn with_clause(&mut self, s: &Map<String, Value>) -> usize {
        let Some(ctes) = s
            .get("with_clause")
            .and_then(|w| w.get("ctes"))
            .and_then(Value::as_array)
        else {
            return 0;
        };
        let names: Vec<String> = ctes
            .iter()
            .filter_map(|c| node_named(c, "CommonTableExpr"))
            .filter_map(|c| c.get("ctename").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let n = names.len();
        self.ctes.extend(names);
        for cte in ctes.iter().filter_map(|c| node_named(c, "CommonTableExpr")) {
            if let Some(q) = cte.get("ctequery") {
                self.walk(q);
            }
        }
        n
    }

    fn pop_ctes(&mut self, n: usize) {
        let keep = self.ctes.len().saturating_sub(n);
        self.ctes.truncate(keep);
    }

    /// The renamed table a `RangeVar` names (not a `WITH` query of the same name).
    fn range_var_renamed(&mut self, rv: &Map<String, Value>) -> Option<usize> {
        let schema = str_field(rv, "schemaname");
        let rel = str_field(rv, "relname");
        if schema.is_empty() && self.ctes.iter().any(|c| c == rel) {
            return None;
        }
        let i = self
            .renamed
            .iter()
            .position(|r| r.route.is_named(schema, rel))?;
        if self.mentioned.is_none() {
            self.mentioned = Some(self.renamed[i].route);
        }
        Some(i)
    }

    /// The entry of a `RangeVar` (its alias, else its name).
    fn range_var_entry(&mut self, rv: &Map<String, Value>) -> Entry {
        let renamed = self.range_var_renamed(rv);
        let alias = rv.get("alias").and_then(Value::as_object);
        if renamed.is_some()
            && alias
                .and_then(|a| a.get("colnames"))
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty())
        {
            self.refuse("a column alias list on the renamed table");
        }
        let name = alias
            .map(|a| str_field(a, "aliasname"))
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| str_field(rv, "relname"));
        Entry {
            name: name.to_string(),
            renamed,
        }
    }

    /// The entries of one `FROM` item; `ON` conditions are kept to be walked once the level
    /// is in scope, subqueries and functions are walked now (they do not see this level).
    fn range_entries<'v>(
        &mut self,
        item: &'v Value,
        entries: &mut Vec<Entry>,
        quals: &mut Vec<&'v Value>,
    ) {
        let Some((kind, m)) = item.as_object().and_then(node_of) else {
            return;
        };
        match kind {
            "RangeVar" => entries.push(self.range_var_entry(m)),
            "JoinExpr" => {
                let first = entries.len();
                for side in ["larg", "rarg"] {
                    if let Some(v) = m.get(side) {
                        self.range_entries(v, entries, quals);
                    }
                }
                let has_renamed = entries[first..].iter().any(|e| e.renamed.is_some());
                if has_renamed {
                    if m.get("is_natural").and_then(Value::as_bool) == Some(true) {
                        self.refuse("a NATURAL join with the renamed table");
                    }
                    let using_old =
                        m.get("using_clause")
                            .and_then(Value::as_array)
                            .is_some_and(|names| {
                                names.iter().filter_map(string_of).any(|n| self.is_old(n))
                            });
                    if using_old {
                        self.refuse("a USING list that names an old column");
                    }
                    if m.get("alias").is_some_and(|a| !a.is_null()) {
                        self.refuse("an alias on a join with the renamed table");
                    }
                }
                if let Some(q) = m.get("quals") {
                    quals.push(q);
                }
            }
            "RangeSubselect" => {
                // A LATERAL subquery sees the items before it: walked with the level in scope.
                if m.get("lateral").and_then(Value::as_bool) == Some(true) {
                    quals.push(item);
                } else if let Some(q) = m.get("subquery") {
                    self.walk(q);
                }
                entries.push(Entry {
                    name: alias_name(m).to_string(),
                    renamed: None,
                });
            }
            "RangeTableSample" => {
                if let Some(r) = m.get("relation") {
                    self.range_entries(r, entries, quals);
                }
                for k in ["args", "repeatable"] {
                    if let Some(v) = m.get(k) {
                        quals.push(v);
                    }
                }
            }
            _ => {
                // Functions, XMLTABLE, JSON_TABLE: their arguments may refer to earlier items
                // (LATERAL); walk them with the level in scope.
                quals.push(item);
                entries.push(Entry {
                    name: alias_name(m).to_string(),
                    renamed: None,
                });
            }
        }
    }

    fn is_old(&self, name: &str) -> bool {
        self.renamed.iter().any(|r| r.new_of(name).is_some())
    }

    fn select(&mut self, s: &Map<String, Value>) {
        let ctes = self.with_clause(s);
        let set_operation = s.get("larg").is_some_and(|v| !v.is_null());
        if set_operation {
            // Each arm is a `SelectStmt` of its own (not wrapped in a node).
            for side in ["larg", "rarg"] {
                if let Some(arm) = s.get(side).and_then(Value::as_object) {
                    self.select(arm);
                }
            }
            // ORDER BY of a set operation names its output columns, which keep the old names.
            self.account_all(s.get("sort_clause"));
            for k in ["limit_offset", "limit_count"] {
                if let Some(v) = s.get(k) {
                    self.walk(v);
                }
            }
            self.pop_ctes(ctes);
            return;
        }
        let mut entries = Vec::new();
        let mut quals = Vec::new();
        for item in array(s, "from_clause") {
            self.range_entries(item, &mut entries, &mut quals);
        }
        let outputs = array(s, "target_list")
            .filter_map(|t| node_named(t, "ResTarget"))
            .filter_map(output_name)
            .collect();
        self.levels.push(Level { entries, outputs });
        quals.into_iter().for_each(|q| self.walk(q));
        self.targets(array(s, "target_list"));
        for k in [
            "distinct_clause",
            "where_clause",
            "group_clause",
            "having_clause",
            "window_clause",
            "values_lists",
            "limit_offset",
            "limit_count",
        ] {
            if let Some(v) = s.get(k) {
                self.walk(v);
            }
        }
        for item in array(s, "sort_clause") {
            self.sort_item(item);
        }
        self.levels.pop();
        self.pop_ctes(ctes);
    }

    /// One `ORDER BY` item: a bare name that is an output column's is left as written.
    fn sort_item(&mut self, item: &Value) {
        let node = node_named(item, "SortBy").and_then(|s| s.get("node"));
        match node.and_then(|n| node_named(n, "ColumnRef")) {
            Some(c) => {
                self.column_ref(c, Place::OrderBy);
            }
            None => self.walk(item),
        }
    }

    fn insert(&mut self, s: &Map<String, Value>) {
        let ctes = self.with_clause(s);
        // The SELECT (or VALUES) does not see the target.
        if let Some(q) = s.get("select_stmt") {
            self.walk(q);
        }
        let target = s
            .get("relation")
            .and_then(Value::as_object)
            .map(|rv| self.range_var_entry(rv));
        let target_renamed = target.as_ref().and_then(|t| t.renamed);
        for rt in array(s, "cols").filter_map(|t| node_named(t, "ResTarget")) {
            self.assigned(rt, target_renamed);
        }
        let mut level = Level::default();
        if let Some(t) = target {
            level.entries.push(t);
        }
        self.levels.push(level);
        if let Some(oc) = s.get("on_conflict_clause").and_then(Value::as_object) {
            if let Some(infer) = oc.get("infer").and_then(Value::as_object) {
                self.conflict_target(infer, target_renamed);
                if let Some(w) = infer.get("where_clause") {
                    self.walk(w);
                }
            }
            if let Some(level) = self.levels.last_mut() {
                level.entries.push(Entry {
                    name: "excluded".into(),
                    renamed: target_renamed,
                });
            }
            for rt in array(oc, "target_list").filter_map(|t| node_named(t, "ResTarget")) {
                self.assigned(rt, target_renamed);
                if let Some(v) = rt.get("val") {
                    self.walk(v);
                }
            }
            if let Some(w) = oc.get("where_clause") {
                self.walk(w);
            }
            if let Some(level) = self.levels.last_mut() {
                level.entries.retain(|e| e.name != "excluded");
            }
        }
        self.returning(s);
        self.levels.pop();
        self.pop_ctes(ctes);
    }

    fn update(&mut self, s: &Map<String, Value>) {
        self.write_level(s, "from_clause", |w, target| {
            for rt in array(s, "target_list").filter_map(|t| node_named(t, "ResTarget")) {
                w.assigned(rt, target);
                for k in ["val", "indirection"] {
                    if let Some(v) = rt.get(k) {
                        w.walk(v);
                    }
                }
            }
            if let Some(where_clause) = s.get("where_clause") {
                w.walk(where_clause);
            }
        });
    }

    fn delete(&mut self, s: &Map<String, Value>) {
        self.write_level(s, "using_clause", |w, _| {
            if let Some(where_clause) = s.get("where_clause") {
                w.walk(where_clause);
            }
        });
    }

    fn merge(&mut self, s: &Map<String, Value>) {
        self.write_level(s, "source_relation", |w, target| {
            if let Some(c) = s.get("join_condition") {
                w.walk(c);
            }
            let whens =
                array(s, "merge_when_clauses").filter_map(|c| node_named(c, "MergeWhenClause"));
            for when in whens {
                if let Some(c) = when.get("condition") {
                    w.walk(c);
                }
                for rt in array(when, "target_list").filter_map(|t| node_named(t, "ResTarget")) {
                    w.assigned(rt, target);
                    if let Some(v) = rt.get("val") {
                        w.walk(v);
                    }
                }
                if let Some(v) = when.get("values") {
                    w.walk(v);
                }
            }
        });
    }

    /// The query level of an `UPDATE`, `DELETE` or `MERGE`: its `WITH` queries, its target and
    /// `others` (`FROM`, `USING`, the source) in scope, `body` (given the target's renamed
    /// table), then `RETURNING`.
    fn write_level(
        &mut self,
        s: &Map<String, Value>,
        others: &str,
        body: impl FnOnce(&mut Self, Option<usize>),
    ) {
        let ctes = self.with_clause(s);
        let (target, entries, quals) = self.target_and_from(s, others);
        self.levels.push(Level {
            entries,
            outputs: Vec::new(),
        });
        quals.into_iter().for_each(|q| self.walk(q));
        body(self, target);
        self.returning(s);
        self.levels.pop();
        self.pop_ctes(ctes);
    }

    /// A write's target and its other relations (`FROM`, `USING`, `MERGE`'s source).
    fn target_and_from<'v>(
        &mut self,
        s: &'v Map<String, Value>,
        others: &str,
    ) -> (Option<usize>, Vec<Entry>, Vec<&'v Value>) {
        let mut entries = Vec::new();
        let mut quals = Vec::new();
        let target = s
            .get("relation")
            .and_then(Value::as_object)
            .map(|rv| self.range_var_entry(rv));
        let target_renamed = target.as_ref().and_then(|t| t.renamed);
        entries.extend(target);
        match s.get(others) {
            Some(Value::Array(items)) => {
                for item in items {
                    self.range_entries(item, &mut entries, &mut quals);
                }
            }
            Some(item @ Value::Object(_)) => self.range_entries(item, &mut entries, &mut quals),
            _ => {}
        }
        (target_renamed, entries, quals)
    }

    fn returning(&mut self, s: &Map<String, Value>) {
        let Some(returning) = s.get("returning_clause") else {
            return;
        };
        match returning {
            Value::Object(r) => self.targets(array(r, "exprs")),
            Value::Array(items) => self.targets(items.iter()),
            _ => {}
        }
    }

    /// A target list (`SELECT`'s, `RETURNING`'s): references translated, and a result column
    /// named by an old name keeps it (`b AS a`; `*` expanded with aliases).
    fn targets<'v>(&mut self, list: impl Iterator<Item = &'v Value>) {
        for rt in list.filter_map(|t| node_named(t, "ResTarget")) {
            let Some(val) = rt.get("val") else { continue };
            let explicit_name = !str_field(rt, "name").is_empty();
            match node_named(val, "ColumnRef") {
                Some(c) if is_star(c) => self.star(c),
                Some(c) => {
                    if let Some((end, old)) = self.column_ref(c, Place::Expression) {
                        if !explicit_name {
                            self.edits
                                .push((end, end, format!(" AS {}", quote_ident(&old))));
                        }
                    }
                }
                None => self.walk(val),
            }
        }
    }

    /// `*` or `q.*` in a target list over the renamed table: expanded, old names as aliases.
    fn star(&mut self, c: &Map<String, Value>) {
        let fields = fields(c);
        let Some(level) = self.levels.last() else {
            return;
        };
        let renamed = if fields.len() == 1 {
            let with_renamed = level.entries.iter().filter(|e| e.renamed.is_some()).count();
            if with_renamed == 0 {
                return;
            }
            if level.entries.len() > 1 {
                self.refuse("`*` over the renamed table and other relations (name the columns)");
                return;
            }
            level.entries[0].renamed
        } else {
            let q = fields[fields.len() - 2].clone().unwrap_or_default();
            self.lookup(&q).and_then(|e| e.1)
        };
        let Some(r) = renamed else { return };
        let Some((start, star_end, star_start)) = self.star_span(c, fields.len()) else {
            return;
        };
        let qualifier = self.sql.get(start..star_start).unwrap_or("").to_string();
        let renamed = &self.renamed[r];
        let list: Vec<String> = renamed
            .route
            .columns
            .iter()
            .map(|col| match renamed.old_of(&col.name) {
                Some(old) => format!(
                    "{qualifier}{} AS {}",
                    quote_ident(&col.name),
                    quote_ident(old)
                ),
                None => format!("{qualifier}{}", quote_ident(&col.name)),
            })
            .collect();
        self.edits.push((start, star_end, list.join(", ")));
    }

    fn star_span(&self, c: &Map<String, Value>, n: usize) -> Option<(usize, usize, usize)> {
        let start = usize::try_from(c.get("location")?.as_i64()?).ok()?;
        let first = self.tokens.index_at(start)?;
        let star = self.tokens.get(first + 2 * (n - 1))?;
        (star.kind == Token::Ascii42).then_some((start, star.end, star.start))
    }

    /// The entry named `q`, innermost level first: (level index, its renamed table).
    fn lookup(&self, q: &str) -> Option<(usize, Option<usize>)> {
        self.levels.iter().enumerate().rev().find_map(|(i, level)| {
            level
                .entries
                .iter()
                .find(|e| e.name == q)
                .map(|e| (i, e.renamed))
        })
    }

    /// One column reference. Returns, when its last field was translated, the end of that field
    /// and the old name (for a target list's alias).
    fn column_ref(&mut self, c: &Map<String, Value>, place: Place) -> Option<(usize, String)> {
        let fields = fields(c);
        let location = usize::try_from(c.get("location")?.as_i64()?).ok()?;
        let first = self.tokens.index_at(location)?;
        let n = fields.len();
        let name = fields.last()?.clone()?;
        let field_token = self.tokens.get(first + 2 * (n - 1))?;
        if !self.is_old(&name) {
            return None;
        }
        self.accounted.push(field_token.start);
        let owner: Option<usize> = if n == 1 {
            if place == Place::OrderBy
                && self
                    .levels
                    .last()
                    .is_some_and(|l| l.outputs.contains(&name))
            {
                return None;
            }
            let level = self.levels.last()?;
            let here: Vec<usize> = level.entries.iter().filter_map(|e| e.renamed).collect();
            let here: Vec<usize> = here
                .into_iter()
                .filter(|&r| self.renamed[r].new_of(&name).is_some())
                .collect();
            match here.as_slice() {
                [one] => Some(*one),
                [first_one, rest @ ..] if rest.iter().all(|r| r == first_one) => Some(*first_one),
                [] => {
                    let outer = self.levels[..self.levels.len() - 1]
                        .iter()
                        .flat_map(|l| &l.entries)
                        .filter_map(|e| e.renamed)
                        .any(|r| self.renamed[r].new_of(&name).is_some());
                    if outer {
                        self.refuse(
                            "a bare old column name in a subquery that does not read the renamed table (qualify it with the table's name)",
                        );
                    }
                    None
                }
                _ => {
                    self.refuse("an old column name shared by two renamed tables");
                    None
                }
            }
        } else {
            let q = fields[n - 2].clone().unwrap_or_default();
            self.lookup(&q).and_then(|(_, r)| r)
        };
        let r = owner?;
        let new = self.renamed[r].new_of(&name)?.to_string();
        if normalize(self.sql.get(field_token.start..field_token.end)?) != name {
            self.refuse("an old column name spelled in a way duet cannot place");
            return None;
        }
        self.edits
            .push((field_token.start, field_token.end, quote_ident(&new)));
        Some((field_token.end, name))
    }

    /// An assigned column (`INSERT (a)`, `SET a`): translated when the target is renamed.
    fn assigned(&mut self, rt: &Map<String, Value>, target: Option<usize>) {
        let name = str_field(rt, "name");
        let Some(r) = target else { return };
        let Some(new) = self.renamed[r].new_of(name) else {
            return;
        };
        let Some(tok) = rt
            .get("location")
            .and_then(Value::as_i64)
            .and_then(|l| usize::try_from(l).ok())
            .and_then(|l| self.tokens.at(l))
        else {
            return;
        };
        if self.sql.get(tok.start..tok.end).map(normalize).as_deref() == Some(name) {
            self.edits.push((tok.start, tok.end, quote_ident(new)));
            self.accounted.push(tok.start);
        }
    }

    /// `ON CONFLICT (a, …)`: the inferred index's column names (they carry no location: the
    /// tokens of the list's top level that spell them).
    fn conflict_target(&mut self, infer: &Map<String, Value>, target: Option<usize>) {
        let elems: Vec<&Map<String, Value>> = array(infer, "index_elems")
            .filter_map(|e| node_named(e, "IndexElem"))
            .collect();
        for e in &elems {
            if let Some(x) = e.get("expr") {
                self.walk(x);
            }
        }
        let Some(r) = target else { return };
        let names: Vec<&str> = elems
            .iter()
            .map(|e| str_field(e, "name"))
            .filter(|n| !n.is_empty())
            .collect();
        let Some(start) = infer
            .get("location")
            .and_then(Value::as_i64)
            .and_then(|l| usize::try_from(l).ok())
        else {
            return;
        };
        let Some(open) = self
            .tokens
            .next_from(start)
            .filter(|t| t.kind == Token::Ascii40)
        else {
            return;
        };
        let inside = open.depth + 1;
        let list: Vec<_> = self
            .tokens
            .within(open.end, self.sql.len())
            .take_while(|t| t.depth >= inside)
            .filter(|t| t.depth == inside)
            .copied()
            .collect();
        for tok in list {
            let spelled = normalize(self.sql.get(tok.start..tok.end).unwrap_or(""));
            if !names.contains(&spelled.as_str()) {
                continue;
            }
            if let Some(new) = self.renamed[r].new_of(&spelled) {
                self.edits.push((tok.start, tok.end, quote_ident(new)));
                self.accounted.push(tok.start);
            }
        }
    }

    /// Every old-name column token under `value`, left as written.
    fn account_all(&mut self, value: Option<&Value>) {
        let Some(value) = value else { return };
        let mut refs = Vec::new();
        collect_column_refs(value, &mut refs);
        for c in refs {
            let (Some(location), n) = (
                c.get("location")
                    .and_then(Value::as_i64)
                    .and_then(|l| usize::try_from(l).ok()),
                fields(c).len(),
            ) else {
                continue;
            };
            if let Some(tok) = self
                .tokens
                .index_at(location)
                .and_then(|first| self.tokens.get(first + 2 * n.saturating_sub(1)))
            {
                self.accounted.push(tok.start);
            }
        }
    }

    /// Whether the token at `start` defines a name rather than referring to a column: an alias
    /// after `AS`, or one name of a column alias list (`AS s(a, b)`, `WITH x(a, b)`).
    fn is_alias_definition(&self, start: usize) -> bool {
        let Some(i) = self.tokens.index_at(start) else {
            return false;
        };
        let prev = |k: usize| i.checked_sub(k).and_then(|j| self.tokens.get(j));
        if prev(1).is_some_and(|t| t.kind == Token::As) {
            return true;
        }
        let Some(me) = self.tokens.get(i) else {
            return false;
        };
        // Back to the list's `(`: only names and commas on the way.
        let mut k = 1;
        loop {
            let Some(t) = prev(k) else { return false };
            if t.depth < me.depth {
                if t.kind != Token::Ascii40 {
                    return false;
                }
                break;
            }
            let word = self.sql.get(t.start..t.end).unwrap_or("");
            let is_name = word
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"');
            if t.kind != Token::Ascii44 && !is_name {
                return false;
            }
            k += 1;
        }
        let alias = prev(k + 1);
        let before = prev(k + 2);
        let alias_is_name = alias.is_some_and(|t| {
            self.sql
                .get(t.start..t.end)
                .and_then(|w| w.chars().next())
                .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"')
        });
        alias_is_name
            && before.is_some_and(|t| {
                matches!(
                    t.kind,
                    Token::As | Token::Ascii41 | Token::With | Token::Recursive | Token::Ascii44
                )
            })
    }
}

/// A node's type and body: `{"SelectStmt": {…}}`, or the `{"node": {…}}` wrapper around one.
fn node_of(map: &Map<String, Value>) -> Option<(&str, &Map<String, Value>)> {
    if map.len() != 1 {
        return None;
    }
    let (key, value) = map.iter().next()?;
    if key == "node" {
        return value.as_object().and_then(node_of);
    }
    if !key.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    Some((key.as_str(), value.as_object()?))
}

fn node_named<'v>(value: &'v Value, kind: &str) -> Option<&'v Map<String, Value>> {
    let (k, m) = node_of(value.as_object()?)?;
    (k == kind).then_some(m)
}

fn array<'v>(m: &'v Map<String, Value>, key: &str) -> impl Iterator<Item = &'v Value> {
    m.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn str_field<'v>(m: &'v Map<String, Value>, key: &str) -> &'v str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

fn string_of(v: &Value) -> Option<&str> {
    node_named(v, "String").map(|s| str_field(s, "sval"))
}

fn alias_name(m: &Map<String, Value>) -> &str {
    m.get("alias")
        .and_then(Value::as_object)
        .map(|a| str_field(a, "aliasname"))
        .unwrap_or("")
}

/// A column reference's fields: names, `None` for `*`.
fn fields(c: &Map<String, Value>) -> Vec<Option<String>> {
    array(c, "fields")
        .map(|f| string_of(f).map(str::to_string))
        .collect()
}

fn is_star(c: &Map<String, Value>) -> bool {
    array(c, "fields")
        .last()
        .is_some_and(|f| node_named(f, "AStar").is_some())
}

/// A target's output name as PostgreSQL names it, when it is a name at all.
fn output_name(rt: &Map<String, Value>) -> Option<String> {
    let name = str_field(rt, "name");
    if !name.is_empty() {
        return Some(name.to_string());
    }
    let c = rt.get("val").and_then(|v| node_named(v, "ColumnRef"))?;
    fields(c).last()?.clone()
}

fn collect_column_refs<'v>(value: &'v Value, out: &mut Vec<&'v Map<String, Value>>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_column_refs(v, out)),
        Value::Object(map) => match node_of(map) {
            Some(("ColumnRef", c)) => out.push(c),
            _ => map.values().for_each(|v| collect_column_refs(v, out)),
        },
        _ => {}
    }
}

/// An identifier token's name: quoted → as written (quotes doubled undone), else lower-cased.
fn normalize(token: &str) -> String {
    match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => token.to_ascii_lowercase(),
    }
}

fn refuse(route: &TableRoute, why: &str) -> Refusal {
    Refusal::unsupported(
        format!(
            "statement on table {} uses a renamed column and cannot be translated: {why}",
            route.name
        ),
        "use the new column names",
    )
}
