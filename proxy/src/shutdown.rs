//! Graceful shutdown, shared by SIGTERM/SIGINT and the admin `shutdown` command.
//!
//! Phases: running → draining (the listener stops accepting; sessions may finish on their own) →
//! terminating (at the end of the budget every remaining client gets FATAL 57P01 and is closed) →
//! done (the process exits 0).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::session_registry::Sessions;

/// How long sessions get to deliver their FATAL and close once terminating.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// Where the shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShutdownPhase {
    /// Serving.
    Running,
    /// Not accepting; waiting for sessions to end.
    Draining,
    /// Closing the remaining sessions.
    Terminating,
    /// Everything is closed.
    Done,
}

/// The shutdown switch.
#[derive(Debug)]
pub struct Shutdown {
    phase: watch::Sender<ShutdownPhase>,
    started: AtomicBool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A switch in phase [`ShutdownPhase::Running`].
    pub fn new() -> Self {
        Shutdown {
            phase: watch::Sender::new(ShutdownPhase::Running),
            started: AtomicBool::new(false),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> ShutdownPhase {
        *self.phase.borrow()
    }

    /// Waits until the shutdown has reached `phase`.
    pub async fn reached(&self, phase: ShutdownPhase) {
        let mut rx = self.phase.subscribe();
        // The sender lives as long as `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|p| *p >= phase).await;
    }

    /// A receiver for sessions, which watch for [`ShutdownPhase::Terminating`].
    pub fn subscribe(&self) -> watch::Receiver<ShutdownPhase> {
        self.phase.subscribe()
    }

    /// Skips the rest of the budget: remaining sessions are closed now (a second SIGTERM/SIGINT).
    /// Does nothing unless a shutdown has begun.
    pub fn hurry(&self) {
        if self.started.load(Ordering::SeqCst) {
            self.phase.send_if_modified(|phase| {
                if *phase < ShutdownPhase::Terminating {
                    *phase = ShutdownPhase::Terminating;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Starts the shutdown with a budget (once; later calls return `false` and change nothing).
    pub fn begin(self: &Arc<Self>, sessions: Arc<Sessions>, budget: Duration) -> bool {
        if self.started.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.phase.send_replace(ShutdownPhase::Draining);
        let this = self.clone();
        tokio::spawn(async move {
            tracing::info!(sessions = sessions.len(), budget = ?budget, "shutting down: no longer accepting clients");
            let drained = tokio::time::timeout(budget, sessions.wait_empty());
            let hurried = this.reached(ShutdownPhase::Terminating);
            let spent = tokio::select! {
                outcome = drained => outcome.is_err(),
                _ = hurried => true,
            };
            if spent && !sessions.is_empty() {
                tracing::info!(sessions = sessions.len(), "closing the remaining sessions");
            }
            this.hurry();
            let _ = tokio::time::timeout(TERMINATE_GRACE, sessions.wait_empty()).await;
            this.phase.send_replace(ShutdownPhase::Done);
        });
        true
    }
}
