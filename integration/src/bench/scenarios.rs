//! The scenarios: each starts a supervisor on a fleet, measures it from
//! outside, records one JSON line per figure, and lets the daemon (and every
//! process it started) be killed when it goes out of scope.
//!
//! Groups (the names `--only` takes): `restart_latency`, `fleet` (one daemon
//! with N `sleep`s gives `spawn_all_running`, `daemon_rss`, `idle_cpu`,
//! `status`, `stop_all`), `stdout_capture`, `crash_loop`, `reload_200`,
//! `reload_1000`, `scale_10000`, and the readiness groups, taskmaster only
//! (supervisord has no readiness probes): `ready_tcp_1000`,
//! `health_http_1000`, `ready_start_300ms`. Waiting is always a poll against a deadline;
//! the only plain sleeps are the measurement windows themselves (idle CPU,
//! crash loop), where sleeping *is* the measurement.

use super::fleet::{Fleet, Output, Program, Restart};
use super::report::Recorder;
use super::sys::{self, median, percentile};
use super::{BenchError, Daemon, Impl, Instance, LAUNCH_DEADLINE, Launcher};
use crate::wait_until_every;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every scenario group, in running order.
pub const GROUPS: &[&str] = &[
    "restart_latency",
    "fleet",
    "stdout_capture",
    "crash_loop",
    "reload_200",
    "reload_1000",
    "scale_10000",
    "ready_tcp_1000",
    "health_http_1000",
    "ready_start_300ms",
];

/// The groups supervisord cannot run: it has no readiness or health probes
/// (its column reads n/a).
pub const TASKMASTER_ONLY: &[&str] = &["ready_tcp_1000", "health_http_1000", "ready_start_300ms"];

/// The scenario names of the `fleet` group (accepted by `--only` too).
pub const FLEET_SCENARIOS: &[&str] = &[
    "spawn_all_running",
    "daemon_rss",
    "idle_cpu",
    "status",
    "stop_all",
];

/// Sizes and durations; `--quick` shrinks the long ones.
#[derive(Debug, Clone)]
pub struct Params {
    pub quick: bool,
    /// Crash-restart samples for `restart_latency`.
    pub restart_samples: usize,
    /// How long a `stamp` lives before it exits 1.
    pub crash_after_ms: u64,
    /// Instances of the `fleet` group.
    pub n: usize,
    pub idle_window: Duration,
    pub status_reps: usize,
    pub stdout_bytes: u64,
    pub stdout_reps: usize,
    pub crash_programs: usize,
    pub crash_window: Duration,
    pub reload_small: usize,
    pub reload_big: usize,
    pub scale_n: usize,
    /// How long the big fleet may take to come up before we give up.
    pub scale_deadline: Duration,
    /// Instances of `ready_tcp_1000` and `health_http_1000`.
    pub readiness_n: usize,
    /// The steady-state window of `health_http_1000`.
    pub health_window: Duration,
    /// `start`s timed by `ready_start_300ms`.
    pub ready_start_reps: usize,
}

impl Params {
    pub fn new(quick: bool) -> Self {
        Params {
            quick,
            restart_samples: if quick { 30 } else { 150 },
            crash_after_ms: 100,
            n: 1000,
            idle_window: Duration::from_secs(if quick { 5 } else { 30 }),
            status_reps: if quick { 5 } else { 20 },
            stdout_bytes: if quick { 256 << 20 } else { 1 << 30 },
            stdout_reps: if quick { 1 } else { 3 },
            crash_programs: 20,
            crash_window: Duration::from_secs(if quick { 10 } else { 60 }),
            reload_small: 200,
            reload_big: 1000,
            scale_n: if quick { 2000 } else { 10_000 },
            // Six times the target (10 s): supervisord never comes up here
            // (fd limit), and waiting longer for it would push the whole
            // run past its 10-minute budget.
            scale_deadline: Duration::from_secs(if quick { 30 } else { 60 }),
            readiness_n: if quick { 100 } else { 1000 },
            health_window: Duration::from_secs(if quick { 3 } else { 10 }),
            ready_start_reps: if quick { 3 } else { 9 },
        }
    }
}

/// What every scenario shares.
#[derive(Debug)]
pub struct Ctx {
    pub params: Params,
    /// The `stamp` helper.
    pub stamp: PathBuf,
    /// The `listen` helper (binds a port late, answers HTTP 200).
    pub listen: PathBuf,
    /// Stamp files and baseline output, removed at the end.
    pub work: tempfile::TempDir,
    /// Spawning `stamp` directly: the floor of any restart latency (ms).
    exec_floor: Option<(f64, f64)>,
}

