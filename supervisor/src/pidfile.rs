//! The pidfile, held with `flock` for the daemon's whole life.
//!
//! The lock, not the file's content, says whether a daemon runs: a second
//! daemon on the same config fails to take it and names the holder's pid. A
//! file left by a daemon that died (dead pid, garbage, empty) is not locked,
//! so it is simply taken over, with a log line. The file is removed on a clean
//! exit, and only by the daemon that holds it.
//!
//! The daemon truncates and writes this file, often as root, so it is opened
//! never through a symlink and only if it is a regular file ([`fsafe`]), and
//! what it held is only ever shown when it is a pid: a file that is not ours
//! never has its content logged.

use crate::sys::fsafe::{self, FileError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the pidfile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    #[error("another taskmasterd (pid {pid}) is running with this config: it holds {}", path.display())]
    Held { path: PathBuf, pid: String },
    #[error("cannot use pidfile {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Names the path and why (a symlink, a FIFO, an OS error).
    #[error("{0}")]
    File(#[from] FileError),
}

/// A locked pidfile. Dropping it releases the lock; [`Pidfile::remove`]
/// deletes the file first.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    lock: Flock<File>,
    /// What the file held when we took it over, if anything: the pid, or
    /// how many bytes of something else (never the content).
    pub previous: Option<String>,
}

impl Pidfile {
    /// Opens (creating) and locks the pidfile, without writing it yet.
    pub fn acquire(path: &Path) -> Result<Pidfile, PidfileError> {
        let io_err = |source| PidfileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (file, _) = fsafe::open_read_write(path, "the pidfile", 0o644)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(PidfileError::Held {
                    path: path.to_path_buf(),
                    pid: match read_head(&mut file) {
                        Held::Pid(pid) => pid.to_string(),
                        _ => "unknown".into(),
                    },
                });
            }
            Err((_, errno)) => return Err(io_err(io::Error::from(errno))),
        };
        let previous = match read_head(&mut lock) {
            Held::Nothing => None,
            Held::Pid(pid) => Some(format!("pid {pid}")),
            Held::Other(bytes) => Some(format!("{bytes} bytes that are not a pid")),
        };
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

/// What a pidfile holds, judged on its first 64 bytes.
enum Held {
    Nothing,
    Pid(u32),
    /// Not a pid: only its length may be shown.
    Other(usize),
}

fn read_head(file: &mut File) -> Held {
    let mut head = Vec::new();
    let _ = Read::take(&mut *file, 64).read_to_end(&mut head);
    let text = String::from_utf8_lossy(&head);
    let text = text.trim();
    if text.is_empty() {
        Held::Nothing
    } else if let Ok(pid) = text.parse::<u32>() {
        Held::Pid(pid)
    } else {
        Held::Other(head.len())
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
        assert_eq!(
            first.previous.as_deref(),
            Some("8 bytes that are not a pid")
        );
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

    #[test]
    fn a_symlink_at_the_pidfile_is_refused_and_its_target_untouched()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("victim");
        std::fs::write(&target, "first line of a secret\n")?;
        let path = dir.path().join("d.pid");
        std::os::unix::fs::symlink(&target, &path)?;
        let err = Pidfile::acquire(&path).err().ok_or("took a symlink")?;
        let text = err.to_string();
        assert!(
            text.starts_with("refusing to write the pidfile to a symlink"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        assert_eq!(std::fs::read(&target)?, b"first line of a secret\n");
        Ok(())
    }
}
