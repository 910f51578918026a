//! Descendant tracking: which processes belong to an instance, whatever they
//! do to themselves.
//!
//! A process group is not enough: PostgreSQL puts each backend in a session
//! of its own, `setsid` does the same, and nginx and redis overwrite the
//! environment (where the leftover tag lives) with their process title. So,
//! where the host allows it, each instance runs in a **cgroup v2** of its
//! own: membership is kept by the kernel, inherited by every descendant, and
//! cannot be left by an unprivileged process.
//!
//! Layout: `<the daemon's own cgroup>/taskmaster-<tag>/<program>:<index>`,
//! where `<tag>` identifies the config file ([`Tag::for_config`]): two
//! daemons on different configs never share a directory, and a daemon
//! restarted on the same config finds its predecessor's. Program names are
//! letters, digits, `_`, `.` and `-` (checked by the validator), so
//! `<program>:<index>` is always a valid, unique directory name, never `.`,
//! `..` or an interface file (those have no `:`).
//!
//! How it is used:
//! - **Spawn**: the daemon creates the instance's directory (once) and opens
//!   its `cgroup.procs`; the child writes `0` there (joins it) as its first
//!   step after the signal set-up, before `execve` (`vfork.rs`).
//! - **Stop**: the stop signal goes to the process group as before; the stop
//!   completes when the cgroup is empty (`populated 0` in `cgroup.events`),
//!   not when the group is. Escaped members still there once the leader's
//!   group is gone get the stop signal too; after `stoptime`, the whole
//!   cgroup is killed (`cgroup.kill`, or SIGKILL to each pid of
//!   `cgroup.procs` on kernels before 5.14).
//! - **A leader that exits** on its own: the rest of its cgroup is killed,
//!   and a respawn waits until the cgroup is empty (a PostgreSQL backend
//!   still holding the shared memory would make the new postmaster fail).
//! - **Start-up**: the cgroups a predecessor left (after a SIGKILL, say) are
//!   emptied before anything is spawned ([`sweep()`]); their root is also
//!   recorded in a state file next to the pidfile, so a daemon restarted from
//!   another cgroup still finds them.
//!
//! Where cgroup v2 is not mounted, not writable, or disabled with
//! [`DISABLE_ENV`] (for tests and for hosts where taskmaster must not touch
//! cgroups), the daemon falls back to a best effort ([`fallback`]): the
//! process group as before, plus the instance's process tree, walked when
//! it starts running, every few seconds, and before a stop, plus the
//! orphans the daemon adopts (as subreaper) when a leader dies; all known
//! by pid *and* start time, and recorded in the state file so that the next
//! start sweeps them. The environment tag (`leftovers.rs`) still applies.
//! What it misses: a descendant that leaves its group, is started and
//! re-parented between two walks, and whose leader is not ours when it
//! dies.

use crate::leftovers::Tag;
use nix::errno::Errno;
use nix::sys::signal::{Signal as NixSignal, kill};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Set to any non-empty value to never use cgroups (tests of the fallback,
/// hosts where taskmaster must leave cgroups alone).
pub const DISABLE_ENV: &str = "TASKMASTER_NO_CGROUPS";
/// How many rounds of "SIGKILL every pid of `cgroup.procs`" a kill makes
/// when `cgroup.kill` does not exist (kernels before 5.14): a member may fork
/// between the read and the kill.
const KILL_ROUNDS: usize = 8;

/// How the daemon keeps track of what its children start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// One cgroup per instance under `root` (`…/taskmaster-<tag>`).
    Cgroup { root: PathBuf },
    /// Process groups, process-tree walks and adoptions recorded with
    /// start times in the state file, and the environment tag; `why` says
    /// why cgroups are not used.
    Fallback { why: String },
}

impl Mechanism {
    /// The start-up log line's (and `--version`'s) description.
    pub fn describe(&self) -> String {
        match self {
            Mechanism::Cgroup { root } => format!("cgroup v2 at {}", root.display()),
            Mechanism::Fallback { why } => {
                format!("fallback: process groups + process tree + state file ({why})")
            }
        }
    }
}

static INSTALLED: OnceLock<Mechanism> = OnceLock::new();

