//! Mail at shutdown: the open digests and the queue are sent before the
//! daemon exits, and a mail server that hangs delays the exit by
//! `email.smtp.timeout` at most.

use crate::{ANSWERING, SOON, email_section, events_in, host, log_lines};
use integration::smtp::SmtpServer;
use integration::{TestDaemon, TestResult};
use nix::sys::signal::Signal;
use proto::ProcessState;
use std::time::{Duration, Instant};

#[test]
fn a_digest_window_still_open_at_shutdown_is_mailed_before_the_daemon_exits() -> TestResult {
    let server = SmtpServer::start()?;
    // Four unexpected exits: the first mailed at once, the other three
    // batched in a window that would end in ten minutes.
    let mut daemon = TestDaemon::start(&format!(
        r#"{}
programs:
  loop:
    cmd: "sh -c 'exit 1'"
    starttime: 0
    maxrestarts: 3
    restartwindow: 60
    notify: [{{on: [unexpected_exit], throttle: 600}}]
"#,
        email_section(server.port(), ANSWERING)
    ))?;
    daemon.wait_for_state("loop:0", ProcessState::Fatal, SOON)?;
    server.wait_for_mails(1, SOON)?;
    daemon.signal(Signal::SIGTERM)?;
    let status = daemon.wait_exit(SOON).ok_or("taskmasterd did not exit")?;
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr_text());
    // Taken after the exit: what arrived, arrived before it.
    let mails = server.mails();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert_eq!(
        mails[1].subject(),
        format!("[taskmaster {}] loop: 3 events", host())
    );
    assert_eq!(events_in(&mails[0]) + events_in(&mails[1]), 4);
    Ok(())
}

#[test]
fn a_hung_mail_server_delays_the_exit_by_smtp_timeout_at_most() -> TestResult {
    let server = SmtpServer::silent()?;
    let timeout = 2.0;
    let mut daemon = TestDaemon::start(&format!(
        r#"{}
programs:
  web:
    cmd: "sleep 1000"
    starttime: 0
    notify: [{{on: [stopped], throttle: 0}}]
"#,
        email_section(server.port(), timeout)
    ))?;
    daemon.running_pid("web:0")?;
    // Its STOPPED mail goes to a server that never answers.
    let asked = Instant::now();
    daemon.signal(Signal::SIGTERM)?;
    let status = daemon.wait_exit(SOON).ok_or("taskmasterd did not exit")?;
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr_text());
    // The stop itself is quick (sleep dies on SIGTERM); the flush waits
    // for the server up to the bound, then gives up; margin for the load.
    assert!(
        took < Duration::from_secs_f64(timeout) + Duration::from_secs(3),
        "exit took {took:?}"
    );
    assert!(server.connections() >= 1, "the mail was never tried");
    assert_eq!(
        log_lines(&daemon, &["not sent within email.smtp.timeout"]).len(),
        1,
        "{}",
        daemon.event_log()
    );
    Ok(())
}
