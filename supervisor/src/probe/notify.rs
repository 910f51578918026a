//! The `notify:` probe's transport: the systemd notification protocol
//! (`sd_notify(3)`, the `systemd-notify` tool), served per instance.
//!
//! **Where.** The daemon makes one runtime directory at first use
//! ([`RuntimeDir`]): `$XDG_RUNTIME_DIR/taskmaster-<pid>.<n>` when that
//! variable names an absolute directory, else the same under the temp dir
//! (`$TMPDIR` or `/tmp`). It is created with `mkdir` (which never follows a
//! symlink and fails if anything is already there: then the next `<n>` is
//! tried), opened with `O_NOFOLLOW`, checked to be a directory owned by the
//! daemon's user, and set to 0711: programs running as another user may
//! pass through it to their own directory, not list it. It is removed when
//! the daemon exits ([`remove_runtime_dir`]); a daemon killed with SIGKILL
//! leaves it (it holds no secret).
//!
//! **Per instance.** [`NotifySocket::bind`] makes a directory named by a
//! short counter (never the program's name: `sun_path` holds 107 bytes),
//! mode 0700, and binds a unix datagram socket `notify` in it, mode 0600,
//! with `SO_PASSCRED` on, so every datagram arrives with its sender's pid
//! (`SCM_CREDENTIALS`, filled in by the kernel). When the program runs as
//! another user (the daemon is root), the socket then the directory are
//! given to that user, in that order, so nobody else ever reaches the
//! socket. Dropping the [`NotifySocket`] removes both.
//!
//! **Senders.** A datagram from a live process is believed only when the
//! caller's predicate accepts its pid (the instance's process or one of its
//! descendants: [`descends_from`] walks the parent chain in `/proc`; with
//! cgroups, membership of the instance's cgroup is the better test). A
//! sender that has already exited when the datagram is read (as
//! `systemd-notify` often has) is believed: only the instance's user can
//! reach the socket.
//!
//! **Messages.** A datagram is at most [`MAX_DATAGRAM`] bytes, systemd's
//! own limit (a longer one is refused whole, like systemd does); it holds
//! `KEY=VALUE` lines. `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`,
//! `ERRNO=N` and `EXTEND_TIMEOUT_USEC=N` become [`Notification`]s;
//! `MAINPID=` and keys we do not know are skipped silently (the protocol
//! lets managers ignore what they do not use); a line that is not UTF-8,
//! not `KEY=VALUE`, or a known key with a value it cannot have is skipped
//! with a reason the caller logs. File descriptors passed along
//! (`FDSTORE=1`, and the pipe of `BARRIER=1`, which `systemd-notify` waits
//! on until the receiver closes it) are closed at once.
//!
//! No crate parses these on the receiving side (the Rust `sd-notify`,
//! `sdnotify` and `libsystemd` crates only send), and the format is a few
//! lines of `KEY=VALUE`: the parser is [`parse`] below.

use crate::sys::procfs;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// The largest datagram read (systemd's `NOTIFY_BUFFER_MAX`, `PIPE_BUF`).
pub const MAX_DATAGRAM: usize = 4096;
/// The longest socket path (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The most descriptors one datagram carries (Linux's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// How many names `RuntimeDir::create_in` tries before giving up.
const TRIES: u64 = 64;

/// What an instance told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `READY=1`: start-up is finished.
    Ready,
    /// `STATUS=…`: a line for `status` (control characters replaced).
    Status(String),
    /// `WATCHDOG=1`: still alive.
    Watchdog,
    /// `STOPPING=1`: it is shutting down.
    Stopping,
    /// `ERRNO=N`: it failed with this errno.
    Errno(i32),
    /// `EXTEND_TIMEOUT_USEC=N`: the current timeout should be at least N µs
    /// from now.
    ExtendTimeout(Duration),
}

/// One datagram, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender, as the kernel reports it.
    pub pid: u32,
    pub notifications: Vec<Notification>,
    /// Lines skipped, each with why (`line 2 is not KEY=VALUE: "hello"`).
    pub ignored: Vec<String>,
}

/// What one receive got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Message),
    /// A datagram that was dropped, and why (`from pid 4242, which is not
    /// the instance's`).
    Refused(String),
}

/// The daemon's directory for notify sockets.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    /// Names of per-instance directories: `1`, `2`, … in hex.
    next: AtomicU64,
}

