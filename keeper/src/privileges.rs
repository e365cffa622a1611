//! Postgres refuses to run as root. When `pg_autoctl` is started as root it
//! becomes, in-process and before anything else, the owner of PGDATA (or the
//! `postgres` user when PGDATA does not exist yet): every file it writes and
//! every Postgres program it runs then belong to that user. No re-exec, so
//! the binary may live where that user cannot read.

use std::ffi::{CStr, CString};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "{path} is owned by root: Postgres refuses to run as root; \
         give it to the user that runs Postgres (chown -R postgres: {path})"
    )]
    OwnedByRoot { path: String },
    #[error("user \"{0}\" does not exist: create it, or run pg_autoctl as the owner of PGDATA")]
    NoSuchUser(String),
    #[error("cannot become user \"{user}\": {source}")]
    Switch {
        user: String,
        source: std::io::Error,
    },
}

/// A Unix account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

fn from_passwd(pw: *const libc::passwd) -> Option<Account> {
    if pw.is_null() {
        return None;
    }
    // SAFETY: getpwnam/getpwuid returned a valid, non-null entry that stays
    // valid until the next call into the passwd database on this thread.
    unsafe {
        Some(Account {
            name: CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned(),
            uid: (*pw).pw_uid,
            gid: (*pw).pw_gid,
            home: CStr::from_ptr((*pw).pw_dir).to_string_lossy().into_owned(),
        })
    }
}

pub fn account_by_name(name: &str) -> Option<Account> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    from_passwd(unsafe { libc::getpwnam(c.as_ptr()) })
}

pub fn account_by_uid(uid: u32) -> Option<Account> {
    // SAFETY: plain libc lookup by uid.
    from_passwd(unsafe { libc::getpwuid(uid) })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The account Postgres must run as for `pgdata` when we are root.
pub fn target_account(pgdata: &Path) -> Result<Account, PrivilegeError> {
    if let Ok(meta) = std::fs::metadata(pgdata) {
        if meta.uid() == 0 {
            let empty = std::fs::read_dir(pgdata)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(PrivilegeError::OwnedByRoot {
                    path: pgdata.display().to_string(),
                });
            }
        } else {
            return account_by_uid(meta.uid())
                .ok_or_else(|| PrivilegeError::NoSuchUser(meta.uid().to_string()));
        }
    }
    account_by_name("postgres").ok_or_else(|| PrivilegeError::NoSuchUser("postgres".into()))
}

/// When running as root, become the account that owns `pgdata`. Must be
/// called before any thread is started. Returns the account now in use.
/// `create`: the command creates the node, so a missing PGDATA is created
/// (and a root-owned one handed over) for that account; other commands
/// leave the file system as it is.
pub fn drop_root_for(pgdata: &Path, create: bool) -> Result<Option<Account>, PrivilegeError> {
    if !is_root() {
        return Ok(None);
    }
    let acct = target_account(pgdata)?;
    // For `create`, a missing PGDATA is created for that user (its parents
    // too, when missing), so that the user can initialise it.
    let mut created = Vec::new();
    let mut dir = pgdata.to_path_buf();
    while create && !dir.exists() {
        created.push(dir.clone());
        if !dir.pop() {
            break;
        }
    }
    if let Some(top) = created.last() {
        std::fs::create_dir_all(pgdata).map_err(|source| PrivilegeError::Switch {
            user: acct.name.clone(),
            source,
        })?;
        tracing::debug!("Created {} for user \"{}\"", top.display(), acct.name);
    }
    // An empty directory created by root is handed over.
    if let Some(meta) = std::fs::metadata(pgdata).ok().filter(|_| create) {
        if meta.uid() == 0 {
            created.push(pgdata.to_path_buf());
        }
    }
    for path in created {
        let c = CString::new(path.as_os_str().as_encoded_bytes().to_vec()).map_err(|e| {
            PrivilegeError::Switch {
                user: acct.name.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        // SAFETY: valid NUL-terminated path; chown of a directory we created
        // or of an empty PGDATA.
        if unsafe { libc::chown(c.as_ptr(), acct.uid, acct.gid) } != 0 {
            return Err(PrivilegeError::Switch {
                user: acct.name.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    switch_to(&acct)?;
    Ok(Some(acct))
}

/// setgroups/setgid/setuid to `acct`, and point HOME/USER at it.
pub fn switch_to(acct: &Account) -> Result<(), PrivilegeError> {
    let err = |source| PrivilegeError::Switch {
        user: acct.name.clone(),
        source,
    };
    let name = CString::new(acct.name.clone()).map_err(|e| err(std::io::Error::other(e)))?;
    // SAFETY: standard privilege drop sequence with valid arguments; each
    // result is checked.
    unsafe {
        if libc::initgroups(name.as_ptr(), acct.gid) != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        if libc::setgid(acct.gid) != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        if libc::setuid(acct.uid) != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
    }
    // Single-threaded at this point: the environment can be changed.
    std::env::set_var("HOME", &acct.home);
    std::env::set_var("USER", &acct.name);
    std::env::set_var("LOGNAME", &acct.name);
    Ok(())
}
