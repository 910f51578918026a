//! `taskmasterctl` one command at a time and from a pipe: every command,
//! every target form (`NAME`, `NAME:INDEX`, `all`, several), every exit code
//! (0 ok, 1 failed, 2 usage, 3 unreachable/refused), `--json`, and finding
//! the daemon through `-c CONFIG`.

use crate::{Background, SOON, TestResult, assert_code, ctl_expect, ctl_piped, ctl_raw, free_port};
use integration::{CmdOutput, DaemonBuilder, TestDaemon, bins, procfs, wait_until};
use proto::ProcessState;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

/// `web` (2 instances), `worker` (writes known lines on both streams, traps
/// USR1), `idle` (not started), `once` (exits 3 at once, not restarted).
const FLEET: &str = r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0
  worker:
    cmd: "sh -c 'trap \"echo got-usr1\" USR1; echo out-line-1; echo out-line-2; echo err-line >&2; while :; do sleep 1000 & wait; done'"
    starttime: 0
  idle:
    cmd: "sleep 1000"
    autostart: false
    starttime: 0
  once:
    cmd: "sh -c 'exit 3'"
    starttime: 0
    autorestart: never
"#;

/// The `(name, state)` of each line of a text `status`.
fn status_rows(out: &CmdOutput) -> Vec<(String, String)> {
    out.stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

fn names(out: &CmdOutput) -> Vec<String> {
    status_rows(out).into_iter().map(|(n, _)| n).collect()
}

fn started_fleet() -> TestResult<TestDaemon> {
    let daemon = TestDaemon::start(FLEET)?;
    for name in ["web:0", "web:1", "worker:0"] {
        daemon.running_pid(name)?;
    }
    daemon.wait_for_state("once:0", ProcessState::Exited, SOON)?;
    Ok(daemon)
}

#[test]
fn status_and_pid_with_every_target_form() -> TestResult {
    let daemon = started_fleet()?;
    let out = ctl_expect(&daemon, &["status"], 0)?;
    let rows = status_rows(&out);
    assert_eq!(
        rows,
        [
            ("idle:0", "STOPPED"),
            ("once:0", "EXITED"),
            ("web:0", "RUNNING"),
            ("web:1", "RUNNING"),
            ("worker:0", "RUNNING"),
        ]
        .map(|(n, s)| (n.to_string(), s.to_string())),
        "{}",
        out.stdout
    );
    let web0 = daemon.running_pid("web:0")?;
    assert!(
        out.stdout.contains(&format!("pid {web0}, uptime ")),
        "{}",
        out.stdout
    );

    // NAME = every instance, NAME:INDEX, several, `all`, duplicates merged.
    let out = ctl_expect(&daemon, &["status", "web"], 0)?;
    assert_eq!(names(&out), ["web:0", "web:1"]);
    let out = ctl_expect(&daemon, &["status", "web:1"], 0)?;
    assert_eq!(names(&out), ["web:1"]);
    let out = ctl_expect(&daemon, &["status", "worker", "web:1", "web:1"], 0)?;
    assert_eq!(names(&out), ["web:1", "worker:0"]);
    let out = ctl_expect(&daemon, &["status", "all"], 0)?;
    assert_eq!(names(&out).len(), 5);

    // Unknown program or index: the command failed (1), with the reason.
    let out = ctl_expect(&daemon, &["status", "nope"], 1)?;
    assert!(out.stderr.contains("no such program: nope"), "{out:?}");
    let out = ctl_expect(&daemon, &["status", "web:7"], 1)?;
    assert!(out.stderr.contains("web:7"), "{out:?}");

    // pid: the daemon's, one instance's, a program's instances.
    let out = ctl_expect(&daemon, &["pid"], 0)?;
    assert_eq!(out.stdout.trim(), daemon.pid().to_string());
    let out = ctl_expect(&daemon, &["pid", "web:0"], 0)?;
    assert_eq!(out.stdout.trim(), web0.to_string());
    // A program's pids say whose they are: `NAME:INDEX PID`.
    let out = ctl_expect(&daemon, &["pid", "web"], 0)?;
    let listed: Vec<u32> = out
        .stdout
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, pid] if name.starts_with("web:") => pid.parse().ok(),
            _ => None,
        })
        .collect();
    assert_eq!(listed.len(), 2, "{}", out.stdout);
    for pid in &listed {
        let stat = procfs::stat(*pid).ok_or(format!("no process {pid}"))?;
        assert!(stat.is_alive() && stat.ppid == daemon.pid(), "{stat:?}");
    }
    // An instance without a process prints 0.
    let out = ctl_expect(&daemon, &["pid", "idle:0"], 0)?;
    assert_eq!(out.stdout.trim(), "0");
    ctl_expect(&daemon, &["pid", "nope"], 1)?;
    ctl_expect(&daemon, &["pid", "web:0", "web:1"], 2)?;
    Ok(())
}