/// Makes `mechanism` the one every instance uses (first call wins).
pub fn install(mechanism: Mechanism) -> &'static Mechanism {
    INSTALLED.get_or_init(|| mechanism)
}

/// True when the daemon runs with the fallback (not in unit tests, which
/// install nothing).
pub fn fallback_active() -> bool {
    matches!(INSTALLED.get(), Some(Mechanism::Fallback { .. }))
}

/// The root of the instances' cgroups, when cgroups are in use (unit tests
/// run without).
pub fn cgroup_root() -> Option<&'static Path> {
    match INSTALLED.get() {
        Some(Mechanism::Cgroup { root }) => Some(root),
        _ => None,
    }
}

/// The directory of this process's own cgroup in the unified hierarchy, if
/// the host has one and this process could create cgroups under it.
/// Changes nothing (`--version` uses it).
pub fn own_cgroup_dir() -> Result<PathBuf, String> {
    if std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty()) {
        return Err(format!("disabled by {DISABLE_ENV}"));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (mount_root, mount_point) =
        cgroup2_mount(&mountinfo).ok_or("no cgroup2 file system is mounted")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own_cgroup(&cgroup).ok_or("this process is in no cgroup v2")?;
    let relative = own
        .strip_prefix(mount_root.as_str())
        .ok_or_else(|| format!("our cgroup {own} is outside the mounted {mount_root}"))?;
    let relative = relative.trim_start_matches('/');
    let dir = if relative.is_empty() {
        mount_point
    } else {
        mount_point.join(relative)
    };
    let procs = dir.join("cgroup.procs");
    let writable = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok();
        // SAFETY: a NUL-terminated path; access() only reads it.
        c.is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
    };
    if !writable(&dir) || !writable(&procs) {
        return Err(format!("{} is not writable by us", dir.display()));
    }
    Ok(dir)
}

/// `taskmasterd --version`'s text: the version and the mechanism a daemon
/// started now would use.
pub fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mechanism = match own_cgroup_dir() {
            Ok(dir) => format!("cgroup v2 under {}", dir.display()),
            Err(why) => Mechanism::Fallback { why }.describe(),
        };
        format!(
            "{}\ndescendant tracking: {mechanism}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// Decides the mechanism for the daemon of `tag`, creating its cgroup root
/// (`<own cgroup>/taskmaster-<tag>`) when cgroups can be used.
pub fn detect(tag: &Tag) -> Mechanism {
    let dir = match own_cgroup_dir() {
        Ok(dir) => dir,
        Err(why) => return Mechanism::Fallback { why },
    };
    let root = dir.join(root_name(tag));
    match create_dir(&root) {
        Ok(()) => Mechanism::Cgroup { root },
        Err(e) => Mechanism::Fallback {
            why: format!("cannot create {}: {e}", root.display()),
        },
    }
}

/// Start-up, before anything is spawned (the pidfile lock is held): picks
/// and installs the mechanism, logs it, empties the cgroups a predecessor on
/// this config left (at our root and at the root its state file names), and
/// records our root for the next start.
pub fn start(tag: &Tag, config: &crate::config::Config, pidfile: &Path) -> &'static Mechanism {
    let mechanism = install(detect(tag));
    tracing::info!("descendant tracking: {}", mechanism.describe());
    let state = StateFile::next_to(pidfile);
    let mut roots: Vec<PathBuf> = state.recorded_root(tag).into_iter().collect();
    if let Mechanism::Cgroup { root } = mechanism
        && !roots.contains(root)
    {
        roots.push(root.clone());
    }
    sweep(&roots, config);
    for old in roots.iter().filter(|r| cgroup_root() != Some(r.as_path())) {
        remove_tree(old);
    }
    if let Ok(text) = state.read() {
        sweep::sweep_recorded(&fallback::parse(&text), config);
    }
    match mechanism {
        Mechanism::Cgroup { root } => {
            if let Err(e) = state.record_root(root) {
                tracing::warn!(path = %state.path().display(), error = %e,
                    "cannot write the state file; a restart from another cgroup would miss leftovers");
            }
        }
        Mechanism::Fallback { .. } => {
            fallback::install_state_file(state);
            fallback::flush();
        }
    }
    mechanism
}

