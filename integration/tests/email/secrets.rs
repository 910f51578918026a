//! The SMTP password reaches the SMTP server and nothing else: not a
//! child's environment, not the event log, not `--check` output.

use crate::SOON;
use integration::smtp::SmtpServer;
use integration::{TestDaemon, TestResult, bins, run_with_timeout, wait_until};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VARIABLE: &str = "TM_TEST_SMTP_PASSWORD";

fn environ(pid: u32) -> TestResult<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect())
}

fn check(config: &std::path::Path, secret: &str) -> TestResult<integration::CmdOutput> {
    let mut cmd = Command::new(bins::taskmasterd()?);
    cmd.arg("--check")
        .arg("-c")
        .arg(config)
        .env(VARIABLE, secret);
    Ok(run_with_timeout(cmd, Duration::from_secs(10))?)
}

#[test]
fn the_password_is_used_for_smtp_and_shown_nowhere() -> TestResult {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let secret = format!("pw-{}-{nanos}", std::process::id());
    let server = SmtpServer::start()?;
    let daemon = TestDaemon::builder()?
        .env(VARIABLE, &secret)
        .config(&format!(
            r#"email:
  smtp:
    host: 127.0.0.1
    port: {}
    tls: none
    timeout: 2
    username: taskmaster
    password_env: {VARIABLE}
  from: taskmaster@example.com
  to: ops@example.com
programs:
  app:
    cmd: "sleep 1000"
    starttime: 0
    notify: [{{on: [started], throttle: 0}}]
"#,
            server.port()
        ))
        .start()?;
    let pid = daemon.running_pid("app:0")?;
    let mails = server.wait_for_mails(1, SOON)?;
    assert_eq!(
        mails[0].auth,
        Some(("taskmaster".to_string(), secret.clone())),
        "the server did not get the password"
    );
    let env = environ(pid)?;
    // The child did inherit the daemon's environment (the harness sets
    // NO_COLOR), except the password's variable.
    assert!(env.iter().any(|kv| kv == "NO_COLOR=1"), "{env:?}");
    assert!(
        !env.iter()
            .any(|kv| kv.starts_with(&format!("{VARIABLE}=")) || kv.contains(&secret)),
        "the child got the password: {env:?}"
    );
    // The daemon logs the mail once the server's answer is in.
    let logged = wait_until(SOON, || daemon.event_log().contains("email sent"));
    let log = daemon.event_log();
    assert!(logged, "{log}");
    assert!(!log.contains(&secret), "the event log shows the password");
    assert!(!daemon.stderr_text().contains(&secret));

    let out = check(&daemon.config_path(), &secret)?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(!out.combined().contains(&secret));
    // A password written into the file is refused, and not printed back.
    let dir = tempfile::tempdir()?;
    let inline = dir.path().join("inline.yaml");
    std::fs::write(
        &inline,
        format!(
            "email:\n  smtp: {{host: h, username: u, password: {secret}}}\n  from: a@example.com\nprograms: {{}}\n"
        ),
    )?;
    let out = check(&inline, &secret)?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(
        out.combined().contains("email.smtp.password"),
        "{}",
        out.combined()
    );
    assert!(!out.combined().contains(&secret), "{}", out.combined());
    Ok(())
}

#[test]
fn a_password_file_readable_by_others_is_refused_without_showing_it() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let pw = dir.path().join("smtp.pw");
    std::fs::write(&pw, "file-held-secret\n")?;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644))?;
    let config = dir.path().join("taskmaster.yaml");
    std::fs::write(
        &config,
        "email:\n  smtp: {host: h, username: u, password_file: smtp.pw}\n  from: a@example.com\nprograms: {}\n",
    )?;
    let out = check(&config, "unused")?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    assert!(out.combined().contains("chmod 600"), "{}", out.combined());
    assert!(!out.combined().contains("file-held-secret"));
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600))?;
    let out = check(&config, "unused")?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(!out.combined().contains("file-held-secret"));
    Ok(())
}
