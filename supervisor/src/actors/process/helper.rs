//! Running a command "like the program", to completion: a `before_start`
//! hook before each spawn, an `exec` probe while the instance starts or runs.
//!
//! [`run`] starts the command with [`spawn::spawn`], exactly as the program
//! would be (its `user`, `workingdir`, `env`, `umask`, a process group of its
//! own, stdin `/dev/null`, the daemon's secrets withheld), with stdout and
//! stderr merged into one pipe. The helper reads that pipe itself: each chunk
//! goes to the given [`OutputSink`] (the program's stderr log; `None`
//! discards it) and into a bounded buffer of the last
//! [`LAST_LINES`] lines (each cut at [`MAX_LINE`] bytes), the failure's
//! explanation.
//!
//! Its exit comes from the Reaper, the one owner of `waitpid`
//! ([`ChildTable::watch_once`], registered in the same poll as the spawn,
//! so the Reaper, on this same thread, cannot reap it first). At the
//! timeout its process group is SIGKILLed; after it exits, whatever is left
//! in its group is SIGKILLed too: a hook's background children do not
//! linger. A process that left the group (`setsid`) escapes that kill and
//! may hold the pipe: the output is read for at most [`DRAIN_AFTER_EXIT`]
//! after the exit.
//!
//! Nothing blocks: the future waits on the pipe and on the Reaper's
//! oneshot. Dropping the future (the instance was stopped mid-hook) SIGKILLs
//! the group at once; the Reaper still collects the leader.
//!
//! [`HookGate`] serializes `before_start` hooks across the instances of one
//! program: the program actor makes one and hands a clone to each instance,
//! and [`Helper::gate`] makes [`run`] wait for its turn before spawning (the
//! timeout counts from the spawn, not from the wait).

use super::InstanceContext;
use super::spawn::{self, SpawnOptions};
use super::state::secs;
use crate::actors::reaper::ChildTable;
use crate::config::ProgramConfig;
use crate::output::OutputSink;
use crate::sys::exit::ExitStatus;
use crate::sys::pgroup;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::{Instant, sleep_until};

/// Lines of output a failure keeps.
pub const LAST_LINES: usize = 20;
/// Bytes kept of one line; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 1024;
/// How long the output is still read after the exit (a descendant that
/// left the group may hold the pipe open forever).
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);
/// How long a SIGKILLed command is waited for before giving up on its
/// status (a process stuck in the kernel); the Reaper collects it later.
const EXIT_AFTER_KILL: Duration = Duration::from_secs(5);
/// Read size.
const CHUNK: usize = 16 * 1024;

/// A command to run like instance `index` of `program`.
#[derive(Debug, Clone)]
pub struct Helper {
    pub program: Arc<ProgramConfig>,
    pub index: u32,
    /// What to run instead of the program (already split like `cmd`).
    pub argv: Vec<String>,
    /// Variables set after the program's `env:`.
    pub env: Vec<(OsString, OsString)>,
    /// Where its stdout and stderr go besides the last lines; `None`
    /// discards them.
    pub output: Option<Arc<OutputSink>>,
    /// The daemon's variables it does not inherit (secrets).
    pub hidden_env: Vec<String>,
    /// From the spawn to the SIGKILL.
    pub timeout: Duration,
    /// Waited for before the spawn, held until the command is done.
    pub gate: Option<HookGate>,
}

impl Helper {
    /// Instance `ctx`'s `before_start` hook, when its program has one: its
    /// `before_start_timeout`, its output to `output` (the stderr log), one
    /// at a time across the program's instances (`ctx.hooks`).
    pub fn before_start(ctx: &InstanceContext, output: Option<Arc<OutputSink>>) -> Option<Self> {
        let hook = ctx.program.before_start.as_ref()?;
        Some(Helper {
            argv: hook.argv.clone(),
            timeout: hook.timeout,
            gate: Some(ctx.hooks.clone()),
            ..Helper::like(ctx, output)
        })
    }

    /// Runs nothing yet: `argv` empty, no timeout, no gate; the instance's
    /// program, index and withheld variables. Fill in the rest (an `exec`
    /// probe: `Helper { argv, timeout: budget, ..Helper::like(ctx, None) }`).
    pub fn like(ctx: &InstanceContext, output: Option<Arc<OutputSink>>) -> Self {
        Helper {
            program: Arc::clone(&ctx.program),
            index: ctx.index,
            argv: Vec::new(),
            env: Vec::new(),
            output,
            hidden_env: ctx.secret_env.names(),
            timeout: Duration::ZERO,
            gate: None,
        }
    }
}

