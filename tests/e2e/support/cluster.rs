//! Throwaway PostgreSQL clusters of a given major version for the version matrix
//! ([`versioned_cluster`], binaries installed by `tests/versions/fetch`), and a superuser's
//! configuration for any cluster. The tests that need a server they fully control — their own
//! pg_hba.conf (auth), max_connections (1000 clients), or a server they may stop and start again
//! (backend death) — start one with the kit's `duet_testkit::throwaway_cluster_or_skip`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use duet_harness::cluster::{Cluster, ClusterOptions};

/// Environment variable listing the majors the matrix must run (space- or comma-separated, e.g.
/// `14 16 17 18`): a listed major whose binaries are missing fails the test; an unlisted one is
/// skipped. Unset, every major whose binaries are installed runs and the others are skipped.
pub const VERSIONS_ENV: &str = "DUET_PG_VERSIONS";

/// Environment variable naming the cache `tests/versions/fetch` installs into (`<cache>/<major>/bin`).
pub const CACHE_ENV: &str = "DUET_PG_CACHE";

/// The cache `tests/versions/fetch` installs into, by the same rule: [`CACHE_ENV`], else
/// `/var/cache/duet-pg` for root (the clusters run as the `postgres` OS user, who cannot read
/// `/root`), else `$XDG_CACHE_HOME/duet-pg` or `~/.cache/duet-pg`.
pub fn version_cache() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/var/cache/duet-pg"));
    }
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|dir| dir.join("duet-pg"))
}

/// The directory holding `initdb` and `postgres` of PostgreSQL `major`: the fetch script's cache,
/// then Debian's `/usr/lib/postgresql/<major>/bin`.
pub fn server_bin_dir(major: u32) -> Option<PathBuf> {
    let cached = version_cache().map(|cache| cache.join(major.to_string()).join("bin"));
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    cached
        .into_iter()
        .chain([debian])
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

/// The majors [`VERSIONS_ENV`] asks for, or `None` when it is unset (every installed one).
pub fn wanted_majors() -> Option<Vec<u32>> {
    let list = std::env::var(VERSIONS_ENV).ok()?;
    let majors = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.parse::<u32>().unwrap_or_else(|err| {
                panic!("{VERSIONS_ENV}={list:?}: {word:?} is not a major version ({err})")
            })
        })
        .collect();
    Some(majors)
}

/// A throwaway cluster of PostgreSQL `major` and the [`Backend`](super::Backend) for its
/// superuser, or `None` after a loud skip when that major is neither asked for nor installed.
/// Panics when [`VERSIONS_ENV`] asks for it and its binaries are missing (a CI whose fetch
/// failed must not pass), or when the started server reports another major.
pub fn versioned_cluster(test: &str, major: u32) -> Option<(Cluster, super::Backend)> {
    let wanted = wanted_majors();
    if wanted.as_ref().is_some_and(|list| !list.contains(&major)) {
        eprintln!("SKIPPED {test}: PostgreSQL {major} is not in {VERSIONS_ENV}");
        return None;
    }
    let Some(bin_dir) = server_bin_dir(major) else {
        let why = format!(
            "no PostgreSQL {major} server binaries (looked in {} and /usr/lib/postgresql/{major}/bin); \
             install them with tests/versions/fetch {major}",
            version_cache()
                .map(|cache| cache.join(major.to_string()).join("bin").display().to_string())
                .unwrap_or_else(|| "the version cache".into()),
        );
        assert!(
            wanted.is_none(),
            "{test}: {VERSIONS_ENV} asks for {major} but {why}"
        );
        eprintln!("\nSKIPPED {test}: {why}");
        return None;
    };
    let options = ClusterOptions {
        bin_dir: Some(bin_dir),
        ..ClusterOptions::default()
    };
    // The binaries are there, so the kit fails the test when the server does not start (it
    // skips only for what the machine lacks: an account to run the server as, under root).
    let cluster =
        duet_testkit::throwaway_cluster_or_skip(&format!("{test} (PostgreSQL {major})"), options)?;
    let backend = super::Backend {
        host: cluster.host().to_string(),
        port: cluster.port(),
        user: duet_harness::cluster::SUPERUSER.to_string(),
        password: None,
        maintenance_db: "postgres".to_string(),
    };
    Some((cluster, backend))
}

/// A direct tokio-postgres configuration for the cluster's superuser.
pub fn superuser_config(cluster: &Cluster, db: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(cluster.host())
        .port(cluster.port())
        .user(duet_harness::cluster::SUPERUSER)
        .dbname(db)
        .connect_timeout(Duration::from_secs(10));
    config
}

/// A postmaster the test started itself on a stopped cluster's data directory (same port, same
/// data), because duet_harness::cluster cannot pick a port: used to bring a backend back after its
/// death. Drop stops it (fast shutdown, then SIGKILL).
#[derive(Debug)]
pub struct RestartedServer {
    child: Option<Child>,
}

impl RestartedServer {
    /// Starts `postgres -D <data_dir>` as the server user, logging to `log`.
    pub fn start(data_dir: PathBuf, log: PathBuf) -> RestartedServer {
        let bin_dir = duet_harness::cluster::find_server_binaries()
            .expect("server binaries (a cluster was started with them before)");
        let run_as = duet_harness::cluster::server_user().expect("the server user (used before)");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|err| panic!("opening {}: {err}", log.display()));
        let log_err = log_file.try_clone().expect("cloning the log handle");
        let mut command = Command::new(bin_dir.join("postgres"));
        command
            .arg("-D")
            .arg(&data_dir)
            .current_dir(data_dir.parent().unwrap_or(&data_dir))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        if let Some(user) = run_as {
            use std::os::unix::process::CommandExt;
            command.uid(user.uid).gid(user.gid);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("restarting postgres on {}: {err}", data_dir.display()));
        RestartedServer { child: Some(child) }
    }
}

impl Drop for RestartedServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own unreaped child; no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Stops a cluster's postmaster (fast shutdown: backends get FATAL 57P01) but keeps its data
/// directory, so that [`RestartedServer`] can start it again on the same port.
pub fn stop_postmaster(cluster: &Cluster) {
    let pid = cluster.pid().expect("the cluster is running");
    let pid = i32::try_from(pid).expect("pid fits i32");
    // SAFETY: kill(2) on the cluster's postmaster (a child of this process); no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    super::wait_for("the postmaster to exit", Duration::from_secs(30), || {
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid);
        (!alive).then_some(())
    });
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
