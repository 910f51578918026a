//! Starting a child without copying the daemon: `clone(CLONE_VM |
//! CLONE_VFORK)`, the way `posix_spawn` does it, with the set-up
//! `posix_spawn` cannot express (parent-death signal, credentials, umask).
//!
//! Why not `fork` (what `std::process::Command` does once a `pre_exec` hook
//! is set): fork copies the daemon's page tables, and every page the daemon
//! then writes takes a copy-on-write fault. Measured on a crash loop of 200
//! spawns a second, that was about 40% of the daemon's CPU. Here the child
//! borrows the daemon's memory and stack-less thread of control until it
//! calls `execve`; the spawning thread (the System's) is suspended
//! meanwhile, and no other thread of the daemon (there is only tokio's
//! blocking pool, for an SMTP host's DNS lookup) touches what the child
//! reads, so nothing changes under the child's feet.
//!
//! What keeps it sound:
//! - Everything is prepared before the clone ([`Plan`], the argument and
//!   environment arrays): the child allocates nothing and takes no lock; it
//!   reads the plan and writes only its own stack and the error slot.
//! - Every signal is blocked around the clone. The child resets every
//!   disposition to the default (its handler table is its own: no
//!   `CLONE_SIGHAND`) before unblocking, so no daemon handler ever runs on
//!   the shared memory.
//! - Credentials change by raw system calls: glibc's `setuid` would try to
//!   synchronise the threads it believes the process has (the daemon's).
//! - The descriptor table is shared at first (`CLONE_FILES`), and the child
//!   changes no descriptor before it has left it: see below. A descriptor
//!   another thread opens meanwhile is at most copied into the child's
//!   table and closed there.
//! - A failure before `execve` (or of `execve`) is written, with the step it
//!   happened in, to a slot in the daemon's memory; the child then exits
//!   127 and the Reaper collects it like any unknown pid. `clone` returns
//!   only once the child has exec'd or exited, so the slot is read safely.
//!
//! Descriptors: a child must get exactly its three stdio descriptors. A
//! plain clone copies the daemon's whole table (four descriptors per
//! managed instance: pipes and log files), and `execve` then closes every
//! copy again; with 1000 instances that was most of the daemon's cost per
//! spawn, and it grows with the fleet (measured: `perf` showed
//! `dup_fd`, `do_close_on_exec` and `filp_flush` at 14% of the whole
//! start-up of 1000 `sleep`s). So the daemon keeps three *stdio slots*,
//! descriptors at fixed low numbers reserved at start-up
//! ([`reserve_stdio_slots`]), points them at the child's stdin, stdout and
//! stderr just before the clone, and back at `/dev/null` just after. The
//! child shares the daemon's table (`CLONE_FILES`, no copy), and its first
//! descriptor operation is `close_range(highest slot + 1, ~0,
//! CLOSE_RANGE_UNSHARE)`: the kernel gives it a private table holding only
//! the descriptors below that, in constant time. It then `dup2`s the slots
//! onto 0, 1 and 2 and closes everything from 3 up.
//!
//! Steps in the child, in order: signal dispositions and mask; joining the
//! instance's cgroup (a `write` of `0` to its `cgroup.procs`, through the
//! daemon's descriptor, while the table is still shared); its own
//! process group; its own descriptor table; stdio (`dup2` onto 0, 1, 2);
//! umask; every other descriptor closed; `setgroups`, `setgid`, `setuid`; the
//! working directory (after the user switch, so it is entered as the
//! user); `PR_SET_PDEATHSIG(SIGKILL)` (last: a credential change clears it)
//! and a check that the daemon is still its parent; `execve` of each `PATH`
//! candidate, with `execvp`'s rules.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The child's stack. It runs a few system-call wrappers, nothing deep.
const STACK_SIZE: usize = 64 * 1024;
/// `sizeof(sigset_t)` for the kernel: 64 signals.
const KERNEL_SIGSET_BYTES: libc::size_t = 8;
/// glibc's `PATH` when none is set.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Credentials to switch to, as root.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
}

