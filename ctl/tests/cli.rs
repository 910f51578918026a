//! The real `taskmasterctl` binary against a fake daemon: one-shot and piped
//! modes, `--json`, and every exit code (0 ok, 1 failed, 2 usage, 3 unreachable).

mod common;

use common::{FakeDaemon, Run, ctl, run, standard};
use proto::{OutputStream, Request, Signal, StartRequest, StatusRequest, TailRequest};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn cfg(d: &FakeDaemon) -> String {
    d.config().display().to_string()
}

fn ok(r: &Run) {
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[test]
fn status_prints_aligned_columns_and_exits_0_whatever_the_states() {
    let d = FakeDaemon::start(standard);
    let r = run(&["-c", &cfg(&d), "status"], "");
    ok(&r);
    assert_eq!(
        r.stdout,
        "web:0     RUNNING  pid 1234, uptime 0:00:12\n\
         web:1     RUNNING  pid 1235, uptime 0:00:12\n\
         worker:0  FATAL    exited too quickly\n"
    );
    assert_eq!(
        d.requests(),
        [Request::Status(StatusRequest { targets: vec![] })]
    );
}

#[test]
fn status_json_is_an_array_of_process_infos() -> Result<(), serde_json::Error> {
    let d = FakeDaemon::start(standard);
    for args in [
        vec!["-c", &cfg(&d), "--json", "status"],
        vec!["-c", &cfg(&d), "status", "--json"],
    ] {
        let r = run(&args, "");
        ok(&r);
        let v: Value = serde_json::from_str(&r.stdout)?;
        let first = &v[0];
        assert_eq!(first["name"], "web:0");
        assert_eq!(first["program"], "web");
        assert_eq!(first["index"], 0);
        assert_eq!(first["state"], "RUNNING");
        assert_eq!(first["pid"], 1234);
        assert_eq!(first["uptime_s"], 12.5);
        assert!(first["exitcode"].is_null());
        assert_eq!(first["restarts"], 0);
        assert_eq!(first["description"], "pid 1234, uptime 0:00:12");
        assert!(v[2]["pid"].is_null());
        assert_eq!(v.as_array().map(Vec::len), Some(3));
    }
    Ok(())
}

#[test]
fn start_waits_by_default_and_reports_failure_with_output_exit_1() {
    let d = FakeDaemon::start(standard);
    let r = run(&["-c", &cfg(&d), "start", "web"], "");
    ok(&r);
    assert_eq!(r.stdout, "web:0: started\n");
    let r = run(&["-c", &cfg(&d), "start", "--no-wait", "bad"], "");
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stdout,
        "bad:0: ERROR (exited too quickly (exit status 1))\n  last output of bad:0:\n    starting\n    panic: no config\n"
    );
    assert_eq!(
        d.requests(),
        [
            Request::Start(StartRequest {
                targets: vec!["web".into()],
                wait: true
            }),
            Request::Start(StartRequest {
                targets: vec!["bad".into()],
                wait: false
            }),
        ]
    );
}

