//! The pause gate: PgBouncer's PAUSE, exact, and the primitive the migration flip is built on.
//!
//! While paused, a session that is at a transaction boundary (idle, outside a transaction) and
//! receives new work holds it, without error, until resume; sessions with work in flight (an
//! unfinished request, an open extended-protocol batch, an open transaction block) carry on. A
//! pause completes when no session has work in flight.
//!
//! # Why no session can slip through
//!
//! Each session has a `busy` flag; the gate has a `paused` flag. A session starting work *stores*
//! `busy = true` and then *loads* `paused`; the pauser *stores* `paused = true` and then *loads*
//! every `busy`. All four operations are `SeqCst`, so in their single total order at least one side
//! sees the other's store (Dekker's argument): either the session sees the pause (and withdraws its
//! `busy` before holding), or the pauser sees the session busy (and waits for it to finish). When
//! not paused, starting a transaction costs one uncontended store to the session's own flag and one
//! load of the shared flag, which is read-mostly and stays in every core's cache.
//!
//! Wake-ups cannot be lost either: waiters register with the [`Notify`] *before* checking the
//! condition they wait for, and every state change that could satisfy it notifies after it is made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::session_registry::{SessionInfo, SessionView, Sessions};

/// How a pause ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PauseOutcome {
    /// Every session is at a boundary; the proxy stays paused until resume.
    Paused {
        /// Time spent waiting for in-flight work.
        waited: Duration,
    },
    /// The timeout passed first: the pause was released and these sessions kept it from being quiet.
    TimedOut {
        /// Time spent waiting.
        waited: Duration,
        /// The sessions that still had work in flight.
        blocking: Vec<SessionView>,
    },
    /// A resume arrived before the proxy became quiet.
    Resumed {
        /// Time spent waiting.
        waited: Duration,
    },
}

/// The gate shared by all sessions.
#[derive(Debug, Default)]
pub struct Gate {
    paused: AtomicBool,
    /// Wakes held sessions on resume.
    resumed: Notify,
    /// Wakes a pauser when a session becomes idle (or ends) while paused.
    quieted: Notify,
    /// One pause at a time.
    pausing: tokio::sync::Mutex<()>,
}

impl Gate {
    /// A gate that is open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether new transactions are held right now.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Called by a session at a boundary before it forwards new work. Returns `true` when the work
    /// may proceed (the session is now counted as busy), `false` when the gate is paused (the session
    /// stays idle and must [`Gate::wait_resumed`], then try again).
    pub fn try_begin(&self, session: &SessionInfo) -> bool {
        session.busy.store(true, Ordering::SeqCst);
        if !self.paused.load(Ordering::SeqCst) {
            return true;
        }
        self.end(session);
        false
    }

    /// Called by a session when it reaches a boundary (or ends): it no longer has work in flight.
    pub fn end(&self, session: &SessionInfo) {
        session.busy.store(false, Ordering::SeqCst);
        if self.paused.load(Ordering::SeqCst) {
            self.quieted.notify_waiters();
        }
    }

