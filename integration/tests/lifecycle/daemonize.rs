//! `taskmasterd -d`: every fallible step before detaching, readiness before
//! the launcher returns, one daemon per config, stale pidfiles taken over.

use crate::SOON;
use integration::{
    CmdOutput, HarnessError, TestResult, bins, procfs, run_with_timeout, wait_until,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::{Client, Request, Response, StatusRequest};
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A config directory whose daemons go to the background. Detached daemons
/// are nobody's child: `Drop` SIGKILLs each one it launched and everything
/// in its session.
struct Detached {
    dir: tempfile::TempDir,
    launched: RefCell<Vec<u32>>,
}

impl Detached {
    fn new(programs: &str) -> TestResult<Detached> {
        let dir = tempfile::Builder::new()
            .prefix("taskmaster-lifecycle-")
            .tempdir()?;
        let text = format!("{programs}server:\n  listen: \"127.0.0.1:0\"\n");
        std::fs::write(dir.path().join("taskmaster.yaml"), text)?;
        Ok(Detached {
            dir,
            launched: RefCell::new(Vec::new()),
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `taskmasterd -d -c DIR/taskmaster.yaml` to its exit.
    fn launch(&self) -> Result<CmdOutput, HarnessError> {
        let mut cmd = Command::new(bins::taskmasterd()?);
        cmd.arg("-d")
            .arg("-c")
            .arg(self.path("taskmaster.yaml"))
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1");
        let out = run_with_timeout(cmd, Duration::from_secs(20));
        if let Some(pid) = self.pid() {
            let mut launched = self.launched.borrow_mut();
            if !launched.contains(&pid) {
                launched.push(pid);
            }
        }
        out
    }

    /// The pid in the pidfile, if it names a live process.
    fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.path("taskmasterd.pid")).ok()?;
        text.trim().parse().ok().filter(|p| procfs::is_alive(*p))
    }

    fn event_log(&self) -> String {
        std::fs::read_to_string(self.path("taskmasterd.log")).unwrap_or_default()
    }

    /// The control address from the event log's `listening on ADDR` line.
    fn addr(&self) -> Option<String> {
        self.event_log().lines().rev().find_map(|l| {
            let (_, rest) = l.split_once("listening on ")?;
            Some(rest.split_whitespace().next()?.to_string())
        })
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        for &pid in self.launched.borrow().iter() {
            wait_until(Duration::from_secs(5), || {
                let mut left = procfs::session_members(pid);
                left.retain(|p| *p != std::process::id());
                for p in &left {
                    let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
                }
                left.is_empty()
            });
        }
        integration::remove_daemon_cgroups(self.dir.path());
    }
}

#[test]
fn a_broken_config_exits_1_with_the_problem_and_starts_nothing() -> TestResult {
    let d = Detached::new("programs:\n  web:\n    cmd: sleep 1000\n    numprocs: -1\n")?;
    let out = d.launch()?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.stderr.contains("programs.web.numprocs"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing started"), "{}", out.stderr);
    assert_eq!(d.pid(), None, "a daemon is running");
    Ok(())
}

#[test]
fn d_returns_once_the_port_answers_and_a_second_d_names_the_first() -> TestResult {
    let d = Detached::new("programs:\n  web:\n    cmd: sleep 1000\n    starttime: 0\n")?;
    let out = d.launch()?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    // No waiting and no retry: the launcher returned, so it answers now.
    let addr = d.addr().ok_or("no `listening on` line in the event log")?;
    let token = std::fs::read_to_string(d.path("taskmasterd.token"))?;
    let mut client = Client::connect(&addr, token.trim(), Duration::from_secs(5))?;
    let reply = client.call(&Request::Status(StatusRequest { targets: vec![] }))?;
    assert!(
        matches!(&reply, Response::Status(list) if list.iter().any(|p| p.name == "web:0")),
        "{reply:?}"
    );
    let pid = d.pid().ok_or("no live pid in the pidfile")?;
    assert_eq!(client.welcome().daemon_pid, pid);
    let stat = procfs::stat(pid).ok_or("daemon vanished")?;
    assert_eq!(stat.sid, pid, "the daemon leads a session of its own");
    for fd in 0..3 {
        assert_eq!(
            procfs::fd_target(pid, fd),
            Some(PathBuf::from("/dev/null")),
            "fd {fd}"
        );
    }

    let second = d.launch()?;
    assert_eq!(second.code, Some(1), "{}", second.combined());
    assert!(
        second.stderr.contains(&format!("pid {pid}")),
        "the refusal must name the running daemon: {}",
        second.stderr
    );
    assert_eq!(d.pid(), Some(pid), "the first daemon must be untouched");

    // A clean stop removes the pidfile.
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM)?;
    assert!(wait_until(SOON, || !procfs::is_alive(pid)));
    assert!(wait_until(SOON, || !d.path("taskmasterd.pid").exists()));
    Ok(())
}

#[test]
fn a_pidfile_with_garbage_or_a_dead_pid_is_taken_over() -> TestResult {
    let mut dead = Command::new("true").spawn()?;
    let dead_pid = dead.id();
    dead.wait()?;
    for stale in ["garbage\n".to_string(), format!("{dead_pid}\n")] {
        let d = Detached::new("programs: {}\n")?;
        std::fs::write(d.path("taskmasterd.pid"), &stale)?;
        let out = d.launch()?;
        assert_eq!(out.code, Some(0), "with {stale:?}: {}", out.combined());
        let pid = d.pid().ok_or("no live pid in the pidfile")?;
        assert_ne!(pid, dead_pid);
        assert!(
            d.event_log().contains("took over a stale pidfile"),
            "{}",
            d.event_log()
        );
    }
    Ok(())
}