#[test]
fn error_replies_exit_1_and_json_shows_them() -> Result<(), serde_json::Error> {
    let d = FakeDaemon::start(standard);
    let r = run(&["-c", &cfg(&d), "status", "nope"], "");
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr, "error: no such program: nope\n");
    let r = run(&["-c", &cfg(&d), "reload"], "");
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        "error: config is invalid, nothing changed\n  taskmaster.yaml:4:5: programs.web.numprocs: expected a number\n"
    );
    let r = run(&["-c", &cfg(&d), "--json", "reload"], "");
    assert_eq!(r.code, Some(1), "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(v["error"]["kind"], "failed");
    assert_eq!(v["error"]["details"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn other_commands_map_to_their_requests() -> Result<(), serde_json::Error> {
    let d = FakeDaemon::start(standard);
    let c = cfg(&d);
    ok(&run(&["-c", &c, "signal", "sigusr1", "web:1"], ""));
    let r = run(&["-c", &c, "pid"], "");
    ok(&r);
    assert_eq!(r.stdout, format!("{}\n", common::DAEMON_PID));
    let r = run(&["-c", &c, "tail", "-n", "2", "web:0", "stderr"], "");
    ok(&r);
    assert_eq!(r.stdout, "line 1\nline 2\n");
    let r = run(&["-c", &c, "version"], "");
    ok(&r);
    assert!(r.stdout.contains("taskmasterd 9.9.9-fake"), "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("taskmasterctl {}", proto::SUITE_VERSION)),
        "{r:?}"
    );
    let r = run(&["-c", &c, "--json", "version"], "");
    let v: Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(v["daemon_version"], "9.9.9-fake");
    let r = run(&["-c", &c, "shutdown"], "");
    ok(&r);
    assert_eq!(r.stdout, "taskmasterd stopped\n");
    let reqs = d.requests();
    assert!(reqs.contains(&Request::Signal(proto::SignalRequest {
        signal: Signal::Usr1,
        targets: vec!["web:1".into()]
    })));
    assert!(reqs.contains(&Request::Tail(TailRequest {
        target: "web:0".into(),
        stream: OutputStream::Stderr,
        lines: 2,
        follow: false
    })));
    assert!(reqs.contains(&Request::Shutdown));
    Ok(())
}

#[test]
fn tail_follow_prints_chunks_until_the_stream_ends() {
    let d = FakeDaemon::start(standard);
    let r = run(&["-c", &cfg(&d), "tail", "-f", "web:0"], "");
    assert_eq!(r.stdout, "line 1\nline 2\nline 3\nline 4\n");
    // This daemon ends the stream and still answers: as if the program
    // had been removed by a reload.
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("the daemon closed the stream: taskmasterd is still running"),
        "{r:?}"
    );
    let r = run(&["-c", &cfg(&d), "tail", "quiet"], "");
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("discarded"), "{r:?}");
}

#[test]
fn usage_errors_exit_2_before_any_connection() {
    // A daemon that is not there: usage is checked first, so still 2, not 3.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dead = ["--server", "127.0.0.1:1", "--token-file", "/nonexistent"];
    for (cmd, needle) in [
        (vec!["frobnicate"], "unknown command"),
        (vec!["signal", "FOO", "web"], "unknown signal"),
        (vec!["start"], "missing target"),
        (vec!["stop", "web:x"], "bad target"),
        (vec!["tail", "-n", "many", "web"], "number"),
        (vec!["quit"], "only make sense in the shell"),
    ] {
        let args: Vec<&str> = dead.iter().copied().chain(cmd.iter().copied()).collect();
        let mut c = ctl();
        let out = c
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {stderr}");
        assert!(stderr.contains(needle), "{cmd:?}: {stderr}");
    }
    let r = run(&["--server", "127.0.0.1:1", "start"], "");
    assert!(
        r.stderr
            .contains("usage: start [--no-wait] [--timeout SECONDS] TARGET..."),
        "{r:?}"
    );
}

#[test]
fn unreachable_daemon_wrong_token_and_missing_token_file_exit_3() {
    let d = FakeDaemon::start(standard);
    // Wrong token.
    let bad = d.dir.path().join("bad.token");
    std::fs::write(&bad, "not-the-token").unwrap_or_else(|e| panic!("{e}"));
    let bad = bad.display().to_string();
    let r = run(&["--server", &d.addr, "--token-file", &bad, "status"], "");
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("authentication refused"), "{r:?}");
    // Missing token file.
    let r = run(
        &[
            "--server",
            &d.addr,
            "--token-file",
            "/nonexistent/tm.token",
            "status",
        ],
        "",
    );
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(
        r.stderr
            .contains("cannot read token file /nonexistent/tm.token"),
        "{r:?}"
    );
    assert!(r.stderr.contains("--token-file"), "{r:?}");
    // Nobody listening: bind then drop, so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let good = d.dir.path().join("taskmasterd.token").display().to_string();
    let r = run(
        &[
            "--server",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            &good,
            "--json",
            "status",
        ],
        "",
    );
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stdout.contains("cannot connect to taskmasterd"), "{r:?}");
    assert!(r.stdout.contains("\"kind\":\"unreachable\""), "{r:?}");
    assert_eq!(r.stderr, "", "with --json, errors are on stdout only");
    assert!(d.requests().is_empty(), "nothing runs without a welcome");
}

