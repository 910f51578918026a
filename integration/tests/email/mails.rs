//! What is mailed, when: one mail per FATAL with the stderr tail, digests
//! instead of a flood, nothing for programs without rules, `notify-test`,
//! and rules and servers changed by a reload.

use crate::{ANSWERING, FAILING, SOON, busy, email_section, events_in, host};
use integration::smtp::{SmtpServer, closed_port};
use integration::{TestDaemon, TestResult, wait_until};
use nix::sys::signal::Signal;
use proto::{ErrorKind, NotifyTestRequest, ProcessState, Request, Response, StopRequest};
use std::time::Duration;

#[test]
fn a_fatal_rule_mails_once_with_the_stderr_tail_and_rule_less_programs_send_nothing() -> TestResult
{
    let server = SmtpServer::start()?;
    let daemon = TestDaemon::start(&format!(
        r#"{}
programs:
  crash:
    cmd: "sh -c 'echo first words >&2; echo last words before dying >&2; exit 4'"
    starttime: 1
    startretries: 0
    notify: [{{on: [fatal]}}]
  quiet:
    cmd: "sh -c 'echo quiet words >&2; exit 4'"
    starttime: 1
    startretries: 0
"#,
        email_section(server.port(), ANSWERING)
    ))?;
    daemon.wait_for_state("crash:0", ProcessState::Fatal, SOON)?;
    daemon.wait_for_state("quiet:0", ProcessState::Fatal, SOON)?;
    let mails = server.wait_for_mails(1, SOON)?;
    // Both went FATAL; nothing else may come.
    let more = wait_until(Duration::from_secs(1), || server.mails().len() > 1);
    assert!(!more, "more than one mail: {:#?}", server.mails());
    let mail = &mails[0];
    assert_eq!(
        mail.subject(),
        format!("[taskmaster {}] crash:0 FATAL", host())
    );
    assert_eq!(mail.from, "taskmaster@example.com");
    assert_eq!(mail.to, vec!["ops@example.com".to_string()]);
    let body = mail.body();
    for needle in [
        "program:   crash",
        "instance:  crash:0",
        "event:     FATAL",
        "exit:      exit status 4",
        "restarts:  0",
        "first words",
        "last words before dying",
    ] {
        assert!(body.contains(needle), "{needle:?} missing from:\n{body}");
    }
    assert!(!body.contains("quiet"), "{body}");
    Ok(())
}

#[test]
fn a_crash_loop_sends_a_first_mail_then_digests_not_twenty_mails() -> TestResult {
    let server = SmtpServer::start()?;
    let forking = busy();
    let daemon = TestDaemon::start(&format!(
        r#"{}
programs:
  loop:
    cmd: "sh -c 'echo crash $$ >&2; exit 1'"
    starttime: 0
    maxrestarts: 19
    restartwindow: 60
    notify: [{{on: [unexpected_exit], throttle: 2}}]
"#,
        email_section(server.port(), ANSWERING)
    ))?;
    daemon.wait_for_state("loop:0", ProcessState::Fatal, SOON)?;
    drop(forking);
    assert_eq!(
        daemon.count_events("loop:0", "spawned"),
        20,
        "20 runs, 20 exits"
    );
    let all_reported = wait_until(SOON, || {
        server.mails().iter().map(events_in).sum::<usize>() >= 20
    });
    let mails = server.mails();
    assert!(all_reported, "not every exit was mailed: {mails:#?}");
    assert_eq!(mails.iter().map(events_in).sum::<usize>(), 20);
    // 20 exits well within one 2 s window: the first at once, the other 19
    // in one digest (a very slow machine may need a window or two more).
    assert!((2..=4).contains(&mails.len()), "{} mails", mails.len());
    assert_eq!(
        mails[0].subject(),
        format!("[taskmaster {}] loop:0 UNEXPECTED EXIT", host())
    );
    let digest = &mails[1];
    let n = events_in(digest);
    assert!(n >= 2, "{}", digest.subject());
    assert_eq!(
        digest.subject(),
        format!("[taskmaster {}] loop: {n} events", host())
    );
    let body = digest.body();
    assert_eq!(
        body.matches("loop:0  UNEXPECTED EXIT  exit: exit status 1")
            .count(),
        n,
        "{body}"
    );
    assert!(body.contains("crash "), "no stderr tail in:\n{body}");
    let more = wait_until(Duration::from_millis(500), || {
        server.mails().len() > mails.len()
    });
    assert!(!more, "a mail after every exit was reported");
    Ok(())
}

fn notify_test(daemon: &TestDaemon, program: &str) -> TestResult<Response> {
    Ok(daemon.call(&Request::NotifyTest(NotifyTestRequest {
        program: program.into(),
    }))?)
}

