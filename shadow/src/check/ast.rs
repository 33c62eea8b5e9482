//! Small readers over pg_query's protobuf tree: names, types, and what kind of expression a
//! default is. Kept apart so the classifier and the rules read like the facts they encode.

use pg_query::protobuf::{self, node::Node as N, Node, RangeVar, TypeName};

/// The strings of a list of `String` nodes (qualified names, column lists).
pub fn strings(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(N::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// The relation name duet keys its model by: `relname`, or `schema.relname` outside `public`.
pub fn relation_key(schema: &str, name: &str) -> String {
    if schema.is_empty() || schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// The model key of a `RangeVar`.
pub fn range_var_key(rv: &RangeVar) -> String {
    relation_key(&rv.schemaname, &rv.relname)
}

/// The model key of a `RangeVar` the parse tree may leave out; empty when it is absent.
pub fn optional_range_var_key(rv: Option<&RangeVar>) -> String {
    rv.map(range_var_key).unwrap_or_default()
}

/// The model key of a qualified name list (`[schema,] name`).
pub fn qualified_key(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [name] => relation_key("", name),
        [.., schema, name] => relation_key(schema, name),
    }
}

/// A column type as duet compares it: canonical base name, type modifiers, array-ness.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ColumnType {
    /// Canonical lower-case base name (`int4`, `varchar`, `timestamptz`, `numeric`, …).
    pub name: String,
    /// Integer type modifiers (`varchar(20)` → `[20]`, `numeric(10,2)` → `[10, 2]`).
    pub mods: Vec<i64>,
    /// Whether it is an array type.
    pub array: bool,
}

impl ColumnType {
    /// A plain type with no modifiers.
    pub fn named(name: &str) -> ColumnType {
        ColumnType {
            name: canonical_type_name(name),
            mods: Vec::new(),
            array: false,
        }
    }

    /// Reads a parser `TypeName`.
    pub fn from_type_name(tn: &TypeName) -> ColumnType {
        let names = strings(&tn.names);
        let base = names.last().cloned().unwrap_or_default();
        let mods = tn
            .typmods
            .iter()
            .filter_map(|m| match m.node.as_ref() {
                Some(N::AConst(c)) => match c.val.as_ref() {
                    Some(protobuf::a_const::Val::Ival(i)) => Some(i64::from(i.ival)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        ColumnType {
            name: canonical_type_name(&base),
            mods,
            array: !tn.array_bounds.is_empty(),
        }
    }

    /// SQL spelling for messages (`varchar(20)`, `int8[]`).
    pub fn display(&self) -> String {
        let mut s = self.name.clone();
        if !self.mods.is_empty() {
            let m: Vec<String> = self.mods.iter().map(|m| m.to_string()).collect();
            s.push_str(&format!("({})", m.join(",")));
        }
        if self.array {
            s.push_str("[]");
        }
        s
    }

    /// Whether this is a serial pseudo-type (implies a sequence default).
    pub fn is_serial(&self) -> bool {
        matches!(
            self.name.as_str(),
            "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
        )
    }
}

/// Maps SQL spellings and aliases to the catalog's type names.
pub fn canonical_type_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let canon = match lower.as_str() {
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        "time with time zone" => "timetz",
        "time without time zone" => "time",
        "bit varying" => "varbit",
        other => other,
    };
    canon.to_string()
}

/// How a column default behaves when a column is added with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultKind {
    /// A constant, or a stable expression evaluated once (`now()`): stored as the missing value.
    NonVolatile,
    /// Volatile (or unknown) function: evaluated per row, so the table is rewritten.
    Volatile,
    /// `NULL`.
    Null,
}

/// Functions known not to be volatile, so a default using them is evaluated once (PG 11+).
const NON_VOLATILE_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "lower",
    "upper",
    "to_timestamp",
    "to_date",
    "to_char",
    "coalesce",
    "make_interval",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "array_fill",
    "concat",
    "length",
    "abs",
    "round",
    "current_setting",
    "current_user",
    "session_user",
    "inet_client_addr",
    "interval",
    "date_trunc",
];

/// Classifies a default expression.
pub fn default_kind(expr: &Node) -> DefaultKind {
    match expr.node.as_ref() {
        Some(N::AConst(c)) if c.isnull => DefaultKind::Null,
        _ => {
            if is_volatile(expr) {
                DefaultKind::Volatile
            } else {
                DefaultKind::NonVolatile
            }
        }
    }
}

/// Whether an expression may be volatile: it calls a function not known to be stable/immutable,
/// or a subquery. Errs on the side of "volatile" (a rewrite claimed wrongly is safe; missed is not).
pub fn is_volatile(expr: &Node) -> bool {
    match expr.node.as_ref() {
        None => false,
        Some(N::AConst(_))
        | Some(N::SqlvalueFunction(_))
        | Some(N::ColumnRef(_))
        | Some(N::ParamRef(_)) => false,
        Some(N::TypeCast(tc)) => tc.arg.as_deref().is_some_and(is_volatile),
        Some(N::FuncCall(fc)) => {
            let name = strings(&fc.funcname).last().cloned().unwrap_or_default();
            !NON_VOLATILE_FUNCTIONS.contains(&name.as_str()) || fc.args.iter().any(is_volatile)
        }
        Some(N::AExpr(e)) => {
            e.lexpr.as_deref().is_some_and(is_volatile)
                || e.rexpr.as_deref().is_some_and(is_volatile)
        }
        Some(N::BoolExpr(b)) => b.args.iter().any(is_volatile),
        Some(N::AArrayExpr(a)) => a.elements.iter().any(is_volatile),
        Some(N::List(l)) => l.items.iter().any(is_volatile),
        Some(N::CoalesceExpr(c)) => c.args.iter().any(is_volatile),
        Some(N::CaseExpr(c)) => {
            c.args.iter().any(is_volatile)
                || c.defresult.as_deref().is_some_and(is_volatile)
                || c.arg.as_deref().is_some_and(is_volatile)
        }
        Some(N::CaseWhen(w)) => {
            w.expr.as_deref().is_some_and(is_volatile)
                || w.result.as_deref().is_some_and(is_volatile)
        }
        Some(N::NullTest(t)) => t.arg.as_deref().is_some_and(is_volatile),
        Some(N::RowExpr(r)) => r.args.iter().any(is_volatile),
        _ => true,
    }
}

/// If `expr` is `col IS NOT NULL`, the column's name.
pub fn is_not_null_check(expr: &Node) -> Option<String> {
    match expr.node.as_ref() {
        Some(N::NullTest(t)) if t.nulltesttype() == protobuf::NullTestType::IsNotNull => {
            column_ref_name(t.arg.as_deref()?)
        }
        _ => None,
    }
}

/// The (last) name of a column reference.
pub fn column_ref_name(expr: &Node) -> Option<String> {
    match expr.node.as_ref() {
        Some(N::ColumnRef(c)) => strings(&c.fields).last().cloned(),
        _ => None,
    }
}

/// Every column name referenced inside an expression (for CHECK constraints).
pub fn referenced_columns(expr: &Node, out: &mut Vec<String>) {
    match expr.node.as_ref() {
        Some(N::ColumnRef(_)) => {
            if let Some(c) = column_ref_name(expr) {
                out.push(c);
            }
        }
        Some(N::AExpr(e)) => {
            for side in [e.lexpr.as_deref(), e.rexpr.as_deref()]
                .into_iter()
                .flatten()
            {
                referenced_columns(side, out);
            }
        }
        Some(N::BoolExpr(b)) => b.args.iter().for_each(|a| referenced_columns(a, out)),
        Some(N::NullTest(t)) => {
            if let Some(a) = t.arg.as_deref() {
                referenced_columns(a, out);
            }
        }
        Some(N::FuncCall(f)) => f.args.iter().for_each(|a| referenced_columns(a, out)),
        Some(N::TypeCast(t)) => {
            if let Some(a) = t.arg.as_deref() {
                referenced_columns(a, out);
            }
        }
        Some(N::List(l)) => l.items.iter().for_each(|a| referenced_columns(a, out)),
        _ => {}
    }
}

/// The constraints attached to a column definition.
pub fn column_constraints(
    col: &protobuf::ColumnDef,
) -> impl Iterator<Item = &protobuf::Constraint> {
    col.constraints
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(N::Constraint(c)) => Some(c.as_ref()),
            _ => None,
        })
}