/// Everything the child needs, prepared by the daemon.
#[derive(Debug)]
pub struct Plan {
    /// Paths to try with `execve`, in order (a program name resolved
    /// against `PATH`, or the one path given).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    /// The daemon's own variables the child keeps, then the ones set for it.
    inherited: Vec<&'static CStr>,
    set: Vec<CString>,
    /// Descriptors to become the child's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    pub cwd: Option<CString>,
    pub umask: Option<libc::mode_t>,
    pub credentials: Option<Credentials>,
    /// The daemon's descriptor of the instance cgroup's `cgroup.procs`: the
    /// child writes `0` to it (joins the cgroup) first thing.
    pub cgroup_procs: Option<RawFd>,
}

/// Why a plan could not be built (a NUL byte somewhere).
#[derive(Debug, thiserror::Error)]
#[error("{what} contains a NUL byte")]
pub struct NulError {
    pub what: &'static str,
}

impl Plan {
    /// A plan to run `argv` (`argv[0]` is looked up in `path` unless it
    /// holds a `/`) with the environment `inherited` (`NAME=VALUE` entries)
    /// plus `set`.
    pub fn new(
        argv: &[String],
        inherited: Vec<&'static CStr>,
        set: &[(OsString, OsString)],
        path: Option<&OsStr>,
    ) -> Result<Plan, NulError> {
        let Some(program) = argv.first() else {
            return Err(NulError {
                what: "the command",
            });
        };
        let argv = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| NulError {
                what: "an argument",
            })?;
        let set = set
            .iter()
            .map(|(k, v)| {
                let mut entry = k.clone().into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                CString::new(entry)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| NulError {
                what: "an environment variable",
            })?;
        let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
        let candidates = candidates(program, path).map_err(|_| NulError { what: "PATH" })?;
        Ok(Plan {
            candidates,
            argv,
            inherited,
            set,
            stdio: [0, 1, 2],
            cwd: None,
            umask: None,
            credentials: None,
            cgroup_procs: None,
        })
    }
}

/// `execvp`'s search: the program itself if it names a path, else each
/// `PATH` directory joined with it (an empty entry is the current
/// directory).
fn candidates(program: &str, path: &OsStr) -> Result<Vec<CString>, std::ffi::NulError> {
    if program.contains('/') {
        return Ok(vec![CString::new(program)?]);
    }
    path.as_bytes()
        .split(|b| *b == b':')
        .map(|dir| {
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(program.as_bytes());
            CString::new(full)
        })
        .collect()
}

/// Which step of the child's set-up failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    ProcessGroup = 1,
    Stdio,
    Credentials,
    WorkingDir,
    ParentDeathSignal,
    DaemonGone,
    Exec,
    Cgroup,
}

impl Stage {
    fn from_u8(n: u8) -> Option<Stage> {
        Some(match n {
            1 => Stage::ProcessGroup,
            2 => Stage::Stdio,
            3 => Stage::Credentials,
            4 => Stage::WorkingDir,
            5 => Stage::ParentDeathSignal,
            6 => Stage::DaemonGone,
            7 => Stage::Exec,
            8 => Stage::Cgroup,
            _ => return None,
        })
    }
}

/// Why [`launch`] failed.
#[derive(Debug)]
pub enum LaunchError {
    /// No child: the stdio slots could not be reserved or pointed at the
    /// child's streams (EMFILE).
    Slots(io::Error),
    /// No child: `clone` itself failed (EAGAIN at the process limit, ENOMEM).
    Clone(io::Error),
    /// The child failed at `stage` and exited.
    Child { stage: Stage, error: io::Error },
}

/// What the child reads, and the slot it reports a failure in.
struct ChildArgs<'a> {
    plan: &'a Plan,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    daemon: libc::pid_t,
    /// The stdio slots, already pointing at this child's streams.
    slots: [RawFd; 3],
    /// The child keeps the descriptors below this (the slots among them).
    keep_below: libc::c_uint,
    failed_stage: AtomicU8,
    failed_errno: AtomicI32,
}

/// `/dev/null` and the three stdio slots (see the module doc).
#[derive(Debug)]
struct StdioSlots {
    null: OwnedFd,
    slots: [OwnedFd; 3],
}

