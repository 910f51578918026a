//! End-to-end tests of the control plane and of hot reload: the real
//! `taskmasterctl` (one-shot, piped, and on a pty) and raw sockets against
//! the real `taskmasterd`, judged by exit codes, output, `/proc` and the
//! event log.
//!
//! One module per topic: [`cli`] (every command, target form, exit code and
//! `--json`), [`waits`] (what `start`, `stop` and `shutdown` wait for),
//! [`robust`] (hostile or broken clients while supervision goes on),
//! [`pressure`] (clients that stop reading or flood: memory stays bounded),
//! [`shell`] (the interactive shell on a pty) and [`reload`] (SIGHUP and
//! `reload`). Every test runs its own daemon in its own temporary directory
//! on port 0, so they run in parallel; `TestDaemon`'s `Drop` kills every
//! process it started, and [`Background`] does the same for a client left
//! running (`tail -f`).

mod cli;
mod pressure;
mod reload;
mod robust;
mod shell;
mod waits;

use integration::SOON;
use integration::{CmdOutput, HarnessError, TestDaemon, bins, run_with_timeout};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use proto::ProcessState;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

type TestResult<T = ()> = integration::TestResult<T>;

/// Asserts the exit code, showing everything the client printed otherwise.
#[track_caller]
fn assert_code(out: &CmdOutput, code: i32) {
    assert_eq!(
        out.code,
        Some(code),
        "expected exit code {code}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
}

/// `taskmasterctl --server ADDR --token-file PATH ARGS...`, asserting the exit code.
#[track_caller]
fn ctl_expect(daemon: &TestDaemon, args: &[&str], code: i32) -> Result<CmdOutput, HarnessError> {
    let out = daemon.ctl(args)?;
    assert!(
        out.code == Some(code),
        "taskmasterctl {args:?}: expected exit code {code}, got {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    Ok(out)
}

/// `taskmasterctl ARGS...` with nothing added (for `-c`, wrong addresses and
/// tokens), run in `cwd`.
fn ctl_raw(cwd: &std::path::Path, args: &[&str]) -> Result<CmdOutput, HarnessError> {
    let mut cmd = Command::new(bins::taskmasterctl()?);
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    run_with_timeout(cmd, SOON)
}

/// `printf %s INPUT | taskmasterctl --server ADDR --token-file PATH ARGS...`:
/// commands from a pipe, through a real shell pipeline.
fn ctl_piped(daemon: &TestDaemon, input: &str, args: &[&str]) -> Result<CmdOutput, HarnessError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"printf %s "$INPUT" | "$CTL" --server "$ADDR" --token-file "$TOKEN" "$@""#)
        .arg("sh")
        .args(args)
        .env("INPUT", input)
        .env("CTL", bins::taskmasterctl()?)
        .env("ADDR", daemon.addr())
        .env("TOKEN", daemon.token_path())
        .env("NO_COLOR", "1")
        .current_dir(daemon.dir());
    run_with_timeout(cmd, SOON)
}

/// Kills `pid` with SIGKILL and waits until the daemon has restarted it with
/// a new pid: supervision is still going on.
fn supervision_goes_on(daemon: &TestDaemon, name: &str) -> TestResult {
    let old = daemon.running_pid(name)?;
    nix::sys::signal::kill(Pid::from_raw(old as i32), Signal::SIGKILL)?;
    let info = daemon.wait_for(name, SOON, "restarted with a new pid", |p| {
        p.state == ProcessState::Running && p.pid.is_some_and(|p| p != old)
    })?;
    assert!(info.pid.is_some_and(integration::procfs::is_alive));
    Ok(())
}

/// A free port on 127.0.0.1 (bound, read, closed). Another process could
/// take it before it is used; that is unlikely enough for a test.
fn free_port() -> TestResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A long-running command (e.g. `taskmasterctl tail -f`) whose stdout lines
/// arrive on a channel; its process group is SIGKILLed on drop.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Background {
    fn spawn(cmd: Command) -> TestResult<Background> {
        Self::spawn_with_stderr(cmd, Stdio::null())
    }

    /// [`Background::spawn`] with stderr going to `stderr` (e.g. a file).
    fn spawn_with_stderr(mut cmd: Command, stderr: impl Into<Stdio>) -> TestResult<Background> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Background { child, lines })
    }

    /// The next line, within `timeout`.
    fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its exit code once it has exited, within `timeout`.
    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let mut code = None;
        integration::wait_until(timeout, || {
            code = self.child.try_wait().ok().flatten().and_then(|s| s.code());
            code.is_some()
        });
        code
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
