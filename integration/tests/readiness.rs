//! Readiness end to end: the real daemon and `taskmasterctl` against real
//! programs that open a port late, never get ready, answer http, print a
//! line, or speak the systemd notification protocol (the real
//! `systemd-notify` and a raw datagram); health checks and a watchdog that
//! restart what stopped answering; `before_start` hooks, serialized per
//! program, whose failure is shown by `start`.
//!
//! Intervals and timeouts are short (tenths of a second) so the whole file
//! runs in a few seconds; deadlines on what the test waits for are
//! generous, for a loaded machine.

use integration::{SOON, TestDaemon, TestResult, procfs, wait_until};
use proto::ProcessState;
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A TCP port nothing listens on (bound, then released).
fn free_port() -> Result<u16, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A python program that listens on `port` after `delay` seconds, then
/// writes the wall-clock time it bound to `stamp`.
fn late_listener(port: u16, delay: f64, stamp: &str) -> String {
    format!(
        "import socket, time\n\
         time.sleep({delay})\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen()\n\
         open('{stamp}', 'w').write(repr(time.time()))\n\
         time.sleep(1000)\n"
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[test]
fn start_returns_once_the_port_opens_no_sooner_and_within_an_interval() -> TestResult {
    let port = free_port()?;
    let builder = TestDaemon::builder()?;
    let stamp = builder.dir().join("bound").to_string_lossy().into_owned();
    std::fs::write(
        builder.dir().join("listen.py"),
        late_listener(port, 1.3, &stamp),
    )?;
    let daemon = builder
        .config(&format!(
            r#"
programs:
  db:
    cmd: "python3 {{dir}}/listen.py"
    autostart: false
    ready: {{tcp: "127.0.0.1:{port}", interval: 0.05, timeout: 20}}
"#
        ))
        .start()?;
    let out = daemon.ctl(["start", "db"])?;
    let returned = now_secs();
    assert_eq!(out.code, Some(0), "{}", out.combined());
    let bound: f64 = std::fs::read_to_string(&stamp)?.trim().parse()?;
    let lag = returned - bound;
    eprintln!(
        "start took {:?}; returned {lag:.3}s after the port opened",
        out.elapsed
    );
    assert!(out.elapsed >= Duration::from_millis(1300), "{out:?}");
    // One interval (50 ms) plus the client's own exit, on a loaded machine.
    assert!(lag < 0.4, "start returned {lag:.3}s after the port opened");
    let info = daemon.info("db:0")?.ok_or("no db:0")?;
    assert_eq!(info.state, ProcessState::Running);
    assert!(info.ready);
    Ok(())
}

#[test]
fn a_program_never_ready_backs_off_then_goes_fatal_and_the_reason_names_the_probe() -> TestResult {
    let port = free_port()?;
    let daemon = TestDaemon::start(&format!(
        r#"
programs:
  never:
    cmd: "sleep 1000"
    autostart: false
    startretries: 1
    stoptime: 1
    ready: {{tcp: "127.0.0.1:{port}", interval: 0.05, timeout: 0.4}}
"#
    ))?;
    let probe = format!("tcp 127.0.0.1:{port}: connection refused");
    let out = daemon.ctl(["start", "never"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    let text = out.combined();
    assert!(
        text.contains(&format!("not ready after 0.4s ({probe})")),
        "{text}"
    );
    let info = daemon.wait_for_state("never:0", ProcessState::Fatal, SOON)?;
    assert_eq!(
        info.description,
        format!("not ready after 0.4s ({probe}), 2 attempts")
    );
    // The unready children were stopped, not left behind.
    assert!(
        wait_until(SOON, || procfs::live_children(daemon.pid()).is_empty()),
        "{:?}",
        procfs::live_children(daemon.pid())
    );
    assert_eq!(daemon.count_events("never:0", "; stopping it"), 2);
    Ok(())
}

#[test]
fn http_exec_and_stderr_log_probes_each_gate_running() -> TestResult {
    let port = free_port()?;
    let builder = TestDaemon::builder()?;
    let flag = builder.dir().join("flag").to_string_lossy().into_owned();
    let daemon = builder
        .config(&format!(
            r#"
programs:
  web:
    cmd: "python3 -m http.server {port} --bind 127.0.0.1"
    autostart: false
    ready: {{http: "http://127.0.0.1:{port}/", interval: 0.05, timeout: 20}}
  flagged:
    cmd: "sh -c 'sleep 0.5; touch {flag}; exec sleep 1000'"
    autostart: false
    ready: {{exec: "test -e {flag}", interval: 0.05, timeout: 20}}
  chatty:
    cmd: "sh -c 'sleep 0.5; echo db listening >&2; exec sleep 1000'"
    autostart: false
    ready: {{log: "listening$", interval: 0.05, timeout: 20}}
"#
        ))
        .start()?;
    let out = daemon.ctl(["start", "web"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    let get = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(get.is_ok(), "web answered the probe but not us: {get:?}");

    let out = daemon.ctl(["start", "flagged"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(
        std::path::Path::new(&flag).exists(),
        "RUNNING before the flag"
    );

    let started = Instant::now();
    let out = daemon.ctl(["start", "chatty"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert!(started.elapsed() >= Duration::from_millis(500), "{out:?}");
    for name in ["web:0", "flagged:0", "chatty:0"] {
        let info = daemon.info(name)?.ok_or("missing")?;
        assert!(
            info.ready && info.state == ProcessState::Running,
            "{info:?}"
        );
    }
    Ok(())
}

#[test]
fn the_real_systemd_notify_and_a_raw_datagram_make_it_ready() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  tool:
    cmd: "sh -c 'sleep 0.3; systemd-notify --ready --status=serving; exec sleep 1000'"
    autostart: false
    ready: {notify: true, timeout: 20}
  raw:
    cmd: "python3 -c \"import os,socket,time; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a=os.environ['NOTIFY_SOCKET']; s.sendto(b'STATUS=warming up', a); time.sleep(0.3); s.sendto(b'READY=1\\nSTATUS=up', a); time.sleep(1000)\""
    autostart: false
    ready: {notify: true, timeout: 20}
"#,
    )?;
    for name in ["tool", "raw"] {
        let started = Instant::now();
        let out = daemon.ctl(["start", name])?;
        assert_eq!(out.code, Some(0), "{name}: {}", out.combined());
        assert!(started.elapsed() >= Duration::from_millis(300), "{out:?}");
    }
    let tool = daemon.wait_for("tool:0", SOON, "its STATUS=", |p| {
        p.status_text.as_deref() == Some("serving")
    })?;
    assert!(tool.ready, "{tool:?}");
    daemon.wait_for("raw:0", SOON, "its last STATUS=", |p| {
        p.status_text.as_deref() == Some("up")
    })?;
    let json = daemon.ctl(["status", "--json", "raw"])?;
    assert!(
        json.stdout.contains("\"status_text\":\"up\""),
        "{}",
        json.stdout
    );
    Ok(())
}

#[test]
fn a_failing_health_check_restarts_within_interval_times_failures() -> TestResult {
    let builder = TestDaemon::builder()?;
    let flag = builder.dir().join("healthy").to_string_lossy().into_owned();
    std::fs::write(&flag, "")?;
    let daemon = builder
        .config(&format!(
            r#"
programs:
  api:
    cmd: "sleep 1000"
    starttime: 0
    health: {{exec: "test -e {flag}", interval: 0.2, timeout: 1, failures: 3}}
"#
        ))
        .start()?;
    let first = daemon.running_pid("api:0")?;
    let healthy = daemon.wait_for("api:0", SOON, "checked", |p| {
        p.health.as_deref() == Some("ok")
    })?;
    assert_eq!(healthy.pid, Some(first));
    std::fs::remove_file(&flag)?;
    let broke = Instant::now();
    let restarted = daemon.wait_for("api:0", SOON, "restarted", |p| {
        p.pid.is_some_and(|pid| pid != first)
    })?;
    let took = broke.elapsed();
    // The restarted one is healthy again and stays.
    std::fs::write(&flag, "")?;
    eprintln!("health failure to restart: {took:?}");
    // 3 failures 0.2 s apart, plus one interval, plus slack for the load.
    assert!(took < Duration::from_millis(800 + 700), "{took:?}");
    assert!(restarted.restarts >= 1, "{restarted:?}");
    let later = daemon.wait_for("api:0", SOON, "healthy again", |p| {
        p.health.as_deref() == Some("ok") && p.pid == restarted.pid
    })?;
    assert_eq!(later.state, ProcessState::Running);
    let why = daemon.events("api:0", "health check failed 3 times in a row");
    assert!(!why.is_empty(), "{}", daemon.event_log());
    Ok(())
}

#[test]
fn a_watchdog_no_longer_fed_restarts_the_program() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  worker:
    cmd: "python3 -c \"import os,socket,time; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a=os.environ['NOTIFY_SOCKET']; s.sendto(b'READY=1', a); [(s.sendto(b'WATCHDOG=1', a), time.sleep(0.1)) for _ in range(10)]; time.sleep(1000)\""
    ready: {notify: true, timeout: 20}
    watchdog: 0.5
"#,
    )?;
    let first = daemon.running_pid("worker:0")?;
    let started = Instant::now();
    let restarted = daemon.wait_for("worker:0", SOON, "restarted", |p| {
        p.pid.is_some_and(|pid| pid != first)
    })?;
    // Fed for a second, then starved for half a second.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{restarted:?}"
    );
    let why = daemon.events("worker:0", "no WATCHDOG=1 for 0.5s");
    assert!(!why.is_empty(), "{}", daemon.event_log());
    Ok(())
}

#[test]
fn before_start_writes_a_file_the_program_reads() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  app:
    cmd: "sh -c 'cat generated.conf; exec sleep 1000'"
    workingdir: "{dir}"
    starttime: 0
    stdout: app.out
    before_start: "sh -c 'echo port=8080 > generated.conf'"
"#,
    )?;
    daemon.running_pid("app:0")?;
    let out = daemon.path("app.out");
    assert!(
        wait_until(SOON, || std::fs::read_to_string(&out)
            .is_ok_and(|t| t.contains("port=8080"))),
        "{}",
        daemon.diagnostics()
    );
    Ok(())
}

#[test]
fn two_instances_never_run_the_hook_at_once() -> TestResult {
    // mkdir is atomic: a second hook running beside the first fails.
    let daemon = TestDaemon::start(
        r#"
programs:
  pool:
    cmd: "sleep 1000"
    numprocs: 3
    workingdir: "{dir}"
    starttime: 0
    startretries: 0
    before_start: "sh -c 'mkdir hook.lock || exit 9; sleep 0.2; echo ran >> hook.runs; rmdir hook.lock'"
"#,
    )?;
    for i in 0..3 {
        daemon.wait_for_state(&format!("pool:{i}"), ProcessState::Running, SOON)?;
    }
    let runs = std::fs::read_to_string(daemon.path("hook.runs"))?;
    assert_eq!(runs.lines().count(), 3, "{runs}");
    assert!(
        daemon.events("pool", "before_start failed").is_empty(),
        "{}",
        daemon.event_log()
    );
    Ok(())
}

#[test]
fn a_failing_hook_fails_the_start_with_its_output() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  migrate:
    cmd: "sleep 1000"
    autostart: false
    startretries: 0
    before_start: "sh -c 'echo migration 7 failed: no table users >&2; exit 3'"
"#,
    )?;
    let out = daemon.ctl(["start", "migrate"])?;
    assert_eq!(out.code, Some(1), "{}", out.combined());
    let text = out.combined();
    assert!(
        text.contains("before_start failed: exited with status 3"),
        "{text}"
    );
    assert!(
        text.contains("migration 7 failed: no table users"),
        "{text}"
    );
    // The program itself never ran.
    assert!(procfs::live_children(daemon.pid()).is_empty());
    Ok(())
}