static SHARED: Mutex<Option<Arc<RuntimeDir>>> = Mutex::new(None);

/// The daemon's runtime directory, created at the first call (see the
/// module doc for where).
pub fn runtime_dir() -> io::Result<Arc<RuntimeDir>> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(dir) = shared.as_ref() {
        return Ok(Arc::clone(dir));
    }
    let dir = Arc::new(RuntimeDir::create_in(&default_base())?);
    *shared = Some(Arc::clone(&dir));
    Ok(dir)
}

/// Removes the runtime directory, if one was made, with whatever is left
/// in it: at daemon exit.
pub fn remove_runtime_dir() {
    let taken = SHARED.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(dir) = taken {
        dir.remove();
    }
}

/// `$XDG_RUNTIME_DIR` when it names an absolute directory, else the temp dir.
fn default_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

impl RuntimeDir {
    /// Makes a fresh `taskmaster-<pid>.<n>` directory in `base`, mode 0711,
    /// never reusing or following anything already there.
    pub fn create_in(base: &Path) -> io::Result<RuntimeDir> {
        let pid = std::process::id();
        for n in 0..TRIES {
            let path = base.join(format!("taskmaster-{pid}.{n}"));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = open_own_dir(&path)?;
                    dir.set_permissions(std::fs::Permissions::from_mode(0o711))?;
                    return Ok(RuntimeDir {
                        path,
                        next: AtomicU64::new(1),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create a directory in {}: {e}", base.display()),
                    ));
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "cannot create a directory in {}: taskmaster-{pid}.0 to .{} all exist",
                base.display(),
                TRIES - 1
            ),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory and everything in it (`remove_dir_all` does not
    /// follow symlinks). Best effort: at exit, nobody is left to tell.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Opens `path`, which we just made, as a directory without following a
/// symlink, and checks that it is ours.
fn open_own_dir(path: &Path) -> io::Result<File> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = dir.metadata()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != euid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory of uid {euid} (uid {})",
                path.display(),
                meta.uid()
            ),
        ));
    }
    Ok(dir)
}

/// One instance's `NOTIFY_SOCKET`: the socket, bound, and its directory.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    dir: PathBuf,
    path: PathBuf,
    /// Kept so the runtime directory outlives its sockets.
    _root: Arc<RuntimeDir>,
}

