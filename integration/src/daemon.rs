//! `TestDaemon`: one real `taskmasterd` in its own temporary directory.
//!
//! The config is written as `taskmaster.yaml` in a fresh `TempDir`, so the
//! defaults that are relative to the config (`logs/`, `taskmasterd.token`,
//! `taskmasterd.log`, `taskmasterd.pid`) all land there and parallel tests
//! never share a file or a port (`server.listen` is `127.0.0.1:0`; the bound
//! address is read from the daemon's `listening on ADDR` stderr line).
//!
//! Cleanup is the point of this type. The daemon starts in a session of its
//! own (`setsid` before exec), and its children get process groups of their
//! own inside that session. `Drop` freezes the daemon (SIGSTOP: it can fork no
//! more), then SIGKILLs, until none is left, every process that is a
//! descendant of it, is in its session, or is in a process group the harness
//! saw among its descendants; then it SIGKILLs and reaps the daemon. Orphans
//! re-parented to init are still found through their session or group. This
//! runs when a test panics too, because it is `Drop`.

use crate::cmd::{CmdOutput, run_with_timeout};
use crate::procfs::{self, ProcStat};
use crate::{HarnessError, bins, wait_until};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use proto::{Client, ProcessInfo, ProcessState, Request, Response, StatusRequest};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The config file name inside the daemon's directory.
pub const CONFIG_FILE: &str = "taskmaster.yaml";
/// The event log's default name, next to the config.
pub const EVENT_LOG_FILE: &str = "taskmasterd.log";

/// How long the daemon may take to print its address.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Bounds one control-connection handshake or reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepares a daemon: its directory exists before it starts, so a test can
/// create files there and put the directory's path in the config.
#[derive(Debug)]
pub struct DaemonBuilder {
    dir: tempfile::TempDir,
    config: String,
    env: Vec<(OsString, OsString)>,
    blocked_and_ignored: Vec<i32>,
    /// `/dev/null` opened as these descriptor numbers in the daemon, without
    /// close-on-exec, as a careless parent would leave them.
    leaked_fds: Vec<i32>,
    /// RLIMIT_NOFILE, soft and hard, for the daemon.
    fd_limit: Option<u64>,
    /// The daemon's umask.
    umask: Option<libc::mode_t>,
    /// RLIMIT_FSIZE, soft and hard, for the daemon.
    file_size_limit: Option<u64>,
}

