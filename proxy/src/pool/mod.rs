//! Transaction pooling: backend connections shared by clients, one transaction at a time.
//!
//! In `pool_mode = "transaction"` (see [`crate::config::PoolConfig`]) a client's session does not
//! own a backend connection. duet authenticates the client itself ([`auth`]), and the session
//! forwards to a [`link`] that attaches a connection of the (user, database)'s
//! [`backend_pool`] for each transaction. The session above the link is the same as in session
//! mode — the pause gate holds new transactions at the proxy, the dual-write hook rewrites
//! writes, the statistics count — so migrations, the flip and the safety net work the same in
//! both modes.

pub mod auth;
pub mod backend_pool;
pub mod database_ddl;
pub mod expect;
pub mod frames;
pub mod hazards;
pub mod link;
pub mod own_query;
pub mod settings;
pub mod statements;
pub mod translate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dashmap::DashMap;

use crate::backend::Backend;
use crate::config::{Config, PoolMode};
use auth::scram::{ScramSecret, ScramVerifier};
use backend_pool::BackendPool;

/// Where a pooled session's cancel requests go: the connection attached to it, if any.
#[derive(Debug, Default)]
pub struct Attachment {
    attached: Mutex<Option<(i32, Bytes)>>,
}

impl Attachment {
    /// A connection (`pid`, cancel `key`) serves the session now.
    pub fn attach(&self, pid: i32, key: Bytes) {
        *self.attached.lock().unwrap_or_else(|p| p.into_inner()) = Some((pid, key));
    }

    /// No connection serves it.
    pub fn detach(&self) {
        *self.attached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The attached connection's pid and cancel key.
    pub fn current(&self) -> Option<(i32, Bytes)> {
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Every (user, database)'s pool, made when its first client arrives.
#[derive(Debug)]
pub struct Pools {
    pools: DashMap<(String, String), Arc<BackendPool>>,
    verifiers: DashMap<String, Arc<ScramVerifier>>,
    /// Whether any pool was made (one load per query while none was: [`Pools::statement`]).
    any: AtomicBool,
}

impl Pools {
    /// The pools for `config` (none open yet). Verifiers of users given by password are derived
    /// here once, as PostgreSQL derives them at `ALTER ROLE … PASSWORD`.
    pub fn new(config: &Config) -> Pools {
        let verifiers = DashMap::new();
        for user in &config.pool.users {
            let verifier = match (&user.scram_verifier, &user.password) {
                (Some(text), _) => ScramVerifier::parse(text).ok(),
                (None, Some(password)) => Some(ScramVerifier::from_password(password)),
                (None, None) => None,
            };
            if let Some(verifier) = verifier {
                verifiers.insert(user.name.clone(), Arc::new(verifier));
            } else {
                tracing::warn!(user = %user.name, "[[pool.users]] entry has no usable secret: its clients cannot log in");
            }
        }
        Pools {
            pools: DashMap::new(),
            verifiers,
            any: AtomicBool::new(false),
        }
    }

    /// The SCRAM verifier clients of `user` are checked against (`None`: not in the list).
    pub fn verifier(&self, user: &str) -> Option<Arc<ScramVerifier>> {
        self.verifiers.get(user).map(|v| v.clone())
    }

    /// The pool of (`user`, `database`), made on first use.
    pub fn pool(
        &self,
        config: &Config,
        backend: &Arc<Backend>,
        user: &str,
        database: &str,
    ) -> Arc<BackendPool> {
        self.any.store(true, Ordering::Relaxed);
        self.pools
            .entry((user.to_owned(), database.to_owned()))
            .or_insert_with(|| {
                let secret = config
                    .pool
                    .user(user)
                    .and_then(|u| u.password.clone())
                    .map(ScramSecret::Password);
                Arc::new(BackendPool::new(
                    user,
                    database,
                    backend.clone(),
                    config.connect_timeout,
                    config.pool.wait_timeout,
                    config.pool.size_for(database),
                    secret,
                ))
            })
            .clone()
    }

    /// A client (pooled or not) sends `sql`: when it needs a database to itself (`DROP
    /// DATABASE`, `CREATE DATABASE … TEMPLATE`, …), the pools' idle connections to it are
    /// closed, as there would be no such session without duet ([`database_ddl`]).
    pub fn statement(&self, sql: &[u8]) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        for database in database_ddl::needs_alone(sql) {
            let closed: usize = self
                .pools
                .iter()
                .filter(|pool| pool.database() == database)
                .map(|pool| pool.close_idle())
                .sum();
            if closed > 0 {
                tracing::info!(%database, closed, "closed idle pooled connections: a client needs the database to itself");
            }
        }
    }

    /// Every pool as `status` shows it, by user and database.
    pub fn views(&self) -> Vec<backend_pool::PoolView> {
        let mut views: Vec<_> = self
            .pools
            .iter()
            .map(|entry| entry.value().view())
            .collect();
        views.sort_by(|a, b| (&a.user, &a.database).cmp(&(&b.user, &b.database)));
        views
    }
}

/// Whether sessions of `user` on `database` are pooled per transaction.
pub fn is_transaction_mode(config: &Config, user: &str, database: &str) -> bool {
    config.pool.mode_for(user, database) == PoolMode::Transaction
}
