//! The interactive shell on a real pseudo-terminal, against the fake daemon:
//! Tab completes a program name learnt from the daemon's `status`, and Up in
//! a second session recalls the last command of the first from the history
//! file.

mod common;

use common::{FakeDaemon, standard, wait_until};
use proto::{PidRequest, Request, StatusRequest};
use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PROMPT: &str = "taskmaster> ";

fn shell(config: &Path, history: &Path) -> Result<PtySession, rexpect::error::Error> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskmasterctl"));
    cmd.arg("-c")
        .arg(config)
        .env("TASKMASTER_HISTORY", history)
        // No cursor-position queries: nothing in the test answers them.
        .env("TERM", "dumb");
    // The session's Drop ends the process (SIGTERM, then SIGKILL).
    spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(15_000))
            .strip_ansi_escape_codes(true),
    )
}

fn pid_requests(d: &FakeDaemon) -> usize {
    d.requests()
        .iter()
        .filter(|r| **r == Request::Pid(PidRequest { target: None }))
        .count()
}

#[test]
fn tab_completes_live_program_names_and_up_recalls_history() -> TestResult {
    let d = FakeDaemon::start(standard);
    let dir = tempfile::tempdir()?;
    let history = dir.path().join("history");

    // Session 1: `worker` is known only from the daemon's status.
    let mut s = shell(&d.config(), &history)?;
    s.exp_string(PROMPT)?;
    s.send("status wor")?;
    s.send("\t")?;
    s.flush()?;
    s.exp_string("worker:0")?; // the menu lists the instance too
    s.send("\r")?; // accepts the menu's selection, `worker`
    s.flush()?;
    s.exp_string("status worker ")?;
    s.send("\r")?; // runs it
    s.flush()?;
    s.exp_string("worker:0  FATAL")?;
    let asked = Request::Status(StatusRequest {
        targets: vec!["worker".into()],
    });
    assert!(
        wait_until(Duration::from_secs(10), || d.requests().contains(&asked)),
        "{:?}",
        d.requests()
    );
    s.send_line("pid")?;
    s.exp_string(&common::DAEMON_PID.to_string())?;
    s.exp_string(PROMPT)?;
    s.send_control('d')?;
    s.exp_eof()?;
    let saved = std::fs::read_to_string(&history)?;
    assert_eq!(saved.lines().last(), Some("pid"), "{saved:?}");
    assert_eq!(pid_requests(&d), 1);

    // Session 2: Up brings `pid` back from the file; Enter runs it again.
    let mut s = shell(&d.config(), &history)?;
    s.exp_string(PROMPT)?;
    s.send("\x1b[A")?;
    s.flush()?;
    s.exp_string("pid")?;
    s.send("\r")?;
    s.flush()?;
    s.exp_string(&common::DAEMON_PID.to_string())?;
    assert!(
        wait_until(Duration::from_secs(10), || pid_requests(&d) == 2),
        "{:?}",
        d.requests()
    );
    s.exp_string(PROMPT)?;
    s.send_line("quit")?;
    s.exp_eof()?;
    Ok(())
}

/// Points `dir/taskmaster.yaml` (and its token file) at daemon `d`.
fn point_at(dir: &Path, d: &FakeDaemon) -> std::io::Result<std::path::PathBuf> {
    std::fs::copy(
        d.dir.path().join("taskmasterd.token"),
        dir.join("taskmasterd.token"),
    )?;
    let config = dir.join("taskmaster.yaml");
    std::fs::write(&config, format!("server:\n  listen: \"{}\"\n", d.addr))?;
    Ok(config)
}

#[test]
fn errors_keep_the_shell_alive_and_a_dead_daemon_is_reported() -> TestResult {
    let d = FakeDaemon::start(standard);
    let dir = tempfile::tempdir()?;
    let config = point_at(dir.path(), &d)?;
    let mut s = shell(&config, &dir.path().join("history"))?;
    s.exp_string(PROMPT)?;
    s.send_line("frobnicate")?;
    s.exp_string("unknown command")?;
    s.send_line("status nope")?;
    s.exp_string("no such program: nope")?;
    s.send_line("help start")?;
    s.exp_string("usage: start [--no-wait] [--timeout SECONDS] TARGET...")?;
    // The daemon goes away: the shell says so and stays.
    drop(d);
    s.send_line("status")?;
    s.exp_string("cannot connect to taskmasterd")?;
    s.exp_string("the shell stays open")?;
    s.exp_string(PROMPT)?;
    // A daemon is back (new address, new token): the next command reconnects.
    let d2 = FakeDaemon::start(standard);
    point_at(dir.path(), &d2)?;
    s.send_line("status")?;
    s.exp_string("web:1     RUNNING")?;
    s.send_line("exit")?;
    s.exp_eof()?;
    Ok(())
}

#[test]
fn ctrl_c_ends_tail_follow_but_not_the_shell() -> TestResult {
    let d = FakeDaemon::start(standard);
    let dir = tempfile::tempdir()?;
    let mut s = shell(&d.config(), &dir.path().join("history"))?;
    s.exp_string(PROMPT)?;
    s.send_line("tail -f endless")?;
    s.exp_string("line 4")?;
    s.send_control('c')?;
    s.exp_string(PROMPT)?;
    s.send_line("pid")?;
    s.exp_string(&common::DAEMON_PID.to_string())?;
    s.send_line("quit")?;
    s.exp_eof()?;
    Ok(())
}

#[test]
fn tab_fetches_names_again_once_they_are_a_second_old() -> TestResult {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Another client's reload adds `newprog` while the shell sits at its prompt.
    let reloaded = Arc::new(AtomicBool::new(false));
    let flag = reloaded.clone();
    let d = FakeDaemon::start(move |r| match r {
        Request::Status(_) if flag.load(Ordering::SeqCst) => {
            vec![proto::Response::Status(vec![common::info(
                "newprog",
                0,
                proto::ProcessState::Running,
                Some(7),
            )])]
        }
        other => standard(other),
    });
    let dir = tempfile::tempdir()?;
    let mut s = shell(&d.config(), &dir.path().join("history"))?;
    s.exp_string(PROMPT)?;
    let statuses = || {
        d.requests()
            .iter()
            .filter(|r| matches!(r, Request::Status(_)))
            .count()
    };
    assert!(wait_until(Duration::from_secs(10), || statuses() == 1));
    let fetched = std::time::Instant::now();
    reloaded.store(true, Ordering::SeqCst);
    // The names the shell holds must be stale (a second old) for Tab to
    // fetch them: this waits for the product's own threshold, not for an
    // event.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(fetched.elapsed()));
    s.send("start newp")?;
    s.send("\t")?;
    s.flush()?;
    s.exp_string("start newprog")?;
    assert_eq!(statuses(), 2, "{:?}", d.requests());
    s.send_control('c')?;
    s.exp_string(PROMPT)?;
    s.send_line("quit")?;
    s.exp_eof()?;
    Ok(())
}
