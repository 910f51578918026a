//! Output pipes are always drained: a log file that cannot be written, is
//! deleted, or moved away never blocks the child, and whatever a child
//! writes (binary, one enormous line, nothing at all) changes nothing.

use crate::{SOON, counter, file_until};
use integration::{TestDaemon, TestResult, procfs, wait_until};
use nix::sys::signal::Signal;
use proto::ProcessState;
use std::path::Path;
use std::time::Duration;

/// A shell loop writing ~100-byte numbered lines as fast as it can, and its
/// count every 1000 lines to `progress` (a file it owns, outside the
/// daemon's reach; rewriting it every line would be the bottleneck).
fn fast_writer(progress: &str) -> String {
    format!(
        "sh -c 'i=0; while :; do i=$((i+1)); echo \"line $i {pad}\"; \
         if [ $((i % 1000)) = 0 ]; then echo $i > {progress}; fi; done'",
        pad = "x".repeat(80)
    )
}

fn events_matching(daemon: &TestDaemon, instance: &str, words: &str) -> usize {
    daemon.events(instance, words).len()
}

#[test]
fn a_removed_log_directory_never_blocks_the_writer_and_comes_back() -> TestResult {
    let builder = TestDaemon::builder()?;
    std::fs::create_dir(builder.dir().join("out"))?;
    let cmd = fast_writer("{dir}/progress");
    let daemon = builder
        .config(&format!(
            "programs:\n  writer:\n    cmd: \"{}\"\n    starttime: 0\n    stdout: out/writer.log\n",
            cmd.replace('"', "\\\"")
        ))
        .start()?;
    daemon.running_pid("writer:0")?;
    let log = daemon.path("out/writer.log");
    let progress = daemon.path("progress");
    file_until(&log, "received output", |b| b.len() > 100_000)?;

    std::fs::remove_dir_all(daemon.path("out"))?;
    let at_removal = counter(&progress);
    // Far more than a pipe holds (64 KiB, ~600 of these lines): a writer
    // whose output is not drained would be stuck long before.
    assert!(
        wait_until(SOON, || counter(&progress) > at_removal + 20_000),
        "the writer stalled at line {} after the directory went away",
        counter(&progress)
    );
    let lost = "cannot be recreated";
    assert!(
        wait_until(SOON, || events_matching(&daemon, "writer:0", lost) >= 1),
        "no event about the lost file:\n{}",
        daemon.event_log()
    );
    assert!(
        !daemon.path("out").exists(),
        "not the daemon's directory to create"
    );
    let later = counter(&progress);
    assert!(wait_until(SOON, || counter(&progress) > later + 20_000));
    assert_eq!(
        events_matching(&daemon, "writer:0", lost),
        1,
        "logged once, not per write:\n{}",
        daemon.event_log()
    );

    std::fs::create_dir(daemon.path("out"))?;
    let at_recreation = counter(&progress);
    let back = file_until(&log, "came back with new lines", |b| {
        String::from_utf8_lossy(b)
            .lines()
            .filter_map(line_number)
            .any(|n| n > at_recreation)
    })?;
    // Only output from after the recreation: nothing buffered up meanwhile.
    let first = String::from_utf8_lossy(&back)
        .lines()
        .find_map(line_number)
        .ok_or("no numbered line")?;
    assert!(
        first > at_removal,
        "line {first} was written before the removal"
    );
    assert!(
        wait_until(SOON, || daemon.event_log().lines().any(|l| l
            .contains("writing again")
            && l.contains("out/writer.log"))),
        "no event about the file being back:\n{}",
        daemon.event_log()
    );
    Ok(())
}

/// `line N xxx...` to N.
fn line_number(line: &str) -> Option<u64> {
    line.strip_prefix("line ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_daemons_own_logs_directory_is_recreated_at_once() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  ticker:
    cmd: "sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done'"
    starttime: 0
"#,
    )?;
    daemon.running_pid("ticker:0")?;
    let log = daemon.path("logs/ticker-0.stdout.log");
    file_until(&log, "ticked", |b| b.ends_with(b"tick 3\n") || b.len() > 30)?;
    std::fs::remove_dir_all(daemon.path("logs"))?;
    file_until(&log, "came back", |b| {
        b.starts_with(b"tick ") && b.ends_with(b"\n")
    })?;
    assert!(
        wait_until(SOON, || events_matching(
            &daemon,
            "ticker:0",
            "recreated it"
        ) == 1),
        "{}",
        daemon.event_log()
    );
    Ok(())
}

#[test]
fn a_full_disk_drops_output_without_blocking_and_says_so_once() -> TestResult {
    // The daemon cannot write a file past 256 KiB: its writes fail (EFBIG)
    // as they would on a full disk. (Not /dev/full: output goes to regular
    // files only.)
    let daemon = TestDaemon::builder()?
        .file_size_limit(256 * 1024)
        .block_and_ignore(libc::SIGXFSZ)
        .config(&format!(
            r#"
programs:
  full:
    cmd: "sh -c 'i=0; while [ $i -lt 5000 ]; do i=$((i+1)); echo line $i {pad}; done; echo > {{dir}}/done; exec sleep 1000'"
    starttime: 0
"#,
            pad = "y".repeat(90)
        ))
        .start()?;
    // 500 KB into a pipe nobody could write anywhere: it only gets through
    // if the daemon keeps draining.
    assert!(
        wait_until(SOON, || daemon.path("done").exists()),
        "the writer is blocked:\n{}",
        daemon.event_log()
    );
    assert_eq!(daemon.state_of("full:0")?, Some(ProcessState::Running));
    assert_eq!(
        events_matching(&daemon, "full:0", "cannot write output"),
        1,
        "{}",
        daemon.event_log()
    );
    Ok(())
}