impl Ctx {
    pub fn new(params: Params, stamp: PathBuf, listen: PathBuf) -> Result<Self, BenchError> {
        let work = tempfile::Builder::new()
            .prefix("taskmaster-bench-")
            .tempdir()
            .map_err(|e| BenchError::io("cannot create a temporary directory", e))?;
        Ok(Ctx {
            params,
            stamp,
            listen,
            work,
            exec_floor: None,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn stamp_str(&self) -> String {
        self.stamp.to_string_lossy().into_owned()
    }
}

/// Runs group `group` against `launcher`, recording into `rec`.
pub fn run_group(ctx: &mut Ctx, group: &str, launcher: &dyn Launcher, rec: &mut Recorder) {
    let who = launcher.kind();
    if who == Impl::Supervisord && TASKMASTER_ONLY.contains(&group) {
        return;
    }
    let result = match group {
        "restart_latency" => restart_latency(ctx, launcher, rec),
        "fleet" => fleet(ctx, launcher, rec),
        "stdout_capture" => stdout_capture(ctx, launcher, rec),
        "crash_loop" => crash_loop(ctx, launcher, rec),
        "reload_200" => reload(ctx, launcher, rec, "reload_200", ctx.params.reload_small),
        "reload_1000" => reload(ctx, launcher, rec, "reload_1000", ctx.params.reload_big),
        "scale_10000" => scale(ctx, launcher, rec),
        "ready_tcp_1000" => ready_tcp(ctx, launcher, rec),
        "health_http_1000" => health_http(ctx, launcher, rec),
        "ready_start_300ms" => ready_start(ctx, launcher, rec),
        other => Err(BenchError::Failed(format!("no scenario group {other}"))),
    };
    if let Err(e) = result {
        rec.err(group, who, &e.to_string());
    }
}

/// Polls the daemon's API until `expected` instances are RUNNING.
fn wait_all_running(
    d: &dyn Daemon,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<Instance>, BenchError> {
    let mut last = Vec::new();
    let mut error = None;
    let ok = wait_until_every(timeout, Duration::from_millis(2), || match d.status() {
        Ok(list) => {
            last = list;
            last.len() == expected && last.iter().all(Instance::running)
        }
        Err(e) => {
            error = Some(e.to_string());
            false
        }
    });
    if ok {
        return Ok(last);
    }
    let running = last.iter().filter(|i| i.running()).count();
    Err(BenchError::Timeout(format!(
        "{running}/{expected} RUNNING after {timeout:?} (last error: {error:?})"
    )))
}

/// One line of a stamp file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    exit: bool,
    mono_ns: u128,
    pid: u32,
}

fn read_stamps(path: &Path) -> Vec<Stamp> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut stamps: Vec<Stamp> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let exit = match w.next()? {
                "start" => false,
                "exit" => true,
                _ => return None,
            };
            let mono_ns = w.next()?.parse().ok().filter(|n| *n > 0)?;
            let _real = w.next()?;
            let pid = w.next()?.parse().ok()?;
            Some(Stamp { exit, mono_ns, pid })
        })
        .collect();
    stamps.sort_by_key(|s| s.mono_ns);
    stamps
}

fn count_starts(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start "))
        .count()
}

/// Exit-to-next-start gaps (ms) of one instance's stamps, for exits whose
/// time is in `window` (monotonic ns).
fn restart_gaps(stamps: &[Stamp], window: (u128, u128)) -> Vec<f64> {
    stamps
        .windows(2)
        .filter(|w| w[0].exit && !w[1].exit && w[0].pid != w[1].pid)
        .filter(|w| w[0].mono_ns >= window.0 && w[0].mono_ns <= window.1)
        .map(|w| (w[1].mono_ns - w[0].mono_ns) as f64 / 1e6)
        .collect()
}

