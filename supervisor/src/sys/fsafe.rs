//! Opening the files the daemon reads and writes without being tricked.
//!
//! The daemon often runs as root and writes files in directories that a
//! program running as another `user:` may be able to change. Whoever can
//! replace a log file with a symlink would otherwise have root append to (or
//! truncate) any file of the host; whoever can put a FIFO at a path would
//! freeze the daemon's one thread in `open`. So every open here:
//!
//! - uses `O_NONBLOCK`: opening a FIFO never waits for its other end (for
//!   writing, with no reader, it fails at once with `ENXIO`); on a regular
//!   file the flag has no effect (open(2): "this flag has no effect for
//!   regular files"), so it is left set;
//! - uses `O_CLOEXEC` and `O_NOCTTY`: nothing leaks into children, and a
//!   terminal never becomes the daemon's controlling one;
//! - for every file written, and for secrets, uses `O_NOFOLLOW`: a symlink at
//!   the path is refused (`ELOOP`), never followed;
//! - checks the opened file with `fstat`: anything but a regular file (FIFO,
//!   socket, device, directory) is refused, as is a written file with more
//!   than one hard link (another name for somebody else's file).
//!
//! A refusal is a [`FileError`] whose message says what was refused, why and
//! where (`refusing to write programs.web stdout to a symlink: PATH`); it
//! never contains the file's content. Reads are bounded ([`read_bounded`]):
//! a huge or endless file is refused, not read into memory.
//!
//! Directories the daemon creates ([`create_dir_all`]) get mode 0750 whatever
//! the umask: a program running as another user cannot add, remove or
//! replace files in them.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Mode of the directories the daemon creates.
pub const DIR_MODE: u32 = 0o750;
/// Mode of the output files the daemon creates (the umask may narrow it).
pub const OUTPUT_FILE_MODE: u32 = 0o640;

/// What was at a path instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Symlink,
    Fifo,
    Socket,
    Directory,
    CharDevice,
    BlockDevice,
    /// A regular file with this many names (only refused when written).
    HardLinked(u64),
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Symlink => f.write_str("a symlink"),
            Found::Fifo => f.write_str("a FIFO"),
            Found::Socket => f.write_str("a socket"),
            Found::Directory => f.write_str("a directory"),
            Found::CharDevice => f.write_str("a character device"),
            Found::BlockDevice => f.write_str("a block device"),
            Found::HardLinked(n) => write!(f, "a file with {n} hard links"),
            Found::Other => f.write_str("something that is not a regular file"),
        }
    }
}

impl Found {
    fn of(meta: &Metadata) -> Found {
        let t = meta.file_type();
        if t.is_symlink() {
            Found::Symlink
        } else if t.is_fifo() {
            Found::Fifo
        } else if t.is_socket() {
            Found::Socket
        } else if t.is_dir() {
            Found::Directory
        } else if t.is_char_device() {
            Found::CharDevice
        } else if t.is_block_device() {
            Found::BlockDevice
        } else {
            Found::Other
        }
    }
}

/// Reading or writing, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    fn preposition(self) -> &'static str {
        match self {
            Access::Read => "from",
            Access::Write => "to",
        }
    }
}

/// Why a file could not be used. `what` names it for a human
/// (`programs.web stdout`, `the pidfile`).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("refusing to {} {what} {} {found}: {}", access.verb(), access.preposition(), path.display())]
    Refused {
        what: String,
        access: Access,
        found: Found,
        path: PathBuf,
    },
    #[error("refusing to read {what} {}: it is larger than {} (the limit)", path.display(), human_size(*limit))]
    TooLarge {
        what: String,
        path: PathBuf,
        limit: u64,
    },
    #[error("cannot {} {what} {}: {source}", access.verb(), path.display())]
    Io {
        what: String,
        access: Access,
        path: PathBuf,
        source: io::Error,
    },
}

impl FileError {
    /// The OS error, when that is what it is.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            FileError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// True when the path names nothing.
    pub fn is_not_found(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::NotFound)
    }
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Whether a symlink at the path is followed (only for files the operator
/// may legitimately link, like the config; never for files written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    Yes,
    No,
}

/// How to open: the access, the creation mode if the file may be created,
/// and whether a symlink is followed.
#[derive(Debug, Clone, Copy)]
struct How {
    read: bool,
    write: bool,
    append: bool,
    create: Option<u32>,
    create_new: bool,
    follow: Follow,
}