impl DaemonBuilder {
    /// A fresh temporary directory and an empty config.
    pub fn new() -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("taskmaster-e2e-")
            .tempdir()
            .map_err(|e| HarnessError::io("cannot create a temporary directory", e))?;
        Ok(DaemonBuilder {
            dir,
            config: String::new(),
            env: Vec::new(),
            blocked_and_ignored: Vec::new(),
            leaked_fds: Vec::new(),
            fd_limit: None,
            umask: None,
            file_size_limit: None,
        })
    }

    /// The directory the config will live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The YAML config, without `server:` (the harness adds
    /// `server: {listen: "127.0.0.1:0"}` unless a top-level `server:` line is
    /// present). Every `{dir}` is replaced by the directory's path.
    pub fn config(mut self, yaml: &str) -> Self {
        self.config = yaml.replace("{dir}", &self.dir.path().to_string_lossy());
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the daemon with signal `signo` both ignored and blocked, as an
    /// unkind parent might (children must not inherit either).
    pub fn block_and_ignore(mut self, signo: i32) -> Self {
        self.blocked_and_ignored.push(signo);
        self
    }

    /// Starts the daemon with descriptor `fd` open (on `/dev/null`) and not
    /// close-on-exec, as a careless parent might.
    pub fn leak_fd(mut self, fd: i32) -> Self {
        self.leaked_fds.push(fd);
        self
    }

    /// Starts the daemon with at most `n` descriptors (soft and hard limit:
    /// it cannot raise it).
    pub fn fd_limit(mut self, n: u64) -> Self {
        self.fd_limit = Some(n);
        self
    }

    /// Starts the daemon unable to write any file past `bytes` (writes
    /// then fail with EFBIG, as on a full disk; ignore SIGXFSZ too with
    /// [`DaemonBuilder::block_and_ignore`], or the first one kills it).
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    /// Starts the daemon with this umask (e.g. 0, the most permissive).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask as libc::mode_t);
        self
    }

    /// Writes the config, starts `taskmasterd -c DIR/taskmaster.yaml` and
    /// waits (10 s) for its `listening on ADDR` line.
    pub fn start(self) -> Result<TestDaemon, HarnessError> {
        let bin = bins::taskmasterd()?;
        let config_path = self.dir.path().join(CONFIG_FILE);
        let mut text = self.config.clone();
        if !text.lines().any(|l| l.starts_with("server:")) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("server:\n  listen: \"127.0.0.1:0\"\n");
        }
        std::fs::write(&config_path, text)
            .map_err(|e| HarnessError::io(format!("cannot write {}", config_path.display()), e))?;

        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&config_path);
        self.launch(cmd)
    }

    /// Runs `cmd` as the daemon (stdio, environment, session and signals set
    /// up here), and waits for its address.
    fn launch(self, mut cmd: Command) -> Result<TestDaemon, HarnessError> {
        let mut leaked = Vec::new();
        for &fd in &self.leaked_fds {
            let null = std::fs::File::open("/dev/null")
                .map_err(|e| HarnessError::io("cannot open /dev/null", e))?;
            leaked.push((null, fd));
        }
        let pairs: Vec<(i32, i32)> = leaked
            .iter()
            .map(|(f, fd)| (std::os::fd::AsRawFd::as_raw_fd(f), *fd))
            .collect();
        let fd_limit = self.fd_limit.map(|n| libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        });
        let umask = self.umask;
        let file_size_limit = self.file_size_limit.map(|n| libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        });
        // SAFETY: dup2, setrlimit and umask only (async-signal-safe), on
        // descriptors numbered and a limit built before the fork; dup2
        // leaves the copy without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                for &(from, to) in &pairs {
                    if libc::dup2(from, to) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(limit) = &fd_limit
                    && libc::setrlimit(libc::RLIMIT_NOFILE, limit) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(limit) = &file_size_limit
                    && libc::setrlimit(libc::RLIMIT_FSIZE, limit) == -1
                {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(mask) = umask {
                    libc::umask(mask);
                }
                Ok(())
            });
        }
        let (child, stderr, stderr_gate) = spawn_daemon(
            cmd,
            self.dir.path(),
            &self.env,
            self.blocked_and_ignored.clone(),
        )?;
        drop(leaked);
        let mut daemon = TestDaemon {
            pid: child.id(),
            child,
            exit: None,
            addr: String::new(),
            stderr,
            stderr_gate,
            groups: Mutex::new(BTreeSet::new()),
            client: Mutex::new(None),
            earlier: Vec::new(),
            env: self.env,
            dir: self.dir,
        };
        // From here on, an early return drops `daemon`, which cleans up.
        daemon.addr = daemon.wait_for_address()?;
        Ok(daemon)
    }
}

/// A daemon's stderr, line by line, as it comes.
type StderrLines = Arc<Mutex<Vec<String>>>;

/// Whether the harness stopped reading the daemon's stderr
/// ([`TestDaemon::pause_stderr`]), and the wake-up for the reader.
type StderrGate = Arc<(Mutex<bool>, Condvar)>;

