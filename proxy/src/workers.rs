//! Session worker threads: one tokio current-thread runtime per thread, each with its own I/O
//! driver; a session lives on one thread from accept to close.
//!
//! # Why not tokio's multi-thread runtime
//!
//! A forwarded query is four small socket operations (client read, backend write, backend read,
//! client write) and almost no computation, so what it costs is dominated by how often a thread
//! has to be woken. On the work-stealing runtime a session's two directions, and the I/O driver that
//! wakes them, routinely end up on different threads: every readiness event then crosses threads
//! (a futex wake and a context switch) before the task runs. Measured on 2 shared cores with
//! pgbench, that was ~15% more proxy CPU per transaction than PgBouncer (single-threaded, one
//! event loop). Pinning each session to one event loop removes the cross-thread wake-ups: the
//! thread that polls the sockets is the one that runs the session, and it goes back to `epoll_wait`
//! only when every session on it has nothing to do — so under load one wake-up serves many
//! sessions. Several such threads still use every core.
//!
//! The listener (on the control runtime, with the admin socket, the metrics endpoint and the signal
//! handlers) hands each accepted connection to the least-loaded worker (ties round-robin), as a
//! socket detached from the control runtime's driver; the worker registers it with its own.
//! Everything shared across threads — the pause [`crate::gate::Gate`] (atomics and
//! [`tokio::sync::Notify`], which wakes waiters on any runtime), the shutdown watch, the session
//! and cancel registries, the metrics — is runtime-agnostic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;

use crate::client_stream::ClientSocket;
use crate::context::ProxyContext;
use crate::session;

thread_local! {
    /// The index of the session worker running on this thread, if it is one.
    static WORKER_INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the session worker thread the caller runs on (`None` off the workers). Lets hot
/// paths pick per-worker state, such as a latency histogram shard, that no other thread writes.
pub fn current_index() -> Option<usize> {
    WORKER_INDEX.with(std::cell::Cell::get)
}

/// An accepted client connection on its way to a worker, detached from the listener's runtime.
enum Handoff {
    Tcp(std::net::TcpStream, SocketAddr),
    Local(std::os::unix::net::UnixStream),
}

impl Handoff {
    /// Detaches `socket` from the runtime that accepted it.
    fn detach(socket: ClientSocket) -> std::io::Result<Self> {
        Ok(match socket {
            ClientSocket::Tcp(tcp, addr) => Handoff::Tcp(tcp.into_std()?, addr),
            ClientSocket::Local(unix) => Handoff::Local(unix.into_std()?),
        })
    }

    /// Registers the socket with the calling thread's runtime.
    fn attach(self) -> std::io::Result<ClientSocket> {
        Ok(match self {
            Handoff::Tcp(tcp, addr) => ClientSocket::Tcp(TcpStream::from_std(tcp)?, addr),
            Handoff::Local(unix) => ClientSocket::Local(UnixStream::from_std(unix)?),
        })
    }
}

/// The session worker threads of one proxy.
#[derive(Debug)]
pub struct SessionWorkers {
    workers: Vec<Worker>,
    /// Where the next tie-break starts.
    next: usize,
}

#[derive(Debug)]
struct Worker {
    handoff: mpsc::UnboundedSender<Handoff>,
    /// Sessions handed to this worker that have not ended yet.
    live: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

/// Decrements a worker's live-session count when a session ends (or its task is dropped).
struct LiveSession(Arc<AtomicUsize>);

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionWorkers {
    /// Starts `count` (at least one) worker threads serving sessions of `ctx`.
    pub fn start(count: usize, ctx: &Arc<ProxyContext>) -> std::io::Result<Self> {
        let mut workers = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (handoff, arrivals) = mpsc::unbounded_channel();
            let live = Arc::new(AtomicUsize::new(0));
            let thread = std::thread::Builder::new()
                .name(format!("duet-session-{index}"))
                .spawn({
                    let (ctx, live) = (ctx.clone(), live.clone());
                    move || {
                        WORKER_INDEX.with(|slot| slot.set(Some(index)));
                        serve(runtime, arrivals, ctx, live)
                    }
                })?;
            workers.push(Worker {
                handoff,
                live,
                thread,
            });
        }
        Ok(SessionWorkers { workers, next: 0 })
    }

    /// Number of worker threads.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Hands an accepted connection to the least-loaded worker.
    pub fn dispatch(&mut self, socket: ClientSocket) {
        let peer = socket.peer();
        let handoff = match Handoff::detach(socket) {
            Ok(handoff) => handoff,
            Err(err) => {
                tracing::warn!(%err, %peer, "cannot hand the connection to a session worker");
                return;
            }
        };
        let count = self.workers.len();
        let Some(chosen) = (0..count)
            .map(|offset| (self.next + offset) % count)
            .min_by_key(|&index| self.workers[index].live.load(Ordering::Relaxed))
        else {
            return;
        };
        self.next = (chosen + 1) % count;
        let worker = &self.workers[chosen];
        worker.live.fetch_add(1, Ordering::Relaxed);
        if worker.handoff.send(handoff).is_err() {
            // The worker thread is gone (it only stops when told to, so this is a bug or a panic
            // elsewhere); the connection is closed by dropping it.
            worker.live.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(%peer, worker = chosen, "session worker has stopped; connection dropped");
        }
    }

    /// Stops the workers: sessions still running are dropped (their clean-up runs), then the
    /// threads are joined.
    pub async fn stop(self) {
        let threads: Vec<JoinHandle<()>> = self
            .workers
            .into_iter()
            .map(|worker| {
                drop(worker.handoff);
                worker.thread
            })
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}

/// A worker thread's life: run every handed-over session on this thread's runtime until the
/// handoff channel closes, then drop whatever is left.
fn serve(
    runtime: tokio::runtime::Runtime,
    mut arrivals: mpsc::UnboundedReceiver<Handoff>,
    ctx: Arc<ProxyContext>,
    live: Arc<AtomicUsize>,
) {
    runtime.block_on(async move {
        while let Some(handoff) = arrivals.recv().await {
            let counted = LiveSession(live.clone());
            match handoff.attach() {
                Ok(socket) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let _counted = counted;
                        session::run(ctx, socket).await;
                    });
                }
                Err(err) => tracing::warn!(%err, "cannot register the client connection"),
            }
        }
    });
    // Dropping the runtime drops the sessions still on it; their guards unregister them.
    drop(runtime);
}
