//! Which OS user the server runs as.
//!
//! `initdb` and `postgres` refuse to run as root, and PgBouncer does too. When we are root we switch
//! to the conventional `postgres` account for those children; otherwise they run as ourselves.

use std::path::Path;

/// An OS account a child process is switched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsUser {
    /// Numeric user id.
    pub uid: u32,
    /// Numeric primary group id.
    pub gid: u32,
}

/// Name of the unprivileged account used when running as root.
pub const SERVER_ACCOUNT: &str = "postgres";

/// The account to run server processes as: `None` = as ourselves (we are not root),
/// `Some(user)` = switch to that user. Errors when we are root and no `postgres` account exists.
pub fn server_user() -> Result<Option<OsUser>, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|err| {
        format!("cannot read /etc/passwd to find the `{SERVER_ACCOUNT}` user: {err}")
    })?;
    lookup(&passwd, SERVER_ACCOUNT).map(Some).ok_or_else(|| {
        format!(
            "running as root, and PostgreSQL refuses to run as root, but there is no `{SERVER_ACCOUNT}` \
             OS user to run it as: create one (`useradd --system {SERVER_ACCOUNT}`) or run as a non-root user"
        )
    })
}

/// Finds `name` in passwd-format text.
fn lookup(passwd: &str, name: &str) -> Option<OsUser> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(OsUser { uid, gid })
    })
}

/// Hands `path` over to `user` (when there is one), so the server can write there.
pub fn give_to(path: &Path, user: Option<OsUser>) -> std::io::Result<()> {
    match user {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_account_by_exact_name() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresx:x:7:7::/:/bin/sh\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            lookup(passwd, "postgres"),
            Some(OsUser { uid: 101, gid: 104 })
        );
        assert_eq!(lookup(passwd, "nobody"), None);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(lookup("postgres:x:abc:1::/:\n", "postgres"), None);
        assert_eq!(lookup("postgres\n", "postgres"), None);
    }
}