/// Starts `cmd` as a daemon in `dir` (stdio, environment, session and
/// signals set up here); its stderr lines are collected for its whole life.
fn spawn_daemon(
    mut cmd: Command,
    dir: &Path,
    env: &[(OsString, OsString)],
    blocked_and_ignored: Vec<i32>,
) -> Result<(Child, StderrLines, StderrGate), HarnessError> {
    let stdout_path = dir.join("daemon.stdout");
    let stdout = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stdout_path)
        .map_err(|e| HarnessError::io(format!("cannot create {}", stdout_path.display()), e))?;
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)));
    own_session_with_signals_off(&mut cmd, blocked_and_ignored);
    let mut child = cmd
        .spawn()
        .map_err(|e| HarnessError::io(format!("cannot start {cmd:?}"), e))?;
    let stderr_lines = Arc::new(Mutex::new(Vec::new()));
    let gate: StderrGate = Arc::new((Mutex::new(false), Condvar::new()));
    if let Some(pipe) = child.stderr.take() {
        let lines = Arc::clone(&stderr_lines);
        let paused = Arc::clone(&gate);
        // Keeps draining for the daemon's whole life, so it never blocks
        // on a full pipe (unless a test pauses it).
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                let (lock, resumed) = &*paused;
                let mut stop = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while *stop {
                    stop = resumed.wait(stop).unwrap_or_else(PoisonError::into_inner);
                }
                drop(stop);
                if !matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                    break;
                }
                let line = strip_ansi(&String::from_utf8_lossy(&buf));
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line.trim_end().to_string());
                buf.clear();
            }
        });
    }
    Ok((child, stderr_lines, gate))
}

/// A running `taskmasterd`, killed with everything it started on `Drop`.
#[derive(Debug)]
pub struct TestDaemon {
    pid: u32,
    child: Child,
    exit: Option<ExitStatus>,
    addr: String,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_gate: StderrGate,
    /// Process groups seen among the daemon's descendants, to find orphans.
    groups: Mutex<BTreeSet<u32>>,
    /// One control connection, reused by `status()`.
    client: Mutex<Option<Client>>,
    /// Earlier daemons in this directory ([`TestDaemon::restart`]):
    /// what is left in their sessions is cleaned up too.
    earlier: Vec<u32>,
    env: Vec<(OsString, OsString)>,
    // Last: removed after `Drop::drop` has killed everything.
    dir: tempfile::TempDir,
}

impl TestDaemon {
    /// Starts a daemon on `config` (see [`DaemonBuilder::config`]).
    pub fn start(config: &str) -> Result<TestDaemon, HarnessError> {
        DaemonBuilder::new()?.config(config).start()
    }

    /// A builder, to prepare files or the environment first.
    pub fn builder() -> Result<DaemonBuilder, HarnessError> {
        DaemonBuilder::new()
    }

