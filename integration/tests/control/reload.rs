//! Hot reload, by SIGHUP and by `taskmasterctl reload`: only the difference
//! is applied (changed `cmd` restarts, `numprocs` scales in place, policy is
//! swapped into the live process, removed programs stop, added ones start,
//! everything else keeps its pid), a broken file changes nothing and says
//! why, and a storm of SIGHUPs while the file changes leaves the daemon up,
//! consistent with the file, and without duplicates.

use crate::{SOON, TestResult, ctl_expect};
use integration::{TestDaemon, procfs, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proto::{ProcessInfo, ProcessState};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// Appended to every rewritten config, as the harness did at start: an
/// unchanged `server:` section.
const SERVER: &str = "server:\n  listen: \"127.0.0.1:0\"\n";

/// Rewrites the daemon's config file (the daemon reads it on reload only).
fn rewrite(daemon: &TestDaemon, programs: &str) -> TestResult {
    std::fs::write(daemon.config_path(), format!("{programs}{SERVER}"))?;
    Ok(())
}

/// `name -> pid` of every instance that has one.
fn pids(status: &[ProcessInfo]) -> BTreeMap<String, u32> {
    status
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.pid?)))
        .collect()
}

/// Waits until exactly `names` are listed, all RUNNING; returns `name -> pid`.
fn running_exactly(
    daemon: &TestDaemon,
    names: &BTreeSet<String>,
) -> TestResult<BTreeMap<String, u32>> {
    let mut last = Vec::new();
    let ok = wait_until(Duration::from_secs(30), || {
        last = daemon.status().unwrap_or_default();
        last.len() == names.len()
            && last.iter().all(|p| {
                names.contains(&p.name) && p.state == ProcessState::Running && p.pid.is_some()
            })
    });
    if !ok {
        let listed: BTreeSet<String> = last.iter().map(|p| p.name.clone()).collect();
        let not_running: Vec<_> = last
            .iter()
            .filter(|p| p.state != ProcessState::Running)
            .map(|p| format!("{} {}", p.name, p.state))
            .collect();
        return Err(format!(
            "expected {} instances RUNNING; missing {:?}, extra {:?}, not running {not_running:?}",
            names.len(),
            names.difference(&listed).collect::<Vec<_>>(),
            listed.difference(names).collect::<Vec<_>>(),
        )
        .into());
    }
    Ok(pids(&last))
}

fn set(names: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    names.into_iter().map(Into::into).collect()
}

/// The command line of `pid`, words joined by spaces.
fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn sighup(daemon: &TestDaemon) -> TestResult {
    kill(Pid::from_raw(daemon.pid() as i32), Signal::SIGHUP)?;
    Ok(())
}

/// Waits until the event log has more than `before` lines containing every
/// one of `words`; returns those lines.
fn logged(daemon: &TestDaemon, words: &[&str], before: usize) -> TestResult<Vec<String>> {
    let find = || -> Vec<String> {
        daemon
            .event_log()
            .lines()
            .filter(|l| words.iter().all(|w| l.contains(w)))
            .map(str::to_string)
            .collect()
    };
    let mut found = Vec::new();
    if wait_until(SOON, || {
        found = find();
        found.len() > before
    }) {
        Ok(found)
    } else {
        Err(format!(
            "no new event-log line with {words:?}:\n{}",
            daemon.event_log()
        )
        .into())
    }
}

fn count_logged(daemon: &TestDaemon, words: &[&str]) -> usize {
    daemon
        .event_log()
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .count()
}

