//! The operator's input reduced to a list of [`Change`]s on one table. SQL statements are parsed
//! with PostgreSQL's grammar (pg_query) and re-printed with its deparser, so every identifier and
//! expression in a step is in a form the server reads back exactly.

use pg_query::protobuf::{
    self, node::Node as NodeEnum, AlterTableCmd, AlterTableType, ConstrType, Node, ObjectType,
    RawStmt, ResTarget, TypeCast, TypeName,
};

use super::PlanError;
use crate::ident::quote_ident;

/// Stands for the table in the statements kept in [`Change`]s (`ADD COLUMN`, `ADD CONSTRAINT`,
/// `CREATE INDEX`); the planner puts the resolved, schema-qualified name in its place with
/// [`qualify`], so a step never depends on the controller connection's `search_path`.
pub const TABLE_PLACEHOLDER: &str = "__duet_table__";

/// `sql` with the table placeholder replaced by `table` (quoted, qualified).
pub fn qualify(sql: &str, table: &str) -> String {
    sql.replacen(TABLE_PLACEHOLDER, table, 1)
}

fn placeholder() -> protobuf::RangeVar {
    protobuf::RangeVar {
        relname: TABLE_PLACEHOLDER.into(),
        inh: true,
        relpersistence: "p".into(),
        ..Default::default()
    }
}