#[test]
fn start_stop_restart_signal_with_every_target_form() -> TestResult {
    let daemon = started_fleet()?;
    let web0 = daemon.running_pid("web:0")?;
    let web1 = daemon.running_pid("web:1")?;

    let out = ctl_expect(&daemon, &["start", "idle"], 0)?;
    assert_eq!(out.stdout, "idle:0: started\n");
    let idle = daemon.running_pid("idle:0")?;
    assert!(procfs::is_alive(idle));
    let out = ctl_expect(&daemon, &["start", "idle:0"], 0)?;
    assert!(out.stdout.contains("already running"), "{out:?}");

    // One instance: the other one is not touched.
    let out = ctl_expect(&daemon, &["stop", "web:1"], 0)?;
    assert_eq!(out.stdout, "web:1: stopped\n");
    assert!(!procfs::is_alive(web1));
    assert_eq!(daemon.running_pid("web:0")?, web0);
    assert_eq!(
        daemon.state_of("web:1")?,
        Some(ProcessState::Stopped),
        "{}",
        daemon.event_log()
    );

    // Several targets in one command.
    let out = ctl_expect(&daemon, &["start", "web:1", "idle"], 0)?;
    assert!(out.stdout.contains("web:1: started"), "{out:?}");
    assert!(out.stdout.contains("idle:0: already running"), "{out:?}");
    let web1 = daemon.running_pid("web:1")?;

    // NAME: every instance gets a new process.
    let out = ctl_expect(&daemon, &["restart", "web"], 0)?;
    assert_eq!(out.stdout, "web:0: started\nweb:1: started\n");
    let (new0, new1) = (daemon.running_pid("web:0")?, daemon.running_pid("web:1")?);
    assert!(new0 != web0 && new1 != web1, "restart kept a pid");
    assert!(!procfs::is_alive(web0) && !procfs::is_alive(web1));

    // signal: delivered to the group (the trap prints), the process lives on.
    let worker = daemon.running_pid("worker:0")?;
    // RUNNING (starttime 0) may come before the shell has set its trap; its
    // first line is printed after the trap, so USR1 cannot kill it by default.
    assert!(
        wait_until(SOON, || daemon
            .ctl(["tail", "worker"])
            .is_ok_and(|o| o.stdout.contains("out-line-1"))),
        "the worker never printed its first line"
    );
    let out = ctl_expect(&daemon, &["signal", "USR1", "worker"], 0)?;
    assert!(out.stdout.starts_with("worker:0: "), "{out:?}");
    let mut tail = String::new();
    assert!(
        wait_until(SOON, || {
            tail = daemon
                .ctl(["tail", "worker"])
                .map(|o| o.stdout)
                .unwrap_or_default();
            tail.contains("got-usr1")
        }),
        "the USR1 trap never ran: {tail}"
    );
    assert_eq!(daemon.running_pid("worker:0")?, worker);
    let out = ctl_expect(&daemon, &["signal", "SIGUSR1", "worker:0"], 0)?;
    assert!(out.stdout.starts_with("worker:0: "), "{out:?}");

    // all: every instance, including the ones that were not running.
    let out = ctl_expect(&daemon, &["stop", "all"], 0)?;
    assert_eq!(out.stdout.lines().count(), 5, "{out:?}");
    assert!(out.stdout.contains("once:0: not running"), "{out:?}");
    for pid in [new0, new1, worker, idle] {
        assert!(!procfs::is_alive(pid), "pid {pid} survived stop all");
    }
    assert!(
        daemon.live_children().is_empty(),
        "{:?}",
        daemon.live_children()
    );

    // Unknown targets fail (1) and change nothing.
    for cmd in ["start", "stop", "restart"] {
        let out = ctl_expect(&daemon, &[cmd, "web", "nope"], 1)?;
        assert!(out.stderr.contains("no such program: nope"), "{out:?}");
    }
    let out = ctl_expect(&daemon, &["signal", "HUP", "web:9"], 1)?;
    assert!(out.stderr.contains("web:9"), "{out:?}");
    assert_eq!(daemon.state_of("web:0")?, Some(ProcessState::Stopped));
    Ok(())
}