fn latency_metrics(mut gaps: Vec<f64>, m: &mut Map<String, Value>) {
    gaps.sort_by(f64::total_cmp);
    m.insert("samples".into(), json!(gaps.len()));
    for (key, p) in [("p50_ms", 50.0), ("p99_ms", 99.0), ("max_ms", 100.0)] {
        m.insert(key.into(), json!(percentile(&gaps, p).map(round3)));
    }
    let mean = if gaps.is_empty() {
        None
    } else {
        Some(round3(gaps.iter().sum::<f64>() / gaps.len() as f64))
    };
    m.insert("mean_ms".into(), json!(mean));
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The exec floor: `stamp` spawned straight from here, from the call to its
/// first line (p50, p99 in ms). No supervisor can restart faster.
fn exec_floor(ctx: &mut Ctx) -> Result<(f64, f64), BenchError> {
    if let Some(f) = ctx.exec_floor {
        return Ok(f);
    }
    let file = ctx.path("exec-floor.stamps");
    let mut gaps = Vec::new();
    for _ in 0..100 {
        let before = sys::monotonic_ns();
        let status = std::process::Command::new(&ctx.stamp)
            .arg(&file)
            .arg("0")
            .status()
            .map_err(|e| BenchError::io("cannot run stamp", e))?;
        if status.code() != Some(1) {
            return Err(BenchError::Failed(format!("stamp exited {status}")));
        }
        let start = read_stamps(&file)
            .into_iter()
            .rfind(|s| !s.exit)
            .ok_or_else(|| BenchError::Failed("stamp wrote nothing".into()))?;
        gaps.push(start.mono_ns.saturating_sub(before) as f64 / 1e6);
    }
    gaps.sort_by(f64::total_cmp);
    let floor = (
        round3(percentile(&gaps, 50.0).unwrap_or(0.0)),
        round3(percentile(&gaps, 99.0).unwrap_or(0.0)),
    );
    ctx.exec_floor = Some(floor);
    Ok(floor)
}

/// Restart latency of one crashing program: `stamp` exits 1 after 100 ms,
/// autorestart unexpected, starttime 0.
fn restart_latency(
    ctx: &mut Ctx,
    launcher: &dyn Launcher,
    rec: &mut Recorder,
) -> Result<(), BenchError> {
    let floor = exec_floor(ctx)?;
    let who = launcher.kind();
    let file = ctx.path(&format!("restart-{who}.stamps"));
    let after = ctx.params.crash_after_ms.to_string();
    let stamp = ctx.stamp_str();
    let out = file.to_string_lossy().into_owned();
    let fleet = Fleet::new(vec![Program::new("crash", &[&stamp, &out, &after], 1)]);
    let samples = ctx.params.restart_samples;
    let d = launcher.launch(&fleet, LAUNCH_DEADLINE)?;
    // Twice the time the samples take at no latency: a supervisor that
    // backs off gets fewer samples, which the line says (`complete`).
    let budget = Duration::from_millis(2 * samples as u64 * (ctx.params.crash_after_ms + 50))
        + Duration::from_secs(5);
    let t0 = Instant::now();
    let done = wait_until_every(budget, Duration::from_millis(20), || {
        count_starts(&file) > samples
    });
    let elapsed = t0.elapsed().as_secs_f64();
    drop(d);
    let mut gaps = restart_gaps(&read_stamps(&file), (0, u128::MAX));
    gaps.truncate(samples);
    if gaps.is_empty() {
        return Err(BenchError::Timeout(format!("no restart within {budget:?}")));
    }
    let mut m = Map::new();
    m.insert("exit_after_ms".into(), json!(ctx.params.crash_after_ms));
    m.insert("complete".into(), json!(done));
    m.insert(
        "restarts_per_s".into(),
        json!(round3(gaps.len() as f64 / elapsed)),
    );
    latency_metrics(gaps, &mut m);
    m.insert("exec_floor_p50_ms".into(), json!(floor.0));
    m.insert("exec_floor_p99_ms".into(), json!(floor.1));
    rec.ok("restart_latency", who, m);
    Ok(())
}

/// N `sleep`s: time to all RUNNING, memory, idle CPU, status, stop all.
fn fleet(ctx: &mut Ctx, launcher: &dyn Launcher, rec: &mut Recorder) -> Result<(), BenchError> {
    let who = launcher.kind();
    let p = ctx.params.clone();
    let n = p.n;
    let fleet = Fleet::new(vec![Program::new("sleep", &["sleep", "100000"], n as u32)]);
    let step = |rec: &mut Recorder, name: &str, r: Result<Map<String, Value>, BenchError>| match r {
        Ok(m) => {
            rec.ok(name, who, m);
            true
        }
        Err(e) => {
            rec.err(name, who, &e.to_string());
            false
        }
    };

    let t0 = Instant::now();
    let d = launcher.launch(&fleet, LAUNCH_DEADLINE)?;
    let up = come_up(d.as_ref(), n, t0, Duration::from_secs(120));
    if !step(rec, "spawn_all_running", up) {
        return Ok(());
    }
    let pid = d.pid();
    let rss_start = sys::rss_mib(pid);

    // Idle: let the start-up's last timers fire, then touch nothing.
    std::thread::sleep(Duration::from_secs(1));
    let c0 = sys::cpu_ticks(pid);
    std::thread::sleep(p.idle_window);
    let c1 = sys::cpu_ticks(pid);
    let idle = match (c0, c1) {
        (Some(a), Some(b)) => {
            let cpu = (b - a) as f64 / sys::ticks_per_second() as f64;
            let mut m = Map::new();
            m.insert("n".into(), json!(n));
            m.insert("window_s".into(), json!(p.idle_window.as_secs_f64()));
            m.insert("ticks".into(), json!(b - a));
            m.insert("cpu_s".into(), json!(cpu));
            m.insert(
                "cpu_s_per_30s".into(),
                json!(round3(cpu * 30.0 / p.idle_window.as_secs_f64())),
            );
            Ok(m)
        }
        _ => Err(BenchError::Failed("daemon vanished".into())),
    };
    step(rec, "idle_cpu", idle);

    let mut m = Map::new();
    m.insert("n".into(), json!(n));
    m.insert("rss_mib".into(), json!(sys::rss_mib(pid).map(round3)));
    m.insert("rss_after_start_mib".into(), json!(rss_start.map(round3)));
    m.insert(
        "peak_rss_mib".into(),
        json!(sys::peak_rss_mib(pid).map(round3)),
    );
    m.insert("fds".into(), json!(sys::fd_count(pid)));
    m.insert("threads".into(), json!(sys::threads(pid)));
    step(rec, "daemon_rss", Ok(m));

    let st = status_times(d.as_ref(), n, p.status_reps);
    step(rec, "status", st);

    let stop = stop_all(d.as_ref(), n);
    step(rec, "stop_all", stop);
    Ok(())
}

/// From `t0` (before the launch) to N children forked, then N RUNNING.
fn come_up(
    d: &dyn Daemon,
    n: usize,
    t0: Instant,
    deadline: Duration,
) -> Result<Map<String, Value>, BenchError> {
    let api_up = t0.elapsed();
    let pid = d.pid();
    let until = t0 + deadline;
    let left = || until.saturating_duration_since(Instant::now());
    let forked = wait_until_every(left(), Duration::from_millis(1), || {
        sys::children(pid).len() >= n
    });
    let forked_at = t0.elapsed();
    if !forked {
        return Err(BenchError::Timeout(format!(
            "{}/{n} children after {deadline:?}",
            sys::children(pid).len()
        )));
    }
    wait_all_running(d, n, left())?;
    let running = t0.elapsed();
    let cpu = sys::cpu_seconds(pid);
    let mut m = Map::new();
    m.insert("n".into(), json!(n));
    m.insert("all_running_s".into(), json!(round3(running.as_secs_f64())));
    m.insert(
        "all_forked_s".into(),
        json!(round3(forked_at.as_secs_f64())),
    );
    m.insert("api_up_s".into(), json!(round3(api_up.as_secs_f64())));
    m.insert("daemon_cpu_s".into(), json!(cpu.map(round3)));
    m.insert(
        "sleeping_children".into(),
        json!(sys::live_children_named(pid, "sleep")),
    );
    Ok(m)
}

/// The control client's `status` (median of `reps`), and the API's.
fn status_times(d: &dyn Daemon, n: usize, reps: usize) -> Result<Map<String, Value>, BenchError> {
    // A slow client gets fewer runs (at least 3) rather than minutes.
    let budget = Instant::now() + Duration::from_secs(15);
    let mut cli = Vec::new();
    let mut running_listed = 0;
    for i in 0..reps {
        if i >= 3 && Instant::now() > budget {
            break;
        }
        let t = d.cli_status()?;
        running_listed = t.stdout.matches("RUNNING").count();
        cli.push(t.elapsed.as_secs_f64() * 1e3);
    }
    if running_listed != n {
        return Err(BenchError::Failed(format!(
            "status listed {running_listed} RUNNING instances, not {n}"
        )));
    }
    let budget = Instant::now() + Duration::from_secs(10);
    let mut api = Vec::new();
    for i in 0..reps {
        if i >= 3 && Instant::now() > budget {
            break;
        }
        let t = Instant::now();
        d.status()?;
        api.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut m = Map::new();
    m.insert("n".into(), json!(n));
    m.insert("reps".into(), json!(cli.len()));
    m.insert("cli_median_ms".into(), json!(median(&cli).map(round3)));
    m.insert(
        "cli_min_ms".into(),
        json!(cli.iter().copied().reduce(f64::min).map(round3)),
    );
    m.insert(
        "cli_max_ms".into(),
        json!(cli.iter().copied().reduce(f64::max).map(round3)),
    );
    m.insert("api_median_ms".into(), json!(median(&api).map(round3)));
    Ok(m)
}

/// `stop all`: the client's wall time, and whether the kernel agrees.
fn stop_all(d: &dyn Daemon, n: usize) -> Result<Map<String, Value>, BenchError> {
    let pid = d.pid();
    let t = d.cli_stop_all()?;
    let alive_after = sys::live_children_named(pid, "sleep");
    let gone = Instant::now();
    wait_until_every(Duration::from_secs(30), Duration::from_millis(5), || {
        sys::live_children_named(pid, "sleep") == 0
    });
    let mut m = Map::new();
    m.insert("n".into(), json!(n));
    m.insert("wall_s".into(), json!(round3(t.elapsed.as_secs_f64())));
    m.insert("alive_after_reply".into(), json!(alive_after));
    m.insert(
        "all_gone_after_reply_s".into(),
        json!(round3(gone.elapsed().as_secs_f64())),
    );
    Ok(m)
}

/// A `head -c N /dev/zero` child whose stdout the daemon captures, against
/// `head | cat > file` run by this process.
fn stdout_capture(
    ctx: &mut Ctx,
    launcher: &dyn Launcher,
    rec: &mut Recorder,
) -> Result<(), BenchError> {
    let who = launcher.kind();
    let bytes = ctx.params.stdout_bytes;
    let reps = ctx.params.stdout_reps;
    let size = bytes.to_string();
    let files: Vec<PathBuf> = (0..reps)
        .map(|i| ctx.path(&format!("capture-{who}-{i}.out")))
        .collect();
    let programs = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut p = Program::new(format!("gen{i}"), &["head", "-c", &size, "/dev/zero"], 1);
            p.autostart = false;
            p.restart = Restart::Never;
            p.stdout = Output::File(f.clone());
            p.stderr = Output::Null;
            p
        })
        .collect();
    let d = launcher.launch(&Fleet::new(programs), LAUNCH_DEADLINE)?;
    let pid = d.pid();
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut baselines = Vec::new();
    let mut cat_cpus = Vec::new();
    for (i, f) in files.iter().enumerate() {
        // Interleaved, so that both see the same machine.
        let (secs, cat_cpu) = pipe_baseline(ctx, bytes, i)?;
        baselines.push(secs);
        cat_cpus.push(cat_cpu);
        let c0 = sys::cpu_ticks(pid).unwrap_or(0);
        let t0 = Instant::now();
        d.start_program(&format!("gen{i}"))?;
        let done = wait_until_every(Duration::from_secs(300), Duration::from_millis(1), || {
            std::fs::metadata(f).is_ok_and(|m| m.len() >= bytes)
        });
        let t = t0.elapsed().as_secs_f64();
        let c1 = sys::cpu_ticks(pid).unwrap_or(0);
        let got = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(f);
        if !done {
            return Err(BenchError::Timeout(format!(
                "{got} of {bytes} bytes captured after 300 s"
            )));
        }
        times.push(t);
        cpus.push(c1.saturating_sub(c0) as f64 / sys::ticks_per_second() as f64);
    }
    drop(d);
    let baseline = median(&baselines).unwrap_or(f64::NAN);
    let t = median(&times).unwrap_or(f64::NAN);
    let cpu = median(&cpus).unwrap_or(f64::NAN);
    let cat_cpu = median(&cat_cpus).unwrap_or(f64::NAN);
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let mut m = Map::new();
    m.insert("bytes".into(), json!(bytes));
    m.insert("reps".into(), json!(reps));
    m.insert("seconds".into(), json!(round3(t)));
    m.insert(
        "mib_per_s".into(),
        json!(round3(bytes as f64 / t / 1048576.0)),
    );
    m.insert("baseline_seconds".into(), json!(round3(baseline)));
    m.insert(
        "baseline_mib_per_s".into(),
        json!(round3(bytes as f64 / baseline / 1048576.0)),
    );
    m.insert(
        "pct_of_baseline".into(),
        json!(round3(baseline / t * 100.0)),
    );
    m.insert("daemon_cpu_s".into(), json!(round3(cpu)));
    m.insert("daemon_cpu_s_per_gib".into(), json!(round3(cpu / gib)));
    m.insert("cat_cpu_s_per_gib".into(), json!(round3(cat_cpu / gib)));
    rec.ok("stdout_capture", who, m);
    Ok(())
}