/// Clean exit: every instance is stopped; removes the cgroups and the state
/// file.
pub fn finish(pidfile: &Path) {
    if matches!(INSTALLED.get(), Some(Mechanism::Fallback { .. })) {
        fallback::clear();
        fallback::flush();
    }
    if let Some(root) = cgroup_root() {
        remove_tree(root);
        if root.exists() {
            // Something is still in there: the next start must find it.
            return;
        }
    }
    StateFile::next_to(pidfile).remove();
}

/// `taskmaster-<tag>`.
pub fn root_name(tag: &Tag) -> String {
    format!("taskmaster-{}", tag.as_str())
}

/// `mkdir`, an existing directory being fine.
fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// The mount root and mount point of the first `cgroup2` mount in a
/// `/proc/self/mountinfo` text (octal escapes in the point decoded).
fn cgroup2_mount(mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = left.split_whitespace();
        let root = fields.nth(3)?;
        let point = fields.next()?;
        Some((unescape(root), PathBuf::from(unescape(point))))
    })
}

/// mountinfo's `\040`-style escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        if bytes[i] == b'\\'
            && let Some(n) = octal
        {
            out.push(n);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `0::/path` entry of a `/proc/PID/cgroup` text.
fn own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
}

/// One instance's cgroup directory.
#[derive(Debug, Clone)]
pub struct InstanceCgroup {
    dir: PathBuf,
    /// Created (by us, or found): no `mkdir` per spawn.
    created: std::cell::Cell<bool>,
}

/// Opens `name` in `dir` for writing, never through a symlink.
fn open_write(dir: &Path, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(name))
}

fn open_read(dir: &Path, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(name))
}

impl InstanceCgroup {
    /// The cgroup of instance `index` of `program` under `root`.
    pub fn new(root: &Path, program: &str, index: u32) -> Self {
        InstanceCgroup {
            dir: root.join(format!("{program}:{index}")),
            created: std::cell::Cell::new(false),
        }
    }