/// Why a helper command failed: one line ([`FailureReason`]'s), plus the
/// last lines it wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HelperFailure {
    pub reason: FailureReason,
    /// At most [`LAST_LINES`], oldest first, lossy UTF-8.
    pub last_lines: Vec<String>,
}

/// The one-line reason of a [`HelperFailure`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    #[error("exited with status {0}")]
    Exited(i32),
    /// `killed by SIGKILL`, as [`ExitStatus`] says it.
    #[error("{0}")]
    Killed(ExitStatus),
    #[error("timed out after {}", secs(*.0))]
    TimedOut(Duration),
    /// The spawn error's message (`./migrate.sh: No such file or directory`).
    #[error("{0}")]
    Spawn(String),
}

/// Serializes the `before_start` hooks of one program's instances: never
/// two at once, in the order they asked. Cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct HookGate(Arc<Mutex<()>>);

/// A turn at a [`HookGate`]; the next one waits until this is dropped.
#[derive(Debug)]
pub struct HookTurn {
    _held: OwnedMutexGuard<()>,
}

impl HookGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the turn (first come, first served).
    pub async fn enter(&self) -> HookTurn {
        HookTurn {
            _held: Arc::clone(&self.0).lock_owned().await,
        }
    }
}

/// Runs `helper` to completion (see the module doc): `Ok` when it exits 0.
pub async fn run(helper: Helper, children: ChildTable) -> Result<(), HelperFailure> {
    let _turn = match &helper.gate {
        Some(gate) => Some(gate.enter().await),
        None => None,
    };
    let name = helper.program.instance_name(helper.index);
    let spawned = spawn::spawn(
        &helper.program,
        helper.index,
        helper.output.as_deref(),
        None,
        &helper.hidden_env,
        None,
        SpawnOptions {
            argv: Some(&helper.argv),
            env: &helper.env,
            merged_output: true,
        },
    );
    let child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return Err(HelperFailure {
                reason: FailureReason::Spawn(e.to_string()),
                last_lines: Vec::new(),
            });
        }
    };
    // Before any await: the Reaper runs on this thread, so it cannot have
    // collected the child yet.
    let mut exited = children.watch_once(child.pid);
    let mut group = GroupGuard {
        pgid: Some(child.pid),
    };
    let mut output = Output::new(child.stdout, helper.output, name);

    let mut deadline = Instant::now() + helper.timeout;
    let mut timed_out = false;
    let status = loop {
        tokio::select! {
            exit = &mut exited => break exit.ok().map(|e| e.status),
            () = sleep_until(deadline) => {
                if timed_out {
                    // Killed, yet no exit: stuck in the kernel. The Reaper
                    // collects it whenever it ends.
                    break None;
                }
                timed_out = true;
                group.kill();
                deadline = Instant::now() + EXIT_AFTER_KILL;
            }
            () = output.step() => {}
        }
    };
    // Whatever it left in its group goes with it.
    group.kill();
    group.disarm();
    output.read_until(Instant::now() + DRAIN_AFTER_EXIT).await;
    let last_lines = output.into_lines();

    let reason = match status {
        _ if timed_out => FailureReason::TimedOut(helper.timeout),
        Some(ExitStatus::Code(0)) => return Ok(()),
        Some(ExitStatus::Code(code)) => FailureReason::Exited(code),
        Some(status @ ExitStatus::Signaled { .. }) => FailureReason::Killed(status),
        // The Reaper's table was dropped (the daemon is shutting down).
        None => FailureReason::Spawn("its exit status was lost".into()),
    };
    Err(HelperFailure { reason, last_lines })
}

/// SIGKILLs the command's process group when the run ends early (its
/// future dropped) or at the timeout.
struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.pgid
            && let Err(e) = pgroup::send(pgid, proto::Signal::Kill)
            && e != nix::errno::Errno::ESRCH
        {
            tracing::error!(pgid, error = %e, "cannot kill a helper command's process group");
        }
    }

    /// The leader is reaped and its group killed: its id may be reused.
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The merged output pipe: copied to the sink, its last lines kept.
struct Output {
    pipe: Option<pipe::Receiver>,
    sink: Option<Arc<OutputSink>>,
    name: String,
    lines: LastLines,
    buf: Box<[u8]>,
}