/// `head -c N /dev/zero | cat > FILE`, run `i`: its seconds, and `cat`'s
/// CPU seconds (user + system, from `wait4`). `cat` does what the daemon
/// does with a child's output, a pipe drained into a file, so its CPU is the
/// kernel's price of that copy on this machine.
fn pipe_baseline(ctx: &Ctx, bytes: u64, i: usize) -> Result<(f64, f64), BenchError> {
    use std::process::{Command, Stdio};
    let f = ctx.path(&format!("baseline-{i}.out"));
    let out = std::fs::File::create(&f).map_err(|e| BenchError::io("cannot create", e))?;
    let t0 = Instant::now();
    let mut head = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| BenchError::io("cannot run head", e))?;
    let Some(pipe) = head.stdout.take() else {
        return Err(BenchError::Failed("head has no stdout pipe".into()));
    };
    let cat = Command::new("cat")
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::from(out))
        .spawn()
        .map_err(|e| BenchError::io("cannot run cat", e))?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child
    // `cat`, which std never waits for (the `Child` is only dropped).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(cat.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let elapsed = t0.elapsed().as_secs_f64();
    let head_status = head
        .wait()
        .map_err(|e| BenchError::io("cannot wait for head", e))?;
    let got = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&f);
    if reaped < 0 || status != 0 || !head_status.success() || got != bytes {
        return Err(BenchError::Failed(format!(
            "baseline pipe wrote {got} bytes (cat status {status}, head {head_status})"
        )));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((elapsed, secs(usage.ru_utime) + secs(usage.ru_stime)))
}