    /// An existing directory (the start-up sweep).
    fn at(dir: PathBuf) -> Self {
        InstanceCgroup {
            dir,
            created: std::cell::Cell::new(true),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory if needed and opens its `cgroup.procs`, for
    /// the child to join before `execve`.
    pub fn prepare(&self) -> io::Result<OwnedFd> {
        if !self.created.get() {
            create_dir(&self.dir)?;
            self.created.set(true);
        }
        match open_write(&self.dir, "cgroup.procs") {
            // Removed under us (by an operator): once more from the start.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir(&self.dir)?;
                open_write(&self.dir, "cgroup.procs").map(OwnedFd::from)
            }
            other => other.map(OwnedFd::from),
        }
    }

    /// True while any process is in the cgroup (zombies are not). A
    /// directory that does not exist is empty.
    pub fn populated(&self) -> io::Result<bool> {
        match open_read(&self.dir, "cgroup.events") {
            Ok(file) => events_populated(&file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `cgroup.events`, kept open by a stop's poll ([`events_populated`]).
    pub fn events(&self) -> io::Result<File> {
        open_read(&self.dir, "cgroup.events")
    }

    /// The pids in the cgroup now.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let mut text = String::new();
        match open_read(&self.dir, "cgroup.procs") {
            Ok(mut f) => f.read_to_string(&mut text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// SIGKILLs every process of the cgroup: `cgroup.kill` (atomic against
    /// forks), else each pid of `cgroup.procs`, a few rounds.
    pub fn kill(&self) -> io::Result<()> {
        match open_write(&self.dir, "cgroup.kill").and_then(|mut f| f.write_all(b"1")) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.dir.exists() => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for _ in 0..KILL_ROUNDS {
            let pids = self.pids()?;
            if pids.is_empty() {
                break;
            }
            self.signal(&pids, NixSignal::SIGKILL);
        }
        Ok(())
    }

    /// Sends `signal` to each of `pids` (gone ones are fine).
    pub fn signal(&self, pids: &[u32], signal: NixSignal) {
        for &pid in pids {
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            if let Err(e) = kill(Pid::from_raw(raw), signal)
                && e != Errno::ESRCH
            {
                tracing::error!(pid, cgroup = %self.dir.display(), error = %e,
                    "cannot signal a member of the cgroup");
            }
        }
    }

    /// Removes the (empty) directory; a missing one is fine.
    pub fn remove(&self) -> io::Result<()> {
        self.created.set(false);
        match std::fs::remove_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Reads `populated` from an open `cgroup.events` (from offset 0: the file
/// is regenerated at each read).
pub fn events_populated(file: &File) -> io::Result<bool> {
    let mut buf = [0u8; 256];
    let n = file.read_at(&mut buf, 0)?;
    parse_populated(&buf[..n])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no `populated` line"))
}

fn parse_populated(text: &[u8]) -> Option<bool> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let value = line.strip_prefix(b"populated ")?;
        Some(value != b"0")
    })
}

/// The instance cgroups under `root` (every subdirectory).
fn instance_dirs(root: &Path) -> Vec<InstanceCgroup> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| InstanceCgroup::at(e.path()))
        .collect()
}

/// The program a directory `<program>:<index>` belongs to.
fn program_of(cgroup: &InstanceCgroup) -> Option<&str> {
    let name = cgroup.dir.file_name().map(OsStr::as_bytes)?;
    let name = std::str::from_utf8(name).ok()?;
    name.rsplit_once(':').map(|(program, _)| program)
}

/// Removes every instance directory under `root` that is empty, then `root`
/// itself if nothing is left (clean shutdown).
pub fn remove_tree(root: &Path) {
    for cgroup in instance_dirs(root) {
        if let Err(e) = cgroup.remove() {
            tracing::warn!(cgroup = %cgroup.dir.display(), error = %e, "cannot remove cgroup");
        }
    }
    match std::fs::remove_dir(root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(cgroup = %root.display(), error = %e, "cannot remove cgroup"),
    }
}

pub use fallback::Known;
pub use state::StateFile;

pub mod fallback {
    //! Without cgroups: descendants found by walking the process tree
    //! (`/proc/PID/task/TID/children`, so a walk costs what the instance has,
    //! not what the host runs), identified by pid *and* start time (a pid
    //! the kernel reused is never mistaken for ours), and recorded in the
    //! state file so that the next daemon can sweep them.
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Mutex, PoisonError};

    /// State-file writes are at most this frequent (a crash loop records a
    /// new leader at every spawn).
    const FLUSH_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
    /// A walk stops there (a fork bomb must not stall the actor).
    const MAX_WALK: usize = 4096;

    /// One process, as of when it was seen.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Known {
        pub pid: u32,
        /// `/proc/PID/stat` field 22, in clock ticks since boot.
        pub start: u64,
    }

    impl Known {
        /// `pid` now, if it lives (zombies do not count).
        pub fn of(pid: u32) -> Option<Known> {
            let stat = crate::sys::procfs::stat(pid)?;
            stat.is_alive().then_some(Known {
                pid,
                start: stat.start_time,
            })
        }

        /// Still the same process, alive.
        pub fn alive(&self) -> bool {
            Known::of(self.pid).is_some_and(|k| k.start == self.start)
        }

        /// SIGKILL or another signal, only if it is still the same process.
        pub fn signal(&self, signal: NixSignal) {
            if self.alive()
                && let Ok(pid) = i32::try_from(self.pid)
            {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
    }

    /// The children of `pid` (every thread's).
    pub fn children_of(pid: u32) -> Vec<u32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        out
    }

    /// Every live descendant of each of `roots` (not the roots).
    pub fn descendants_of(roots: &[u32]) -> Vec<Known> {
        let mut seen = BTreeSet::new();
        let mut queue: Vec<u32> = roots.iter().flat_map(|&r| children_of(r)).collect();
        let mut out = Vec::new();
        while let Some(pid) = queue.pop() {
            if out.len() >= MAX_WALK || !seen.insert(pid) {
                continue;
            }
            if let Some(k) = Known::of(pid) {
                out.push(k);
                queue.extend(children_of(pid));
            }
        }
        out
    }

    /// What every instance is known to have started, for the state file.
    static RECORDED: Mutex<BTreeMap<String, Vec<Known>>> = Mutex::new(BTreeMap::new());
    static FLUSH: Mutex<Option<(StateFile, bool)>> = Mutex::new(None);

    /// Where [`record`] writes (set once at start-up, fallback only).
    pub fn install_state_file(state: StateFile) {
        *FLUSH.lock().unwrap_or_else(PoisonError::into_inner) = Some((state, false));
    }

    /// True when an instance other than `instance` has `pid` recorded.
    pub fn recorded_elsewhere(instance: &str, pid: u32) -> bool {
        RECORDED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(i, known)| i != instance && known.iter().any(|k| k.pid == pid))
    }

    /// Replaces what `instance` is known to have running, and schedules a
    /// state-file write (at most one a second, off the actor thread).
    pub fn record(instance: &str, known: Vec<Known>) {
        {
            let mut map = RECORDED.lock().unwrap_or_else(PoisonError::into_inner);
            if map.get(instance) == Some(&known) {
                return;
            }
            if known.is_empty() {
                map.remove(instance);
            } else {
                map.insert(instance.to_string(), known);
            }
        }
        let schedule = {
            let mut flush = FLUSH.lock().unwrap_or_else(PoisonError::into_inner);
            match flush.as_mut() {
                Some((_, pending)) if !*pending => {
                    *pending = true;
                    true
                }
                _ => false,
            }
        };
        if schedule && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async {
                tokio::time::sleep(FLUSH_DELAY).await;
                let _ = tokio::task::spawn_blocking(flush).await;
            });
        }
    }