#[test]
fn sighup_applies_only_the_difference_to_200_programs() -> TestResult {
    let stubborn = r#"sh -c 'trap \"\" TERM; sleep 1000 & wait'"#;
    let mut common = String::new();
    for i in 0..196 {
        let _ = writeln!(common, "  p{i:03}: {{cmd: \"sleep 1000\", starttime: 0}}");
    }
    let v1 = format!(
        "programs:\n{common}\
         \x20 cmdchange: {{cmd: \"sleep 1000\", starttime: 0}}\n\
         \x20 scaled: {{cmd: \"sleep 1000\", starttime: 0, numprocs: 2}}\n\
         \x20 stubborn: {{cmd: \"{stubborn}\", starttime: 0, stoptime: 10}}\n\
         \x20 removed: {{cmd: \"sleep 1000\", starttime: 0}}\n"
    );
    let v2 = format!(
        "programs:\n{common}\
         \x20 cmdchange: {{cmd: \"sleep 1001\", starttime: 0}}\n\
         \x20 scaled: {{cmd: \"sleep 1000\", starttime: 0, numprocs: 4}}\n\
         \x20 stubborn: {{cmd: \"{stubborn}\", starttime: 0, stoptime: 1}}\n\
         \x20 added: {{cmd: \"sleep 1000\", starttime: 0}}\n"
    );
    let daemon = TestDaemon::start(&v1)?;
    let p_names = (0..196).map(|i| format!("p{i:03}:0"));
    let before_names = set(p_names.clone().chain(
        [
            "cmdchange:0",
            "scaled:0",
            "scaled:1",
            "stubborn:0",
            "removed:0",
        ]
        .map(String::from),
    ));
    let before = running_exactly(&daemon, &before_names)?;
    let _ = daemon.descendants();

    rewrite(&daemon, &v2)?;
    sighup(&daemon)?;
    let after_names = set(p_names.clone().chain(
        [
            "cmdchange:0",
            "scaled:0",
            "scaled:1",
            "scaled:2",
            "scaled:3",
            "stubborn:0",
            "added:0",
        ]
        .map(String::from),
    ));
    // The restart of cmdchange is the last visible effect to wait for.
    daemon.wait_for("cmdchange:0", Duration::from_secs(30), "restarted", |p| {
        p.state == ProcessState::Running
            && p.pid.is_some_and(|p| Some(&p) != before.get("cmdchange:0"))
    })?;
    let after = running_exactly(&daemon, &after_names)?;

    for name in p_names {
        assert_eq!(after.get(&name), before.get(&name), "{name} was touched");
    }
    let old_cmd = before["cmdchange:0"];
    assert!(
        !procfs::is_alive(old_cmd),
        "the old cmdchange process lives"
    );
    assert_eq!(cmdline(after["cmdchange:0"]), "sleep 1001");
    for name in ["scaled:0", "scaled:1", "stubborn:0"] {
        assert_eq!(after.get(name), before.get(name), "{name} was touched");
    }
    let old_pids: BTreeSet<u32> = before.values().copied().collect();
    for name in ["scaled:2", "scaled:3", "added:0"] {
        assert!(!old_pids.contains(&after[name]), "{name} has an old pid");
    }
    let removed = before["removed:0"];
    assert!(
        wait_until(SOON, || !procfs::is_alive(removed)),
        "the removed program's process lives on"
    );
    logged(&daemon, &["config reloaded"], 0)?;

    // The new stoptime is the live one: SIGKILL after 1 s, not 10.
    let out = ctl_expect(&daemon, &["stop", "stubborn"], 0)?;
    assert!(
        out.elapsed >= Duration::from_millis(900) && out.elapsed < Duration::from_secs(5),
        "stop took {:?} (stoptime 1 s, was 10 s)",
        out.elapsed
    );
    assert!(!procfs::is_alive(before["stubborn:0"]));
    Ok(())
}

