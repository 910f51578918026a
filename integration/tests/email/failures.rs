//! A mail server that is down, or that accepts and never answers, changes
//! nothing for supervision: restarts stay within 50 ms, each failed attempt
//! is one log line, and the queue of waiting mails is bounded.

use crate::{FAILING, SOON, busy, email_section, fastest_restart, log_lines};
use integration::smtp::{SmtpServer, closed_port};
use integration::{TestDaemon, TestResult, wait_until};
use proto::ProcessState;
use std::time::Duration;

/// A `victim` mailing about every start and crash, plus `extra` programs.
fn daemon_mailing(port: u16, extra: &str) -> TestResult<TestDaemon> {
    Ok(TestDaemon::start(&format!(
        r#"{}
programs:
  victim:
    cmd: "sleep 1000"
    starttime: 0.1
    maxrestarts: 100
    restartwindow: 1
    notify: [{{on: [started, unexpected_exit], throttle: 0}}]
{extra}"#,
        email_section(port, FAILING)
    ))?)
}

#[test]
fn with_the_smtp_server_down_supervision_goes_on_and_each_attempt_is_logged() -> TestResult {
    let daemon = daemon_mailing(closed_port()?, "")?;
    let best = fastest_restart(&daemon, "victim:0")?;
    assert!(
        best < Duration::from_millis(50),
        "fastest restart took {best:?}"
    );
    // Mail 1 is tried 3 times (1 s, then 2 s apart), one line each.
    let gave_up = wait_until(SOON, || {
        !log_lines(&daemon, &["email not sent", " mail=1 ", "giving up"]).is_empty()
    });
    assert!(gave_up, "mail 1 never gave up:\n{}", daemon.event_log());
    let lines = log_lines(&daemon, &["email not sent", " mail=1 "]);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(&format!("(attempt {}/3", i + 1)), "{line}");
    }
    assert!(
        daemon
            .info("victim:0")?
            .is_some_and(|p| p.state == ProcessState::Running)
    );
    Ok(())
}

#[test]
fn with_a_silent_smtp_server_supervision_goes_on_and_the_queue_stays_bounded() -> TestResult {
    let server = SmtpServer::silent()?;
    let storm = r#"  storm:
    cmd: "sh -c 'exit 1'"
    starttime: 0
    maxrestarts: 99
    restartwindow: 60
    notify: [{on: [unexpected_exit], throttle: 0}]
"#;
    let forking = busy();
    let daemon = daemon_mailing(server.port(), storm)?;
    // 100 crashes, 100 mails, while the first one hangs.
    daemon.wait_for_state("storm:0", ProcessState::Fatal, SOON)?;
    drop(forking);
    let best = fastest_restart(&daemon, "victim:0")?;
    assert!(
        best < Duration::from_millis(50),
        "fastest restart took {best:?}"
    );
    let timed_out = wait_until(SOON, || {
        !log_lines(
            &daemon,
            &[
                "email not sent (attempt 1/3)",
                "no answer from the SMTP server within 0.5s",
            ],
        )
        .is_empty()
    });
    assert!(timed_out, "no timeout logged:\n{}", daemon.event_log());
    let dropped = wait_until(SOON, || {
        !log_lines(&daemon, &["email queue full"]).is_empty()
    });
    assert!(
        dropped,
        "the queue never overflowed:\n{}",
        daemon.event_log()
    );
    // One counted line per dropped mail: 1, 2, 3, ... without a gap.
    let counts: Vec<usize> = log_lines(&daemon, &["email queue full"])
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once("mail (")?;
            rest.split_once(" dropped so far")?.0.parse().ok()
        })
        .collect();
    let expected: Vec<usize> = (1..=counts.len()).collect();
    assert_eq!(counts, expected);
    // Mails go one at a time: a hung server holds one connection, not one
    // per mail.
    assert!(
        server.connections() <= 5,
        "{} connections",
        server.connections()
    );
    Ok(())
}