impl StdioSlots {
    fn raw(&self) -> [RawFd; 3] {
        [0, 1, 2].map(|i| self.slots[i].as_raw_fd())
    }

    /// Points the `changed` slots back at `/dev/null`, dropping our
    /// references to the last child's pipes (else their readers would never
    /// see EOF).
    fn reset(&self, changed: [bool; 3]) {
        for (slot, _) in self.slots.iter().zip(changed).filter(|(_, c)| *c) {
            // SAFETY: both descriptors are ours and open for the process's
            // life; dup3 replaces the slot atomically.
            let r = unsafe { libc::dup3(self.null.as_raw_fd(), slot.as_raw_fd(), libc::O_CLOEXEC) };
            if r < 0 {
                tracing::error!(error = %io::Error::last_os_error(), "cannot reset a stdio slot");
            }
        }
    }
}

static SLOTS: OnceLock<StdioSlots> = OnceLock::new();

/// `/dev/null`, opened once (close-on-exec): what a child's discarded
/// streams are given. A slot at rest points at it too, so passing this
/// descriptor in [`Plan::stdio`] costs no `dup3`.
pub fn dev_null() -> io::Result<RawFd> {
    stdio_slots().map(|slots| slots.null.as_raw_fd())
}

/// Reserves the stdio slots. Call early, while descriptor numbers are low:
/// each child briefly keeps every descriptor up to the highest slot.
/// [`launch`] reserves them itself if nobody did.
pub fn reserve_stdio_slots() -> io::Result<()> {
    stdio_slots().map(|_| ())
}

fn stdio_slots() -> io::Result<&'static StdioSlots> {
    if let Some(slots) = SLOTS.get() {
        return Ok(slots);
    }
    let null = OwnedFd::from(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?,
    );
    // At 3 or above even if the daemon runs with 0, 1 or 2 closed: the
    // child's dup2 onto 0, 1, 2 must not overwrite a slot it reads later.
    let dup = || -> io::Result<OwnedFd> {
        // SAFETY: duplicates a descriptor we own; the result is checked.
        let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let slots = [dup()?, dup()?, dup()?];
    // Only the daemon's main thread spawns; were two racing, the loser's
    // descriptors would simply be closed.
    Ok(SLOTS.get_or_init(|| StdioSlots { null, slots }))
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Starts the child described by `plan`; returns its pid once it has
/// exec'd. Call from the daemon's main thread (the parent-death signal
/// follows the thread that forked).
pub fn launch(plan: &Plan) -> Result<u32, LaunchError> {
    let slots = stdio_slots().map_err(LaunchError::Slots)?;
    let raw = slots.raw();
    // A slot at rest already is `/dev/null`.
    let changed = plan.stdio.map(|fd| fd != slots.null.as_raw_fd());
    for ((source, slot), _) in plan.stdio.iter().zip(raw).zip(changed).filter(|(_, c)| *c) {
        // SAFETY: `source` is the caller's open descriptor, `slot` ours.
        if unsafe { libc::dup3(*source, slot, libc::O_CLOEXEC) } < 0 {
            let error = io::Error::last_os_error();
            slots.reset(changed);
            return Err(LaunchError::Slots(error));
        }
    }
    let keep_below = raw.iter().max().map_or(3, |&fd| fd + 1) as libc::c_uint;
    let args = ChildArgs {
        plan,
        argv: null_terminated(&plan.argv),
        envp: plan
            .inherited
            .iter()
            .map(|e| e.as_ptr())
            .chain(plan.set.iter().map(|e| e.as_ptr()))
            .chain(std::iter::once(std::ptr::null()))
            .collect(),
        daemon: std::process::id() as libc::pid_t,
        slots: raw,
        keep_below,
        failed_stage: AtomicU8::new(0),
        failed_errno: AtomicI32::new(0),
    };
    // Reused: a fresh 64 KiB per spawn is measurable in a crash loop.
    static SPARE_STACK: Mutex<Option<Box<[u8]>>> = Mutex::new(None);
    let mut stack = SPARE_STACK
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| vec![0u8; STACK_SIZE].into_boxed_slice());
    // The stack grows down; 16-byte aligned as the ABI wants.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    let all = u64::MAX;
    let mut old: u64 = 0;
    // SAFETY: the child only reads `args` and writes its failure slot (see
    // the module doc); `args` and `stack` outlive it, because with
    // CLONE_VFORK `clone` returns only after the child exec'd or exited.
    // The signal masks are plain u64 kernel sigsets.
    let (pid, clone_error) = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            &mut old as *mut u64,
            KERNEL_SIGSET_BYTES,
        );
        let pid = libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_FILES | libc::SIGCHLD,
            &args as *const ChildArgs<'_> as *mut libc::c_void,
        );
        let clone_error = (pid == -1).then(io::Error::last_os_error);
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old as *const u64,
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_BYTES,
        );
        (pid, clone_error)
    };
    *SPARE_STACK.lock().unwrap_or_else(PoisonError::into_inner) = Some(stack);
    // The child has its own table now (or is gone); ours must not keep its
    // pipes open.
    slots.reset(changed);
    if let Some(error) = clone_error {
        return Err(LaunchError::Clone(error));
    }
    match Stage::from_u8(args.failed_stage.load(Ordering::SeqCst)) {
        None => Ok(pid as u32),
        Some(stage) => Err(LaunchError::Child {
            stage,
            error: io::Error::from_raw_os_error(args.failed_errno.load(Ordering::SeqCst)),
        }),
    }
}

