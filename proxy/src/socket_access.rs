//! Who may connect to the clients' unix socket: its file mode and group, as PostgreSQL's
//! `unix_socket_permissions` / `unix_socket_group` and PgBouncer's `unix_socket_mode` /
//! `unix_socket_group` set them.
//!
//! The default, 0777 and duet's own group, is PostgreSQL's: who may log in is decided by
//! authentication, as for TCP clients. A tighter mode with a group (e.g. `0770` and `app`) keeps
//! every local user outside that group from even reaching the login.

use std::ffi::CString;
use std::path::Path;

/// PostgreSQL's default `unix_socket_permissions`.
pub const DEFAULT_MODE: u32 = 0o777;

/// The unix socket's file mode and group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    /// Permission bits (`0o777` and below).
    pub mode: u32,
    /// The group the file is given, when one was set: its name and id.
    pub group: Option<SocketGroup>,
}

impl Default for SocketAccess {
    fn default() -> Self {
        SocketAccess {
            mode: DEFAULT_MODE,
            group: None,
        }
    }
}

/// A group of this machine, resolved from its name when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketGroup {
    /// The name as configured.
    pub name: String,
    /// Its id.
    pub gid: u32,
}

/// A mode or group that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SocketAccessError {
    /// Not an octal number of permission bits.
    #[error("{0:?} is not an octal file mode such as \"0777\" or \"0770\"")]
    Mode(String),
    /// No such group on this machine.
    #[error("no group named {0:?} on this machine")]
    UnknownGroup(String),
}

/// Parses a file mode written in octal (`"0770"`, `"770"`), as PostgreSQL and PgBouncer write it.
pub fn parse_mode(text: &str) -> Result<u32, SocketAccessError> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o777 => Ok(mode),
        _ => Err(SocketAccessError::Mode(text.to_owned())),
    }
}

/// Looks a group up by name (`/etc/group`, or whatever the machine's name service says).
pub fn resolve_group(name: &str) -> Result<SocketGroup, SocketAccessError> {
    let unknown = || SocketAccessError::UnknownGroup(name.to_owned());
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buffer = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: every pointer refers to memory owned here that outlives the call; the buffer's
        // length is passed with it.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buffer.len() < (1 << 20) {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() {
            return Err(unknown());
        }
        return Ok(SocketGroup {
            name: name.to_owned(),
            gid: group.gr_gid,
        });
    }
}

/// Gives the socket file at `path` the group `gid` (its owner stays duet's user). The kernel allows
/// it when duet's user belongs to that group, or is root.
pub fn set_group(path: &Path, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, None, Some(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_permission_bits() {
        assert_eq!(parse_mode("0777"), Ok(0o777));
        assert_eq!(parse_mode("770"), Ok(0o770));
        assert_eq!(parse_mode("0o700"), Ok(0o700));
        assert_eq!(parse_mode(" 0660 "), Ok(0o660));
        for bad in ["", "0999", "rwx", "01777", "-1"] {
            assert_eq!(
                parse_mode(bad),
                Err(SocketAccessError::Mode(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn groups_are_found_by_name_and_unknown_ones_named() {
        // Group 0 is "root" on every Linux machine.
        assert_eq!(resolve_group("root").map(|g| g.gid), Ok(0));
        assert_eq!(
            resolve_group("no-such-group-duet"),
            Err(SocketAccessError::UnknownGroup("no-such-group-duet".into()))
        );
        assert!(resolve_group("nul\0byte").is_err());
    }
}