#[test]
fn tail_lines_streams_and_follow() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  worker:
    cmd: "sh -c 'echo out-line-1; echo out-line-2; echo err-line >&2; exec sleep 1000'"
    starttime: 0
  ticker:
    cmd: "sh -c 'i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.1; done'"
    starttime: 0
  web:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0
"#,
    )?;
    daemon.running_pid("worker:0")?;
    let mut out = None;
    assert!(wait_until(SOON, || {
        out = daemon.ctl(["tail", "worker", "stderr"]).ok();
        out.as_ref().is_some_and(|o| o.stdout == "err-line\n")
    }));
    let out = ctl_expect(&daemon, &["tail", "worker"], 0)?;
    assert_eq!(out.stdout, "out-line-1\nout-line-2\n");
    let out = ctl_expect(&daemon, &["tail", "-n", "1", "worker:0", "stdout"], 0)?;
    assert_eq!(out.stdout, "out-line-2\n");
    // A program with several instances needs an index.
    let out = ctl_expect(&daemon, &["tail", "web"], 1)?;
    assert!(out.stderr.contains("web:0"), "{out:?}");
    ctl_expect(&daemon, &["tail", "nope"], 1)?;
    ctl_expect(&daemon, &["tail", "-n", "x", "worker"], 2)?;
    ctl_expect(&daemon, &["tail", "worker", "stdlog"], 2)?;

    // -f: the lines so far, then new ones as they come.
    daemon.running_pid("ticker:0")?;
    let mut cmd = Command::new(bins::taskmasterctl()?);
    cmd.arg("--server")
        .arg(daemon.addr())
        .arg("--token-file")
        .arg(daemon.token_path())
        .args(["tail", "-f", "-n", "1", "ticker"]);
    let mut follower = Background::spawn(cmd)?;
    let tick = |line: &str| -> Option<u64> { line.strip_prefix("tick-")?.parse().ok() };
    let first = follower.line(SOON).ok_or("tail -f printed nothing")?;
    let first = tick(&first).ok_or(format!("not a tick: {first:?}"))?;
    let mut seen = vec![first];
    for _ in 0..3 {
        let line = follower
            .line(SOON)
            .ok_or(format!("tail -f stalled after {seen:?}"))?;
        seen.push(tick(&line).ok_or(format!("not a tick: {line:?}"))?);
    }
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "followed lines out of order or missing: {seen:?}"
    );
    assert!(follower.running(), "tail -f ended on its own");
    drop(follower);
    // The daemon shrugs off the killed follower.
    ctl_expect(&daemon, &["status", "ticker"], 0)?;
    Ok(())
}

/// `taskmasterctl tail -f NAME` against `daemon`, its stderr into `err`,
/// once it has printed a first line.
fn follow(daemon: &TestDaemon, name: &str, err: &std::path::Path) -> TestResult<Background> {
    let mut cmd = Command::new(bins::taskmasterctl()?);
    cmd.arg("--server")
        .arg(daemon.addr())
        .arg("--token-file")
        .arg(daemon.token_path())
        .args(["tail", "-f", name]);
    let follower = Background::spawn_with_stderr(cmd, std::fs::File::create(err)?)?;
    follower.line(SOON).ok_or("tail -f printed nothing")?;
    Ok(follower)
}

