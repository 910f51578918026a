//! Real TLS handshakes, STARTTLS and implicit, against a loopback server
//! whose certificate a test CA signed: trusted through `smtp.ca_file`, the
//! mail arrives; a certificate the daemon does not trust, or one for
//! another name, fails the send with a clear reason, within the timeout.

use crate::{ANSWERING, SOON, host};
use integration::smtp::{SmtpServer, TestCa, TlsMode};
use integration::{TestDaemon, TestResult};
use proto::{NotifyTestRequest, Request, Response};
use std::time::{Duration, Instant};

/// A daemon mailing `server` with `tls`, trusting `ca_pem` (when given)
/// through `smtp.ca_file`.
fn daemon(server: &SmtpServer, tls: &str, ca_pem: Option<&str>) -> TestResult<TestDaemon> {
    let builder = TestDaemon::builder()?;
    let ca_line = match ca_pem {
        Some(pem) => {
            std::fs::write(builder.dir().join("ca.pem"), pem)?;
            ", ca_file: \"{dir}/ca.pem\""
        }
        None => "",
    };
    let yaml = format!(
        r#"email:
  smtp: {{host: 127.0.0.1, port: {port}, tls: {tls}, timeout: {ANSWERING}{ca_line}}}
  from: taskmaster@example.com
  to: [ops@example.com]
programs:
  web:
    cmd: "sleep 1000"
    autostart: false
    notify: [{{on: [fatal]}}]
"#,
        port = server.port()
    );
    Ok(builder.config(&yaml).start()?)
}

/// `notify-test web`: the daemon's answer, Ok for sent, Err for the reason.
fn notify_test(daemon: &TestDaemon) -> TestResult<Result<String, String>> {
    Ok(
        match daemon.call(&Request::NotifyTest(NotifyTestRequest {
            program: "web".into(),
        }))? {
            Response::Done(done) => Ok(done.message),
            Response::Error(e) => Err(e.message),
            other => Err(format!("unexpected answer: {other:?}")),
        },
    )
}

fn a_trusted_certificate_carries_the_mail(mode: TlsMode, tls: &str) -> TestResult {
    let ca = TestCa::new(&["127.0.0.1"])?;
    let server = SmtpServer::start_tls(mode, &ca)?;
    let daemon = daemon(&server, tls, Some(&ca.ca_pem))?;
    let sent = notify_test(&daemon)?;
    assert!(sent.is_ok(), "{sent:?}\n{}", daemon.event_log());
    let mails = server.wait_for_mails(1, SOON)?;
    assert_eq!(
        mails[0].subject(),
        format!("[taskmaster {}] web: test notification", host())
    );
    Ok(())
}

#[test]
fn starttls_with_a_certificate_from_the_ca_file_delivers_the_mail() -> TestResult {
    a_trusted_certificate_carries_the_mail(TlsMode::StartTls, "starttls")
}

#[test]
fn implicit_tls_with_a_certificate_from_the_ca_file_delivers_the_mail() -> TestResult {
    a_trusted_certificate_carries_the_mail(TlsMode::Implicit, "tls")
}

#[test]
fn an_untrusted_or_misnamed_certificate_fails_the_send_with_the_reason_never_hangs() -> TestResult {
    // Not trusted: no ca_file, and the built-in roots do not know the CA.
    let ca = TestCa::new(&["127.0.0.1"])?;
    let untrusted = SmtpServer::start_tls(TlsMode::Implicit, &ca)?;
    // Trusted CA, but the certificate names another host.
    let other = TestCa::new(&["mail.example.com"])?;
    let misnamed = SmtpServer::start_tls(TlsMode::StartTls, &other)?;
    for (server, tls, pem, why) in [
        (&untrusted, "tls", None, "UnknownIssuer"),
        (
            &misnamed,
            "starttls",
            Some(other.ca_pem.as_str()),
            "not valid for name",
        ),
    ] {
        let daemon = daemon(server, tls, pem)?;
        let asked = Instant::now();
        let answer = notify_test(&daemon)?;
        let took = asked.elapsed();
        let reason = answer.err().ok_or("the mail was sent")?;
        assert!(reason.contains(why), "{why}: {reason}");
        assert!(
            took < Duration::from_secs_f64(ANSWERING),
            "{why}: answered after {took:?}"
        );
        assert!(server.mails().is_empty(), "{:#?}", server.mails());
        assert!(
            daemon.event_log().contains(why),
            "{why} not logged:\n{}",
            daemon.event_log()
        );
    }
    Ok(())
}
