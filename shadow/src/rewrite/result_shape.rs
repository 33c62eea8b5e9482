//! Keeping the result shape a client was told about.
//!
//! A client that prepared a statement before a flip keeps the result description the server gave
//! it then, and a binary-format client (tokio-postgres, asyncpg, pgx, Npgsql) decodes every row by
//! it: when `id` became `int8`, eight-byte values arrive for a column the client reads as `int4`.
//! The proxy prepares such statements again at the next transaction boundary; for a query it
//! prepares [`keep_result_shape`]'s form instead, which casts each result column back to the type
//! first described (a no-op for the columns that did not change) under its original name.
//!
//! Only single queries (`SELECT`, `VALUES`, set operations, with or without `WITH`) are wrapped:
//! a data-modifying statement cannot be nested in `FROM`, and PostgreSQL only allows its `WITH` at
//! the top level. Types are named from their OIDs for the built-in types a migration changes
//! between; a column of any other type leaves the statement as it is.

use pg_query::protobuf::node::Node as NodeEnum;

use super::names::quote_ident;
use super::tokens::Tokens;
use crate::parse::{parse_statement, run_on_parser_stack, statement_node, Parsed};

/// One result column as the server first described it (RowDescription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedColumn {
    /// The column's name.
    pub name: String,
    /// Its type's OID.
    pub type_oid: u32,
    /// Its type modifier (-1: none).
    pub typmod: i32,
}

/// `sql` wrapped so that its result has exactly `columns`' names and types, or `None` when it is
/// not a single query, has no columns, or has a column whose type is not known by OID here.
pub fn keep_result_shape(sql: &str, columns: &[DescribedColumn]) -> Option<String> {
    if columns.is_empty() {
        return None;
    }
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            type_sql(c.type_oid, c.typmod).map(|ty| {
                format!(
                    "__duet_r.{}::{ty} AS {}",
                    quote_ident(&format!("__duet_c{}", i + 1)),
                    quote_ident(&c.name)
                )
            })
        })
        .collect::<Option<_>>()?;
    let query = run_on_parser_stack(|| single_query(sql)).ok()??;
    let aliases: Vec<String> = (1..=columns.len())
        .map(|i| quote_ident(&format!("__duet_c{i}")))
        .collect();
    // The query on lines of its own: a trailing `--` comment in it ends at its line.
    Some(format!(
        "SELECT {} FROM (\n{query}\n) AS __duet_r({})",
        casts.join(", "),
        aliases.join(", ")
    ))
}

/// The text of the one query in `sql` (without a trailing `;`), if it is one.
fn single_query(sql: &str) -> Option<String> {
    let Parsed::Statements(stmts) = parse_statement(sql) else {
        return None;
    };
    let [raw] = stmts.as_slice() else {
        return None;
    };
    let Some(NodeEnum::SelectStmt(select)) = statement_node(raw) else {
        return None;
    };
    let modifies = select.with_clause.as_ref().is_some_and(|with| {
        with.ctes.iter().any(|cte| match cte.node.as_ref() {
            Some(NodeEnum::CommonTableExpr(cte)) => !matches!(
                cte.ctequery.as_ref().and_then(|q| q.node.as_ref()),
                Some(NodeEnum::SelectStmt(_))
            ),
            _ => true,
        })
    });
    if select.into_clause.is_some() || modifies {
        return None;
    }
    let tokens = Tokens::scan(sql)?;
    let start = usize::try_from(raw.stmt_location).ok()?;
    let len = usize::try_from(raw.stmt_len).ok()?;
    let limit = if len == 0 { sql.len() } else { start + len };
    let first = tokens.within(start, limit).next()?.start;
    let end = tokens.statement_end(start, limit);
    sql.get(first..end).map(str::to_owned)
}

/// The SQL name of a built-in type, with its modifier where it has one that matters to a value.
fn type_sql(oid: u32, typmod: i32) -> Option<String> {
    let plain = |name: &str| Some(name.to_owned());
    match oid {
        16 => plain("bool"),
        17 => plain("bytea"),
        20 => plain("int8"),
        21 => plain("int2"),
        23 => plain("int4"),
        25 => plain("text"),
        26 => plain("oid"),
        114 => plain("json"),
        700 => plain("float4"),
        701 => plain("float8"),
        1082 => plain("date"),
        1083 => plain("time"),
        1114 => plain("timestamp"),
        1184 => plain("timestamptz"),
        1186 => plain("interval"),
        2950 => plain("uuid"),
        3802 => plain("jsonb"),
        1042 | 1043 => {
            let name = if oid == 1042 { "bpchar" } else { "varchar" };
            Some(if typmod >= 4 {
                format!("{name}({})", typmod - 4)
            } else {
                name.to_owned()
            })
        }
        1700 => Some(if typmod >= 4 {
            let t = typmod - 4;
            format!("numeric({}, {})", (t >> 16) & 0xffff, t & 0xffff)
        } else {
            "numeric".to_owned()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, type_oid: u32, typmod: i32) -> DescribedColumn {
        DescribedColumn {
            name: name.into(),
            type_oid,
            typmod,
        }
    }

    #[test]
    fn a_query_is_wrapped_with_its_first_names_and_types() {
        let wrapped = keep_result_shape(
            "SELECT * FROM t WHERE id = $1; ",
            &[
                col("id", 23, -1),
                col("note", 1043, 24),
                col("n", 1700, (10 << 16 | 2) + 4),
            ],
        )
        .expect("a query");
        assert_eq!(
            wrapped,
            "SELECT __duet_r.\"__duet_c1\"::int4 AS \"id\", __duet_r.\"__duet_c2\"::varchar(20) AS \"note\", \
             __duet_r.\"__duet_c3\"::numeric(10, 2) AS \"n\" FROM (\nSELECT * FROM t WHERE id = $1\n) \
             AS __duet_r(\"__duet_c1\", \"__duet_c2\", \"__duet_c3\")"
        );
    }

    #[test]
    fn writes_unknown_types_and_several_statements_stay_as_they_are() {
        let id = [col("id", 23, -1)];
        assert!(keep_result_shape("INSERT INTO t VALUES (1) RETURNING id", &id).is_none());
        assert!(keep_result_shape(
            "WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d",
            &id
        )
        .is_none());
        assert!(keep_result_shape("WITH d AS (SELECT 1 AS id) SELECT id FROM d", &id).is_some());
        assert!(keep_result_shape("SELECT 1; SELECT 2", &id).is_none());
        assert!(keep_result_shape("SELECT id INTO x FROM t", &id).is_none());
        assert!(keep_result_shape("SELECT e FROM t", &[col("e", 99_999, -1)]).is_none());
        assert!(keep_result_shape("SELECT", &[]).is_none());
        assert!(keep_result_shape("not sql", &id).is_none());
    }
}
