//! Transaction context while replaying a migration: are we inside a transaction block, has a lock
//! timeout been set, is an ACCESS EXCLUSIVE lock already held. Locks are held to the end of the
//! transaction, so the same statement is harmless or dangerous depending on what came before it.

use pg_query::protobuf::{self, node::Node as N, TransactionStmtKind as K};

use super::classify::Classification;
use super::lock::LockMode;

/// The transaction state before a statement.
#[derive(Debug, Clone, Default)]
pub struct TxState {
    /// Inside a transaction block (the runner's wrapper or an explicit `BEGIN`).
    pub in_transaction: bool,
    /// The runner wraps the whole file in a transaction.
    pub file_wrapped: bool,
    /// Statement index of an explicit `BEGIN` not yet committed.
    pub open_begin: Option<usize>,
    /// Id of the current transaction.
    pub tx_id: Option<u64>,
    next_tx_id: u64,
    /// `lock_timeout` is set to a non-zero value.
    pub lock_timeout_set: bool,
    lock_timeout_local: bool,
    /// `statement_timeout` is set to a non-zero value.
    pub statement_timeout_set: bool,
    statement_timeout_local: bool,
    /// An ACCESS EXCLUSIVE lock on a visible table is held: (table, line of the statement).
    pub access_exclusive_held: Option<(String, usize)>,
    /// The statements-after-lock finding was already given for this transaction.
    pub access_exclusive_reported: bool,
    /// Strongest lock held on a visible table in this transaction.
    pub strongest_lock: Option<LockMode>,
    /// Tables altered so far in this transaction (for "combine ALTER TABLEs").
    pub altered_tables: Vec<String>,
    /// DDL on a visible table has run in this transaction.
    pub ddl_in_transaction: bool,
}

impl TxState {
    /// Resets the state for a new file; `wrapped` says whether the runner wraps it in a
    /// transaction, `lock_timeout` whether the runner's connection starts with one. A `SET` in an
    /// earlier file is not assumed to carry over (runners may use a new connection per file).
    pub fn start_file(&mut self, wrapped: bool, lock_timeout: bool) {
        let next = self.next_tx_id;
        *self = TxState {
            next_tx_id: next,
            file_wrapped: wrapped,
            lock_timeout_set: lock_timeout,
            ..TxState::default()
        };
        if wrapped {
            self.begin();
        }
    }

    fn begin(&mut self) {
        self.next_tx_id += 1;
        self.tx_id = Some(self.next_tx_id);
        self.in_transaction = true;
    }

    fn end(&mut self) {
        self.in_transaction = false;
        self.tx_id = None;
        self.open_begin = None;
        self.access_exclusive_held = None;
        self.access_exclusive_reported = false;
        self.strongest_lock = None;
        self.altered_tables.clear();
        self.ddl_in_transaction = false;
        if self.lock_timeout_local {
            self.lock_timeout_set = false;
            self.lock_timeout_local = false;
        }
        if self.statement_timeout_local {
            self.statement_timeout_set = false;
            self.statement_timeout_local = false;
        }
    }

    /// The transaction a statement runs in: the open one, or a fresh autocommit one.
    pub fn statement_tx(&mut self) -> Option<u64> {
        if self.in_transaction {
            self.tx_id
        } else {
            self.next_tx_id += 1;
            Some(self.next_tx_id)
        }
    }

    /// Updates the state after statement `index` (starting on `line`) ran.
    pub fn after(&mut self, index: usize, line: usize, stmt: Option<&N>, class: &Classification) {
        match stmt {
            Some(N::TransactionStmt(t)) => match t.kind() {
                K::TransStmtBegin | K::TransStmtStart => {
                    if !self.in_transaction {
                        self.begin();
                    }
                    self.open_begin = Some(index);
                }
                K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare => self.end(),
                _ => {}
            },
            Some(N::VariableSetStmt(v)) => self.set_variable(v),
            _ => {
                if self.access_exclusive_held.is_some() && !is_trivial(class) {
                    self.access_exclusive_reported = true;
                }
                if self.in_transaction {
                    let visible: Vec<(&String, &LockMode)> = class
                        .locks
                        .iter()
                        .filter(|(r, _)| !class.fresh.contains(r))
                        .collect();
                    for (rel, mode) in &visible {
                        if **mode == LockMode::AccessExclusive
                            && self.access_exclusive_held.is_none()
                        {
                            self.access_exclusive_held = Some(((*rel).clone(), line));
                        }
                        self.strongest_lock = self.strongest_lock.max(Some(**mode));
                    }
                    if class.kind.starts_with("alter_table.") {
                        for t in &class.tables {
                            self.altered_tables.push(t.clone());
                        }
                    }
                    if !visible.is_empty()
                        && !matches!(
                            class.phase,
                            super::facts::ChangePhase::Data | super::facts::ChangePhase::Neutral
                        )
                    {
                        self.ddl_in_transaction = true;
                    }
                }
            }
        }
    }

    fn set_variable(&mut self, v: &protobuf::VariableSetStmt) {
        let value_is_zero = v.args.iter().all(|a| match a.node.as_ref() {
            Some(N::AConst(c)) => match c.val.as_ref() {
                Some(protobuf::a_const::Val::Ival(i)) => i.ival == 0,
                Some(protobuf::a_const::Val::Sval(s)) => {
                    s.sval.trim().trim_start_matches('0').is_empty() || s.sval.trim() == "0"
                }
                _ => false,
            },
            _ => false,
        });
        let reset = matches!(
            v.kind(),
            protobuf::VariableSetKind::VarReset
                | protobuf::VariableSetKind::VarResetAll
                | protobuf::VariableSetKind::VarSetDefault
        );
        let on = !reset && !value_is_zero;
        let all = v.kind() == protobuf::VariableSetKind::VarResetAll;
        if v.name == "lock_timeout" || all {
            self.lock_timeout_set = on;
            self.lock_timeout_local = v.is_local;
        }
        if v.name == "statement_timeout" || all {
            self.statement_timeout_set = on;
            self.statement_timeout_local = v.is_local;
        }
    }
}

/// Statements that do not extend the time a lock is held in any meaningful way.
pub fn is_trivial(class: &Classification) -> bool {
    matches!(
        class.kind.as_str(),
        "commit"
            | "rollback"
            | "set"
            | "reset"
            | "savepoint"
            | "release_savepoint"
            | "comment"
            | "unparsed"
    )
}
