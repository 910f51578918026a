//! Crash-loop soak: 20 programs dying every 100 ms, restarted at once, for a
//! while. The daemon must not leak (zombies, descriptors, memory) nor burn
//! CPU: 200 deaths and spawns a second are its everyday work.

use crate::SOON;
use integration::{TestDaemon, TestResult, procfs, wait_until_every};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const PROGRAMS: usize = 20;
/// Daemon CPU allowed per second of crash loop: 2 s per 60 s.
const CPU_SHARE: f64 = 2.0 / 60.0;
/// The CPU budget is a performance figure, so it is asserted only in a
/// release build (`soak.sh`, and the benchmark's crash-loop row). Under a
/// plain `cargo test` the daemon is unoptimised (actix, tokio and tracing
/// cost 2.5 to 5 times the CPU there, and more beside the rest of the
/// suite), so the figure is printed, and checked only against a gross
/// regression: ten times the budget.
const BUILD_FACTOR: f64 = if cfg!(debug_assertions) { 10.0 } else { 1.0 };

fn config() -> String {
    let mut text = String::from("programs:\n");
    for i in 0..PROGRAMS {
        text.push_str(&format!(
            "  crash{i:02}:\n    cmd: sleep 0.1\n    starttime: 0\n    autorestart: always\n    \
             maxrestarts: 1000000\n    restartwindow: 1\n    stdout: null\n    stderr: null\n"
        ));
    }
    text
}

struct Sample {
    fds: usize,
    rss_kib: u64,
    zombies: BTreeSet<u32>,
}

fn sample(daemon: &TestDaemon) -> Option<Sample> {
    let pid = daemon.pid();
    Some(Sample {
        fds: procfs::fds(pid)?.len(),
        rss_kib: procfs::rss_kib(pid)?,
        zombies: procfs::children(pid)
            .iter()
            .filter(|p| !p.is_alive())
            .map(|p| p.pid)
            .collect(),
    })
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs the loop until each program restarted `warm_up` times, then for
/// `measured`, which is judged.
fn crash_loop(warm_up: u32, measured: Duration) -> TestResult {
    let daemon = TestDaemon::start(&config())?;
    // Warm-up: every program has restarted `warm_up` times, so buffers and
    // tables have reached their plateau.
    let started = Instant::now();
    let warm = wait_until_every(SOON, Duration::from_millis(50), || {
        daemon
            .status()
            .is_ok_and(|list| list.len() == PROGRAMS && list.iter().all(|p| p.restarts >= warm_up))
    });
    assert!(warm, "not crash-looping:\n{}", daemon.event_log());
    let restarts_before: u32 = daemon.status()?.iter().map(|p| p.restarts).sum();
    let ticks_before = procfs::cpu_ticks(daemon.pid()).ok_or("no daemon stat")?;
    let window = Instant::now();
    let mut samples = Vec::new();
    // A measurement, not a wait: one sample every 100 ms for `measured`.
    wait_until_every(measured, Duration::from_millis(100), || {
        if let Some(s) = sample(&daemon) {
            samples.push(s);
        }
        false
    });
    let ticks = procfs::cpu_ticks(daemon.pid()).ok_or("no daemon stat")? - ticks_before;
    let elapsed = window.elapsed();
    let restarts: u32 = daemon.status()?.iter().map(|p| p.restarts).sum::<u32>() - restarts_before;
    let cpu = ticks as f64 / procfs::ticks_per_second() as f64;
    eprintln!(
        "crash loop: {restarts} restarts in {elapsed:?} (after {:?} warm-up), daemon CPU {cpu:.2} s, {} samples",
        window - started,
        samples.len()
    );
    // It really looped: 20 programs × 10 deaths/s, give or take.
    let expected = PROGRAMS as f64 * 10.0 * elapsed.as_secs_f64();
    assert!(
        f64::from(restarts) > expected * 0.5,
        "only {restarts} restarts, expected about {expected:.0}"
    );
    assert!(samples.len() >= 4, "too few samples");
    // A zombie may exist for an instant between exit and reaping; one seen
    // in two samples 100 ms apart was not reaped.
    // A zombie seen in three samples in a row (200 ms) was not reaped; one
    // seen twice may just be waiting for a daemon that a loaded host did
    // not schedule for 100 ms.
    for three in samples.windows(3) {
        let stuck: Vec<&u32> = three[0]
            .zombies
            .iter()
            .filter(|z| three[1].zombies.contains(z) && three[2].zombies.contains(z))
            .collect();
        assert!(stuck.is_empty(), "unreaped zombies: {stuck:?}");
    }
    let half = samples.len() / 2;
    let (first, second) = samples.split_at(half);
    let fds = |s: &[Sample]| median(s.iter().map(|x| x.fds as u64).collect());
    let rss = |s: &[Sample]| median(s.iter().map(|x| x.rss_kib).collect());
    let flat =
        |a: u64, b: u64, slack: u64| b <= a + (a / 20).max(slack) && a <= b + (b / 20).max(slack);
    // Descriptors come and go with the children (2 pipes each): a little
    // slack for the moment sampled.
    assert!(
        flat(fds(first), fds(second), 4),
        "descriptors: {} then {}",
        fds(first),
        fds(second)
    );
    assert!(
        flat(rss(first), rss(second), 0),
        "RSS: {} KiB then {} KiB",
        rss(first),
        rss(second)
    );
    let budget = CPU_SHARE * BUILD_FACTOR * elapsed.as_secs_f64();
    assert!(
        cpu <= budget,
        "daemon used {cpu:.2} s of CPU in {elapsed:?}; the budget is {budget:.2} s"
    );
    Ok(())
}

#[test]
fn a_crash_loop_leaks_nothing_and_costs_little_short() -> TestResult {
    crash_loop(10, Duration::from_secs(8))
}

#[test]
#[ignore = "slow: run by integration/soak.sh"]
fn a_crash_loop_leaks_nothing_and_costs_little_60s() -> TestResult {
    crash_loop(30, Duration::from_secs(60))
}