/// 20 programs each dying every 100 ms: daemon CPU over the window and the
/// restart latencies inside it.
fn crash_loop(
    ctx: &mut Ctx,
    launcher: &dyn Launcher,
    rec: &mut Recorder,
) -> Result<(), BenchError> {
    let who = launcher.kind();
    let k = ctx.params.crash_programs;
    let window = ctx.params.crash_window;
    let after = ctx.params.crash_after_ms.to_string();
    let stamp = ctx.stamp_str();
    let files: Vec<PathBuf> = (0..k)
        .map(|i| ctx.path(&format!("crash-{who}-{i:02}.stamps")))
        .collect();
    let programs = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let file = f.to_string_lossy().into_owned();
            Program::new(format!("c{i:02}"), &[&stamp, &file, &after], 1)
        })
        .collect();
    let d = launcher.launch(&Fleet::new(programs), LAUNCH_DEADLINE)?;
    let pid = d.pid();
    let looping = wait_until_every(Duration::from_secs(30), Duration::from_millis(20), || {
        files.iter().all(|f| count_starts(f) >= 2)
    });
    if !looping {
        return Err(BenchError::Timeout(
            "not every program restarted within 30 s".into(),
        ));
    }
    let m0 = sys::monotonic_ns();
    let c0 = sys::cpu_ticks(pid).unwrap_or(0);
    std::thread::sleep(window);
    let c1 = sys::cpu_ticks(pid).unwrap_or(0);
    let m1 = sys::monotonic_ns();
    let rss = sys::rss_mib(pid);
    drop(d);
    let gaps: Vec<f64> = files
        .iter()
        .flat_map(|f| restart_gaps(&read_stamps(f), (m0, m1)))
        .collect();
    let cpu = c1.saturating_sub(c0) as f64 / sys::ticks_per_second() as f64;
    let secs = window.as_secs_f64();
    let mut m = Map::new();
    m.insert("programs".into(), json!(k));
    m.insert("window_s".into(), json!(secs));
    m.insert("cpu_s".into(), json!(round3(cpu)));
    m.insert("cpu_s_per_60s".into(), json!(round3(cpu * 60.0 / secs)));
    m.insert(
        "restarts_per_s".into(),
        json!(round3(gaps.len() as f64 / secs)),
    );
    m.insert("rss_mib".into(), json!(rss.map(round3)));
    latency_metrics(gaps, &mut m);
    rec.ok("crash_loop", who, m);
    Ok(())
}

/// What a reload must do to one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Untouched: same pid.
    Kept(u32),
    /// Restarted: a new pid, the old one dead.
    Replaced(u32),
    /// Removed: gone from status, its process dead.
    Gone(u32),
    /// Added: RUNNING.
    New,
}