    /// Forgets everything (clean shutdown: all is stopped).
    pub fn clear() {
        RECORDED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Writes the state file now.
    pub fn flush() {
        let state = {
            let mut flush = FLUSH.lock().unwrap_or_else(PoisonError::into_inner);
            match flush.as_mut() {
                Some((state, pending)) => {
                    *pending = false;
                    state.clone()
                }
                None => return,
            }
        };
        let mut text = String::from("# taskmasterd: processes to sweep at the next start\n");
        for (instance, known) in RECORDED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            for k in known {
                text.push_str(&format!("pid {} {} {instance}\n", k.pid, k.start));
            }
        }
        if let Err(e) = state.write(&text) {
            tracing::warn!(path = %state.path().display(), error = %e, "cannot write the state file");
        }
    }

    /// The `pid PID START INSTANCE` lines of a state file's text.
    pub fn parse(text: &str) -> Vec<(Known, String)> {
        text.lines()
            .filter_map(|l| {
                let mut f = l.strip_prefix("pid ")?.split_whitespace();
                let pid = f.next()?.parse().ok()?;
                let start = f.next()?.parse().ok()?;
                let instance = f.next().unwrap_or("?").to_string();
                Some((Known { pid, start }, instance))
            })
            .collect()
    }
}

pub use sweep::{Swept, sweep};

mod state {
    //! The state file next to the pidfile: what the next daemon on this
    //! config must sweep (the cgroup root in use). Written atomically (a
    //! temporary file renamed over it), never through a symlink, read only
    //! when it is a small regular file.
    use super::*;
    use std::io::Read;

    /// Larger files are not ours: ignored.
    const MAX_LEN: u64 = 1 << 20;

    /// `<pidfile>.state`.
    #[derive(Debug, Clone)]
    pub struct StateFile {
        path: PathBuf,
    }

    impl StateFile {
        /// The state file of the daemon whose pidfile is `pidfile`.
        pub fn next_to(pidfile: &Path) -> Self {
            let mut name = pidfile.file_name().unwrap_or_default().to_os_string();
            name.push(".state");
            StateFile {
                path: pidfile.with_file_name(name),
            }
        }

        pub fn path(&self) -> &Path {
            &self.path
        }

        /// The cgroup root a predecessor recorded, if it is one of ours
        /// (named `taskmaster-<tag>`, with a `cgroup.procs`).
        pub fn recorded_root(&self, tag: &Tag) -> Option<PathBuf> {
            let text = self.read().ok()?;
            let root = text
                .lines()
                .find_map(|l| l.strip_prefix("cgroup "))
                .map(PathBuf::from)?;
            (root.file_name()? == OsStr::new(&root_name(tag))
                && root.is_absolute()
                && root.join("cgroup.procs").exists())
            .then_some(root)
        }