/// The column names of index parameters (expressions give no name).
pub fn index_columns(params: &[Node]) -> Vec<String> {
    params
        .iter()
        .filter_map(|p| match p.node.as_ref() {
            Some(N::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
            _ => None,
        })
        .collect()
}

/// A column's collation from its `COLLATE` clause, lower-case; `None` for none or `"default"`
/// (the type's default collation).
pub fn collation(clause: Option<&protobuf::CollateClause>) -> Option<String> {
    let name = strings(&clause?.collname).last()?.to_ascii_lowercase();
    (name != "default").then_some(name)
}

/// A table access method as the model keeps it: `None` for the default (`heap`).
pub fn access_method(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    (!name.is_empty() && name != "heap").then_some(name)
}

/// A tablespace as the model keeps it: `None` for the database's default.
pub fn tablespace(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    (!name.is_empty() && name != "pg_default").then_some(name)
}

/// Every relation a statement or query names (`FROM`, joins, subqueries), once each, in order;
/// names of CTEs are not relations.
pub fn read_relations(stmt: &N) -> Vec<String> {
    let nodes = stmt.nodes();
    let ctes: Vec<&str> = nodes
        .iter()
        .filter_map(|(n, ..)| match n {
            pg_query::NodeRef::CommonTableExpr(c) => Some(c.ctename.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (n, ..) in &nodes {
        if let pg_query::NodeRef::RangeVar(rv) = n {
            if rv.schemaname.is_empty() && ctes.contains(&rv.relname.as_str()) {
                continue;
            }
            let key = range_var_key(rv);
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}