/// `count` one-instance programs; the reload changes the first one's `cmd`
/// and, for the small fleet, removes the last and adds one.
fn reload(
    ctx: &mut Ctx,
    launcher: &dyn Launcher,
    rec: &mut Recorder,
    scenario: &str,
    count: usize,
) -> Result<(), BenchError> {
    let who = launcher.kind();
    let name = |i: usize| format!("p{i:04}");
    let programs: Vec<Program> = (0..count)
        .map(|i| Program::new(name(i), &["sleep", "100000"], 1))
        .collect();
    let mut d = launcher.launch(&Fleet::new(programs.clone()), LAUNCH_DEADLINE)?;
    let before = wait_all_running(d.as_ref(), count, Duration::from_secs(120))?;
    let pids: BTreeMap<String, u32> = before
        .iter()
        .filter_map(|i| Some((i.program.clone(), i.pid?)))
        .collect();
    let pid_of = |p: &str| {
        pids.get(p)
            .copied()
            .ok_or_else(|| BenchError::Failed(format!("{p} has no pid")))
    };

    let mut next = programs;
    let mut expect: BTreeMap<String, Expect> = BTreeMap::new();
    for p in &next {
        expect.insert(p.name.clone(), Expect::Kept(pid_of(&p.name)?));
    }
    next[0].argv = vec!["sleep".into(), "100001".into()];
    expect.insert(name(0), Expect::Replaced(pid_of(&name(0))?));
    let small = ctx.params.reload_small == count;
    if small {
        let last = name(count - 1);
        next.pop();
        expect.insert(last.clone(), Expect::Gone(pid_of(&last)?));
        next.push(Program::new(name(count), &["sleep", "100000"], 1));
        expect.insert(name(count), Expect::New);
    }

    let t0 = Instant::now();
    d.reload(&Fleet::new(next))?;
    let trigger = t0.elapsed();
    let mut kept = 0;
    let mut unmet: Vec<String> = Vec::new();
    let mut error = None;
    let converged = wait_until_every(Duration::from_secs(60), Duration::from_millis(1), || {
        let list = match d.status() {
            Ok(l) => l,
            Err(e) => {
                error = Some(e.to_string());
                return false;
            }
        };
        let now: BTreeMap<&str, &Instance> = list.iter().map(|i| (i.program.as_str(), i)).collect();
        kept = 0;
        unmet.clear();
        let mut done = true;
        for (program, want) in &expect {
            let have = now.get(program.as_str());
            let ok = match *want {
                Expect::Kept(pid) => {
                    let same = have.is_some_and(|i| i.pid == Some(pid));
                    kept += usize::from(same);
                    have.is_some_and(|i| i.running())
                }
                Expect::Replaced(old) => {
                    have.is_some_and(|i| i.running() && i.pid != Some(old))
                        && !crate::procfs::is_alive(old)
                }
                Expect::Gone(old) => have.is_none() && !crate::procfs::is_alive(old),
                Expect::New => have.is_some_and(|i| i.running()),
            };
            if !ok && unmet.len() < 5 {
                unmet.push(format!("{program}: want {want:?}, have {have:?}"));
            }
            done &= ok;
        }
        done
    });
    let elapsed = t0.elapsed();
    if !converged {
        return Err(BenchError::Timeout(format!(
            "not converged 60 s after the reload ({kept} kept; unmet: {}; last error {error:?}); log:\n{}",
            unmet.join("; "),
            d.log_tail(10)
        )));
    }
    let candidates = expect
        .values()
        .filter(|e| matches!(e, Expect::Kept(_)))
        .count();
    let mut m = Map::new();
    m.insert("programs".into(), json!(count));
    m.insert(
        "converge_ms".into(),
        json!(round3(elapsed.as_secs_f64() * 1e3)),
    );
    m.insert(
        "trigger_ms".into(),
        json!(round3(trigger.as_secs_f64() * 1e3)),
    );
    m.insert("kept".into(), json!(kept));
    m.insert("kept_of".into(), json!(candidates));
    m.insert(
        "trigger".into(),
        json!(match who {
            super::Impl::Taskmaster => "SIGHUP",
            super::Impl::Supervisord => "supervisorctl update",
        }),
    );
    rec.ok(scenario, who, m);
    Ok(())
}

