//! The interactive shell on a real pseudo-terminal against the real daemon:
//! Tab completes a live program name (learnt from the daemon's `status`),
//! and the history file carries a command from one session to the next.

use crate::TestResult;
use integration::{TestDaemon, bins};
use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};
use std::path::Path;
use std::process::Command;

const PROMPT: &str = "taskmaster> ";

fn shell(daemon: &TestDaemon, history: &Path) -> TestResult<PtySession> {
    let mut cmd = Command::new(bins::taskmasterctl()?);
    cmd.arg("--server")
        .arg(daemon.addr())
        .arg("--token-file")
        .arg(daemon.token_path())
        .env("TASKMASTER_HISTORY", history)
        // No cursor-position queries: nothing in the test answers them.
        .env("TERM", "dumb")
        .env("NO_COLOR", "1");
    // The session's Drop ends the process (SIGTERM, then SIGKILL).
    Ok(spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(15_000))
            .strip_ansi_escape_codes(true),
    )?)
}

#[test]
fn tab_completes_a_live_program_and_history_survives_the_session() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  webserver:
    cmd: "sleep 1000"
    starttime: 0
  worker:
    cmd: "sleep 1000"
    starttime: 0
"#,
    )?;
    let pid = daemon.running_pid("webserver:0")?;
    daemon.running_pid("worker:0")?;
    let dir = tempfile::tempdir()?;
    let history = dir.path().join("history");

    // Session 1: `webs` + Tab offers webserver (and webserver:0); Enter
    // takes the first suggestion, the program name.
    let mut s = shell(&daemon, &history)?;
    s.exp_string(PROMPT)?;
    s.send("status webs")?;
    s.send("\t")?;
    s.flush()?;
    s.exp_string("webserver:0")?;
    s.send("\r")?;
    s.flush()?;
    s.exp_string("status webserver ")?;
    s.send("\r")?;
    s.flush()?;
    s.exp_string("webserver:0  RUNNING  pid ")?;
    s.exp_string(PROMPT)?;
    s.send_line("pid webserver:0")?;
    s.exp_string(&pid.to_string())?;
    s.exp_string(PROMPT)?;
    s.send_control('d')?;
    s.exp_eof()?;
    let saved = std::fs::read_to_string(&history)?;
    assert_eq!(saved.lines().last(), Some("pid webserver:0"), "{saved:?}");

    // Session 2: Up recalls the last command of session 1; Enter runs it.
    let mut s = shell(&daemon, &history)?;
    s.exp_string(PROMPT)?;
    s.send("\x1b[A")?;
    s.flush()?;
    s.exp_string("pid webserver:0")?;
    s.send("\r")?;
    s.flush()?;
    s.exp_string(&pid.to_string())?;
    s.exp_string(PROMPT)?;
    s.send_line("quit")?;
    s.exp_eof()?;
    Ok(())
}