/// `tail -f` says why its stream ended when the daemon stops (exit 3),
/// never a silent exit 0.
#[test]
fn tail_follow_says_the_daemon_stopped_and_exits_3() -> TestResult {
    let daemon = TestDaemon::start(
        "programs:\n  ticker:\n    cmd: \"sh -c 'while :; do echo tick; sleep 0.05; done'\"\n    starttime: 0\n",
    )?;
    daemon.running_pid("ticker:0")?;
    let dir = tempfile::tempdir()?;
    let err = dir.path().join("stderr");
    let mut follower = follow(&daemon, "ticker", &err)?;
    ctl_expect(&daemon, &["shutdown"], 0)?;
    assert_eq!(follower.exit_code(SOON), Some(3));
    let said = std::fs::read_to_string(&err)?;
    assert!(
        said.contains("the daemon closed the stream: taskmasterd stopped"),
        "{said:?}"
    );
    Ok(())
}

/// supervisorctl's `avail` and `update`: the configured programs (started
/// or not) with numprocs and autostart; `update` is `reload`.
#[test]
fn avail_lists_configured_programs_and_update_reloads() -> TestResult {
    let daemon = TestDaemon::start(
        "programs:\n  web:\n    cmd: \"sleep 1000\"\n    numprocs: 2\n    starttime: 0\n  idle:\n    cmd: \"sleep 999\"\n    autostart: false\n",
    )?;
    let out = ctl_expect(&daemon, &["avail"], 0)?;
    assert_eq!(
        out.stdout,
        "idle    1 proc   manual     sleep 999\nweb     2 procs  autostart  sleep 1000\n"
    );
    let out = ctl_expect(&daemon, &["avail", "--json"], 0)?;
    let doc: Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(
        doc,
        serde_json::json!([
            {"name": "idle", "numprocs": 1, "autostart": false, "cmd": "sleep 999"},
            {"name": "web", "numprocs": 2, "autostart": true, "cmd": "sleep 1000"},
        ])
    );
    std::fs::write(
        daemon.config_path(),
        std::fs::read_to_string(daemon.config_path())?.replace("numprocs: 2", "numprocs: 3"),
    )?;
    let out = ctl_expect(&daemon, &["update"], 0)?;
    assert!(out.stdout.contains("scaled: 1 (web)"), "{out:?}");
    let out = ctl_expect(&daemon, &["avail"], 0)?;
    assert!(out.stdout.contains("web     3 procs"), "{out:?}");
    Ok(())
}

/// A reload that removes the followed program ends its `tail -f` with the
/// reason and exit 1 (the daemon still runs).
#[test]
fn tail_follow_of_a_removed_program_ends_with_exit_1() -> TestResult {
    let ticker = "  ticker:\n    cmd: \"sh -c 'while :; do echo tick; sleep 0.05; done'\"\n    starttime: 0\n";
    let daemon = TestDaemon::start(&format!(
        "programs:\n{ticker}  other:\n    cmd: \"sleep 1000\"\n    starttime: 0\n"
    ))?;
    daemon.running_pid("ticker:0")?;
    let dir = tempfile::tempdir()?;
    let err = dir.path().join("stderr");
    let mut follower = follow(&daemon, "ticker", &err)?;
    std::fs::write(
        daemon.config_path(),
        std::fs::read_to_string(daemon.config_path())?.replacen(ticker, "", 1),
    )?;
    let out = ctl_expect(&daemon, &["reload"], 0)?;
    assert!(out.stdout.contains("removed: 1 (ticker)"), "{out:?}");
    assert_eq!(follower.exit_code(SOON), Some(1), "{}", daemon.event_log());
    let said = std::fs::read_to_string(&err)?;
    assert!(
        said.contains("the daemon closed the stream: taskmasterd is still running"),
        "{said:?}"
    );
    Ok(())
}