impl Output {
    fn new(pipe: Option<OwnedFd>, sink: Option<Arc<OutputSink>>, name: String) -> Self {
        let pipe = pipe.and_then(|fd| match receiver(fd) {
            Ok(r) => Some(r),
            Err(e) => {
                // Dropped: the command gets EPIPE rather than blocking.
                tracing::error!(process = %name, error = %e, "cannot read a helper command's output");
                None
            }
        });
        Output {
            pipe,
            sink,
            name,
            lines: LastLines::default(),
            buf: vec![0; CHUNK].into_boxed_slice(),
        }
    }

    /// Reads one chunk; pends forever once the pipe is closed (so a
    /// `select!` arm waits on the others).
    async fn step(&mut self) {
        let Some(pipe) = &self.pipe else {
            return std::future::pending().await;
        };
        if let Err(e) = pipe.readable().await {
            tracing::warn!(process = %self.name, error = %e, "helper command's output: read failed");
            self.pipe = None;
            return;
        }
        match pipe.try_read(&mut self.buf) {
            Ok(0) => self.pipe = None,
            Ok(n) => {
                let chunk = &self.buf[..n];
                if let Some(sink) = &self.sink {
                    sink.append(chunk, &self.name);
                }
                self.lines.push(chunk);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::warn!(process = %self.name, error = %e, "helper command's output: read failed");
                self.pipe = None;
            }
        }
    }

    /// Reads until end of file or `deadline`.
    async fn read_until(&mut self, deadline: Instant) {
        while self.pipe.is_some() {
            tokio::select! {
                () = sleep_until(deadline) => return,
                () = self.step() => {}
            }
        }
    }

    fn into_lines(self) -> Vec<String> {
        self.lines.finish()
    }
}

