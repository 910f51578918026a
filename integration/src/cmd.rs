//! Running a short-lived binary (`taskmasterctl ...`, `taskmasterd --check`)
//! with a deadline, capturing its output.
//!
//! The command runs in its own process group, which is SIGKILLed when it
//! overruns the deadline (and after it exits, for anything it left behind),
//! so a hung client never hangs the suite nor leaks. It is waited for with a
//! blocking `wait` and a watchdog thread, not by polling: `elapsed` has no
//! polling granularity, so the benchmark times client commands with it too.

use crate::HarnessError;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub status: ExitStatus,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub elapsed: Duration,
}

impl CmdOutput {
    /// Stdout then stderr, for assertions that do not care which.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` (stdin `/dev/null`) and waits at most `timeout` for it.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<CmdOutput, HarnessError> {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| HarnessError::io(format!("cannot run {what}"), e))?;
    let group = Pid::from_raw(child.id() as i32);
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let (done, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let overran = matches!(
            watch.recv_timeout(timeout),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if overran {
            let _ = killpg(group, Signal::SIGKILL);
        }
        overran
    });
    let status = child.wait();
    let elapsed = start.elapsed();
    let _ = done.send(());
    let overran = watchdog.join().unwrap_or(false);
    // Whatever it started goes too.
    let _ = killpg(group, Signal::SIGKILL);
    let status = status.map_err(|e| HarnessError::io(format!("cannot reap {what}"), e))?;
    let stdout = join(out);
    let stderr = join(err);
    if overran {
        return Err(HarnessError::Timeout(format!(
            "{what} still running after {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )));
    }
    Ok(CmdOutput {
        status,
        code: status.code(),
        stdout,
        stderr,
        elapsed,
    })
}

/// Reads a child's pipe to the end on a thread, so the child never blocks.
pub(crate) fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    let mut pipe = pipe?;
    Some(std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }))
}

/// The text a [`drain`] thread read (empty if it failed).
pub(crate) fn join(handle: Option<JoinHandle<String>>) -> String {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_output_and_kills_an_overrun() -> Result<(), HarnessError> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi; exit 3"]);
        let out = run_with_timeout(cmd, Duration::from_secs(10))?;
        assert_eq!((out.code, out.stdout.as_str()), (Some(3), "hi\n"));
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let start = Instant::now();
        assert!(matches!(
            run_with_timeout(cmd, Duration::from_millis(100)),
            Err(HarnessError::Timeout(_))
        ));
        assert!(start.elapsed() < Duration::from_secs(10));
        Ok(())
    }
}