#[test]
fn version_help_and_reload() -> TestResult {
    let daemon =
        TestDaemon::start("programs:\n  web:\n    cmd: \"sleep 1000\"\n    starttime: 0\n")?;
    let out = ctl_expect(&daemon, &["version"], 0)?;
    let v = proto::SUITE_VERSION;
    assert_eq!(
        out.stdout,
        format!(
            "taskmasterctl {v}\ntaskmasterd {v} (protocol {})\n",
            proto::PROTOCOL_VERSION
        )
    );
    let out = ctl_expect(&daemon, &["help"], 0)?;
    for cmd in [
        "status", "start", "stop", "restart", "signal", "pid", "tail", "reload", "avail",
        "shutdown", "version", "help",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.trim_start().starts_with(cmd)),
            "help does not list {cmd}:\n{}",
            out.stdout
        );
    }
    let out = ctl_expect(&daemon, &["help", "start"], 0)?;
    assert!(
        out.stdout
            .starts_with("usage: start [--no-wait] [--timeout SECONDS] TARGET..."),
        "{out:?}"
    );
    let out = ctl_expect(&daemon, &["start", "--help"], 0)?;
    assert!(out.stdout.starts_with("usage: start"), "{out:?}");
    ctl_expect(&daemon, &["help", "nope"], 2)?;

    let pid = daemon.running_pid("web:0")?;
    let out = ctl_expect(&daemon, &["reload"], 0)?;
    assert!(out.stdout.contains("unchanged: 1 (web)"), "{out:?}");
    assert_eq!(daemon.running_pid("web:0")?, pid);
    ctl_expect(&daemon, &["reload", "now"], 2)?;
    Ok(())
}

#[test]
fn usage_errors_exit_2_and_send_nothing() -> TestResult {
    let daemon =
        TestDaemon::start("programs:\n  web:\n    cmd: \"sleep 1000\"\n    starttime: 0\n")?;
    let pid = daemon.running_pid("web:0")?;
    for args in [
        &["frobnicate"][..],
        &["frobnicate", "web"],
        &["start"],
        &["stop"],
        &["restart", "--no-wait"],
        &["signal"],
        &["signal", "NOPE", "web"],
        &["signal", "TERM"],
        &["status", "web:x"],
        &["tail"],
        &["tail", "all"],
        &["--frobnicate", "status"],
        &["quit"],
    ] {
        let out = ctl_expect(&daemon, args, 2)?;
        assert!(out.stderr.starts_with("error: "), "{args:?}: {out:?}");
    }
    // Nothing reached the daemon: web was neither stopped nor signalled.
    assert_eq!(daemon.running_pid("web:0")?, pid);
    assert_eq!(daemon.count_events("web:0", "stop"), 0);
    Ok(())
}

#[test]
fn status_exits_0_whatever_the_states() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  broken:
    cmd: "false"
    startretries: 0
  idle:
    cmd: "sleep 1000"
    autostart: false
"#,
    )?;
    daemon.wait_for_state("broken:0", ProcessState::Fatal, SOON)?;
    let out = ctl_expect(&daemon, &["status"], 0)?;
    assert_eq!(
        status_rows(&out),
        [("broken:0", "FATAL"), ("idle:0", "STOPPED")].map(|(n, s)| (n.into(), s.into()))
    );
    Ok(())
}