        pub fn read(&self) -> io::Result<String> {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(&self.path)?;
            let meta = file.metadata()?;
            if !meta.is_file() || meta.len() > MAX_LEN {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a small regular file",
                ));
            }
            let mut text = String::new();
            file.take(MAX_LEN).read_to_string(&mut text)?;
            Ok(text)
        }

        /// Replaces the file's content atomically.
        pub fn write(&self, content: &str) -> io::Result<()> {
            let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
            tmp_name.push(format!(".{}.tmp", std::process::id()));
            let tmp = self.path.with_file_name(tmp_name);
            let _ = std::fs::remove_file(&tmp);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            // No fsync: what it lists does not survive a power loss either.
            let written = file
                .write_all(content.as_bytes())
                .and_then(|()| std::fs::rename(&tmp, &self.path));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        }

        /// Records the cgroup root in use.
        pub fn record_root(&self, root: &Path) -> io::Result<()> {
            self.write(&format!("cgroup {}\n", root.display()))
        }

        pub fn remove(&self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

mod sweep {
    //! Emptying a predecessor's cgroups at start-up.
    use super::*;
    use crate::config::Config;
    use crate::leftovers::GRACE_MAX;
    use std::time::{Duration, Instant};

    /// How long SIGKILLed members may take to disappear.
    const KILL_WAIT: Duration = Duration::from_secs(5);
    /// How often the sweep looks whether the cgroups are empty.
    const POLL: Duration = Duration::from_millis(10);

    /// Stops the processes a predecessor recorded (pid and start time,
    /// fallback mode) and what they started since: stop signal, at most
    /// [`GRACE_MAX`], SIGKILL. A pid whose start time differs is someone
    /// else's now and is left alone.
    pub fn sweep_recorded(recorded: &[(fallback::Known, String)], config: &Config) -> usize {
        let mut targets: Vec<(fallback::Known, Duration)> = Vec::new();
        for (known, instance) in recorded {
            if !known.alive() {
                continue;
            }
            let program = instance
                .rsplit_once(':')
                .and_then(|(name, _)| config.programs.get(name));
            let (signal, grace) = match program {
                Some(p) => (p.stopsignal, p.stoptime.min(GRACE_MAX)),
                None => (proto::Signal::Term, GRACE_MAX),
            };
            let mut all = vec![*known];
            all.extend(fallback::descendants_of(&[known.pid]));
            for k in all {
                if targets.iter().any(|(t, _)| t.pid == k.pid) {
                    continue;
                }
                tracing::warn!(pid = k.pid, instance = %instance,
                    command = %crate::leftovers::command_line(k.pid),
                    "leftover of an earlier taskmasterd: stopping it (SIG{signal})");
                if let Ok(sig) = NixSignal::try_from(signal.number()) {
                    k.signal(sig);
                }
                targets.push((k, grace));
            }
        }
        let found = targets.len();
        let start = Instant::now();
        while targets.iter().any(|(k, _)| k.alive()) {
            std::thread::sleep(POLL);
            let elapsed = start.elapsed();
            if elapsed >= GRACE_MAX + KILL_WAIT {
                break;
            }
            for (k, grace) in &targets {
                if elapsed >= *grace {
                    k.signal(NixSignal::SIGKILL);
                }
            }
        }
        found
    }

    /// What [`sweep()`] did.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Swept {
        /// Processes found in leftover cgroups.
        pub found: usize,
        /// Cgroups that needed a SIGKILL.
        pub killed: usize,
        /// Cgroups still populated at the end.
        pub survivors: Vec<PathBuf>,
    }

    /// Empties every instance cgroup under each of `roots` (left by an
    /// earlier daemon on this config), the way `stop` would: the program's
    /// stop signal to each member, at most its `stoptime` (capped at
    /// [`GRACE_MAX`]) to go, then `cgroup.kill`. Removes the emptied
    /// directories. Blocks a few seconds at most: call before the actors
    /// start.
    pub fn sweep(roots: &[PathBuf], config: &Config) -> Swept {
        let mut swept = Swept::default();
        let start = Instant::now();
        let mut waiting: Vec<(InstanceCgroup, Instant)> = Vec::new();
        for cgroup in roots.iter().flat_map(|r| instance_dirs(r)) {
            let pids = cgroup.pids().unwrap_or_default();
            if pids.is_empty() {
                let _ = cgroup.remove();
                continue;
            }
            let program = program_of(&cgroup).and_then(|p| config.programs.get(p));
            let (signal, grace) = match program {
                Some(p) => (p.stopsignal, p.stoptime.min(GRACE_MAX)),
                None => (proto::Signal::Term, GRACE_MAX),
            };
            for &pid in &pids {
                tracing::warn!(pid, cgroup = %cgroup.dir.display(),
                    command = %crate::leftovers::command_line(pid),
                    "leftover of an earlier taskmasterd: stopping it (SIG{signal})");
            }
            swept.found += pids.len();
            if let Ok(sig) = NixSignal::try_from(signal.number()) {
                cgroup.signal(&pids, sig);
            }
            waiting.push((cgroup, start + grace));
        }
        let mut killed: Vec<(InstanceCgroup, Instant)> = Vec::new();
        while !waiting.is_empty() || !killed.is_empty() {
            std::thread::sleep(POLL);
            let now = Instant::now();
            let mut still = Vec::new();
            for (cgroup, deadline) in waiting.drain(..) {
                if !cgroup.populated().unwrap_or(false) {
                    let _ = cgroup.remove();
                } else if now >= deadline {
                    tracing::warn!(cgroup = %cgroup.dir.display(),
                        "leftover did not stop in time: killing its cgroup");
                    if let Err(e) = cgroup.kill() {
                        tracing::error!(cgroup = %cgroup.dir.display(), error = %e,
                            "cannot kill a leftover cgroup");
                    }
                    swept.killed += 1;
                    killed.push((cgroup, now + KILL_WAIT));
                } else {
                    still.push((cgroup, deadline));
                }
            }
            waiting = still;
            killed.retain(|(cgroup, deadline)| {
                if !cgroup.populated().unwrap_or(false) {
                    let _ = cgroup.remove();
                    return false;
                }
                if now >= *deadline {
                    swept.survivors.push(cgroup.dir.clone());
                    return false;
                }
                true
            });
        }
        if !swept.survivors.is_empty() {
            tracing::error!(cgroups = ?swept.survivors,
                "leftovers of an earlier taskmasterd are still alive after SIGKILL; they run unsupervised");
        } else if swept.found > 0 {
            tracing::info!(
                found = swept.found,
                killed = swept.killed,
                "leftovers of an earlier taskmasterd stopped (cgroups)"
            );
        }
        swept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_hierarchy_is_found_in_mountinfo() {
        let hybrid = "\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 25 0:39 / /sys/fs/cgroup/memory rw shared:7 - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(("/".into(), PathBuf::from("/sys/fs/cgroup/unified")))
        );
        let escaped = "30 1 0:26 /sub /my\\040cgroups rw shared:9 - cgroup2 none rw\n";
        assert_eq!(
            cgroup2_mount(escaped),
            Some(("/sub".into(), PathBuf::from("/my cgroups")))
        );
        assert_eq!(cgroup2_mount("25 1 0:23 / /x rw - tmpfs tmpfs rw\n"), None);
        assert_eq!(
            own_cgroup("4:memory:/x\n0::/system.slice/tm.service\n").as_deref(),
            Some("/system.slice/tm.service")
        );
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn a_process_is_known_by_pid_and_start_time() -> Result<(), String> {
        let me = fallback::Known::of(std::process::id()).ok_or("no /proc entry of our own")?;
        assert!(me.alive());
        // Same pid, another start time: a reused pid, not ours.
        let reused = fallback::Known {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!reused.alive());
        let parsed = fallback::parse("# x\ncgroup /a\npid 12 345 web:0\npid x 1 y\n");
        assert_eq!(
            parsed,
            vec![(
                fallback::Known {
                    pid: 12,
                    start: 345
                },
                "web:0".to_string()
            )]
        );
        Ok(())
    }

    #[test]
    fn populated_is_read_from_cgroup_events() {
        assert_eq!(parse_populated(b"populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(parse_populated(b"populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated(b"frozen 0\n"), None);
        let cg = InstanceCgroup::new(Path::new("/r"), "web.api-1", 3);
        assert_eq!(cg.dir(), Path::new("/r/web.api-1:3"));
        assert_eq!(program_of(&cg), Some("web.api-1"));
    }
}