impl NotifySocket {
    /// Binds a fresh socket in a fresh directory of `root`; with `owner`
    /// (uid, gid), both are given to that user (the daemon is root and the
    /// program runs as someone else).
    pub fn bind(root: &Arc<RuntimeDir>, owner: Option<(u32, u32)>) -> io::Result<NotifySocket> {
        let id = root.next.fetch_add(1, Ordering::Relaxed);
        let dir = root.path.join(format!("{id:x}"));
        let path = dir.join("notify");
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the notify socket path {} is over {MAX_SOCKET_PATH} bytes; \
                     set XDG_RUNTIME_DIR or TMPDIR to a shorter directory",
                    path.display()
                ),
            ));
        }
        DirBuilder::new().mode(0o700).create(&dir)?;
        let made = NotifySocket::make(&dir, &path, owner);
        if made.is_err() {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(&dir);
        }
        let socket = made?;
        Ok(NotifySocket {
            socket,
            dir,
            path,
            _root: Arc::clone(root),
        })
    }

    fn make(dir: &Path, path: &Path, owner: Option<(u32, u32)>) -> io::Result<UnixDatagram> {
        let dir_file = open_own_dir(dir)?;
        dir_file.set_permissions(std::fs::Permissions::from_mode(0o700))?;
        let socket = std::os::unix::net::UnixDatagram::bind(path)?;
        setsockopt(&socket, sockopt::PassCred, &true)?;
        socket.set_nonblocking(true)?;
        // The directory is still ours and 0700: nobody can have put a
        // symlink at the path since the bind.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
            std::os::unix::fs::fchown(&dir_file, Some(uid), Some(gid))?;
        }
        UnixDatagram::from_std(socket)
    }

    /// The value of `NOTIFY_SOCKET` for the instance's environment.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next datagram and reads it. `ours(pid)` says whether a
    /// live sender belongs to the instance. An error only when the socket
    /// itself fails.
    pub async fn recv(&self, ours: impl Fn(u32) -> bool) -> io::Result<Received> {
        loop {
            self.socket.readable().await?;
            match self.socket.try_io(Interest::READABLE, || {
                read_datagram(self.socket.as_raw_fd())
            }) {
                Ok(datagram) => return Ok(judge(datagram, &ours)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for NotifySocket {
    /// Removes the socket and its directory. Anything the program put in
    /// its directory stays until the runtime directory is removed at exit
    /// (walking a directory the program fills is not for the actor thread).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A datagram as read: its bytes (or how long it really was, when over the
/// bound) and its sender.
#[derive(Debug)]
struct Datagram {
    bytes: Result<Vec<u8>, usize>,
    pid: Option<u32>,
}

/// Reads one datagram from the (non-blocking) socket `fd`.
fn read_datagram(fd: std::os::fd::RawFd) -> io::Result<Datagram> {
    let mut buf = [0u8; MAX_DATAGRAM];
    // Room for the credentials and the most descriptors one datagram can
    // carry (SCM_MAX_FD): a truncated control buffer would hide the
    // credentials (nix reports ENOBUFS), and every descriptor must be seen
    // to be closed.
    let mut cmsg = nix::cmsg_space!(libc::ucred, [std::os::fd::RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    // MSG_TRUNC: the real length of a longer datagram, to refuse it.
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_TRUNC | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut pid = None;
    // Unreadable control data (cannot happen with this buffer) leaves the
    // sender unknown: the datagram is refused, the socket lives on.
    for c in msg.cmsgs().into_iter().flatten() {
        match c {
            ControlMessageOwned::ScmCredentials(creds) => {
                pid = u32::try_from(creds.pid()).ok().filter(|&p| p != 0);
            }
            // We keep none (closing a barrier's pipe releases its sender).
            ControlMessageOwned::ScmRights(fds) => {
                for fd in fds {
                    let _ = nix::unistd::close(fd);
                }
            }
            _ => {}
        }
    }
    let len = msg.bytes;
    let bytes = if len > MAX_DATAGRAM {
        Err(len)
    } else {
        Ok(buf[..len].to_vec())
    };
    Ok(Datagram { bytes, pid })
}

/// Believes a datagram or refuses it, and parses what is believed.
fn judge(datagram: Datagram, ours: &impl Fn(u32) -> bool) -> Received {
    let Some(pid) = datagram.pid else {
        return Received::Refused("a datagram without its sender's credentials".into());
    };
    let alive = procfs::stat(pid).is_some_and(|s| s.is_alive());
    if alive && !ours(pid) {
        return Received::Refused(format!(
            "a datagram from pid {pid}, which is not the instance's"
        ));
    }
    match datagram.bytes {
        Ok(bytes) => {
            let (notifications, ignored) = parse(&bytes);
            Received::Message(Message {
                pid,
                notifications,
                ignored,
            })
        }
        Err(len) => Received::Refused(format!(
            "a datagram of {len} bytes from pid {pid}, over the {MAX_DATAGRAM}-byte limit"
        )),
    }
}

/// Whether `pid` is `root` or one of its descendants, by the parent chain in
/// `/proc`. A process whose parent died was re-parented (to the daemon, a
/// subreaper) and no longer descends from `root`: with cgroups, membership
/// of the instance's cgroup is the better test.
pub fn descends_from(pid: u32, root: u32) -> bool {
    let mut at = pid;
    // A chain is never this long; the bound guards against a loop read
    // while pids are reused.
    for _ in 0..4096 {
        if at == root {
            return true;
        }
        match procfs::stat(at) {
            Some(stat) if stat.ppid > 1 && stat.ppid != at => at = stat.ppid,
            _ => return false,
        }
    }
    false
}

/// Parses a datagram's `KEY=VALUE` lines: the notifications, and each line
/// skipped with why. Unknown keys and `MAINPID=` are skipped silently.
pub fn parse(datagram: &[u8]) -> (Vec<Notification>, Vec<String>) {
    let mut notifications = Vec::new();
    let mut ignored = Vec::new();
    for (i, line) in datagram.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let number = i + 1;
        let Ok(line) = std::str::from_utf8(line) else {
            ignored.push(format!("line {number} is not UTF-8"));
            continue;
        };
        let Some((key, value)) = line.split_once('=').filter(|(k, _)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }) else {
            ignored.push(format!(
                "line {number} is not KEY=VALUE: {:?}",
                shorten(line)
            ));
            continue;
        };
        let parsed = match key {
            "READY" => flag(value).map(|()| Notification::Ready),
            "WATCHDOG" => flag(value).map(|()| Notification::Watchdog),
            "STOPPING" => flag(value).map(|()| Notification::Stopping),
            "STATUS" => Some(Notification::Status(
                value
                    .chars()
                    .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                    .collect(),
            )),
            "ERRNO" => value
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Notification::Errno),
            "EXTEND_TIMEOUT_USEC" => value
                .parse::<u64>()
                .ok()
                .map(|us| Notification::ExtendTimeout(Duration::from_micros(us))),
            _ => continue,
        };
        match parsed {
            Some(n) => notifications.push(n),
            None => ignored.push(format!(
                "line {number} has a bad value: {:?}",
                shorten(line)
            )),
        }
    }
    (notifications, ignored)
}

/// `READY`, `WATCHDOG`, `STOPPING` take only `1`.
fn flag(value: &str) -> Option<()> {
    (value == "1").then_some(())
}

/// A line as quoted in a reason: at most 80 characters.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram as StdDatagram;

    type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

    const SOON: Duration = Duration::from_secs(10);

    fn setup() -> io::Result<(tempfile::TempDir, Arc<RuntimeDir>)> {
        let base = tempfile::tempdir()?;
        let root = Arc::new(RuntimeDir::create_in(base.path())?);
        Ok((base, root))
    }

    async fn recv(socket: &NotifySocket, ours: impl Fn(u32) -> bool) -> TestResult<Received> {
        Ok(tokio::time::timeout(SOON, socket.recv(ours)).await??)
    }

    #[test]
    fn the_known_keys_are_parsed_and_the_rest_skipped_with_reasons_or_silently() {
        let (notifications, ignored) = parse(
            b"READY=1\nSTATUS=up: 3 workers\x1b[0m\nWATCHDOG=1\nSTOPPING=1\nERRNO=2\n\
              EXTEND_TIMEOUT_USEC=1500000\nMAINPID=42\nX_CUSTOM=1\nBARRIER=1\n\n\
              READY=2\nERRNO=-1\nEXTEND_TIMEOUT_USEC=soon\nhello\n=1\nlower=1\n\xff\xfe\n",
        );
        assert_eq!(
            notifications,
            vec![
                Notification::Ready,
                Notification::Status("up: 3 workers\u{fffd}[0m".into()),
                Notification::Watchdog,
                Notification::Stopping,
                Notification::Errno(2),
                Notification::ExtendTimeout(Duration::from_millis(1500)),
            ]
        );
        assert_eq!(
            ignored,
            vec![
                "line 11 has a bad value: \"READY=2\"",
                "line 12 has a bad value: \"ERRNO=-1\"",
                "line 13 has a bad value: \"EXTEND_TIMEOUT_USEC=soon\"",
                "line 14 is not KEY=VALUE: \"hello\"",
                "line 15 is not KEY=VALUE: \"=1\"",
                "line 16 is not KEY=VALUE: \"lower=1\"",
                "line 17 is not UTF-8",
            ]
        );
    }

    #[test]
    fn a_long_garbage_line_is_quoted_shortened() {
        let line = "x".repeat(500);
        let (_, ignored) = parse(line.as_bytes());
        assert_eq!(
            ignored,
            vec![format!("line 1 is not KEY=VALUE: \"{}…\"", "x".repeat(80))]
        );
    }

    #[tokio::test]
    async fn a_raw_datagram_from_the_instance_is_read_with_its_sender() -> TestResult {
        let (_base, root) = setup()?;
        let socket = NotifySocket::bind(&root, None)?;
        StdDatagram::unbound()?.send_to(b"READY=1\nSTATUS=listening", socket.path())?;
        let me = std::process::id();
        let received = recv(&socket, |pid| pid == me).await?;
        assert_eq!(
            received,
            Received::Message(Message {
                pid: me,
                notifications: vec![
                    Notification::Ready,
                    Notification::Status("listening".into())
                ],
                ignored: vec![],
            })
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_live_sender_that_is_not_the_instances_is_refused() -> TestResult {
        let (_base, root) = setup()?;
        let socket = NotifySocket::bind(&root, None)?;
        StdDatagram::unbound()?.send_to(b"READY=1", socket.path())?;
        let me = std::process::id();
        let received = recv(&socket, |_| false).await?;
        assert_eq!(
            received,
            Received::Refused(format!(
                "a datagram from pid {me}, which is not the instance's"
            ))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_datagram_over_the_bound_is_refused_whole_and_the_next_one_read() -> TestResult {
        let (_base, root) = setup()?;
        let socket = NotifySocket::bind(&root, None)?;
        let sender = StdDatagram::unbound()?;
        let mut big = b"READY=1\nSTATUS=".to_vec();
        big.resize(MAX_DATAGRAM + 1, b'x');
        sender.send_to(&big, socket.path())?;
        sender.send_to(b"WATCHDOG=1", socket.path())?;
        let me = std::process::id();
        assert_eq!(
            recv(&socket, |_| true).await?,
            Received::Refused(format!(
                "a datagram of {} bytes from pid {me}, over the 4096-byte limit",
                MAX_DATAGRAM + 1
            ))
        );
        let Received::Message(next) = recv(&socket, |_| true).await? else {
            panic!("the next datagram was refused");
        };
        assert_eq!(next.notifications, vec![Notification::Watchdog]);
        Ok(())
    }

    const SYSTEMD_NOTIFY: &str = "/usr/bin/systemd-notify";

    /// Polls `child` until it exits (within [`SOON`]).
    async fn exited(child: &mut std::process::Child) -> TestResult<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                return Err("the child did not exit".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn systemd_notify_from_a_descendant_is_understood_and_its_barrier_released() -> TestResult
    {
        if !Path::new(SYSTEMD_NOTIFY).exists() {
            eprintln!("skipped: no {SYSTEMD_NOTIFY}");
            return Ok(());
        }
        let (_base, root) = setup()?;
        let socket = NotifySocket::bind(&root, None)?;
        // The tool sends its parent's pid (its `MAINPID`, the program that
        // runs it): here a shell, a child of ours. By default it then waits
        // (up to 5 s) until the receiver closes the descriptor of its
        // `BARRIER=1` datagram, so the shell is alive when we read: it is
        // checked, and it descends from us.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("{SYSTEMD_NOTIFY} --ready --status=serving; exit $?"),
            ])
            .env("NOTIFY_SOCKET", socket.path())
            .spawn()?;
        let me = std::process::id();
        let ours = |pid| descends_from(pid, me);
        let Received::Message(message) = recv(&socket, ours).await? else {
            panic!("systemd-notify's datagram was refused");
        };
        assert_eq!(message.pid, child.id());
        assert_eq!(
            message.notifications,
            vec![Notification::Ready, Notification::Status("serving".into())],
        );
        assert_eq!(message.ignored, Vec::<String>::new());
        let begun = std::time::Instant::now();
        let Received::Message(barrier) = recv(&socket, ours).await? else {
            panic!("the barrier was refused");
        };
        assert_eq!(barrier.notifications, vec![]);
        let status = exited(&mut child).await?;
        assert!(status.success(), "systemd-notify: {status}");
        // Released at once, not after its 5 s timeout.
        assert!(
            begun.elapsed() < Duration::from_secs(4),
            "{:?}",
            begun.elapsed()
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_sender_already_gone_when_read_is_believed() -> TestResult {
        if !Path::new(SYSTEMD_NOTIFY).exists() {
            eprintln!("skipped: no {SYSTEMD_NOTIFY}");
            return Ok(());
        }
        let (_base, root) = setup()?;
        let socket = NotifySocket::bind(&root, None)?;
        // The datagram names the shell (the tool's parent), which has
        // exited and been reaped when it is read.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("{SYSTEMD_NOTIFY} --ready --no-block; exit $?"),
            ])
            .env("NOTIFY_SOCKET", socket.path())
            .spawn()?;
        let status = exited(&mut child).await?;
        assert!(status.success(), "systemd-notify: {status}");
        // Believed whatever the predicate says.
        let Received::Message(message) = recv(&socket, |_| false).await? else {
            panic!("the datagram of an exited sender was refused");
        };
        assert_eq!(message.notifications, vec![Notification::Ready]);
        Ok(())
    }

    #[tokio::test]
    async fn descriptors_passed_along_are_not_kept() -> TestResult {
        use nix::sys::socket::{ControlMessage, sendmsg};
        use std::io::{IoSlice, Read};
        let (_base, root) = setup()?;
        let socket = NotifySocket::bind(&root, None)?;
        let sender = StdDatagram::unbound()?;
        sender.connect(socket.path())?;
        // A pipe's write end travels with the datagram: once the receiver
        // has let go of it, the read end sees end of file.
        let (read_end, write_end) = nix::unistd::pipe()?;
        sendmsg::<()>(
            sender.as_raw_fd(),
            &[IoSlice::new(b"BARRIER=1")],
            &[ControlMessage::ScmRights(&[write_end.as_raw_fd()])],
            MsgFlags::empty(),
            None,
        )?;
        drop(write_end);
        assert!(matches!(
            recv(&socket, |_| true).await?,
            Received::Message(_)
        ));
        nix::fcntl::fcntl(
            &read_end,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        let mut byte = [0u8; 1];
        assert_eq!(
            File::from(read_end).read(&mut byte)?,
            0,
            "the descriptor is still open"
        );
        Ok(())
    }

    #[test]
    fn the_directories_and_socket_are_private_and_removed_after_use() -> TestResult {
        let (base, root) = setup()?;
        let mode = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.mode() & 0o7777);
        assert_eq!(mode(root.path())?, 0o711);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let socket = rt.block_on(async { NotifySocket::bind(&root, None) })?;
        let (dir, path) = (socket.dir.clone(), socket.path().to_path_buf());
        assert_eq!(dir.parent(), Some(root.path()));
        assert_eq!(mode(&dir)?, 0o700);
        assert_eq!(mode(&path)?, 0o600);
        assert!(path.as_os_str().len() <= MAX_SOCKET_PATH);
        drop(socket);
        assert!(!dir.exists());
        root.remove();
        assert!(!root.path().exists());
        assert!(base.path().exists());
        Ok(())
    }

    #[test]
    fn as_root_the_socket_and_its_directory_belong_to_the_programs_user() -> TestResult {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: not root");
            return Ok(());
        }
        let (_base, root) = setup()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let socket = rt.block_on(async { NotifySocket::bind(&root, Some((65534, 65534))) })?;
        for p in [socket.path(), socket.dir.as_path()] {
            let meta = std::fs::symlink_metadata(p)?;
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{}", p.display());
        }
        // The root directory stays the daemon's.
        assert_eq!(std::fs::metadata(root.path())?.uid(), 0);
        Ok(())
    }

    #[test]
    fn a_symlink_at_the_runtime_directorys_name_is_never_followed() -> TestResult {
        let base = tempfile::tempdir()?;
        let target = tempfile::tempdir()?;
        let name = format!("taskmaster-{}.0", std::process::id());
        std::os::unix::fs::symlink(target.path(), base.path().join(&name))?;
        let root = RuntimeDir::create_in(base.path())?;
        assert_eq!(
            root.path(),
            base.path()
                .join(format!("taskmaster-{}.1", std::process::id()))
        );
        assert!(std::fs::symlink_metadata(root.path())?.is_dir());
        root.remove();
        assert!(target.path().exists());
        assert_eq!(std::fs::read_dir(target.path())?.count(), 0);
        Ok(())
    }

    #[test]
    fn a_socket_path_too_long_for_sun_path_is_refused_with_the_fix() -> TestResult {
        let base = tempfile::tempdir()?;
        let deep = base.path().join("d".repeat(100));
        std::fs::create_dir(&deep)?;
        let root = Arc::new(RuntimeDir::create_in(&deep)?);
        let Err(e) = NotifySocket::bind(&root, None) else {
            panic!("bound a socket path over {MAX_SOCKET_PATH} bytes");
        };
        assert!(
            e.to_string().contains("set XDG_RUNTIME_DIR or TMPDIR"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn a_child_and_its_child_descend_from_us_and_we_do_not_descend_from_them() -> TestResult {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            use std::io::BufRead;
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let grandchild: u32 = line.trim().parse()?;
        let me = std::process::id();
        let result = (
            descends_from(child.id(), me),
            descends_from(grandchild, me),
            descends_from(grandchild, child.id()),
            descends_from(me, child.id()),
            descends_from(1, me),
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(result, (true, true, true, false, false));
        Ok(())
    }
}
