//! How children are started: argv, instances, autostart, environment,
//! working directory, umask, output files, inherited fds, process group and
//! signal state.

use crate::{SOON, file_containing, running};
use integration::{TestDaemon, TestResult, procfs, wait_until};
use proto::{ProcessState, Request, Response, StartRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[test]
fn cmd_is_split_like_a_shell_and_run_without_one() -> TestResult {
    // With a shell, `$HOME` would expand and `>` would redirect to out.txt.
    let daemon = TestDaemon::start(
        r#"
programs:
  args:
    cmd: "printf '[%s]' 'a b' \"c  d\" e $HOME > out.txt"
    starttime: 0
    autorestart: never
"#,
    )?;
    let out = daemon.path("logs/args-0.stdout.log");
    let expected = "[a b][c  d][e][$HOME][>][out.txt]";
    let text = file_containing(&out, expected)?;
    assert_eq!(text, expected);
    assert!(!daemon.path("out.txt").exists(), "a shell redirected");
    Ok(())
}

#[test]
fn numprocs_gives_distinct_instances() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 3
    starttime: 0.2
"#,
    )?;
    let mut pids = BTreeSet::new();
    for i in 0..3 {
        pids.insert(daemon.running_pid(&format!("web:{i}"))?);
    }
    assert_eq!(pids.len(), 3, "pids not distinct: {pids:?}");
    let names: BTreeSet<String> = daemon.status()?.into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        BTreeSet::from(["web:0".into(), "web:1".into(), "web:2".into()])
    );
    for pid in pids {
        let stat = procfs::stat(pid).ok_or(format!("no process {pid}"))?;
        assert!(stat.is_alive());
        assert_eq!(
            stat.ppid,
            daemon.pid(),
            "{stat:?} is not the daemon's child"
        );
        assert_eq!(stat.comm, "sleep");
    }
    Ok(())
}

#[test]
fn autostart_false_stays_stopped() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  idle:
    cmd: "sleep 1000"
    autostart: false
  busy:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
    )?;
    // Once `busy` has come all the way up, `idle` had every chance to start.
    let busy = daemon.running_pid("busy:0")?;
    let idle = daemon.info("idle:0")?.ok_or("idle:0 missing from status")?;
    assert_eq!(idle.state, ProcessState::Stopped, "{idle:?}");
    assert_eq!(idle.pid, None);
    let children: Vec<u32> = daemon.live_children().iter().map(|p| p.pid).collect();
    assert_eq!(children, vec![busy]);
    assert_eq!(daemon.count_events("idle:0", "spawned"), 0);
    Ok(())
}

#[test]
fn env_workingdir_and_umask_reach_the_child() -> TestResult {
    let builder = TestDaemon::builder()?
        .env("TM_INHERITED", "from-daemon")
        .env("TM_OVERRIDDEN", "from-daemon");
    std::fs::create_dir(builder.dir().join("work"))?;
    let daemon = builder
        .config(
            r#"
programs:
  show:
    cmd: "sh -c 'env; echo cwd=$(pwd); grep Umask: /proc/self/status; exec sleep 1000'"
    starttime: 0.2
    workingdir: work
    umask: 027
    env:
      NUM: 42
      FLAG: true
      TEXT: "two words"
      TM_OVERRIDDEN: from-config
"#,
        )
        .start()?;
    let pid = daemon.running_pid("show:0")?;
    let work = std::fs::canonicalize(daemon.path("work"))?;

    // What the child itself wrote.
    let text = file_containing(&daemon.path("logs/show-0.stdout.log"), "Umask:")?;
    let lines: BTreeSet<&str> = text.lines().collect();
    for want in [
        "NUM=42",
        "FLAG=true",
        "TEXT=two words",
        "TM_INHERITED=from-daemon",
        "TM_OVERRIDDEN=from-config",
    ] {
        assert!(
            lines.contains(want),
            "{want} not in the child's env:\n{text}"
        );
    }
    assert!(
        lines.contains(format!("cwd={}", work.display()).as_str()),
        "{text}"
    );
    assert_eq!(
        procfs::status_field_in(&text, "Umask").as_deref(),
        Some("0027")
    );

    // What the kernel says about it.
    let environ = environ(pid)?;
    assert_eq!(environ.get("NUM").map(String::as_str), Some("42"));
    assert_eq!(
        environ.get("TM_OVERRIDDEN").map(String::as_str),
        Some("from-config")
    );
    assert_eq!(procfs::cwd(pid), Some(work));
    assert_eq!(procfs::status_field(pid, "Umask").as_deref(), Some("0027"));
    Ok(())
}

fn environ(pid: u32) -> TestResult<BTreeMap<String, String>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect())
}

#[test]
fn stdout_null_discards_and_default_files_are_under_logs() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  quiet:
    cmd: "sh -c 'echo quiet-out-$((6*7)); echo quiet-err >&2; exec sleep 1000'"
    starttime: 0.2
    stdout: null
  loud:
    cmd: "sh -c 'echo loud-out; echo loud-err >&2; exec sleep 1000'"
    starttime: 0.2