#[test]
fn reload_command_prints_the_summary() -> TestResult {
    let v1 = "programs:
  keep: {cmd: \"sleep 1000\", starttime: 0}
  respawn: {cmd: \"sleep 1000\", starttime: 0}
  scale: {cmd: \"sleep 1000\", starttime: 0}
  policy: {cmd: \"sleep 1000\", starttime: 0, stoptime: 5}
  gone: {cmd: \"sleep 1000\", starttime: 0}
";
    let v2 = "programs:
  keep: {cmd: \"sleep 1000\", starttime: 0}
  respawn: {cmd: \"sleep 1001\", starttime: 0}
  scale: {cmd: \"sleep 1000\", starttime: 0, numprocs: 2}
  policy: {cmd: \"sleep 1000\", starttime: 0, stoptime: 2}
  fresh: {cmd: \"sleep 1000\", starttime: 0}
";
    let daemon = TestDaemon::start(v1)?;
    let before = running_exactly(
        &daemon,
        &set(["keep:0", "respawn:0", "scale:0", "policy:0", "gone:0"]),
    )?;
    rewrite(&daemon, v2)?;
    let out = ctl_expect(&daemon, &["reload"], 0)?;
    assert_eq!(
        out.stdout,
        "added: 1 (fresh)\n\
         removed: 1 (gone)\n\
         restarted: 1 (respawn)\n\
         scaled: 1 (scale)\n\
         updated in place: 1 (policy)\n\
         unchanged: 1 (keep)\n"
    );
    daemon.wait_for("respawn:0", SOON, "restarted", |p| {
        p.state == ProcessState::Running && p.pid != before.get("respawn:0").copied()
    })?;
    let after = running_exactly(
        &daemon,
        &set([
            "keep:0",
            "respawn:0",
            "scale:0",
            "scale:1",
            "policy:0",
            "fresh:0",
        ]),
    )?;
    for name in ["keep:0", "scale:0", "policy:0"] {
        assert_eq!(after.get(name), before.get(name), "{name} was touched");
    }
    // Nothing changed since: everything is unchanged, as JSON too.
    let out = ctl_expect(&daemon, &["--json", "reload"], 0)?;
    let doc: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(
        doc["unchanged"],
        serde_json::json!(["fresh", "keep", "policy", "respawn", "scale"]),
        "{doc}"
    );
    assert_eq!(doc["added"], serde_json::json!([]), "{doc}");
    assert_eq!(pids(&daemon.status()?), after);
    Ok(())
}

/// `PATH:LINE:COL: ` somewhere in `text`, for the config at `path`.
fn positions(text: &str, path: &str) -> Vec<(usize, usize)> {
    text.match_indices(path)
        .filter_map(|(at, _)| {
            let rest = text.get(at + path.len()..)?.strip_prefix(':')?;
            let (line, rest) = rest.split_once(':')?;
            let (col, _) = rest.split_once(':')?;
            Some((line.parse().ok()?, col.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_broken_file_changes_nothing_and_says_where() -> TestResult {
    let good = "programs:\n  web:\n    cmd: \"sleep 1000\"\n    numprocs: 2\n    starttime: 0\n";
    let daemon = TestDaemon::start(good)?;
    let names = set(["web:0", "web:1"]);
    let before = running_exactly(&daemon, &names)?;
    let path = daemon.config_path();
    let path = path.to_str().ok_or("non-UTF-8 temp path")?;

    // A YAML syntax error, then an unknown key (line 6, `bogus_key`).
    let syntax = "programs:\n  web:\n    cmd: \"sleep 1000\"\n    numprocs: [2\n    starttime: 0\n";
    let unknown = "programs:\n  web:\n    cmd: \"sleep 1000\"\n    numprocs: 1\n    starttime: 0\n    bogus_key: 1\n";
    for (broken, key) in [(syntax, None), (unknown, Some("programs.web.bogus_key"))] {
        rewrite(&daemon, broken)?;
        let rejected = count_logged(&daemon, &["reload rejected", path]);
        sighup(&daemon)?;
        let lines = logged(&daemon, &["reload rejected", path], rejected)?;
        let line = lines.last().map(String::as_str).unwrap_or_default();
        assert!(!positions(line, path).is_empty(), "no line:col in {line:?}");
        if let Some(key) = key {
            assert!(line.contains(key), "{line:?}");
            assert_eq!(positions(line, path), [(6, 5)], "{line:?}");
        }

        let out = ctl_expect(&daemon, &["reload"], 1)?;
        assert!(out.stderr.contains("reload rejected"), "{out:?}");
        assert!(
            !positions(&out.stderr, path).is_empty(),
            "no line:col: {out:?}"
        );
        if let Some(key) = key {
            assert!(
                out.stderr.contains(&format!("{path}:6:5: {key}")),
                "{out:?}"
            );
        }
        assert_eq!(running_exactly(&daemon, &names)?, before);
    }
    assert_eq!(daemon.count_events("web:0", "spawned"), 1);
    assert_eq!(daemon.count_events("web:1", "spawned"), 1);

    // A good file is applied again.
    rewrite(&daemon, &good.replace("numprocs: 2", "numprocs: 1"))?;
    let out = ctl_expect(&daemon, &["reload"], 0)?;
    assert!(out.stdout.contains("scaled: 1 (web)"), "{out:?}");
    let after = running_exactly(&daemon, &set(["web:0"]))?;
    assert_eq!(after.get("web:0"), before.get("web:0"));
    Ok(())
}

#[test]
fn a_storm_of_sighups_while_the_file_changes() -> TestResult {
    let v1 = "programs:
  a: {cmd: \"sleep 1000\", starttime: 0, numprocs: 2}
  b: {cmd: \"sleep 1000\", starttime: 0}
  c: {cmd: \"sleep 1000\", starttime: 0}
";
    let v2 = "programs:
  a: {cmd: \"sleep 1000\", starttime: 0, numprocs: 3}
  b: {cmd: \"sleep 1001\", starttime: 0}
  d: {cmd: \"sleep 1000\", starttime: 0}
";
    let daemon = TestDaemon::start(v1)?;
    let before = running_exactly(&daemon, &set(["a:0", "a:1", "b:0", "c:0"]))?;
    let _ = daemon.descendants();
    for i in 0..100 {
        if i == 50 {
            // Not atomic on purpose: some reloads may read half a file.
            rewrite(&daemon, v2)?;
        }
        sighup(&daemon)?;
    }
    // Up and answering.
    ctl_expect(&daemon, &["status"], 0)?;
    ctl_expect(&daemon, &["reload"], 0)?;
    let expected = set(["a:0", "a:1", "a:2", "b:0", "d:0"]);
    daemon.wait_for("b:0", SOON, "restarted", |p| {
        p.state == ProcessState::Running && p.pid.is_some_and(|p| cmdline(p) == "sleep 1001")
    })?;
    let after = running_exactly(&daemon, &expected)?;
    let status = daemon.status()?;
    let unique: BTreeSet<_> = status.iter().map(|p| &p.name).collect();
    assert_eq!(
        unique.len(),
        status.len(),
        "duplicate instances: {status:?}"
    );
    assert_eq!(after.get("a:0"), before.get("a:0"));
    assert_eq!(after.get("a:1"), before.get("a:1"));
    assert!(
        wait_until(SOON, || !procfs::is_alive(before["c:0"])),
        "removed c:0 lives on"
    );
    // Exactly one live process per instance: nothing leaked, nothing doubled.
    let mut children = Vec::new();
    assert!(
        wait_until(SOON, || {
            children = daemon.live_children();
            children.len() == expected.len()
        }),
        "{} live children for {} instances: {children:?}",
        children.len(),
        expected.len()
    );
    let live: BTreeSet<u32> = children.iter().map(|p| p.pid).collect();
    assert_eq!(live, after.values().copied().collect());
    Ok(())
}

#[test]
fn scaling_down_stops_the_highest_indexes_gracefully() -> TestResult {
    let cmd = r#"sh -c 'trap \"echo got-term; exit 0\" TERM; sleep 1000 & wait'"#;
    let config = |n: u32| {
        format!("programs:\n  web: {{cmd: \"{cmd}\", starttime: 0, stoptime: 30, numprocs: {n}}}\n")
    };
    let daemon = TestDaemon::start(&config(4))?;
    let before = running_exactly(&daemon, &set(["web:0", "web:1", "web:2", "web:3"]))?;
    // RUNNING (starttime 0) does not mean `sleep` is forked yet: a TERM
    // arriving between the trap and the fork makes the shell exit and leaves
    // `sleep` alive, untouched by the stop signal, until SIGKILL at stoptime.
    for name in ["web:2", "web:3"] {
        daemon.group_of(before[name], 2)?;
    }
    rewrite(&daemon, &config(2))?;
    sighup(&daemon)?;
    // Graceful (the stop signal, not SIGKILL after stoptime) is proven below
    // by the trap's output and the absence of a `killed` event, not by a
    // wall-clock bound that a loaded machine can break.
    let after = running_exactly(&daemon, &set(["web:0", "web:1"]))?;
    assert_eq!(after.get("web:0"), before.get("web:0"));
    assert_eq!(after.get("web:1"), before.get("web:1"));
    for name in ["web:2", "web:3"] {
        let pid = before[name];
        assert!(
            wait_until(SOON, || procfs::group_members(pid).is_empty()),
            "{name}'s group lives on"
        );
        // Gracefully: the stop signal reached it (its trap ran), no SIGKILL.
        let log = daemon.path(format!("logs/web-{}.stdout.log", &name[4..]));
        assert!(
            wait_until(SOON, || std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("got-term"))),
            "{name} never saw its stop signal"
        );
        assert_eq!(
            daemon.count_events(name, "killed"),
            0,
            "{}",
            daemon.event_log()
        );
    }
    Ok(())
}

#[test]
fn shutdown_waits_for_programs_removed_by_a_reload() -> TestResult {
    // On TERM it takes a second to finish its work, then writes a mark.
    let slow = r#"sh -c 'trap \"sleep 1; echo graceful > {dir}/slow.done; exit 0\" TERM; sleep 1000 & wait'"#;
    let v1 = format!(
        "programs:\n  keep: {{cmd: \"sleep 1000\", starttime: 0}}\n  slow: {{cmd: \"{slow}\", starttime: 0, stoptime: 10}}\n"
    );
    let mut daemon = integration::DaemonBuilder::new()?.config(&v1).start()?;
    let slow_pid = daemon.running_pid("slow:0")?;
    daemon.running_pid("keep:0")?;
    let mut tree = Vec::new();
    assert!(wait_until(SOON, || {
        tree = daemon.descendants();
        tree.iter().filter(|p| p.is_alive()).count() == 3
    }));
    rewrite(
        &daemon,
        "programs:\n  keep: {cmd: \"sleep 1000\", starttime: 0}\n",
    )?;
    let out = ctl_expect(&daemon, &["reload"], 0)?;
    assert!(out.stdout.contains("removed: 1 (slow)"), "{out:?}");
    // slow is still finishing its work when the daemon is asked to stop.
    let out = ctl_expect(&daemon, &["shutdown"], 0)?;
    for p in &tree {
        assert!(
            !procfs::is_alive(p.pid),
            "{p:?} alive after shutdown returned"
        );
    }
    let left: Vec<_> = procfs::group_members(slow_pid)
        .into_iter()
        .filter_map(procfs::stat)
        .collect();
    assert!(
        left.is_empty(),
        "the removed program's group outlived shutdown: {left:?}\n{}",
        daemon.event_log()
    );
    let done = std::fs::read_to_string(daemon.path("slow.done")).unwrap_or_default();
    assert_eq!(
        done, "graceful\n",
        "the removed program was not allowed to stop gracefully ({out:?})"
    );
    let status = daemon.wait_exit(SOON).ok_or("the daemon did not exit")?;
    assert_eq!(status.code(), Some(0));
    Ok(())
}

/// Scaling down, then up again before the retired instances are gone: each
/// index is listed once (the one still stopping, until it is gone), and the
/// new instance starts only then, so two processes never share a name.
#[test]
fn scaling_back_up_while_retired_instances_stop_lists_each_index_once() -> TestResult {
    // On TERM it takes a second and a half to finish.
    let cmd = r#"sh -c 'trap \"sleep 1.5; exit 0\" TERM; sleep 1000 & wait'"#;
    let config = |n: u32| {
        format!("programs:\n  web: {{cmd: \"{cmd}\", starttime: 0, stoptime: 30, numprocs: {n}}}\n")
    };
    let daemon = TestDaemon::start(&config(3))?;
    let before = running_exactly(&daemon, &set(["web:0", "web:1", "web:2"]))?;
    daemon.group_of(before["web:2"], 2)?;
    rewrite(&daemon, &config(2))?;
    sighup(&daemon)?;
    daemon.wait_for_state("web:2", ProcessState::Stopping, Duration::from_secs(10))?;
    rewrite(&daemon, &config(3))?;
    sighup(&daemon)?;
    // Until the old web:2 is gone: listed once, as the one stopping.
    let gone = wait_until(Duration::from_secs(30), || {
        let Ok(status) = daemon.status() else {
            return false;
        };
        let names: Vec<_> = status.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["web:0", "web:1", "web:2"],
            "each index once: {status:#?}"
        );
        !procfs::is_alive(before["web:2"])
    });
    assert!(gone, "the old web:2 never stopped");
    let after = running_exactly(&daemon, &set(["web:0", "web:1", "web:2"]))?;
    assert_ne!(after["web:2"], before["web:2"]);
    assert_eq!(after["web:0"], before["web:0"]);
    Ok(())
}

#[test]
fn a_reload_whose_file_blocks_never_stops_supervision_or_status() -> TestResult {
    // A FIFO with no writer in place of the config: opening it for reading
    // waits forever. The reload reads off the actor thread, with a deadline.
    let daemon = TestDaemon::start(
        r#"
programs:
  flappy:
    cmd: "sleep 0.2"
    starttime: 0
    autorestart: always
    maxrestarts: 100000000
"#,
    )?;
    daemon.running_pid("flappy:0")?;
    let config = daemon.config_path();
    std::fs::remove_file(&config)?;
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    daemon.signal(Signal::SIGHUP)?;
    assert!(wait_until(SOON, || daemon
        .event_log()
        .contains("reload requested")));
    let restarts = |d: &TestDaemon| d.info("flappy:0").ok().flatten().map(|i| i.restarts);
    let before = restarts(&daemon).ok_or("no answer to status during the reload")?;
    assert!(
        wait_until(SOON, || restarts(&daemon).is_some_and(|n| n >= before + 3)),
        "supervision stopped during the reload: {}",
        daemon.diagnostics()
    );
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .event_log()
            .contains("reload rejected")),
        "{}",
        daemon.event_log()
    );
    daemon.status()?;
    Ok(())
}