#[test]
fn status_json_has_exactly_the_documented_fields() -> TestResult {
    let daemon = started_fleet()?;
    for args in [&["status", "--json"][..], &["--json", "status"]] {
        let out = ctl_expect(&daemon, args, 0)?;
        let doc: Value = serde_json::from_str(&out.stdout)?;
        let list = doc.as_array().ok_or(format!("not an array: {doc}"))?;
        assert_eq!(list.len(), 5, "{doc}");
        let fields: BTreeSet<&str> = [
            "name",
            "program",
            "index",
            "state",
            "pid",
            "uptime_s",
            "exitcode",
            "restarts",
            "description",
            "ready",
            "health",
            "status_text",
        ]
        .into();
        for p in list {
            let obj = p.as_object().ok_or(format!("not an object: {p}"))?;
            let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
            assert_eq!(keys, fields, "{p}");
        }
        let by_name = |n: &str| list.iter().find(|p| p["name"] == n).cloned();
        let web1 = by_name("web:1").ok_or("no web:1")?;
        assert_eq!(web1["program"], "web");
        assert_eq!(web1["index"], 1);
        assert_eq!(web1["state"], "RUNNING");
        assert_eq!(
            web1["pid"].as_u64(),
            daemon.pid_of("web:1")?.map(u64::from),
            "{web1}"
        );
        assert!(web1["exitcode"].is_null(), "{web1}");
        assert!(web1["uptime_s"].is_number() && web1["restarts"].is_number());
        // No ready probe: RUNNING is ready; no health check, no notify text.
        assert_eq!(web1["ready"], true, "{web1}");
        assert!(web1["health"].is_null() && web1["status_text"].is_null());
        let idle = by_name("idle:0").ok_or("no idle:0")?;
        assert!(
            idle["pid"].is_null() && idle["exitcode"].is_null(),
            "{idle}"
        );
        let once = by_name("once:0").ok_or("no once:0")?;
        assert_eq!(once["state"], "EXITED");
        assert!(once["pid"].is_null(), "{once}");
        assert_eq!(once["exitcode"], 3, "{once}");
        assert_eq!(once["ready"], false, "{once}");
    }
    // Failures are JSON documents too.
    let out = ctl_expect(&daemon, &["--json", "status", "nope"], 1)?;
    let doc: Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(doc["error"]["kind"], "unknown_target", "{doc}");
    Ok(())
}

#[test]
fn piped_commands_run_in_order_and_the_worst_code_wins() -> TestResult {
    let daemon = TestDaemon::start(
        "programs:\n  web:\n    cmd: \"sleep 1000\"\n    numprocs: 2\n    starttime: 0\n",
    )?;
    let web0 = daemon.running_pid("web:0")?;
    let web1 = daemon.running_pid("web:1")?;
    let out = ctl_piped(&daemon, "status\nstop web\n", &[])?;
    assert_code(&out, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.len() == 4
            && lines[0].starts_with("web:0")
            && lines[0].contains("RUNNING")
            && lines[1].starts_with("web:1")
            && lines[2] == "web:0: stopped"
            && lines[3] == "web:1: stopped",
        "{}",
        out.stdout
    );
    assert!(!procfs::is_alive(web0) && !procfs::is_alive(web1));

    // A usage error (2) and a failed command (1) do not stop the rest.
    let out = ctl_piped(
        &daemon,
        "# a comment\n\nfrobnicate\nstart nope\nstart web:1\n",
        &[],
    )?;
    assert_code(&out, 2);
    assert_eq!(out.stdout, "web:1: started\n");
    assert!(out.stderr.contains("unknown command"), "{out:?}");
    assert!(out.stderr.contains("no such program: nope"), "{out:?}");
    let out = ctl_piped(&daemon, "start nope\nstatus web:1\n", &[])?;
    assert_code(&out, 1);
    // --json: one document per command.
    let out = ctl_piped(&daemon, "pid\nstatus web:1\n", &["--json"])?;
    assert_code(&out, 0);
    let docs: Vec<Value> = out
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(docs.len(), 2, "{}", out.stdout);
    assert_eq!(docs[0][0]["pid"], daemon.pid());
    assert_eq!(docs[1][0]["name"], "web:1");
    Ok(())
}