/// The big fleet: time to all RUNNING, status, RSS, stop all.
fn scale(ctx: &mut Ctx, launcher: &dyn Launcher, rec: &mut Recorder) -> Result<(), BenchError> {
    let who = launcher.kind();
    let n = ctx.params.scale_n;
    let mut m = Map::new();
    m.insert("n".into(), json!(n));
    m.insert(
        "pid_max".into(),
        json!(sys::sysctl("/proc/sys/kernel/pid_max")),
    );
    m.insert(
        "threads_max".into(),
        json!(sys::sysctl("/proc/sys/kernel/threads-max")),
    );
    m.insert(
        "processes_before".into(),
        json!(crate::procfs::all_processes().len()),
    );
    // Discarded output: captured, each instance costs the daemon 2 pipe
    // fds and 2 files (supervisord: 3 pipes and 2 files), and the hard
    // RLIMIT_NOFILE here may be too low for that (see `nofile`).
    let mut program = Program::new("sleep", &["sleep", "100000"], n as u32);
    program.stdout = Output::Null;
    program.stderr = Output::Null;
    m.insert("output".into(), json!("discarded"));
    m.insert("nofile".into(), json!(nofile_limit()));
    let t0 = Instant::now();
    let d = launcher.launch(&Fleet::new(vec![program]), ctx.params.scale_deadline)?;
    let api_up = t0.elapsed();
    // While the fleet comes up: how long the control plane makes a client
    // wait (`status sleep:0`, back to back until every child is forked).
    let mut waits = Vec::new();
    while sys::children(d.pid()).len() < n && t0.elapsed() < ctx.params.scale_deadline {
        let t = Instant::now();
        match d.status_of("sleep:0") {
            Some(r) => r?,
            None => break,
        }
        waits.push(t.elapsed().as_secs_f64() * 1e3);
    }
    m.insert("status_during_start_n".into(), json!(waits.len()));
    m.insert(
        "status_during_start_max_ms".into(),
        json!(waits.iter().copied().reduce(f64::max).map(round3)),
    );
    m.insert(
        "status_during_start_median_ms".into(),
        json!(median(&waits).map(round3)),
    );
    let up = come_up(d.as_ref(), n, t0, ctx.params.scale_deadline)?;
    m.extend(up);
    // `come_up` starts after the probing: its own `api_up_s` would be late.
    m.insert("api_up_s".into(), json!(round3(api_up.as_secs_f64())));
    let pid = d.pid();
    m.insert("rss_mib".into(), json!(sys::rss_mib(pid).map(round3)));
    m.insert(
        "peak_rss_mib".into(),
        json!(sys::peak_rss_mib(pid).map(round3)),
    );
    m.insert("fds".into(), json!(sys::fd_count(pid)));
    let st = status_times(d.as_ref(), n, 3)?;
    m.insert("status_cli_median_ms".into(), st["cli_median_ms"].clone());
    m.insert("status_api_median_ms".into(), st["api_median_ms"].clone());
    let stop = stop_all(d.as_ref(), n)?;
    m.insert("stop_all_s".into(), stop["wall_s"].clone());
    drop(d);
    rec.ok("scale_10000", who, m);
    Ok(())
}

/// The soft `RLIMIT_NOFILE` in force (the daemons inherit it).
fn nofile_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// `n` TCP ports of 127.0.0.1 free now, below the ephemeral range: the
/// daemon's own probe connections take ephemeral source ports, which would
/// otherwise collide with a port a `listen` has yet to bind.
fn free_ports(n: usize) -> Result<Vec<u16>, BenchError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let ports: Vec<u16> = (10_000..low)
        .filter(|p| std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, *p)).is_ok())
        .take(n)
        .collect();
    if ports.len() < n {
        return Err(BenchError::Failed(format!(
            "only {} free ports in 10000..{low}, {n} needed",
            ports.len()
        )));
    }
    Ok(ports)
}

/// The `tcp` ready probe's interval in these scenarios (the default).
const READY_INTERVAL_MS: u64 = 100;

/// N programs `listen PORT 200`, each with a `tcp` ready probe on its own
/// port: from just before the launch to N RUNNING (which no instance can
/// reach before its port is bound, 200 ms after its spawn).
fn ready_tcp(ctx: &mut Ctx, launcher: &dyn Launcher, rec: &mut Recorder) -> Result<(), BenchError> {
    let who = launcher.kind();
    let n = ctx.params.readiness_n;
    let listen = ctx.listen.to_string_lossy().into_owned();
    let programs = free_ports(n)?
        .into_iter()
        .enumerate()
        .map(|(i, port)| {
            let mut p = Program::new(format!("r{i:04}"), &[&listen, &port.to_string(), "200"], 1);
            p.stdout = Output::Null;
            p.stderr = Output::Null;
            p.taskmaster_extra = format!(
                "ready:\n  tcp: 127.0.0.1:{port}\n  interval: {}\n  timeout: 30\n",
                READY_INTERVAL_MS as f64 / 1000.0
            );
            p
        })
        .collect();
    let t0 = Instant::now();
    let d = launcher.launch(&Fleet::new(programs), LAUNCH_DEADLINE)?;
    let mut m = come_up(d.as_ref(), n, t0, Duration::from_secs(60))?;
    m.remove("sleeping_children");
    m.insert("bind_after_ms".into(), json!(200));
    m.insert("probe_interval_ms".into(), json!(READY_INTERVAL_MS));
    rec.ok("ready_tcp_1000", who, m);
    Ok(())
}