"#,
    )?;
    let quiet = daemon.running_pid("quiet:0")?;
    running(&daemon, "loud:0")?;
    file_containing(&daemon.path("logs/loud-0.stdout.log"), "loud-out")?;
    file_containing(&daemon.path("logs/loud-0.stderr.log"), "loud-err")?;
    // stderr written after stdout, so once it is there stdout was written.
    file_containing(&daemon.path("logs/quiet-0.stderr.log"), "quiet-err")?;
    assert_eq!(
        procfs::fd_target(quiet, 1).as_deref(),
        Some(Path::new("/dev/null"))
    );
    assert!(!daemon.path("logs/quiet-0.stdout.log").exists());
    // Computed by the child, so the config itself does not contain it.
    let leaked = files_containing(daemon.dir(), "quiet-out-42")?;
    assert!(leaked.is_empty(), "discarded output landed in {leaked:?}");
    Ok(())
}

fn files_containing(dir: &Path, needle: &str) -> TestResult<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle)?);
        } else if String::from_utf8_lossy(&std::fs::read(&path)?).contains(needle) {
            found.push(path.display().to_string());
        }
    }
    Ok(found)
}

#[test]
fn missing_output_directory_is_backoff_with_the_os_error() -> TestResult {
    // The config check wants the directory to exist, so it exists at load
    // time and is removed before the start: the spawn must fail cleanly.
    let builder = TestDaemon::builder()?;
    std::fs::create_dir(builder.dir().join("gone"))?;
    let daemon = builder
        .config(
            r#"
programs:
  lost:
    cmd: "sleep 1000"
    autostart: false
    stdout: gone/out.log
"#,
        )
        .start()?;
    std::fs::remove_dir(daemon.path("gone"))?;
    let reply = daemon.call(&Request::Start(StartRequest {
        targets: vec!["lost".into()],
        wait: false,
    }))?;
    assert!(matches!(reply, Response::Outcomes(_)), "{reply:?}");
    daemon.wait_for_state("lost:0", ProcessState::Backoff, SOON)?;
    let logged = wait_until(SOON, || {
        daemon
            .events("lost:0", "No such file or directory")
            .iter()
            .any(|l| l.contains("gone"))
    });
    assert!(
        logged,
        "no event names the OS error and the path:\n{}",
        daemon.event_log()
    );
    assert!(daemon.live_children().is_empty());
    Ok(())
}

#[test]
fn child_has_only_stdio_its_own_group_and_clean_signal_state() -> TestResult {
    // The daemon starts with SIGUSR1 ignored and blocked; neither may reach
    // the child.
    let daemon = TestDaemon::builder()?
        .block_and_ignore(libc::SIGUSR1)
        .config(
            r#"
programs:
  plain:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
        )
        .start()?;
    let pid = daemon.running_pid("plain:0")?;
    assert_eq!(procfs::fds(pid), Some(BTreeSet::from([0, 1, 2])));
    assert_eq!(
        procfs::fd_target(pid, 0).as_deref(),
        Some(Path::new("/dev/null"))
    );
    let stat = procfs::stat(pid).ok_or("child vanished")?;
    assert_eq!(stat.pgid, pid, "not the leader of its own process group");
    assert_eq!(procfs::signal_mask(pid, "SigBlk"), Some(0));
    assert_eq!(procfs::signal_mask(pid, "SigIgn"), Some(0));
    Ok(())
}

#[test]
fn an_explicit_file_in_the_logs_directory_works_before_it_exists() -> TestResult {
    // `--check` accepts `logs/…` before the directory exists because the
    // daemon creates it; the spawn must then find it.
    let daemon = TestDaemon::start(
        r#"
programs:
  shared:
    cmd: "sh -c 'echo explicit-marker; exec sleep 1000'"
    starttime: 0
    stdout: logs/shared.log
    stderr: null
"#,
    )?;
    let text = file_containing(&daemon.path("logs/shared.log"), "explicit-marker")?;
    assert!(text.contains("explicit-marker"));
    assert_eq!(daemon.state_of("shared:0")?, Some(ProcessState::Running));
    Ok(())
}

/// The control plane answers during a mass start: automatic starts are
/// paced, so the first `status` comes back while most instances still wait
/// for their spawn. It used to wait behind every spawn of the fleet (all
/// 1500 RUNNING in its first answer).
#[test]
fn status_answers_while_a_large_fleet_is_still_starting() -> TestResult {
    const N: usize = 1500;
    let daemon = TestDaemon::start(&format!(
        "programs:\n  many:\n    cmd: \"sleep 1000\"\n    numprocs: {N}\n    starttime: 0\n    stdout: null\n    stderr: null\n"
    ))?;
    let first = daemon.status()?;
    assert_eq!(first.len(), N);
    let running = first
        .iter()
        .filter(|p| p.state == ProcessState::Running)
        .count();
    assert!(
        running < N / 2,
        "the first status came after {running} of {N} spawns"
    );
    let mut last = 0;
    assert!(
        wait_until(std::time::Duration::from_secs(120), || {
            last = daemon.status().map_or(0, |s| {
                s.iter()
                    .filter(|p| p.state == ProcessState::Running)
                    .count()
            });
            last == N
        }),
        "{last} of {N} RUNNING"
    );
    Ok(())
}