fn errno() -> i32 {
    // SAFETY: reads the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Records the failure and exits the child (no atexit handlers, no
/// unwinding: `_exit`).
fn fail(args: &ChildArgs<'_>, stage: Stage, errno: i32) -> ! {
    args.failed_errno.store(errno, Ordering::SeqCst);
    args.failed_stage.store(stage as u8, Ordering::SeqCst);
    // SAFETY: ends this process only.
    unsafe { libc::_exit(127) }
}

/// The child, between `clone` and `execve`. Only async-signal-safe system
/// calls; no allocation, no lock, no panic path.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended daemon keeps alive.
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    let plan = args.plan;
    // SAFETY: plain system calls on data prepared before the clone.
    unsafe {
        // Dispositions first, while every signal is still blocked: an
        // ignored signal would survive exec, a handled one must never run
        // here. All-zero is SIG_DFL, no flags, empty mask.
        let default_action = [0u64; 4];
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default_action.as_ptr(),
                    std::ptr::null_mut::<libc::c_void>(),
                    KERNEL_SIGSET_BYTES,
                );
            }
        }
        let empty = 0u64;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            KERNEL_SIGSET_BYTES,
        );
        // Into the instance's cgroup before anything else, so that nothing
        // it ever starts can be outside it. The descriptor is the daemon's
        // (the table is still shared); `write` is a plain system call.
        if let Some(fd) = plan.cgroup_procs
            && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
        {
            fail(args, Stage::Cgroup, errno());
        }
        if libc::setpgid(0, 0) != 0 {
            fail(args, Stage::ProcessGroup, errno());
        }
        // Leave the daemon's descriptor table before changing anything in
        // it: a private table with only the descriptors below `keep_below`.
        if libc::syscall(
            libc::SYS_close_range,
            args.keep_below,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE as libc::c_uint,
        ) != 0
            // Kernels before 5.9: a private copy of the whole table.
            && libc::syscall(libc::SYS_unshare, libc::CLONE_FILES) != 0
        {
            fail(args, Stage::Stdio, errno());
        }
        // The slots are at 3 or above: no dup2 overwrites a later source.
        for (target, &source) in (0..).zip(args.slots.iter()) {
            if libc::dup2(source, target) < 0 {
                fail(args, Stage::Stdio, errno());
            }
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        close_from_3();
        if let Some(c) = &plan.credentials {
            if libc::syscall(libc::SYS_setgroups, c.groups.len(), c.groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setgid, c.gid) != 0
                || libc::syscall(libc::SYS_setuid, c.uid) != 0
            {
                fail(args, Stage::Credentials, errno());
            }
        }
        if let Some(dir) = &plan.cwd
            && libc::chdir(dir.as_ptr()) != 0
        {
            fail(args, Stage::WorkingDir, errno());
        }
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) != 0
        {
            fail(args, Stage::ParentDeathSignal, errno());
        }
        // The daemon may have died before the prctl: then nobody would
        // supervise us.
        if libc::getppid() != args.daemon {
            fail(args, Stage::DaemonGone, libc::ESRCH);
        }
        let mut denied = false;
        for path in &plan.candidates {
            libc::execve(path.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
            match errno() {
                libc::EACCES => denied = true,
                // Not here: try the next PATH entry.
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                other => fail(args, Stage::Exec, other),
            }
        }
        fail(
            args,
            Stage::Exec,
            if denied { libc::EACCES } else { libc::ENOENT },
        )
    }
}

