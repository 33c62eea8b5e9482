//! The fleet: every duet in front of one database acts as one, with PostgreSQL as the
//! coordinator (no other infrastructure: the state already lives in schema `duet`).
//!
//! Each duet is a *member*: [`member`] keeps one connection of its own to the database, on which
//! it registers in `duet.members` ([`store`]), heartbeats, holds the advisory locks of the
//! migrations it drives, and listens for the fleet's [`Message`]s. Members learn of migrations
//! from a trigger on `duet.migrations` that announces every committed change, with a poll as the
//! fallback; a flip holds every member's clients through a hold → acknowledge → release exchange
//! that the flip's own transaction checks (see `crate::control::follow` and
//! `crate::control::flip`).
//!
//! This module only carries messages and membership; what a member does about a migration lives
//! in `crate::migration`.

pub mod error;
pub mod member;
pub mod message;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::sync::broadcast;

pub use error::FleetError;
pub use message::Message;
pub use store::MemberView;

/// What the member connection reports to whoever listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The member (re)registered: look at the stored state again.
    Joined,
    /// The member connection was lost: every advisory lock it held is gone.
    Lost,
    /// A message from the fleet.
    Message(Message),
}

/// This process's membership.
#[derive(Debug)]
pub struct Fleet {
    id: String,
    events: broadcast::Sender<Event>,
    client: ArcSwapOption<tokio_postgres::Client>,
    members: Mutex<Vec<MemberView>>,
    tokens: AtomicU64,
    /// Migrations whose driver lock this process holds: advisory locks are re-entrant within
    /// the one connection, so the database alone cannot say that a second task here takes it.
    driving: Mutex<std::collections::HashSet<i64>>,
    /// Set once the proxy leaves the fleet (shutdown).
    left: tokio::sync::watch::Sender<bool>,
    /// The latest holds released (a hold handled late — this member was frozen or slow — may
    /// find its release already past).
    released: Mutex<std::collections::VecDeque<String>>,
    /// One hold of this member's clients at a time: a second hold acknowledged while the gate
    /// is still paused by the first would be left open when the first resumes it.
    pub(crate) holding: tokio::sync::Mutex<()>,
}

/// How many released holds [`Fleet::is_released`] remembers.
const RELEASED_KEPT: usize = 64;

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    /// A member with a fresh id, not yet connected.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Fleet {
            id: fresh_id(),
            events,
            client: ArcSwapOption::empty(),
            members: Mutex::new(Vec::new()),
            tokens: AtomicU64::new(0),
            driving: Mutex::new(std::collections::HashSet::new()),
            left: tokio::sync::watch::Sender::new(false),
            released: Mutex::new(std::collections::VecDeque::new()),
            holding: tokio::sync::Mutex::new(()),
        }
    }

    /// Leaves the fleet (proxy shutdown): the member task removes this member's row and closes
    /// its connection, which releases every driver lock it held.
    pub fn leave(&self) {
        self.left.send_replace(true);
    }

    /// Resolves once [`Fleet::leave`] was called.
    pub async fn left(&self) {
        let mut left = self.left.subscribe();
        // An error means the sender is gone: nothing can leave any more, wait forever.
        if left.wait_for(|left| *left).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether [`Fleet::leave`] was called.
    pub fn has_left(&self) -> bool {
        *self.left.borrow()
    }

    /// This member's id (unique per process start).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Whether the hold `token` was released already.
    pub fn is_released(&self, token: &str) -> bool {
        self.released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|t| t == token)
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Event::Message(Message::Release { token }) = &event {
            let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
            if released.len() == RELEASED_KEPT {
                released.pop_front();
            }
            released.push_back(token.clone());
        }
        // No receiver is fine: nobody waits.
        let _ = self.events.send(event);
    }

    /// The member connection, while it is up (the advisory locks of driven migrations live on
    /// it).
    pub fn client(&self) -> Option<Arc<tokio_postgres::Client>> {
        self.client.load_full()
    }

    pub(crate) fn set_client(&self, client: Option<Arc<tokio_postgres::Client>>) {
        self.client.store(client);
    }

    /// The live members as of the last heartbeat (this one included once registered).
    pub fn members(&self) -> Vec<MemberView> {
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_members(&self, members: Vec<MemberView>) {
        *self.members.lock().unwrap_or_else(|p| p.into_inner()) = members;
    }

    /// A token no other hold or barrier of the fleet uses.
    pub fn token(&self, kind: &str) -> String {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        format!("{kind}-{}-{n}", self.id)
    }

    /// Takes the driver lock of migration `id` on the member connection if no member (this one
    /// included) holds it.
    pub async fn try_drive(&self, id: i64) -> Result<bool, FleetError> {
        let Some(client) = self.client() else {
            return Err(FleetError::Disconnected);
        };
        let key = i32::try_from(id).map_err(|_| FleetError::IdRange(id))?;
        if !self.driving_set().insert(id) {
            return Ok(false);
        }
        let taken = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&store::DRIVER_LOCK_CLASS, &key],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .map_err(FleetError::db("taking the driver lock"));
        if !matches!(taken, Ok(true)) {
            self.driving_set().remove(&id);
        }
        taken
    }

    fn driving_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i64>> {
        self.driving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every driver lock (the member connection that held them is gone).
    pub(crate) fn forget_driving(&self) {
        self.driving_set().clear();
    }

    /// Gives up the driver lock of migration `id` (every hold of it by this member).
    pub async fn stop_driving(&self, id: i64) {
        self.driving_set().remove(&id);
        let (Some(client), Ok(key)) = (self.client(), i32::try_from(id)) else {
            return;
        };
        // Session-level advisory locks count: release every hold this connection has.
        for _ in 0..64 {
            match client
                .query_one(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&store::DRIVER_LOCK_CLASS, &key],
                )
                .await
            {
                Ok(row) if row.get::<_, bool>(0) => continue,
                Ok(_) => return,
                Err(err) => {
                    tracing::debug!(migration = id, %err, "releasing the driver lock");
                    return;
                }
            }
        }
    }
}

/// A member id: the host's name is not needed (the row says where the member listens), only
/// uniqueness per start, from the process id, the clock and the std hasher's random keys.
fn fresh_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    format!("m{:016x}", hasher.finish())
}