#[test]
fn config_file_gives_the_address_and_token() -> TestResult {
    // A fixed port, known before the daemon starts, so that the config the
    // client reads is the daemon's own.
    let port = free_port()?;
    let daemon = DaemonBuilder::new()?
        .config(&format!(
            "programs:\n  web:\n    cmd: \"sleep 1000\"\n    starttime: 0\nserver:\n  listen: \"127.0.0.1:{port}\"\n"
        ))
        .start()?;
    assert_eq!(daemon.addr(), format!("127.0.0.1:{port}"));
    let pid = daemon.running_pid("web:0")?;
    let config = daemon.config_path();
    let config = config.to_str().ok_or("non-UTF-8 temp path")?;
    // From another directory: the token is found next to the config.
    let elsewhere = tempfile::tempdir()?;
    let out = ctl_raw(elsewhere.path(), &["-c", config, "pid", "web:0"])?;
    assert_code(&out, 0);
    assert_eq!(out.stdout.trim(), pid.to_string());
    // The default config is ./taskmaster.yaml.
    let out = ctl_raw(daemon.dir(), &["status"])?;
    assert_code(&out, 0);
    assert!(out.stdout.starts_with("web:0"), "{out:?}");
    Ok(())
}

#[test]
fn a_config_with_a_bad_program_still_connects() -> TestResult {
    let daemon =
        TestDaemon::start("programs:\n  web:\n    cmd: \"sleep 1000\"\n    starttime: 0\n")?;
    let pid = daemon.running_pid("web:0")?;
    // The daemon would reject this file; the client reads only `server:`.
    let client_config = daemon.path("client.yaml");
    std::fs::write(
        &client_config,
        format!(
            "programs:\n  web:\n    cmd: \"sleep 1000\"\n    bogus_key: 1\n    numprocs: many\nserver:\n  listen: \"{}\"\n",
            daemon.addr()
        ),
    )?;
    let path = client_config.to_str().ok_or("non-UTF-8 temp path")?;
    let out = ctl_raw(daemon.dir(), &["-c", path, "pid", "web:0"])?;
    assert_code(&out, 0);
    assert_eq!(out.stdout.trim(), pid.to_string());
    Ok(())
}

#[test]
fn unreachable_daemon_and_refused_tokens_exit_3() -> TestResult {
    let daemon =
        TestDaemon::start("programs:\n  web:\n    cmd: \"sleep 1000\"\n    starttime: 0\n")?;
    let pid = daemon.running_pid("web:0")?;
    let token = daemon.token_path();
    let token = token.to_str().ok_or("non-UTF-8 temp path")?;
    let dir = daemon.dir();

    // Nobody listens on that port any more.
    let dead = format!("127.0.0.1:{}", free_port()?);
    let out = ctl_raw(dir, &["--server", &dead, "--token-file", token, "status"])?;
    assert_code(&out, 3);
    assert!(out.stderr.contains("cannot connect"), "{out:?}");
    let out = ctl_raw(
        dir,
        &["--server", &dead, "--token-file", token, "--json", "status"],
    )?;
    assert_code(&out, 3);
    let doc: Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(doc["error"]["kind"], "unreachable", "{doc}");

    // A wrong token: refused by the daemon.
    let wrong = daemon.path("wrong.token");
    std::fs::write(&wrong, "0123456789abcdef\n")?;
    let wrong = wrong.to_str().ok_or("non-UTF-8 temp path")?;
    let out = ctl_raw(
        dir,
        &[
            "--server",
            daemon.addr(),
            "--token-file",
            wrong,
            "stop",
            "web",
        ],
    )?;
    assert_code(&out, 3);
    assert!(out.stderr.contains("authentication refused"), "{out:?}");
    // A missing token file: refused before connecting.
    let missing = daemon.path("missing.token");
    let missing = missing.to_str().ok_or("non-UTF-8 temp path")?;
    let out = ctl_raw(
        dir,
        &[
            "--server",
            daemon.addr(),
            "--token-file",
            missing,
            "stop",
            "web",
        ],
    )?;
    assert_code(&out, 3);
    assert!(out.stderr.contains("cannot read token file"), "{out:?}");
    // A missing explicit config.
    let out = ctl_raw(dir, &["-c", "nope.yaml", "status"])?;
    assert_code(&out, 3);

    // None of them did anything.
    assert_eq!(daemon.running_pid("web:0")?, pid);
    Ok(())
}