/// A table as named in the input (`schema` empty when unqualified).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableRef {
    /// Schema as written (may be empty).
    pub schema: String,
    /// Table name.
    pub name: String,
}

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ALTER COLUMN c TYPE t [USING e]` (pgroll `alter_column` with `type`).
    AlterType {
        /// The column.
        column: String,
        /// The new type as SQL (`bigint`, `numeric(12,2)`).
        new_type: String,
        /// Expression over the old row computing the new value (`USING` / pgroll `up`).
        using: Option<String>,
        /// Expression over the new row computing the old value (pgroll `down`).
        down: Option<String>,
    },
    /// `RENAME COLUMN a TO b`.
    Rename {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// `ADD COLUMN …` as one statement, and whether its default is volatile.
    AddColumn {
        /// The new column.
        column: String,
        /// The whole `ALTER TABLE … ADD COLUMN …` statement.
        sql: String,
    },
    /// `ALTER COLUMN c SET NOT NULL`.
    SetNotNull {
        /// The column.
        column: String,
    },
    /// `ADD CONSTRAINT name CHECK/FOREIGN KEY … NOT VALID`, then `VALIDATE`.
    AddConstraint {
        /// Constraint name.
        name: String,
        /// The `ADD CONSTRAINT … NOT VALID` statement.
        sql: String,
    },
    /// `ADD CONSTRAINT name UNIQUE (cols)`: unique index CONCURRENTLY, then `USING INDEX`.
    AddUnique {
        /// Constraint name.
        name: String,
        /// Columns.
        columns: Vec<String>,
    },
    /// `CREATE INDEX CONCURRENTLY …`.
    CreateIndex {
        /// The statement, already CONCURRENTLY.
        sql: String,
    },
    /// `DROP COLUMN c` (contract).
    DropColumn {
        /// The column.
        column: String,
    },
    /// `DROP INDEX CONCURRENTLY` (contract).
    DropIndex {
        /// Index name, schema-qualified when written so, quoted.
        name: String,
    },
}

/// Parsed input: the table and its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The table.
    pub table: TableRef,
    /// The changes, in input order.
    pub changes: Vec<Change>,
}

impl Changes {
    /// Record `table` (the same for every change, else refuse) and push a change.
    pub fn add(&mut self, table: TableRef, change: Change) -> Result<(), PlanError> {
        if self.table.name.is_empty() {
            self.table = table;
        } else if self.table.name != table.name
            || (!self.table.schema.is_empty()
                && !table.schema.is_empty()
                && self.table.schema != table.schema)
        {
            return Err(PlanError::Unsupported(format!(
                "the input changes both {} and {}: one table per migration; split it into one \
                 migration per table",
                show(&self.table),
                show(&table)
            )));
        } else if self.table.schema.is_empty() {
            self.table.schema = table.schema;
        }
        self.changes.push(change);
        Ok(())
    }
}

fn show(t: &TableRef) -> String {
    if t.schema.is_empty() {
        quote_ident(&t.name)
    } else {
        format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
    }
}

fn deparse_stmt(node: NodeEnum) -> Result<String, PlanError> {
    let result = protobuf::ParseResult {
        version: 180000,
        stmts: vec![RawStmt {
            stmt: Some(Box::new(Node { node: Some(node) })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    pg_query::deparse(&result, Default::default())
        .map_err(|e| PlanError::Invalid(format!("cannot print the statement back: {e}")))
}

/// The SQL text of an expression node (deparsed as `SELECT <expr>`). The statement around it is
/// parsed from a template, so every enum field the deparser checks holds a valid value.
pub fn deparse_expr(expr: &Node) -> Result<String, PlanError> {
    let template = pg_query::parse("SELECT 1", 0)
        .map_err(|e| PlanError::Invalid(format!("cannot build the expression printer: {e}")))?;
    let mut select = match template
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.clone())
    {
        Some(NodeEnum::SelectStmt(s)) => s,
        _ => {
            return Err(PlanError::Invalid(
                "cannot build the expression printer".into(),
            ))
        }
    };
    select.target_list = vec![Node {
        node: Some(NodeEnum::ResTarget(Box::new(ResTarget {
            val: Some(Box::new(expr.clone())),
            ..Default::default()
        }))),
    }];
    let text = deparse_stmt(NodeEnum::SelectStmt(select))?;
    Ok(text
        .strip_prefix("SELECT ")
        .unwrap_or(&text)
        .trim()
        .to_string())
}

/// The SQL text of a type name (deparsed as `SELECT NULL::<type>`).
pub fn deparse_type(tn: &TypeName) -> Result<String, PlanError> {
    let cast = TypeCast {
        arg: Some(Box::new(Node {
            node: Some(NodeEnum::AConst(protobuf::AConst {
                isnull: true,
                ..Default::default()
            })),
        })),
        type_name: Some(tn.clone()),
        location: 0,
    };
    let text = deparse_expr(&Node {
        node: Some(NodeEnum::TypeCast(Box::new(cast))),
    })?;
    Ok(text
        .strip_prefix("NULL::")
        .unwrap_or(&text)
        .trim()
        .to_string())
}

/// Parse a type given as text (pgroll's `type`) through the grammar, to reject injection and
/// normalise it.
pub fn parse_type_text(text: &str) -> Result<String, PlanError> {
    let stmt = format!("SELECT NULL::{text}");
    let parsed = pg_query::parse(&stmt, 0)
        .map_err(|e| PlanError::Invalid(format!("type {text:?} does not parse: {e}")))?;
    if parsed.protobuf.stmts.len() != 1 {
        return Err(PlanError::Invalid(format!(
            "type {text:?} is not a single type name"
        )));
    }
    let node = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.as_ref());
    if let Some(NodeEnum::SelectStmt(s)) = node {
        if s.target_list.len() == 1 {
            if let Some(NodeEnum::ResTarget(rt)) = s.target_list[0].node.as_ref() {
                if let Some(NodeEnum::TypeCast(tc)) = rt.val.as_ref().and_then(|v| v.node.as_ref())
                {
                    if let Some(tn) = &tc.type_name {
                        return deparse_type(tn);
                    }
                }
            }
        }
    }
    Err(PlanError::Invalid(format!(
        "type {text:?} is not a single type name"
    )))
}

/// Parse an expression given as text (pgroll's `up`/`down`/`check`) through the grammar: exactly
/// one expression, re-printed.
pub fn parse_expr_text(text: &str) -> Result<String, PlanError> {
    let stmt = format!("SELECT {text}");
    let parsed = pg_query::parse(&stmt, 0)
        .map_err(|e| PlanError::Invalid(format!("expression {text:?} does not parse: {e}")))?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() == 1 {
        if let Some(NodeEnum::SelectStmt(s)) = stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref())
        {
            if s.target_list.len() == 1 && s.from_clause.is_empty() && s.where_clause.is_none() {
                if let Some(NodeEnum::ResTarget(rt)) = s.target_list[0].node.as_ref() {
                    if let Some(v) = &rt.val {
                        return deparse_expr(v);
                    }
                }
            }
        }
    }
    Err(PlanError::Invalid(format!(
        "{text:?} is not a single SQL expression"
    )))
}

fn range_ref(rv: Option<&protobuf::RangeVar>) -> Result<TableRef, PlanError> {
    let rv = rv.ok_or_else(|| PlanError::Invalid("statement names no table".into()))?;
    Ok(TableRef {
        schema: rv.schemaname.clone(),
        name: rv.relname.clone(),
    })
}

fn string_list(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

const SUPPORTED: &str = "supported: ALTER TABLE … ALTER COLUMN … TYPE … [USING …], RENAME COLUMN, \
     ADD COLUMN, ALTER COLUMN … SET NOT NULL, ADD CONSTRAINT (CHECK, FOREIGN KEY, UNIQUE), \
     DROP COLUMN, CREATE INDEX, DROP INDEX";

/// Parse SQL statements into changes on one table.
pub fn parse_sql(sql: &str) -> Result<Changes, PlanError> {
    let parsed = pg_query::parse(sql, 0)
        .map_err(|e| PlanError::Invalid(format!("the SQL does not parse: {e}")))?;
    let mut out = Changes {
        table: TableRef::default(),
        changes: Vec::new(),
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::AlterTableStmt(at) => {
                if at.objtype != ObjectType::ObjectTable as i32 {
                    return Err(PlanError::Unsupported(format!(
                        "only ALTER TABLE is planned; {SUPPORTED}"
                    )));
                }
                let table = range_ref(at.relation.as_ref())?;
                for cmd in &at.cmds {
                    if let Some(NodeEnum::AlterTableCmd(c)) = cmd.node.as_ref() {
                        let change = alter_cmd(c)?;
                        out.add(table.clone(), change)?;
                    }
                }
            }
            NodeEnum::RenameStmt(r) if r.rename_type == ObjectType::ObjectColumn as i32 => {
                let table = range_ref(r.relation.as_ref())?;
                out.add(
                    table,
                    Change::Rename {
                        from: r.subname.clone(),
                        to: r.newname.clone(),
                    },
                )?;
            }
            NodeEnum::IndexStmt(ix) => {
                let table = range_ref(ix.relation.as_ref())?;
                if ix.idxname.is_empty() {
                    return Err(PlanError::Invalid(
                        "name the index (CREATE INDEX name ON …) so a failed concurrent build can \
                         be found and dropped"
                            .into(),
                    ));
                }
                let mut ix = ix.as_ref().clone();
                ix.concurrent = true;
                ix.if_not_exists = false;
                ix.relation = Some(placeholder());
                let sql = deparse_stmt(NodeEnum::IndexStmt(Box::new(ix)))?;
                out.add(table, Change::CreateIndex { sql })?;
            }
            NodeEnum::DropStmt(d) if d.remove_type == ObjectType::ObjectIndex as i32 => {
                for obj in &d.objects {
                    let parts = match obj.node.as_ref() {
                        Some(NodeEnum::List(l)) => string_list(&l.items),
                        _ => Vec::new(),
                    };
                    if parts.is_empty() {
                        return Err(PlanError::Invalid("DROP INDEX names no index".into()));
                    }
                    // The table is found from the index when planning.
                    out.changes.push(Change::DropIndex {
                        name: parts
                            .iter()
                            .map(|p| quote_ident(p))
                            .collect::<Vec<_>>()
                            .join("."),
                    });
                }
            }
            _ => {
                return Err(PlanError::Unsupported(format!(
                    "this statement is not an online schema change duet plans; {SUPPORTED}. Run \
                     other statements directly (with a short lock_timeout)"
                )))
            }
        }
    }
    if out.changes.is_empty() {
        return Err(PlanError::Invalid("the input holds no statement".into()));
    }
    Ok(out)
}

fn alter_cmd(c: &AlterTableCmd) -> Result<Change, PlanError> {
    let subtype = AlterTableType::try_from(c.subtype).unwrap_or(AlterTableType::Undefined);
    match subtype {
        AlterTableType::AtAlterColumnType => {
            let Some(NodeEnum::ColumnDef(def)) = c.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err(PlanError::Invalid(
                    "ALTER COLUMN TYPE without a type".into(),
                ));
            };
            let tn = def
                .type_name
                .as_ref()
                .ok_or_else(|| PlanError::Invalid("ALTER COLUMN TYPE without a type".into()))?;
            if def.coll_clause.is_some() {
                return Err(PlanError::Unsupported(
                    "ALTER COLUMN … TYPE … COLLATE is not planned; change the type and the \
                     collation in separate migrations"
                        .into(),
                ));
            }
            let using = match &def.raw_default {
                Some(e) => Some(deparse_expr(e)?),
                None => None,
            };
            Ok(Change::AlterType {
                column: c.name.clone(),
                new_type: deparse_type(tn)?,
                using,
                down: None,
            })
        }
        AlterTableType::AtAddColumn => {
            let Some(NodeEnum::ColumnDef(def)) = c.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err(PlanError::Invalid("ADD COLUMN without a column".into()));
            };
            let sql = deparse_stmt(NodeEnum::AlterTableStmt(protobuf::AlterTableStmt {
                relation: Some(placeholder()),
                cmds: vec![Node {
                    node: Some(NodeEnum::AlterTableCmd(Box::new(c.clone()))),
                }],
                objtype: ObjectType::ObjectTable as i32,
                missing_ok: false,
            }))?;
            Ok(Change::AddColumn {
                column: def.colname.clone(),
                sql,
            })
        }
        AlterTableType::AtSetNotNull => Ok(Change::SetNotNull {
            column: c.name.clone(),
        }),
        AlterTableType::AtDropColumn => Ok(Change::DropColumn {
            column: c.name.clone(),
        }),
        AlterTableType::AtAddConstraint => {
            let Some(NodeEnum::Constraint(con)) = c.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err(PlanError::Invalid(
                    "ADD CONSTRAINT without a constraint".into(),
                ));
            };
            if con.conname.is_empty() {
                return Err(PlanError::Invalid(
                    "name the constraint (ADD CONSTRAINT name …) so it can be validated \
                     separately"
                        .into(),
                ));
            }
            let kind = ConstrType::try_from(con.contype).unwrap_or(ConstrType::Undefined);
            match kind {
                ConstrType::ConstrCheck | ConstrType::ConstrForeign => {
                    let mut con = con.as_ref().clone();
                    con.skip_validation = true;
                    con.initially_valid = false;
                    let mut cmd = c.clone();
                    cmd.def = Some(Box::new(Node {
                        node: Some(NodeEnum::Constraint(Box::new(con.clone()))),
                    }));
                    let sql = deparse_stmt(NodeEnum::AlterTableStmt(protobuf::AlterTableStmt {
                        relation: Some(placeholder()),
                        cmds: vec![Node {
                            node: Some(NodeEnum::AlterTableCmd(Box::new(cmd))),
                        }],
                        objtype: ObjectType::ObjectTable as i32,
                        missing_ok: false,
                    }))?;
                    Ok(Change::AddConstraint {
                        name: con.conname.clone(),
                        sql,
                    })
                }
                ConstrType::ConstrUnique if con.indexname.is_empty() => Ok(Change::AddUnique {
                    name: con.conname.clone(),
                    columns: string_list(&con.keys),
                }),
                _ => Err(PlanError::Unsupported(
                    "only CHECK, FOREIGN KEY and UNIQUE constraints are planned; add a primary \
                     key by building a unique index CONCURRENTLY and then ADD PRIMARY KEY USING \
                     INDEX"
                        .into(),
                )),
            }
        }
        _ => Err(PlanError::Unsupported(format!(
            "this ALTER TABLE action is not planned; {SUPPORTED}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Change {
        let mut c = parse_sql(sql).expect("parses");
        assert_eq!(c.changes.len(), 1);
        c.changes.remove(0)
    }

    #[test]
    fn type_changes_keep_typmods_and_using() {
        assert_eq!(
            one("ALTER TABLE app.t ALTER COLUMN \"Amt\" TYPE numeric(12,2) USING \"Amt\" / 100"),
            Change::AlterType {
                column: "Amt".into(),
                new_type: "numeric(12, 2)".into(),
                using: Some("\"Amt\" / 100".into()),
                down: None,
            }
        );
    }

    #[test]
    fn indexes_become_concurrent_on_the_placeholder() {
        let Change::CreateIndex { sql } = one("CREATE INDEX i ON t (a) WHERE a > 0") else {
            panic!("not an index");
        };
        assert_eq!(
            qualify(&sql, "\"public\".\"t\""),
            "CREATE INDEX CONCURRENTLY i ON \"public\".\"t\" USING btree (a) WHERE a > 0"
        );
    }

    #[test]
    fn constraints_are_added_not_valid() {
        let Change::AddConstraint { sql, name } =
            one("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)")
        else {
            panic!("not a constraint");
        };
        assert_eq!(name, "c");
        assert!(sql.ends_with("NOT VALID"), "{sql}");
    }

    #[test]
    fn two_tables_and_other_statements_are_refused() {
        assert!(matches!(
            parse_sql("ALTER TABLE a DROP COLUMN x; ALTER TABLE b DROP COLUMN y"),
            Err(PlanError::Unsupported(m)) if m.contains("one table per migration")
        ));
        assert!(matches!(
            parse_sql("TRUNCATE t"),
            Err(PlanError::Unsupported(_))
        ));
        assert!(matches!(
            parse_sql("ALTER TABLE"),
            Err(PlanError::Invalid(_))
        ));
        assert!(matches!(
            parse_type_text("int; DROP TABLE t"),
            Err(PlanError::Invalid(_))
        ));
        assert!(matches!(
            parse_expr_text("1 FROM t"),
            Err(PlanError::Invalid(_))
        ));
    }
}