    fn wait_for_address(&mut self) -> Result<String, HarnessError> {
        let mut found = None;
        let mut exited = None;
        let stderr = Arc::clone(&self.stderr);
        let child = &mut self.child;
        wait_until(STARTUP_DEADLINE, || {
            let lines = stderr.lock().unwrap_or_else(PoisonError::into_inner);
            found = lines.iter().find_map(|l| parse_listening(l));
            drop(lines);
            if found.is_none() {
                exited = child.try_wait().ok().flatten();
            }
            found.is_some() || exited.is_some()
        });
        if let Some(status) = exited {
            self.exit = Some(status);
            // The pipe may still hold its last words.
            wait_until(Duration::from_millis(200), || false);
        }
        match (found, exited) {
            (Some(addr), _) => Ok(addr),
            (None, Some(status)) => Err(HarnessError::DaemonStart {
                reason: format!("it exited ({status}) before listening"),
                stderr: self.stderr_text(),
            }),
            (None, None) => Err(HarnessError::DaemonStart {
                reason: format!("no `listening on ADDR` line within {STARTUP_DEADLINE:?}"),
                stderr: self.stderr_text(),
            }),
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The control address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The directory of the config (and of everything relative to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DIR/rel`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.path(CONFIG_FILE)
    }

    /// The token file the daemon writes (the default, next to the config).
    pub fn token_path(&self) -> PathBuf {
        self.path(proto::DEFAULT_TOKEN_FILE)
    }

    /// Every stderr line so far (ANSI colours removed).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops reading the daemon's stderr (after the line being read, at
    /// most 8 KiB buffered): the pipe fills as nobody reads it.
    pub fn pause_stderr(&self) {
        self.set_stderr_paused(true);
    }

    /// Reads the daemon's stderr again.
    pub fn resume_stderr(&self) {
        self.set_stderr_paused(false);
    }

    fn set_stderr_paused(&self, paused: bool) {
        let (lock, resumed) = &*self.stderr_gate;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = paused;
        resumed.notify_all();
    }

    /// The stderr so far, one string.
    pub fn stderr_text(&self) -> String {
        self.stderr_lines().join("\n")
    }

    /// The token, waiting (5 s) for the daemon to have written it.
    pub fn token(&self) -> Result<String, HarnessError> {
        let path = self.token_path();
        let mut token = String::new();
        let ok = wait_until(Duration::from_secs(5), || {
            token = std::fs::read_to_string(&path).unwrap_or_default();
            !token.trim().is_empty()
        });
        if !ok {
            return Err(HarnessError::Timeout(format!(
                "no token in {} within 5 s",
                path.display()
            )));
        }
        Ok(token.trim().to_string())
    }

    /// A new authenticated control connection.
    pub fn client(&self) -> Result<Client, HarnessError> {
        Ok(Client::connect(&self.addr, &self.token()?, CLIENT_TIMEOUT)?)
    }

    /// Sends `request` on the shared connection and returns the reply. If
    /// the connection broke (or a reply took over 5 s), it is dropped and the
    /// request is sent once more on a new one, so prefer idempotent requests
    /// here; use [`TestDaemon::client`] to control every byte.
    pub fn call(&self, request: &Request) -> Result<Response, HarnessError> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reply) = slot.as_mut().and_then(|c| c.call(request).ok()) {
            return Ok(reply);
        }
        *slot = None;
        let mut client = self.client()?;
        client.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        let reply = client.call(request)?;
        *slot = Some(client);
        Ok(reply)
    }

    /// Every instance, via `Request::Status` with no target.
    pub fn status(&self) -> Result<Vec<ProcessInfo>, HarnessError> {
        self.track_groups();
        let request = Request::Status(StatusRequest { targets: vec![] });
        match self.call(&request)? {
            Response::Status(list) => Ok(list),
            Response::Error(e) => Err(HarnessError::Daemon(format!("{:?}: {}", e.kind, e.message))),
            other => Err(HarnessError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The status line of `name` (`web:0`), if the daemon knows it.
    pub fn info(&self, name: &str) -> Result<Option<ProcessInfo>, HarnessError> {
        Ok(self.status()?.into_iter().find(|p| p.name == name))
    }

    /// The pid the daemon reports for `name`.
    pub fn pid_of(&self, name: &str) -> Result<Option<u32>, HarnessError> {
        Ok(self.info(name)?.and_then(|p| p.pid))
    }

    /// The state the daemon reports for `name`.
    pub fn state_of(&self, name: &str) -> Result<Option<ProcessState>, HarnessError> {
        Ok(self.info(name)?.map(|p| p.state))
    }

    /// The pid of `name` once it is RUNNING (within [`crate::SOON`]).
    pub fn running_pid(&self, name: &str) -> Result<u32, HarnessError> {
        let info = self.wait_for_state(name, ProcessState::Running, crate::SOON)?;
        info.pid.ok_or_else(|| {
            HarnessError::Unexpected(format!("{name} is RUNNING without a pid: {info:?}"))
        })
    }

    /// The members of process group `pgid` once there are `n` of them
    /// (within [`crate::SOON`]), remembered for the cleanup on drop.
    pub fn group_of(&self, pgid: u32, n: usize) -> Result<Vec<u32>, HarnessError> {
        let mut group = Vec::new();
        let complete = wait_until(crate::SOON, || {
            group = procfs::group_members(pgid);
            group.len() == n
        });
        let _ = self.descendants();
        if complete {
            Ok(group)
        } else {
            Err(HarnessError::Timeout(format!(
                "process group {pgid} has members {group:?}, not {n}"
            )))
        }
    }

    /// Polls until `name` is in `state`; the error tells the last status seen
    /// and the event log.
    pub fn wait_for_state(
        &self,
        name: &str,
        state: ProcessState,
        timeout: Duration,
    ) -> Result<ProcessInfo, HarnessError> {
        self.wait_for(name, timeout, &format!("{state}"), |p| p.state == state)
    }

    /// Polls until `name`'s status satisfies `pred`.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&ProcessInfo) -> bool,
    ) -> Result<ProcessInfo, HarnessError> {
        let mut last = None;
        let mut error = None;
        let ok = wait_until(timeout, || match self.info(name) {
            Ok(info) => {
                let hit = info.as_ref().is_some_and(&mut pred);
                last = info;
                hit
            }
            Err(e) => {
                error = Some(e.to_string());
                false
            }
        });
        match (ok, last) {
            (true, Some(info)) => Ok(info),
            (_, last) => Err(HarnessError::Timeout(format!(
                "{name} not {what} within {timeout:?}; last status: {last:?}; last error: {error:?}\n{}",
                self.diagnostics()
            ))),
        }
    }

    /// Runs the real `taskmasterctl --server ADDR --token-file PATH ARGS...`
    /// (10 s deadline).
    pub fn ctl<I, S>(&self, args: I) -> Result<CmdOutput, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(bins::taskmasterctl()?);
        cmd.arg("--server")
            .arg(&self.addr)
            .arg("--token-file")
            .arg(self.token_path())
            .args(args)
            .current_dir(self.dir())
            .env("NO_COLOR", "1");
        run_with_timeout(cmd, Duration::from_secs(10))
    }

    /// What a failing test should show: whether the daemon still runs, the
    /// end of its stderr, and the event log.
    pub fn diagnostics(&self) -> String {
        let alive = if procfs::is_alive(self.pid) {
            "running"
        } else {
            "NOT RUNNING (exited or crashed)"
        };
        let lines = self.stderr_lines();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!(
            "--- taskmasterd (pid {}) is {alive}; last stderr lines ---\n{tail}\n--- event log ---\n{}",
            self.pid,
            self.event_log()
        )
    }

    /// The event log's text (empty when it does not exist yet).
    pub fn event_log(&self) -> String {
        std::fs::read_to_string(self.path(EVENT_LOG_FILE)).unwrap_or_default()
    }

    /// The event log lines that mention `instance` (`web:0`; see
    /// [`line_mentions`]) and contain `word`.
    pub fn events(&self, instance: &str, word: &str) -> Vec<String> {
        self.event_log()
            .lines()
            .filter(|l| line_mentions(l, instance) && l.contains(word))
            .map(str::to_string)
            .collect()
    }

    /// How many [`TestDaemon::events`] there are.
    pub fn count_events(&self, instance: &str, word: &str) -> usize {
        self.events(instance, word).len()
    }

    /// Sends `signal` to the daemon itself.
    pub fn signal(&self, signal: Signal) -> Result<(), HarnessError> {
        kill(Pid::from_raw(self.pid as i32), signal)
            .map_err(|e| HarnessError::io(format!("cannot send {signal} to taskmasterd"), e.into()))
    }

    /// Waits for the daemon to exit; `None` if it is still running at the
    /// deadline. The status is kept; later calls return it again.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let child = &mut self.child;
            let mut exit = None;
            wait_until(timeout, || {
                exit = child.try_wait().ok().flatten();
                exit.is_some()
            });
            self.exit = exit;
        }
        self.exit
    }

    /// SIGKILLs the daemon alone (as the OOM killer would) and reaps it.
    /// What it started is left as it is (and still cleaned up on `Drop`).
    pub fn kill9(&mut self) -> Result<(), HarnessError> {
        self.track_groups();
        if self.exit.is_none() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
            let status = self
                .child
                .wait()
                .map_err(|e| HarnessError::io("cannot reap the killed taskmasterd", e))?;
            self.exit = Some(status);
        }
        Ok(())
    }

    /// Starts a new daemon on the same directory and config (same
    /// environment; no blocked signals or leaked descriptors) once the
    /// current one has exited ([`TestDaemon::kill9`]), and waits for its
    /// address.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        if self.exit.is_none() {
            return Err(HarnessError::Unexpected(
                "restart() while the daemon still runs".into(),
            ));
        }
        self.earlier.push(self.pid);
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let mut cmd = Command::new(bins::taskmasterd()?);
        cmd.arg("-c").arg(self.config_path());
        let (child, stderr, stderr_gate) =
            spawn_daemon(cmd, self.dir.path(), &self.env, Vec::new())?;
        self.pid = child.id();
        self.child = child;
        self.exit = None;
        self.stderr = stderr;
        self.set_stderr_paused(false);
        self.stderr_gate = stderr_gate;
        self.addr = self.wait_for_address()?;
        Ok(())
    }

    /// The pids of the daemons replaced by [`TestDaemon::restart`].
    pub fn earlier_pids(&self) -> &[u32] {
        &self.earlier
    }

    /// The daemon's descendants now (zombies included), remembered for
    /// cleanup.
    pub fn descendants(&self) -> Vec<ProcStat> {
        let found = procfs::descendants(self.pid);
        self.remember_groups(&found);
        found
    }

    /// The daemon's live direct children.
    pub fn live_children(&self) -> Vec<ProcStat> {
        let found = procfs::live_children(self.pid);
        self.remember_groups(&found);
        found
    }

    /// How many of the daemon's children are zombies.
    pub fn zombie_children(&self) -> usize {
        procfs::zombie_children(self.pid)
    }

    fn track_groups(&self) {
        if self.exit.is_none() {
            self.descendants();
        }
    }

    fn remember_groups(&self, procs: &[ProcStat]) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.extend(procs.iter().map(|p| p.pgid));
    }

    /// Everything the cleanup must kill: live descendants, session members,
    /// members of remembered groups. Never this test process or init.
    fn leftovers(&self) -> Vec<ProcStat> {
        let snapshot = procfs::all_processes();
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut victims = procfs::descendants_in(&snapshot, self.pid);
        let in_cgroups: BTreeSet<u32> = self
            .cgroup_root()
            .map(|root| cgroup_members(&root))
            .unwrap_or_default();
        victims.extend(snapshot.into_iter().filter(|p| {
            in_cgroups.contains(&p.pid)
                || p.sid == self.pid
                || self.earlier.contains(&p.sid)
                || groups.contains(&p.pgid)
                || groups.contains(&p.sid)
        }));
        let me = std::process::id();
        let my_group = procfs::stat(me).map(|s| s.pgid).unwrap_or(me);
        victims.retain(|p| {
            p.is_alive() && p.pid != self.pid && p.pid != me && p.pid > 1 && p.pgid != my_group
        });
        victims.sort_by_key(|p| p.pid);
        victims.dedup_by_key(|p| p.pid);
        victims
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        // A paused reader would otherwise wait forever.
        self.resume_stderr();
        let daemon = Pid::from_raw(self.pid as i32);
        let running = self.exit.is_none() && matches!(self.child.try_wait(), Ok(None));
        if running {
            // Frozen, it cannot fork new children while we hunt them.
            let _ = kill(daemon, Signal::SIGSTOP);
            self.track_groups();
        }
        let me = std::process::id();
        let my_group = procfs::stat(me).map(|s| s.pgid).unwrap_or(me);
        kill_until_gone(Duration::from_secs(5), my_group, || self.leftovers());
        if running {
            let _ = kill(daemon, Signal::SIGKILL);
        }
        let _ = self.child.wait();
        remove_daemon_cgroups(self.dir.path());
    }
}

impl TestDaemon {
    /// The cgroup root the daemon recorded in its state file next to the
    /// pidfile (`cgroup PATH`), when it uses cgroups.
    pub fn cgroup_root(&self) -> Option<PathBuf> {
        recorded_cgroup_root(self.dir.path())
    }
}

/// The cgroup root recorded by the daemon whose config (and so pidfile) is
/// in `dir`.
fn recorded_cgroup_root(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join("taskmasterd.pid.state")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("cgroup "))
        .map(PathBuf::from)
}

/// For tests that run daemons without [`TestDaemon`]: SIGKILLs whatever is
/// left in the cgroups of the daemon whose config is in `dir` (its state
/// file says where), and removes them. Call once the daemon is dead.
pub fn remove_daemon_cgroups(dir: &Path) {
    let Some(root) = recorded_cgroup_root(dir) else {
        return;
    };
    wait_until(Duration::from_secs(5), || {
        let left = cgroup_members(&root);
        for pid in &left {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        left.is_empty()
    });
    remove_cgroups(&root);
}

/// Every pid in the instance cgroups under `root`.
pub fn cgroup_members(root: &Path) -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Removes the (emptied) instance cgroups under `root`, then `root`: a
/// cgroup takes a moment to notice its last member's exit.
fn remove_cgroups(root: &Path) {
    wait_until(Duration::from_secs(5), || {
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(root);
        !root.exists()
    });
}

/// SIGKILLs every process `victims` lists, with its process group (unless
/// that is `spared_group` or init's), until it lists none or `timeout`
/// passes. A loop: a child caught between fork and exec shows up late.
pub(crate) fn kill_until_gone(
    timeout: Duration,
    spared_group: u32,
    mut victims: impl FnMut() -> Vec<ProcStat>,
) -> bool {
    wait_until(timeout, || {
        let victims = victims();
        for p in &victims {
            if p.pgid > 1 && p.pgid != spared_group {
                let _ = killpg(Pid::from_raw(p.pgid as i32), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
        }
        victims.is_empty()
    })
}

/// Makes `cmd` start a session of its own, with each of `signals` ignored and
/// blocked (before the exec, after std has reset the mask).
fn own_session_with_signals_off(cmd: &mut Command, signals: Vec<i32>) {
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (setsid, signal, sigemptyset,
    // sigaddset, sigprocmask); it allocates nothing (`signals` was
    // moved in before the fork).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            for &signo in &signals {
                libc::signal(signo, libc::SIG_IGN);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, signo);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
            Ok(())
        });
    }
}

/// True when `line` names `instance` as a whole word: `web:1` matches
/// `web:1 spawned` but not `web:10 spawned` nor `myweb:1`.
pub fn line_mentions(line: &str, instance: &str) -> bool {
    let is_name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.');
    line.match_indices(instance).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + instance.len()..].chars().next();
        !before.is_some_and(is_name_char)
            && !after.is_some_and(|c| c.is_ascii_digit() || c == '_' || c.is_alphabetic())
    })
}

/// The address in a `... listening on 127.0.0.1:40123 ...` line.
fn parse_listening(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("listening on ")?;
    let token = rest.split_whitespace().next()?;
    let token = token.trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | ',' | ';' | '(' | ')'));
    let token = token.trim_end_matches('.');
    token
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}

/// Removes ANSI escape sequences (colours) from a log line.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.clone().next() == Some('[') {
                chars.next();
                // Parameters, then one final byte in '@'..='~'.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_log_lines() {
        assert_eq!(
            parse_listening("2024-01-01T00:00:00Z INFO taskmasterd: listening on 127.0.0.1:40123"),
            Some("127.0.0.1:40123".into())
        );
        assert_eq!(
            parse_listening("listening on \"127.0.0.1:9\", token in x"),
            Some("127.0.0.1:9".into())
        );
        assert_eq!(
            parse_listening(&strip_ansi(
                "\u{1b}[32mINFO\u{1b}[0m listening on [::1]:80."
            )),
            Some("[::1]:80".into())
        );
        assert_eq!(parse_listening("listening on nothing"), None);
        assert_eq!(parse_listening("started"), None);
    }

    /// A fake daemon (a shell script) that leaves behind a plain child, an
    /// orphan re-parented away from it, and a grandchild: `Drop` must kill
    /// them all.
    #[test]
    fn drop_kills_the_daemon_and_everything_it_left() -> crate::TestResult {
        let builder = DaemonBuilder::new()?;
        let script = builder.dir().join("fake-taskmasterd.sh");
        std::fs::write(
            &script,
            "sleep 1000 &\n\
             sh -c 'sleep 1000 & exit 0'\n\
             sh -c 'sleep 1000 & wait' &\n\
             echo \"INFO taskmasterd: listening on 127.0.0.1:9\" >&2\n\
             exec sleep 1000\n",
        )?;
        let mut cmd = Command::new("sh");
        cmd.arg(&script);
        let daemon = builder.launch(cmd)?;
        assert_eq!(daemon.addr(), "127.0.0.1:9");
        let pid = daemon.pid();
        assert_eq!(procfs::stat(pid).map(|s| s.sid), Some(pid), "own session");
        // Three sleeps besides the daemon itself; one is an orphan by now.
        let mut sleepers = Vec::new();
        assert!(wait_until(Duration::from_secs(5), || {
            sleepers = procfs::all_processes()
                .into_iter()
                .filter(|p| p.sid == pid && p.pid != pid && p.comm == "sleep" && p.is_alive())
                .map(|p| p.pid)
                .collect();
            sleepers.len() == 3
        }));
        assert!(daemon.descendants().len() >= 2);
        drop(daemon);
        for p in sleepers {
            assert!(!procfs::is_alive(p), "pid {p} survived the cleanup");
        }
        assert!(!procfs::is_alive(pid));
        Ok(())
    }

    /// (Not through `sh`: dash clears the signal mask when it starts.)
    #[test]
    fn the_daemon_starts_its_own_session_with_the_signal_off() -> crate::TestResult {
        let mut cmd = Command::new("sleep");
        cmd.arg("1000");
        own_session_with_signals_off(&mut cmd, vec![libc::SIGUSR1]);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let blocked = procfs::signal_mask(pid, "SigBlk");
        let ignored = procfs::signal_mask(pid, "SigIgn");
        let sid = procfs::stat(pid).map(|s| s.sid);
        let _ = child.kill();
        let _ = child.wait();
        let usr1 = procfs::signal_bit(libc::SIGUSR1);
        assert!(blocked.is_some_and(|m| m & usr1 != 0), "{blocked:?}");
        assert!(ignored.is_some_and(|m| m & usr1 != 0), "{ignored:?}");
        assert_eq!(sid, Some(pid));
        Ok(())
    }

    #[test]
    fn a_daemon_that_dies_early_is_reported_with_its_stderr() -> crate::TestResult {
        let builder = DaemonBuilder::new()?;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bad config >&2; exit 1"]);
        match builder.launch(cmd) {
            Err(HarnessError::DaemonStart { stderr, .. }) => {
                assert!(stderr.contains("bad config"), "{stderr}");
            }
            other => panic!("expected a start failure, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn instance_names_match_as_words() {
        assert!(line_mentions("12:00 web:1 spawned pid 4", "web:1"));
        assert!(line_mentions("[web:1] spawned", "web:1"));
        assert!(!line_mentions("web:10 spawned", "web:1"));
        assert!(!line_mentions("myweb:1 spawned", "web:1"));
        assert!(line_mentions("web:1: spawned", "web:1"));
    }
}