fn odd_writers(huge_bytes: u64) -> TestResult {
    let daemon = TestDaemon::start(&format!(
        r#"
programs:
  garbage:
    cmd: "sh -c 'head -c 1000000 /dev/urandom; echo; echo after-garbage; exec sleep 1000'"
    starttime: 0
  huge:
    cmd: "sh -c 'head -c {huge_bytes} /dev/zero | tr \"\\\\0\" x; echo; echo after-huge; exec sleep 1000'"
    starttime: 0
  closer:
    cmd: "sh -c 'exec >&-; echo still-here >&2; exec sleep 1000'"
"#
    ))?;
    let garbage = daemon.path("logs/garbage-0.stdout.log");
    file_until(&garbage, "got all the garbage", |b| {
        b.ends_with(b"\nafter-garbage\n")
    })?;
    assert_eq!(std::fs::metadata(&garbage)?.len(), 1_000_000 + 1 + 14);
    let huge = daemon.path("logs/huge-0.stdout.log");
    file_until(&huge, "got the whole line", |b| {
        b.ends_with(b"\nafter-huge\n")
    })?;
    assert_eq!(std::fs::metadata(&huge)?.len(), huge_bytes + 1 + 11);
    // A line that long costs the daemon no memory: it never holds lines.
    let rss = procfs::rss_kib(daemon.pid()).ok_or("no daemon RSS")?;
    assert!(
        rss < 64 * 1024,
        "daemon RSS {rss} KiB after a {huge_bytes}-byte line"
    );
    let out = daemon.ctl(["tail", "-n", "1", "huge"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    assert_eq!(out.stdout.trim_end(), "after-huge");
    // Closing stdout early: still RUNNING after its starttime, stderr kept.
    daemon.wait_for_state("closer:0", ProcessState::Running, SOON)?;
    file_until(
        &daemon.path("logs/closer-0.stderr.log"),
        "kept stderr",
        |b| b == b"still-here\n",
    )?;
    for name in ["garbage:0", "huge:0", "closer:0"] {
        assert_eq!(
            daemon.state_of(name)?,
            Some(ProcessState::Running),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn binary_garbage_a_huge_line_and_a_closed_stdout_change_nothing() -> TestResult {
    odd_writers(10_000_000)
}

#[test]
#[ignore = "slow: run by integration/soak.sh"]
fn binary_garbage_a_100_mb_line_and_a_closed_stdout_change_nothing() -> TestResult {
    odd_writers(100_000_000)
}

#[test]
fn sigusr2_recreates_a_moved_event_log_and_output_file() -> TestResult {
    let daemon = TestDaemon::start(
        r#"
programs:
  ticker:
    cmd: "sh -c 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done'"
    starttime: 0
"#,
    )?;
    daemon.running_pid("ticker:0")?;
    let log = daemon.path("logs/ticker-0.stdout.log");
    file_until(&log, "ticked", |b| b.len() > 20)?;
    let events = daemon.path(integration::EVENT_LOG_FILE);
    let rotate = |path: &Path| std::fs::rename(path, path.with_extension("log.1"));
    rotate(&events)?;
    rotate(&log)?;
    daemon.signal(Signal::SIGUSR2)?;
    file_until(&events, "was recreated with the reopen line", |b| {
        String::from_utf8_lossy(b).contains("log files reopened")
    })?;
    file_until(&log, "was recreated with new ticks", |b| {
        b.starts_with(b"tick ") && b.ends_with(b"\n")
    })?;
    let old = std::fs::read_to_string(events.with_extension("log.1"))?;
    assert!(
        !old.contains("log files reopened"),
        "written to the moved file"
    );
    // The new event log receives later events too.
    let out = daemon.ctl(["stop", "ticker"])?;
    assert_eq!(out.code, Some(0), "{}", out.combined());
    file_until(&events, "got the stop", |b| {
        String::from_utf8_lossy(b).contains("ticker:0")
    })?;
    Ok(())
}

#[test]
fn a_stderr_nobody_reads_never_freezes_the_daemon_and_the_dropped_lines_are_counted() -> TestResult
{
    // A crash loop logs a few lines per restart; the harness stops reading
    // the daemon's stderr (a 64 KiB pipe, full after ~800 lines).
    let daemon = TestDaemon::start(
        r#"
programs:
  flappy:
    cmd: "true"
    starttime: 0
    autorestart: always
    maxrestarts: 100000000
"#,
    )?;
    daemon.running_pid("flappy:0").ok();
    daemon.pause_stderr();
    let lines = || daemon.event_log().lines().count();
    let start = lines();
    assert!(
        wait_until(Duration::from_secs(60), || lines() > start + 2500),
        "the event log stopped growing at {} lines: {}",
        lines(),
        daemon.diagnostics()
    );
    let restarts = |d: &TestDaemon| d.info("flappy:0").ok().flatten().map(|i| i.restarts);
    let before = restarts(&daemon).ok_or("no answer to status while stderr is full")?;
    assert!(
        wait_until(SOON, || restarts(&daemon).is_some_and(|n| n > before)),
        "restarts stopped at {before}"
    );
    daemon.resume_stderr();
    assert!(
        wait_until(SOON, || daemon.stderr_text().contains("lines dropped")),
        "no drop count on stderr; it ends with:\n{}",
        daemon
            .stderr_lines()
            .iter()
            .rev()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}
