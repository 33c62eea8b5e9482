//! Child processes the benchmark launches (postgres, pgbouncer, duet), stopped reliably.
//!
//! Each launcher owns its child through [`ManagedChild`], which stops it with the program's own
//! graceful signal, escalates to SIGKILL after a deadline and always reaps it, so no run leaves a
//! server behind — also when the launcher is dropped on an error path.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A running child process plus how to stop it.
#[derive(Debug)]
pub struct ManagedChild {
    child: Option<Child>,
    stop_signal: libc::c_int,
    stop_timeout: Duration,
}

impl ManagedChild {
    /// Wraps `child`; [`stop`](Self::stop) sends `stop_signal` and waits up to `stop_timeout`.
    pub fn new(child: Child, stop_signal: libc::c_int, stop_timeout: Duration) -> ManagedChild {
        ManagedChild {
            child: Some(child),
            stop_signal,
            stop_timeout,
        }
    }

    /// The process id while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` when the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Waits up to `timeout` for the process to exit on its own; true when it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(child) = self.child.as_mut() else {
                return true;
            };
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    return true;
                }
                Ok(None) if Instant::now() >= deadline => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends the stop signal, waits, then kills; always reaps.
    pub fn stop(&mut self) {
        if self.child.is_none() || self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.pid() {
            signal(pid, self.stop_signal);
        }
        if self.wait_exit(self.stop_timeout) {
            return;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` to process `pid` (a child of ours that has not been reaped, so the pid is not reused).
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Resident memory (VmRSS) of a process in KiB, from `/proc/<pid>/status`.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tduet\nVmPeak:\t  99999 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_rss_is_visible() {
        assert!(resident_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn stop_escalates_and_reaps() {
        // `sleep` ignores nothing: SIGTERM ends it; the child is reaped either way.
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let mut managed = ManagedChild::new(child, libc::SIGTERM, Duration::from_secs(5));
        managed.stop();
        assert!(managed.pid().is_none());
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
