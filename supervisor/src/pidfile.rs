//! The pidfile, held with `flock` for the daemon's whole life.
//!
//! The lock, not the file's content, says whether a daemon runs: a second
//! daemon on the same config fails to take it and names the holder's pid. A
//! file left by a daemon that died (dead pid, garbage, empty) is not locked,
//! so it is simply taken over, with a log line. The file is removed on a clean
//! exit, and only by the daemon that holds it.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the pidfile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    #[error("another taskmasterd (pid {pid}) is running with this config: it holds {}", path.display())]
    Held { path: PathBuf, pid: String },
    #[error("cannot use pidfile {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A locked pidfile. Dropping it releases the lock; [`Pidfile::remove`]
/// deletes the file first.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    lock: Flock<File>,
    /// What the file held when we took it over, if anything.
    pub previous: Option<String>,
}

impl Pidfile {
    /// Opens (creating) and locks the pidfile, without writing it yet.
    pub fn acquire(path: &Path) -> Result<Pidfile, PidfileError> {
        let io_err = |source| PidfileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(io_err)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim().to_string();
                return Err(PidfileError::Held {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid
                    },
                });
            }
            Err((_, errno)) => return Err(io_err(io::Error::from(errno))),
        };
        let mut old = String::new();
        let _ = lock.read_to_string(&mut old);
        let old = old.trim();
        let previous = (!old.is_empty()).then(|| old.chars().take(64).collect());
        Ok(Pidfile {
            path: path.to_path_buf(),
            lock,
            previous,
        })
    }

    /// Writes `pid` as the file's whole content.
    pub fn write_pid(&mut self, pid: u32) -> Result<(), PidfileError> {
        let io_err = |source| PidfileError::Io {
            path: self.path.clone(),
            source,
        };
        self.lock.set_len(0).map_err(io_err)?;
        self.lock.seek(SeekFrom::Start(0)).map_err(io_err)?;
        self.lock
            .write_all(format!("{pid}\n").as_bytes())
            .map_err(io_err)?;
        self.lock.sync_data().map_err(io_err)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file while still holding the lock, then releases it.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid_and_stale_files_are_taken_over()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("d.pid");
        std::fs::write(&path, "garbage\n")?;
        let mut first = Pidfile::acquire(&path)?;
        assert_eq!(first.previous.as_deref(), Some("garbage"));
        first.write_pid(4242)?;
        match Pidfile::acquire(&path) {
            Err(PidfileError::Held { pid, .. }) => assert_eq!(pid, "4242"),
            other => panic!("expected Held, got {other:?}"),
        }
        first.remove();
        assert!(!path.exists());
        let again = Pidfile::acquire(&path)?;
        assert_eq!(again.previous, None);
        Ok(())
    }
}