fn open(path: &Path, what: &str, how: How) -> Result<(File, Metadata), FileError> {
    let access = if how.write {
        Access::Write
    } else {
        Access::Read
    };
    let io_error = |source| FileError::Io {
        what: what.to_string(),
        access,
        path: path.to_path_buf(),
        source,
    };
    let refused = |found| FileError::Refused {
        what: what.to_string(),
        access,
        found,
        path: path.to_path_buf(),
    };
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if how.follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    let mut options = std::fs::OpenOptions::new();
    options
        .read(how.read)
        .write(how.write && !how.append)
        .append(how.append)
        .custom_flags(flags);
    if let Some(mode) = how.create {
        options.mode(mode);
        if how.create_new {
            options.create_new(true);
        } else {
            options.create(true);
        }
    }
    let file = match options.open(path) {
        Ok(file) => file,
        // ELOOP: a symlink at the path with O_NOFOLLOW (or a loop in the
        // directories); ENXIO: a FIFO with no reader, or a socket.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(meta) if !meta.file_type().is_file() => refused(Found::of(&meta)),
                _ => io_error(e),
            });
        }
        Err(e) => return Err(io_error(e)),
    };
    let meta = file.metadata().map_err(io_error)?;
    if !meta.file_type().is_file() {
        return Err(refused(Found::of(&meta)));
    }
    if how.write && meta.nlink() > 1 {
        return Err(refused(Found::HardLinked(meta.nlink())));
    }
    Ok((file, meta))
}

/// Opens `path` for appending, creating it (mode 0640) if missing: an
/// output file or the event log.
pub fn open_append(path: &Path, what: &str) -> Result<(File, Metadata), FileError> {
    open(
        path,
        what,
        How {
            read: false,
            write: true,
            append: true,
            create: Some(OUTPUT_FILE_MODE),
            create_new: false,
            follow: Follow::No,
        },
    )
}

/// Opens `path` for reading and writing, creating it with `mode` if missing
/// (the pidfile).
pub fn open_read_write(path: &Path, what: &str, mode: u32) -> Result<(File, Metadata), FileError> {
    open(
        path,
        what,
        How {
            read: true,
            write: true,
            append: false,
            create: Some(mode),
            create_new: false,
            follow: Follow::No,
        },
    )
}

/// Creates `path`, which must not exist (not even as a dangling symlink),
/// for writing with `mode` (the token file).
pub fn create_new(path: &Path, what: &str, mode: u32) -> Result<File, FileError> {
    open(
        path,
        what,
        How {
            read: false,
            write: true,
            append: false,
            create: Some(mode),
            create_new: true,
            follow: Follow::No,
        },
    )
    .map(|(file, _)| file)
}

/// Opens `path` for reading.
pub fn open_read(path: &Path, what: &str, follow: Follow) -> Result<(File, Metadata), FileError> {
    open(
        path,
        what,
        How {
            read: true,
            write: false,
            append: false,
            create: None,
            create_new: false,
            follow,
        },
    )
}