/// Closes every descriptor above 2 of the child's private table (the
/// slots, and whatever else had a lower number).
///
/// # Safety
/// Plain system calls; call in the child only, after it left the daemon's
/// table.
unsafe fn close_from_3() {
    // SAFETY: as the function says.
    unsafe {
        let closed = libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
        if closed != 0 {
            // Kernels before 5.9 (the whole table was copied): marked
            // close-on-exec one by one.
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(65536) as libc::c_int
            } else {
                1024
            };
            for fd in 3..max {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    /// (device, inode) of each of our own 0, 1, 2.
    fn own_stdio() -> Vec<Option<(u64, u64)>> {
        (0..3)
            .map(|fd| {
                std::fs::metadata(format!("/proc/self/fd/{fd}"))
                    .ok()
                    .map(|m| (m.dev(), m.ino()))
            })
            .collect()
    }

    #[test]
    fn the_child_gets_its_stdio_and_the_daemon_keeps_its_table()
    -> Result<(), Box<dyn std::error::Error>> {
        // A Reaper in another test would steal our child's exit status.
        let _serial = crate::actors::process::tests::SERIAL
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = own_stdio();
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let mut plan = Plan::new(
            &[
                "sh".into(),
                "-c".into(),
                "echo out; ls /proc/self/fd".into(),
            ],
            Vec::new(),
            &[],
            None,
        )?;
        let null = std::fs::File::open("/dev/null")?;
        plan.stdio = [null.as_raw_fd(), write.as_raw_fd(), null.as_raw_fd()];
        let pid = launch(&plan).map_err(|e| format!("{e:?}"))?;
        // Our table is untouched: the child's dup2s went to its own.
        assert_eq!(own_stdio(), before);
        // Once our end is closed, the child holds the only writer: EOF
        // comes when it exits. A stdio slot still pointing at the pipe
        // would keep it open and this read would never end.
        drop(write);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let r = std::fs::File::from(read).read_to_string(&mut out);
            let _ = tx.send(r.map(|_| out));
        });
        let out = rx.recv_timeout(std::time::Duration::from_secs(10))??;
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None)?;
        // Only 0, 1, 2 and the directory `ls` reads.
        let fds: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(out.lines().next(), Some("out"), "{out}");
        assert!(fds.len() == 4 && fds[..3] == ["0", "1", "2"], "{out}");
        Ok(())
    }

    #[test]
    fn path_search_follows_execvp() -> Result<(), Box<dyn std::error::Error>> {
        let got = candidates("sh", OsStr::new("/usr/local/bin::/bin"))?;
        assert_eq!(
            got,
            vec![
                CString::new("/usr/local/bin/sh")?,
                CString::new("./sh")?,
                CString::new("/bin/sh")?
            ]
        );
        assert_eq!(
            candidates("./run.sh", OsStr::new("/bin"))?,
            vec![CString::new("./run.sh")?]
        );
        let plan = Plan::new(&["x".into()], Vec::new(), &[], Some(OsStr::new("/a:/b")))?;
        assert_eq!(plan.candidates.len(), 2);
        assert!(Plan::new(&["a\0b".into()], Vec::new(), &[], None).is_err());
        assert!(
            Plan::new(
                &["x".into()],
                Vec::new(),
                &[("A".into(), "b\0".into())],
                None
            )
            .is_err()
        );
        assert!(Plan::new(&[], Vec::new(), &[], None).is_err());
        Ok(())
    }
}