/// A shared HTTP responder run by the bench (not by the daemon, so that its
/// CPU is not the daemon's): a few threads accepting on one port, each
/// answering `200` and counting.
struct Responder {
    port: u16,
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Responder {
    const THREADS: usize = 4;

    fn start() -> Result<Self, BenchError> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| BenchError::io("cannot bind the HTTP responder", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| BenchError::io("cannot read the responder's port", e))?
            .port();
        let served = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..Self::THREADS {
            let l = listener
                .try_clone()
                .map_err(|e| BenchError::io("cannot share the responder's socket", e))?;
            let (served, stop) = (served.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                for conn in l.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Ok(conn) = conn
                        && sys::answer_http_ok(conn).is_ok()
                    {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Ok(Responder {
            port,
            served,
            stop,
            threads,
        })
    }

    fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // One connection wakes each thread blocked in accept.
        for _ in 0..Self::THREADS {
            let _ = std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, self.port));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// N `sleep`s with an `http` health check every 1 s against one shared
/// responder: the daemon's CPU per wall second in steady state, the checks
/// the responder answered meanwhile, and whether any instance restarted.
fn health_http(
    ctx: &mut Ctx,
    launcher: &dyn Launcher,
    rec: &mut Recorder,
) -> Result<(), BenchError> {
    let who = launcher.kind();
    let n = ctx.params.readiness_n;
    let window = ctx.params.health_window;
    let server = Responder::start()?;
    let mut p = Program::new("h", &["sleep", "100000"], n as u32);
    p.stdout = Output::Null;
    p.stderr = Output::Null;
    p.taskmaster_extra = format!(
        "health:\n  http: \"http://127.0.0.1:{}/health\"\n  interval: 1\n  timeout: 1\n  failures: 3\n",
        server.port
    );
    let d = launcher.launch(&Fleet::new(vec![p]), LAUNCH_DEADLINE)?;
    let pid = d.pid();
    let before = wait_all_running(d.as_ref(), n, Duration::from_secs(60))?;
    // Past the start-up and the first round of checks: steady state.
    std::thread::sleep(Duration::from_secs(2));
    let (c0, r0, t0) = (sys::cpu_ticks(pid), server.served(), Instant::now());
    std::thread::sleep(window);
    let (c1, r1, wall) = (sys::cpu_ticks(pid), server.served(), t0.elapsed());
    let after = d.status()?;
    drop(d);
    let (Some(c0), Some(c1)) = (c0, c1) else {
        return Err(BenchError::Failed("daemon vanished".into()));
    };
    let pids = |l: &[Instance]| -> BTreeMap<u32, Option<u32>> {
        l.iter().map(|i| (i.index, i.pid)).collect()
    };
    let (pb, pa) = (pids(&before), pids(&after));
    let restarted = pb.iter().filter(|(k, v)| pa.get(k) != Some(v)).count();
    let cpu = (c1 - c0) as f64 / sys::ticks_per_second() as f64;
    let wall = wall.as_secs_f64();
    let mut m = Map::new();
    m.insert("n".into(), json!(n));
    m.insert("interval_s".into(), json!(1));
    m.insert("window_s".into(), json!(round3(wall)));
    m.insert("ticks".into(), json!(c1 - c0));
    m.insert("cpu_s".into(), json!(round3(cpu)));
    m.insert("cpu_s_per_s".into(), json!(round3(cpu / wall)));
    m.insert("checks".into(), json!(r1 - r0));
    m.insert(
        "checks_per_s".into(),
        json!(round3((r1 - r0) as f64 / wall)),
    );
    m.insert(
        "running_after".into(),
        json!(after.iter().filter(|i| i.running()).count()),
    );
    m.insert("restarted".into(), json!(restarted));
    rec.ok("health_http_1000", who, m);
    Ok(())
}

/// `taskmasterctl start` of a program that binds its port 300 ms after its
/// spawn, `tcp` ready probe: the client's wall time (spawn to exit), median
/// of several starts, each followed by a `stop`. Also `status`'s wall
/// time, the client's own cost in that figure.
fn ready_start(
    ctx: &mut Ctx,
    launcher: &dyn Launcher,
    rec: &mut Recorder,
) -> Result<(), BenchError> {
    let who = launcher.kind();
    let reps = ctx.params.ready_start_reps;
    let port = free_ports(1)?[0];
    let listen = ctx.listen.to_string_lossy().into_owned();
    let mut p = Program::new("late", &[&listen, &port.to_string(), "300"], 1);
    p.autostart = false;
    p.stdout = Output::Null;
    p.stderr = Output::Null;
    p.taskmaster_extra = format!(
        "ready:\n  tcp: 127.0.0.1:{port}\n  interval: {}\n  timeout: 10\n",
        READY_INTERVAL_MS as f64 / 1000.0
    );
    let d = launcher.launch(&Fleet::new(vec![p]), LAUNCH_DEADLINE)?;
    let cli = |args: &[&str]| {
        d.cli(args)
            .unwrap_or_else(|| Err(BenchError::Failed("no control client here".into())))
    };
    let mut starts = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..reps {
        starts.push(cli(&["start", "late"])?.elapsed.as_secs_f64() * 1e3);
        statuses.push(cli(&["status", "late"])?.elapsed.as_secs_f64() * 1e3);
        cli(&["stop", "late"])?;
    }
    drop(d);
    let mut m = Map::new();
    m.insert("ready_after_ms".into(), json!(300));
    m.insert("probe_interval_ms".into(), json!(READY_INTERVAL_MS));
    m.insert("reps".into(), json!(reps));
    m.insert("median_ms".into(), json!(median(&starts).map(round3)));
    m.insert(
        "min_ms".into(),
        json!(starts.iter().copied().reduce(f64::min).map(round3)),
    );
    m.insert(
        "max_ms".into(),
        json!(starts.iter().copied().reduce(f64::max).map(round3)),
    );
    m.insert(
        "status_cli_median_ms".into(),
        json!(median(&statuses).map(round3)),
    );
    rec.ok("ready_start_300ms", who, m);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_pair_each_exit_with_the_next_start() {
        let s = |exit, ms: u128, pid| Stamp {
            exit,
            mono_ns: ms * 1_000_000,
            pid,
        };
        let stamps = [
            s(false, 0, 1),
            s(true, 100, 1),
            s(false, 102, 2),
            s(true, 202, 2),
            s(false, 205, 3),
        ];
        assert_eq!(restart_gaps(&stamps, (0, u128::MAX)), vec![2.0, 3.0]);
        assert_eq!(
            restart_gaps(&stamps, (150 * 1_000_000, u128::MAX)),
            vec![3.0]
        );
    }
}
