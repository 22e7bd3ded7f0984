//! Runners' signs of life beside a SQLite store: one file per runner in `<database>.owners/`,
//! holding an exclusive `flock` for as long as the runner lives.
//!
//! The kernel lets go of a lock when its process dies (however it dies: `kill -9` too), so a
//! file whose lock can be taken belongs to a dead runner: its owner's leases can end now. Locks
//! are per open file, so a live runner's file is locked to every other opener, in its own
//! process too. Files are opened close-on-exec (as Rust opens every file), so a child process
//! does not inherit a lock. Each file holds its owner's name (the name its leases carry), the
//! process id and the time it started, for a person looking at the directory.
//!
//! A file whose owner shut down cleanly is removed by it; one left by a dead owner is removed
//! by the rescue that finds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::jobs::StoreError;

/// The directory of the signs of life of the store at `database`.
pub(crate) fn owners_dir(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".owners");
    PathBuf::from(name)
}

/// A runner's locked file; dropping it removes the file and lets go of the lock.
pub(crate) struct OwnerFile {
    path: PathBuf,
    _file: File,
}

impl Drop for OwnerFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A file name for `owner`: its characters that are not ASCII letters or digits become `_`.
fn file_name(owner: &str) -> String {
    let safe: String = owner
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{safe}.lock")
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Database(format!("{what} {}: {e}", path.display()))
}

/// Creates and locks `owner`'s file in `dir`.
pub(crate) fn hold(dir: &Path, owner: &str) -> Result<OwnerFile, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let path = dir.join(file_name(owner));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io("cannot open", &path, e))?;
    file.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => StoreError::Database(format!(
            "{} is locked by another runner with the same name",
            path.display()
        )),
        TryLockError::Error(e) => io("cannot lock", &path, e),
    })?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    file.set_len(0).map_err(|e| io("cannot write", &path, e))?;
    writeln!(
        file,
        "{owner}\npid {}\nstarted {started}",
        std::process::id()
    )
    .map_err(|e| io("cannot write", &path, e))?;
    Ok(OwnerFile { path, _file: file })
}

/// Waits (up to `patience`) until no other process is opening the store whose owners' directory
/// is `dir`, and holds that turn until the returned file is dropped.
///
/// SQLite answers "database is locked" at once, without waiting out its busy timeout, to a
/// process that switches a new database to WAL or reads its schema while another process is
/// creating it; so processes open the store one at a time. The lock is `dir/.opening` (not a
/// `.lock` file, so never taken for a dead runner's).
pub(crate) fn opening(dir: &Path, patience: std::time::Duration) -> Result<File, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    let path = dir.join(".opening");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("cannot open", &path, e))?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Database(format!(
                    "another process has been opening the store for {patience:?} ({} is locked)",
                    path.display()
                )))
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock", &path, e)),
        }
    }
}

/// The owners whose files in `dir` are no longer locked (they died), each with its file
/// locked by the caller until the returned guard drops (which removes the file). A missing
/// directory has none.
pub(crate) fn dead(dir: &Path) -> Result<Vec<(String, OwnerFile)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot read", dir, e)),
    };
    let mut dead = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "lock") {
            continue;
        }
        // Gone meanwhile (its owner stopped), or not ours to open: not a dead owner.
        let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // alive
        }
        let mut text = String::new();
        let owner = match file.read_to_string(&mut text) {
            Ok(_) => text.lines().next().unwrap_or_default().to_owned(),
            Err(_) => String::new(),
        };
        dead.push((owner, OwnerFile { path, _file: file }));
    }
    Ok(dead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_opened_one_at_a_time() {
        let dir = std::env::temp_dir().join(format!("otp-opening-{}", std::process::id()));
        let first = opening(&dir, std::time::Duration::from_secs(5)).expect("the first turn");
        let refused = opening(&dir, std::time::Duration::from_millis(20))
            .expect_err("a second opener waits for the first");
        assert!(
            refused
                .to_string()
                .contains("another process has been opening the store"),
            "{refused}"
        );
        assert!(
            dead(&dir).expect("read the owners").is_empty(),
            "not a runner's file"
        );
        drop(first);
        opening(&dir, std::time::Duration::from_millis(20)).expect("the turn is free again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_locked_file_is_alive_and_an_unlocked_one_dead() {
        let dir = std::env::temp_dir().join(format!("otp-owners-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let held = hold(&dir, "1234-0.5-abc").expect("held");
        assert!(dead(&dir).expect("scan").is_empty(), "a held file is alive");
        // A file nobody locks: what the kernel leaves when its owner dies.
        std::fs::write(dir.join(file_name("999-x")), "999-x\npid 999\n").expect("write");
        let found = dead(&dir).expect("scan");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "999-x");
        drop(found);
        assert!(
            !dir.join(file_name("999-x")).exists(),
            "the rescue removes it"
        );
        drop(held);
        assert!(
            !dir.join(file_name("1234-0.5-abc")).exists(),
            "a clean stop removes it"
        );
        assert!(dead(&dir).expect("scan").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(file_name("12-0.5-a/b"), "12_0_5_a_b.lock");
    }
}