fn receiver(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    // Our own pipe: tokio's checks (fstat, fcntl) would only cost.
    pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// The last [`LAST_LINES`] lines of a byte stream, each at most
/// [`MAX_LINE`] bytes: memory stays bounded whatever the command writes.
#[derive(Debug, Default)]
struct LastLines {
    done: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
}

impl LastLines {
    fn push(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let (piece, rest, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            let room = MAX_LINE.saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&piece[..piece.len().min(room)]);
            if ended {
                self.end_line();
            }
            chunk = rest;
        }
    }

    fn end_line(&mut self) {
        if self.done.len() == LAST_LINES {
            self.done.pop_front();
        }
        let line = std::mem::take(&mut self.partial);
        self.done.push_back(line);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.end_line();
        }
        self.done
            .into_iter()
            .map(|l| {
                let l = l.strip_suffix(b"\r").unwrap_or(&l);
                String::from_utf8_lossy(l).into_owned()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! Real commands under a real Reaper, serialized with the process
    //! actor's tests (see `process/tests.rs`: one `waitpid(-1)` at a time).

    use super::*;
    use crate::actors::process::tests::SERIAL;
    use crate::actors::reaper::Reaper;
    use actix::Actor;
    use proto::OutputStream;
    use std::future::Future;
    use std::path::{Path, PathBuf};
    use std::sync::PoisonError;
    use tempfile::TempDir;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const DEADLINE: Duration = Duration::from_secs(10);

    struct Harness {
        dir: TempDir,
        table: ChildTable,
    }

    impl Harness {
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// `sh -c script` like instance 0 of a program with `env: {X: from-env}`.
        fn helper(&self, script: &str, timeout: Duration) -> Helper {
            let mut program = ProgramConfig::with_defaults("hook", "true", self.dir.path());
            program.env.insert("X".into(), "from-env".into());
            program.workingdir = Some(self.dir.path().to_path_buf());
            Helper {
                program: Arc::new(program),
                index: 0,
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: Vec::new(),
                output: None,
                hidden_env: Vec::new(),
                timeout,
                gate: None,
            }
        }

        fn sink(&self) -> Arc<OutputSink> {
            OutputSink::new(
                "hook",
                OutputStream::Stderr,
                self.path("hook.stderr.log"),
                None,
            )
        }
    }

    fn run_test<F, Fut>(test: F) -> TestResult
    where
        F: FnOnce(Arc<Harness>) -> Fut,
        Fut: Future<Output = TestResult>,
    {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        // Like the daemon: orphans of a killed group come back to us.
        nix::sys::prctl::set_child_subreaper(true)?;
        let harness = Arc::new(Harness {
            dir: tempfile::tempdir()?,
            table: ChildTable::default(),
        });
        let h = Arc::clone(&harness);
        actix_rt::System::new().block_on(async move {
            Reaper::new(h.table.clone())?.start();
            test(h).await
        })
    }

    async fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + DEADLINE;
        while !cond() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The pid a command wrote to `path` (`echo $$ > path`).
    async fn pid_in(path: &Path) -> Option<u32> {
        let mut pid = None;
        wait_until(|| {
            pid = std::fs::read_to_string(path)
                .ok()
                .filter(|t| t.ends_with('\n'))
                .and_then(|t| t.trim().parse().ok());
            pid.is_some()
        })
        .await;
        pid
    }

    /// SIGKILLs the group whose id a command wrote to the file, pass or
    /// fail, so a failing test leaves nothing behind.
    struct KillGroupIn(PathBuf);

    impl Drop for KillGroupIn {
        fn drop(&mut self) {
            let pgid = std::fs::read_to_string(&self.0).ok();
            if let Some(pgid) = pgid.and_then(|t| t.trim().parse().ok()) {
                let _ = pgroup::send(pgid, proto::Signal::Kill);
            }
        }
    }

    /// No process of group `pgid` exists any more, zombies included.
    async fn group_gone(pgid: u32) -> bool {
        wait_until(|| !pgroup::alive(pgid)).await
    }

    #[test]
    fn a_command_that_exits_0_succeeds() -> TestResult {
        run_test(|h| async move {
            run(h.helper("exit 0", DEADLINE), h.table.clone()).await?;
            assert!(h.table.is_empty(), "{:?}", h.table);
            Ok(())
        })
    }

    #[test]
    fn a_failing_command_names_its_status_and_its_last_lines() -> TestResult {
        run_test(|h| async move {
            let mut helper = h.helper(
                r#"for i in $(seq 1 30); do echo "out $i"; done; echo "$X in $(pwd) $EXTRA" >&2; printf 'no newline'; exit 3"#,
                DEADLINE,
            );
            helper.env = vec![("EXTRA".into(), "extra".into())];
            let sink = h.sink();
            helper.output = Some(Arc::clone(&sink));
            let Err(failure) = run(helper, h.table.clone()).await else {
                return Err("exit 3 succeeded".into());
            };
            assert_eq!(failure.reason, FailureReason::Exited(3));
            assert_eq!(failure.to_string(), "exited with status 3");
            let dir = std::fs::canonicalize(h.dir.path())?;
            let mut expected: Vec<String> = (13..=30).map(|i| format!("out {i}")).collect();
            expected.push(format!("from-env in {} extra", dir.display()));
            expected.push("no newline".into());
            assert_eq!(failure.last_lines, expected);
            // Everything went to the sink too.
            let log = std::fs::read_to_string(sink.path())?;
            assert!(log.starts_with("out 1\nout 2\n"), "{log}");
            assert!(log.ends_with("extra\nno newline"), "{log}");
            Ok(())
        })
    }

    #[test]
    fn a_command_killed_by_a_signal_says_which() -> TestResult {
        run_test(|h| async move {
            let failure = run(h.helper("kill -KILL $$", DEADLINE), h.table.clone()).await;
            assert_eq!(
                failure.map_err(|f| f.to_string()),
                Err("killed by SIGKILL".into())
            );
            Ok(())
        })
    }

    #[test]
    fn a_command_that_cannot_start_says_why() -> TestResult {
        run_test(|h| async move {
            let mut helper = h.helper("", DEADLINE);
            helper.argv = vec![h.path("missing.sh").display().to_string()];
            let Err(failure) = run(helper, h.table.clone()).await else {
                return Err("a missing command succeeded".into());
            };
            let message = failure.to_string();
            assert!(
                matches!(failure.reason, FailureReason::Spawn(_)),
                "{failure:?}"
            );
            assert!(
                message.contains("missing.sh") && message.contains("No such file"),
                "{message}"
            );
            Ok(())
        })
    }

    #[test]
    fn the_timeout_kills_the_whole_process_group() -> TestResult {
        run_test(|h| async move {
            let pidfile = h.path("pid");
            let _cleanup = KillGroupIn(pidfile.clone());
            let script = format!("echo $$ > {}; sleep 100 & sleep 100", pidfile.display());
            let started = Instant::now();
            let result = run(
                h.helper(&script, Duration::from_millis(500)),
                h.table.clone(),
            )
            .await;
            let Err(failure) = result else {
                return Err("a command past its timeout succeeded".into());
            };
            assert_eq!(failure.to_string(), "timed out after 0.5s");
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "took {:?}",
                started.elapsed()
            );
            let pgid = pid_in(&pidfile).await.ok_or("no pid written")?;
            assert!(group_gone(pgid).await, "group {pgid} still has processes");
            Ok(())
        })
    }

    #[test]
    fn background_children_do_not_outlive_a_successful_command() -> TestResult {
        run_test(|h| async move {
            let pidfile = h.path("pid");
            let _cleanup = KillGroupIn(pidfile.clone());
            // The background sleep also holds the output pipe open.
            let script = format!("echo $$ > {}; sleep 100 &", pidfile.display());
            let started = Instant::now();
            run(h.helper(&script, DEADLINE), h.table.clone()).await?;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "took {:?}",
                started.elapsed()
            );
            let pgid = pid_in(&pidfile).await.ok_or("no pid written")?;
            assert!(group_gone(pgid).await, "group {pgid} still has processes");
            Ok(())
        })
    }

    #[test]
    fn dropping_the_run_kills_the_command_and_its_group() -> TestResult {
        run_test(|h| async move {
            let pidfile = h.path("pid");
            let _cleanup = KillGroupIn(pidfile.clone());
            let script = format!("echo $$ > {}; sleep 100 & sleep 100", pidfile.display());
            let mut running = Box::pin(run(h.helper(&script, DEADLINE * 10), h.table.clone()));
            let pgid = tokio::select! {
                r = &mut running => return Err(format!("ended on its own: {r:?}").into()),
                pid = pid_in(&pidfile) => pid.ok_or("no pid written")?,
            };
            assert!(pgroup::alive(pgid));
            drop(running);
            assert!(group_gone(pgid).await, "group {pgid} still has processes");
            // The Reaper collected the leader and forgot it.
            assert!(wait_until(|| h.table.is_empty()).await, "{:?}", h.table);
            Ok(())
        })
    }

    #[test]
    fn two_runs_through_one_gate_never_overlap() -> TestResult {
        run_test(|h| async move {
            let log = h.path("turns");
            let script = format!(
                "echo begin >> {0}; sleep 0.3; echo end >> {0}",
                log.display()
            );
            let gate = HookGate::new();
            let mut one = h.helper(&script, DEADLINE);
            one.gate = Some(gate.clone());
            let mut two = one.clone();
            two.index = 1;
            let (a, b) = futures::join!(run(one, h.table.clone()), run(two, h.table.clone()));
            a?;
            b?;
            assert_eq!(std::fs::read_to_string(&log)?, "begin\nend\nbegin\nend\n");
            Ok(())
        })
    }

    #[test]
    fn a_before_start_helper_is_the_hook_behind_the_programs_gate() {
        let mut program = ProgramConfig::with_defaults("api", "api", Path::new("/tmp"));
        let ctx = |program: &ProgramConfig| InstanceContext {
            program: Arc::new(program.clone()),
            index: 2,
            children: ChildTable::default(),
            events: None,
            secret_env: Default::default(),
            hooks: HookGate::new(),
        };
        assert!(Helper::before_start(&ctx(&program), None).is_none());
        program.before_start = Some(crate::config::ready::Hook {
            cmd: "./migrate.sh up".into(),
            argv: vec!["./migrate.sh".into(), "up".into()],
            timeout: Duration::from_secs(7),
        });
        let ctx = ctx(&program);
        let Some(helper) = Helper::before_start(&ctx, None) else {
            panic!("no helper for a before_start hook");
        };
        assert_eq!(helper.argv, ["./migrate.sh", "up"]);
        assert_eq!(helper.timeout, Duration::from_secs(7));
        assert_eq!(helper.index, 2);
        let same_gate = helper.gate.is_some_and(|g| Arc::ptr_eq(&g.0, &ctx.hooks.0));
        assert!(same_gate, "the hook does not take the program's turn");
    }

    #[test]
    fn the_last_lines_are_bounded_in_count_and_length() {
        let mut lines = LastLines::default();
        for i in 0..100 {
            lines.push(format!("line {i}\r\n").as_bytes());
        }
        let long = vec![b'x'; 10 * MAX_LINE];
        // Split across chunks, like a pipe would.
        for piece in long.chunks(777) {
            lines.push(piece);
        }
        lines.push(b"\npartial");
        assert!(lines.done.iter().all(|l| l.len() <= MAX_LINE));
        let got = lines.finish();
        assert_eq!(got.len(), LAST_LINES);
        assert_eq!(got[0], "line 82");
        assert_eq!(got[17], "line 99");
        assert_eq!(got[18], "x".repeat(MAX_LINE));
        assert_eq!(got[19], "partial");
    }
}