/// Reads all of `file` (opened by [`open_read`] as `what` at `path`), but
/// refuses it if it holds more than `limit` bytes.
pub fn read_all_bounded(
    mut file: File,
    meta: &Metadata,
    path: &Path,
    what: &str,
    limit: u64,
) -> Result<Vec<u8>, FileError> {
    let too_large = || FileError::TooLarge {
        what: what.to_string(),
        path: path.to_path_buf(),
        limit,
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte more than allowed tells a file that grew (or lies about its
    // size, like those of /proc) from one that fits.
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            what: what.to_string(),
            access: Access::Read,
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Opens and reads the regular file at `path`, at most `limit` bytes;
/// returns its bytes and what `fstat` said of it.
pub fn read_bounded(
    path: &Path,
    what: &str,
    follow: Follow,
    limit: u64,
) -> Result<(Vec<u8>, Metadata), FileError> {
    let (file, meta) = open_read(path, what, follow)?;
    let bytes = read_all_bounded(file, &meta, path, what, limit)?;
    Ok((bytes, meta))
}

/// Creates `dir` and its missing parents, each created one with mode 0750
/// whatever the umask (existing ones are left as they are).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    loop {
        match std::fs::symlink_metadata(at) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(at);
                match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                    _ => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    for path in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(path) {
            Ok(()) => set_dir_mode(path)?,
            // Created by someone else meanwhile: theirs, left alone.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `fchmod(DIR_MODE)` on the directory just created at `path` (the umask
/// narrowed or kept the mode given to `mkdir`; this makes it exact), through
/// a descriptor opened without following a symlink.
fn set_dir_mode(path: &Path) -> io::Result<()> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    nix::sys::stat::fchmod(
        &dir,
        nix::sys::stat::Mode::from_bits_truncate(DIR_MODE as libc::mode_t),
    )
    .map_err(io::Error::from)
}

/// A label for an output file: `programs.web stdout`.
pub fn output_label(program: &str, stream: impl fmt::Display) -> String {
    format!("programs.{program} {stream}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn mkfifo(path: &Path) -> TestResult {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        Ok(())
    }

    #[test]
    fn a_symlink_is_refused_for_writing_and_its_target_is_untouched() -> TestResult {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("secret");
        std::fs::write(&target, "secret\n")?;
        let link = dir.path().join("out.log");
        std::os::unix::fs::symlink(&target, &link)?;
        let err = open_append(&link, "programs.web stdout")
            .err()
            .ok_or("a symlink was opened")?;
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to write programs.web stdout to a symlink: {}",
                link.display()
            )
        );
        assert!(open_read_write(&link, "the pidfile", 0o644).is_err());
        assert!(create_new(&link, "the token file", 0o600).is_err());
        // Dangling: not created through the link either.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling)?;
        assert!(matches!(
            open_append(&dangling, "x"),
            Err(FileError::Refused {
                found: Found::Symlink,
                ..
            })
        ));
        assert!(!dir.path().join("nothing").exists());
        assert_eq!(std::fs::read(&target)?, b"secret\n");
        Ok(())
    }

    #[test]
    fn a_fifo_is_refused_at_once_for_reading_and_writing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo)?;
        let start = Instant::now();
        let write = open_append(&fifo, "the event log")
            .err()
            .ok_or("a FIFO was opened")?;
        assert!(write.to_string().contains("to a FIFO"), "{write}");
        let read = open_read(&fifo, "the config file", Follow::Yes)
            .err()
            .ok_or("a FIFO was opened")?;
        assert_eq!(
            read.to_string(),
            format!(
                "refusing to read the config file from a FIFO: {}",
                fifo.display()
            )
        );
        // With a reader present the open succeeds; fstat still refuses it.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)?;
        assert!(matches!(
            open_append(&fifo, "x"),
            Err(FileError::Refused {
                found: Found::Fifo,
                ..
            })
        ));
        assert!(start.elapsed() < Duration::from_secs(1));
        Ok(())
    }

    #[test]
    fn devices_directories_and_hard_links_are_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        assert!(matches!(
            read_bounded(Path::new("/dev/zero"), "the config file", Follow::Yes, 16),
            Err(FileError::Refused {
                found: Found::CharDevice,
                ..
            })
        ));
        assert!(matches!(
            open_read(dir.path(), "x", Follow::No),
            Err(FileError::Refused {
                found: Found::Directory,
                ..
            })
        ));
        let file = dir.path().join("a");
        std::fs::write(&file, "a\n")?;
        std::fs::hard_link(&file, dir.path().join("b"))?;
        let err = open_append(&file, "the event log")
            .err()
            .ok_or("a hard-linked file was written")?;
        assert!(
            err.to_string().contains("a file with 2 hard links"),
            "{err}"
        );
        // Reading it is harmless.
        assert!(open_read(&file, "x", Follow::No).is_ok());
        Ok(())
    }

    #[test]
    fn a_regular_file_is_appended_and_created_0640() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("out.log");
        let (mut file, meta) = open_append(&path, "x")?;
        assert!(meta.is_file());
        file.write_all(b"one\n")?;
        let (mut again, _) = open_append(&path, "x")?;
        again.write_all(b"two\n")?;
        assert_eq!(std::fs::read(&path)?, b"one\ntwo\n");
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777 & !0o022,
            OUTPUT_FILE_MODE & !0o022
        );
        Ok(())
    }

    #[test]
    fn reads_are_bounded_and_the_error_names_the_limit() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c");
        std::fs::write(&path, vec![b'x'; 1025])?;
        let err = read_bounded(&path, "the config file", Follow::Yes, 1024)
            .err()
            .ok_or("an oversized file was read")?;
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to read the config file {}: it is larger than 1 KiB (the limit)",
                path.display()
            )
        );
        std::fs::write(&path, vec![b'x'; 1024])?;
        assert_eq!(read_bounded(&path, "x", Follow::Yes, 1024)?.0.len(), 1024);
        Ok(())
    }

    #[test]
    fn created_directories_are_0750_and_existing_ones_are_left_alone() -> TestResult {
        let dir = tempfile::tempdir()?;
        let deep = dir.path().join("a/b/logs");
        create_dir_all(&deep)?;
        for path in [dir.path().join("a"), dir.path().join("a/b"), deep.clone()] {
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o7777,
                DIR_MODE,
                "{}",
                path.display()
            );
        }
        // What the umask did to mkdir's mode is undone (the umask itself is
        // process-wide, so the integration test sets it, not this one).
        let narrow = dir.path().join("narrow");
        std::fs::DirBuilder::new().mode(0o700).create(&narrow)?;
        set_dir_mode(&narrow)?;
        assert_eq!(
            std::fs::metadata(&narrow)?.permissions().mode() & 0o7777,
            DIR_MODE
        );
        // Existing ones are the operator's: left alone.
        std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o755))?;
        create_dir_all(&deep)?;
        assert_eq!(
            std::fs::metadata(&deep)?.permissions().mode() & 0o7777,
            0o755
        );
        Ok(())
    }
}