    /// Waits until the gate is open.
    pub async fn wait_resumed(&self) {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            if !self.paused.load(Ordering::SeqCst) {
                return;
            }
            resumed.await;
        }
    }

    /// Opens the gate; held sessions proceed. Resuming an open gate is fine.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.resumed.notify_waiters();
        self.quieted.notify_waiters();
    }

    /// Closes the gate and waits until every session is at a boundary, or `timeout` passes (then the
    /// gate is opened again and the blocking sessions are reported).
    pub async fn pause(&self, sessions: &Sessions, timeout: Duration) -> PauseOutcome {
        let _one_at_a_time = self.pausing.lock().await;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + timeout);
        self.paused.store(true, Ordering::SeqCst);
        loop {
            let quieted = self.quieted.notified();
            tokio::pin!(quieted);
            quieted.as_mut().enable();
            if !self.paused.load(Ordering::SeqCst) {
                return PauseOutcome::Resumed {
                    waited: started.elapsed(),
                };
            }
            let mut quiet = true;
            sessions.for_each(|s| quiet &= !s.is_busy());
            if quiet {
                return PauseOutcome::Paused {
                    waited: started.elapsed(),
                };
            }
            tokio::select! {
                _ = &mut quieted => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let mut blocking = Vec::new();
                    sessions.for_each(|s| if s.is_busy() { blocking.push(s.view()) });
                    blocking.sort_by_key(|v| v.id);
                    if blocking.is_empty() {
                        // The last one finished just now: the pause did succeed.
                        return PauseOutcome::Paused { waited: started.elapsed() };
                    }
                    self.resume();
                    return PauseOutcome::TimedOut { waited: started.elapsed(), blocking };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn addr() -> crate::client_stream::ClientPeer {
        "127.0.0.1:1".parse().unwrap()
    }

    #[tokio::test]
    async fn pause_with_no_sessions_is_immediate() {
        let gate = Gate::new();
        let sessions = Sessions::new();
        let outcome = gate.pause(&sessions, Duration::from_secs(5)).await;
        assert!(matches!(outcome, PauseOutcome::Paused { .. }));
        assert!(gate.is_paused());
        gate.resume();
        assert!(!gate.is_paused());
    }

    #[tokio::test]
    async fn idle_sessions_are_held_and_released() {
        let gate = Arc::new(Gate::new());
        let sessions = Sessions::new();
        let session = sessions.register(addr());
        assert!(matches!(
            gate.pause(&sessions, Duration::from_secs(5)).await,
            PauseOutcome::Paused { .. }
        ));
        // New work at a boundary is refused while paused, and leaves the session idle.
        assert!(!gate.try_begin(&session));
        assert!(!session.is_busy());
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait_resumed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.resume();
        waiter.await.unwrap();
        assert!(gate.try_begin(&session));
        assert!(session.is_busy());
    }

    /// Sessions run on their own worker threads' runtimes, the pauser on the control runtime: a
    /// session held on one runtime is released by a resume from another, and a pause on one
    /// completes when a session on another ends its work.
    #[test]
    fn works_across_runtimes() {
        let gate = Arc::new(Gate::new());
        let sessions = Arc::new(Sessions::new());
        let session = sessions.register(addr());
        let control = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(gate.try_begin(&session));
        let (ended_tx, ended_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn({
            let (gate, session) = (gate.clone(), session.clone());
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    // Wait until the pauser has closed the gate, then end the work in flight.
                    while !gate.is_paused() {
                        tokio::task::yield_now().await;
                    }
                    gate.end(&session);
                    // Held at the next boundary (the control side resumes only after `ended`).
                    assert!(!gate.try_begin(&session));
                    let _ = ended_tx.send(());
                    gate.wait_resumed().await;
                    assert!(gate.try_begin(&session));
                });
            }
        });
        let outcome = control.block_on(gate.pause(&sessions, Duration::from_secs(30)));
        assert!(
            matches!(outcome, PauseOutcome::Paused { .. }),
            "{outcome:?}"
        );
        ended_rx.recv().unwrap();
        gate.resume();
        worker.join().unwrap();
        assert!(session.is_busy());
    }

    /// A pause with a long timeout, running on its own task.
    fn spawn_pause(
        gate: &Arc<Gate>,
        sessions: &Arc<Sessions>,
    ) -> tokio::task::JoinHandle<PauseOutcome> {
        let (gate, sessions) = (gate.clone(), sessions.clone());
        tokio::spawn(async move { gate.pause(&sessions, Duration::from_secs(30)).await })
    }

    #[tokio::test]
    async fn pause_waits_for_in_flight_work() {
        let gate = Arc::new(Gate::new());
        let sessions = Arc::new(Sessions::new());
        let session = sessions.register(addr());
        assert!(gate.try_begin(&session));
        let pauser = spawn_pause(&gate, &sessions);
        // The pauser cannot finish while the session is busy.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!pauser.is_finished());
        assert!(gate.is_paused());
        gate.end(&session);
        assert!(matches!(pauser.await.unwrap(), PauseOutcome::Paused { .. }));
    }

    #[tokio::test]
    async fn timeout_releases_and_names_the_blockers() {
        let gate = Gate::new();
        let sessions = Sessions::new();
        let busy = sessions.register(addr());
        let _idle = sessions.register(addr());
        assert!(gate.try_begin(&busy));
        match gate.pause(&sessions, Duration::from_millis(20)).await {
            PauseOutcome::TimedOut { blocking, .. } => {
                assert_eq!(blocking.len(), 1);
                assert_eq!(blocking[0].id, busy.id);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(!gate.is_paused());
    }

    #[tokio::test]
    async fn a_session_that_ends_unblocks_the_pause() {
        let gate = Arc::new(Gate::new());
        let sessions = Arc::new(Sessions::new());
        let session = sessions.register(addr());
        assert!(gate.try_begin(&session));
        let pauser = spawn_pause(&gate, &sessions);
        tokio::task::yield_now().await;
        sessions.unregister(session.id);
        gate.end(&session);
        assert!(matches!(pauser.await.unwrap(), PauseOutcome::Paused { .. }));
    }

    /// Races many sessions starting work against a pause, on real threads: when the pause reports
    /// quiet, no session may be inside its critical section.
    #[test]
    fn no_session_slips_through_a_concurrent_pause() {
        use std::sync::atomic::AtomicUsize;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let gate = Arc::new(Gate::new());
            let sessions = Arc::new(Sessions::new());
            let inside = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let mut workers = Vec::new();
            for _ in 0..4 {
                let (gate, sessions, inside, stop) =
                    (gate.clone(), sessions.clone(), inside.clone(), stop.clone());
                workers.push(tokio::spawn(async move {
                    let session = sessions.register(addr());
                    while !stop.load(Ordering::SeqCst) {
                        if gate.try_begin(&session) {
                            inside.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            inside.fetch_sub(1, Ordering::SeqCst);
                            gate.end(&session);
                        } else {
                            gate.wait_resumed().await;
                        }
                    }
                }));
            }
            for _ in 0..200 {
                let outcome = gate.pause(&sessions, Duration::from_secs(10)).await;
                assert!(matches!(outcome, PauseOutcome::Paused { .. }));
                assert_eq!(inside.load(Ordering::SeqCst), 0, "work ran while paused");
                gate.resume();
                tokio::task::yield_now().await;
            }
            stop.store(true, Ordering::SeqCst);
            gate.resume();
            for worker in workers {
                worker.await.unwrap();
            }
        });
    }
}