fn config(port: u16, timeout: f64, programs: &str) -> String {
    format!(
        "{}programs:\n{programs}server:\n  listen: \"127.0.0.1:0\"\n",
        email_section(port, timeout)
    )
}

#[test]
fn notify_test_mails_every_recipient_and_reports_the_smtp_outcome() -> TestResult {
    let server = SmtpServer::start()?;
    let programs = r#"  web:
    cmd: "sleep 1000"
    autostart: false
    notify:
      - {on: [fatal], to: [a@example.com, b@example.com]}
      - {on: [started]}
  plain:
    cmd: "sleep 1000"
    autostart: false
"#;
    let daemon = TestDaemon::start(&config(server.port(), ANSWERING, programs))?;
    match notify_test(&daemon, "web")? {
        Response::Done(done) => assert!(
            done.message
                .contains("a@example.com, b@example.com, ops@example.com"),
            "{done:?}"
        ),
        other => panic!("notify-test web: {other:?}"),
    }
    let mails = server.wait_for_mails(1, SOON)?;
    assert_eq!(
        mails[0].subject(),
        format!("[taskmaster {}] web: test notification", host())
    );
    assert_eq!(
        mails[0].to,
        ["a@example.com", "b@example.com", "ops@example.com"]
    );
    match notify_test(&daemon, "plain")? {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::Failed);
            assert!(e.message.contains("no notify rules"), "{e:?}");
        }
        other => panic!("notify-test plain: {other:?}"),
    }
    match notify_test(&daemon, "nosuch")? {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::UnknownTarget, "{e:?}"),
        other => panic!("notify-test nosuch: {other:?}"),
    }
    let out = daemon.ctl(["notify-test", "web"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(
        out.combined().contains("test mail sent"),
        "{}",
        out.combined()
    );
    server.wait_for_mails(2, SOON)?;

    // The server goes away (a reload points the daemon at a closed port):
    // the SMTP error comes back to the client.
    std::fs::write(
        daemon.config_path(),
        config(closed_port()?, FAILING, programs),
    )?;
    match daemon.call(&Request::Reload)? {
        Response::Reload(summary) => assert!(
            summary.notes.iter().any(|n| n.contains("email:")),
            "{summary:?}"
        ),
        other => panic!("reload: {other:?}"),
    }
    match notify_test(&daemon, "web")? {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::Failed);
            assert!(e.message.contains("test mail not sent"), "{e:?}");
        }
        other => panic!("notify-test with the server down: {other:?}"),
    }
    let out = daemon.ctl(["notify-test", "web"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert_eq!(server.mails().len(), 2);
    Ok(())
}

#[test]
fn a_reload_applies_new_rules_and_a_new_server_in_place() -> TestResult {
    let (first, second) = (SmtpServer::start()?, SmtpServer::start()?);
    let program = "  web:\n    cmd: \"sleep 1000\"\n    starttime: 0\n";
    let mut daemon = TestDaemon::start(&config(first.port(), ANSWERING, program))?;
    let pid = daemon.running_pid("web:0")?;
    let with_rule = format!("{program}    notify: [{{on: [stopped], throttle: 0}}]\n");
    std::fs::write(
        daemon.config_path(),
        config(second.port(), ANSWERING, &with_rule),
    )?;
    match daemon.call(&Request::Reload)? {
        Response::Reload(summary) => {
            assert_eq!(summary.updated, vec!["web".to_string()], "{summary:?}");
            assert!(summary.restarted.is_empty(), "{summary:?}");
        }
        other => panic!("reload: {other:?}"),
    }
    assert_eq!(
        daemon.pid_of("web:0")?,
        Some(pid),
        "a policy change restarted it"
    );
    let stopped = daemon.call(&Request::Stop(StopRequest {
        targets: vec!["web".into()],
        wait: true,
    }))?;
    assert!(
        matches!(stopped, Response::Outcomes(ref o) if o.iter().all(|o| o.ok)),
        "{stopped:?}"
    );
    let mails = second.wait_for_mails(1, SOON)?;
    assert_eq!(
        mails[0].subject(),
        format!("[taskmaster {}] web:0 STOPPED", host())
    );
    assert!(
        mails[0].body().contains("exit:      killed by SIGTERM"),
        "{}",
        mails[0].body()
    );
    assert!(first.mails().is_empty(), "{:#?}", first.mails());
    // A clean stop while the transport pools a connection to the server.
    daemon.signal(Signal::SIGTERM)?;
    let status = daemon.wait_exit(SOON).ok_or("taskmasterd did not exit")?;
    assert_eq!(status.code(), Some(0), "{}", daemon.stderr_text());
    assert!(
        !daemon.stderr_text().contains("panicked"),
        "{}",
        daemon.stderr_text()
    );
    Ok(())
}