/// With --json every kind of error is one JSON document on stdout and
/// nothing on stderr: a daemon's error reply, a usage error, a missing token
/// file, a refused token.
#[test]
fn with_json_every_error_is_one_document_on_stdout_and_nothing_on_stderr() {
    let d = FakeDaemon::start(standard);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "0123456789abcdef\n").unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.token").display().to_string();
    let wrong = wrong.display().to_string();
    let addr = d.addr.to_string();
    for (args, kind, code) in [
        (
            vec!["-c", &cfg(&d), "--json", "status", "nope"],
            "unknown_target",
            1,
        ),
        (vec!["-c", &cfg(&d), "--json", "stauts"], "usage", 2),
        (
            vec![
                "--server",
                &addr,
                "--token-file",
                &missing,
                "--json",
                "status",
            ],
            "token",
            3,
        ),
        (
            vec![
                "--server",
                &addr,
                "--token-file",
                &wrong,
                "--json",
                "status",
            ],
            "auth",
            3,
        ),
    ] {
        let r = run(&args, "");
        assert_eq!(r.code, Some(code), "{args:?}: {r:?}");
        assert_eq!(r.stderr, "", "{args:?}: {r:?}");
        let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        assert_eq!(v["error"]["kind"], kind, "{args:?}: {r:?}");
    }
}

#[test]
fn config_mistakes_outside_server_do_not_stop_the_client() {
    let d = FakeDaemon::start(standard);
    std::fs::write(
        d.config(),
        format!(
            "server:\n  listen: \"{}\"\n  future_key: 1\nprograms:\n  web:\n    cmd: [not, a, string]\n    numprocs: lots\n    typo_key: true\nwhatever: {{}}\n",
            d.addr
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    ok(&run(&["-c", &cfg(&d), "status"], ""));
    std::fs::write(d.config(), "server: [broken\n").unwrap_or_else(|e| panic!("{e}"));
    let r = run(&["-c", &cfg(&d), "status"], "");
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("not valid YAML"), "{r:?}");
}

#[test]
fn piped_commands_run_in_order_and_exit_with_the_worst_code() {
    let d = FakeDaemon::start(standard);
    let r = run(&["-c", &cfg(&d)], "status\n\n# comment\nstop web\n");
    ok(&r);
    assert!(r.stdout.contains("worker:0  FATAL"), "{r:?}");
    assert!(r.stdout.ends_with("web:0: stopped\n"), "{r:?}");
    assert_eq!(d.requests().len(), 2);
    let r = run(&["-c", &cfg(&d)], "bogus\nstatus nope\nstatus\n");
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("unknown command \"bogus\""), "{r:?}");
    assert_eq!(
        r.stderr.matches("help").count(),
        1,
        "the hint once, not in the message and again after it: {r:?}"
    );
    assert!(
        r.stdout.contains("web:1"),
        "later commands still run: {r:?}"
    );
    let r = run(&["-c", &cfg(&d)], "start bad\nquit\nstatus nope\n");
    assert_eq!(r.code, Some(1), "quit stops reading: {r:?}");
    assert!(!r.stderr.contains("nope"), "{r:?}");
}

#[test]
fn a_closed_stdout_is_success() {
    // Enough instances to overflow the pipe buffer, so the write must fail.
    let d = FakeDaemon::start(|req| match req {
        Request::Status(_) => vec![proto::Response::Status(
            (0..20_000)
                .map(|i| common::info("web", i, proto::ProcessState::Running, Some(i + 1)))
                .collect(),
        )],
        other => standard(other),
    });
    let mut c = ctl();
    c.args(["-c", &cfg(&d), "status"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = common::KillOnDrop(c.spawn().unwrap_or_else(|e| panic!("{e}")));
    let stdout = child.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.starts_with("web:0 "), "{first:?}");
    // The reader is gone now (dropped with the BufReader).
    let mut status = None;
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || {
            status = child.0.try_wait().ok().flatten();
            status.is_some()
        }),
        "taskmasterctl did not finish"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
